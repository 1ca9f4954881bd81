#!/usr/bin/env bash
# One-time (and idempotent) machine set-up for building, running and testing Hallmark on Debian:
#   - apt packages: PostgreSQL, the Fashion-MNIST dataset, build tools;
#   - a Python venv with PyTorch 2.13.0 (libtorch for the `tch` crate), c2pa-python, iscc-core and
#     the `moto` S3-compatible server (tests/replicas.rs), kept in a cache folder outside the
#     checkout so fresh clones reuse it;
#   - PostgreSQL started when it is not running, and the `hallmark` database created;
#   - for the browser tests (tests/browser.rs): Debian's `chromium` and Node.js (apt), and
#     `playwright-core` from tests/browser/package-lock.json installed with `npm ci` into the cache
#     folder (never Playwright's own browser download);
#   - with --cargo-tools (what `make lint`, `make test` and `make sbom` call; `make run` does not):
#     cargo-deny and cargo-cyclonedx, built once with `cargo install --locked` into the cache
#     folder (about 12 minutes on 2 cores).
# Prints the environment to build with on stdout when called as `scripts/setup.sh --print-env`.
set -euo pipefail

CACHE_DIR="${HALLMARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hallmark}"
VENV="$CACHE_DIR/venv"
TORCH_VERSION="2.13.0"
C2PA_PYTHON_VERSION="0.38.1"
# The ISCC reference implementation, which the io.iscc.v0 soft binding is checked against bit for bit
# (scripts/iscc_image_code.py, tests/provenance.rs). The pin matters: 1.5.0 takes bits 65-256 of
# the Image-Code from other DCT squares than 1.3.0 did.
ISCC_CORE_VERSION="1.5.0"
PYYAML_VERSION="6.0.3"
ASN1CRYPTO_VERSION="1.5.1"
# The S3-compatible server tests/replicas.rs runs the blob store against (`python -m moto.server`).
MOTO_VERSION="5.2.5"
CARGO_DENY_VERSION="0.20.2"
CARGO_CYCLONEDX_VERSION="0.5.9"
CARGO_TOOLS="$CACHE_DIR/cargo-tools"
DB_NAME="${HALLMARK_DB_NAME:-hallmark}"
NODE_PREFIX="$CACHE_DIR/node"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { echo "setup: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ $apt_updated -eq 0 ]; then
        log "apt-get update"
        as_root apt-get update -qq >&2
        apt_updated=1
    fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >&2
}

setup_packages() {
    # strace: tests/api/cli.rs traces that blobs are fsynced. libjemalloc2: the binaries' allocator
    # (build.rs links it ahead of libc).
    apt_install postgresql postgresql-client dataset-fashion-mnist python3-venv pkg-config strace wrk \
        libjemalloc2
}

setup_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating venv in $VENV"
        mkdir -p "$CACHE_DIR"
        python3 -m venv "$VENV"
    fi
    if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
        log "installing torch==$TORCH_VERSION into $VENV (about 5 GB, once)"
        "$VENV/bin/pip" install -q --disable-pip-version-check "torch==$TORCH_VERSION" >&2
    fi
    if ! "$VENV/bin/python" -c "import c2pa" 2>/dev/null; then
        log "installing c2pa-python==$C2PA_PYTHON_VERSION into $VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check "c2pa-python==$C2PA_PYTHON_VERSION" >&2
    fi
    if ! "$VENV/bin/python" -c "import iscc_core, sys; sys.exit(0 if iscc_core.__version__ == '$ISCC_CORE_VERSION' else 1)" 2>/dev/null; then
        log "installing iscc-core==$ISCC_CORE_VERSION into $VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check "iscc-core==$ISCC_CORE_VERSION" >&2
    fi
    # The C2PA Conformance Program's rubric evaluator (third_party/c2pa-conformance/) reads its
    # rubrics with PyYAML.
    if ! "$VENV/bin/python" -c "import yaml" 2>/dev/null; then
        log "installing PyYAML==$PYYAML_VERSION into $VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check "PyYAML==$PYYAML_VERSION" >&2
    fi
    # The test time-stamp authority (scripts/test_tsa.py) builds RFC 3161 replies with
    # asn1crypto and signs them with cryptography (which c2pa-python brings).
    if ! "$VENV/bin/python" -c "import asn1crypto, cryptography" 2>/dev/null; then
        log "installing asn1crypto==$ASN1CRYPTO_VERSION into $VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check "asn1crypto==$ASN1CRYPTO_VERSION" cryptography >&2
    fi
    # The Python peer of the throughput comparison (benches/python_peer/, benches/load.py).
    if ! "$VENV/bin/python" -c "import fastapi, uvicorn, asyncpg, safetensors, PIL" 2>/dev/null; then
        log "installing the Python peer's requirements into $VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REPO_ROOT/benches/python_peer/requirements.txt" >&2
    fi
    if ! "$VENV/bin/python" -c "import moto.server" 2>/dev/null; then
        log "installing moto[server]==$MOTO_VERSION into $VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
    fi
}

setup_postgres() {
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        local version
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        log "starting PostgreSQL $version"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
        for _ in $(seq 1 30); do
            pg_isready -q -h 127.0.0.1 -p 5432 && break
            sleep 1
        done
    fi
    pg_isready -q -h 127.0.0.1 -p 5432 || { log "PostgreSQL did not start"; exit 1; }
    if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1; then
        log "creating database $DB_NAME"
        psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB_NAME" >&2
    fi
}

setup_browser() {
    apt_install chromium
    command -v node >/dev/null 2>&1 || apt_install nodejs
    command -v npm >/dev/null 2>&1 || apt_install npm
    local lock="$REPO_ROOT/tests/browser/package-lock.json"
    # Reinstall only when the committed lock file changed (or nothing is installed yet).
    if [ ! -d "$NODE_PREFIX/node_modules/playwright-core" ] || ! cmp -s "$lock" "$NODE_PREFIX/package-lock.json"; then
        log "installing playwright-core into $NODE_PREFIX (no browser download)"
        mkdir -p "$NODE_PREFIX"
        cp "$REPO_ROOT/tests/browser/package.json" "$lock" "$NODE_PREFIX/"
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$NODE_PREFIX" --no-audit --no-fund --loglevel=error >&2
    fi
}

# cargo-deny and cargo-cyclonedx, each at its pinned version, in $CARGO_TOOLS/bin (the version
# built is noted beside it: cargo-cyclonedx has no --version).
setup_cargo_tools() {
    local tool version
    mkdir -p "$CARGO_TOOLS/versions"
    for tool in "cargo-deny $CARGO_DENY_VERSION" "cargo-cyclonedx $CARGO_CYCLONEDX_VERSION"; do
        version="${tool#* }"
        tool="${tool% *}"
        if [ ! -x "$CARGO_TOOLS/bin/$tool" ] \
            || [ "$(cat "$CARGO_TOOLS/versions/$tool" 2>/dev/null)" != "$version" ]; then
            log "building $tool $version into $CARGO_TOOLS (once, several minutes)"
            cargo install --quiet --locked --force --version "$version" --root "$CARGO_TOOLS" "$tool" >&2
            echo "$version" > "$CARGO_TOOLS/versions/$tool"
        fi
    done
}

print_env() {
    echo "export PATH=\"$VENV/bin:$CARGO_TOOLS/bin:\$PATH\""
    echo "export LIBTORCH_USE_PYTORCH=1"
    echo "export HALLMARK_PYTHON=\"$VENV/bin/python\""
    echo "export HALLMARK_NODE_MODULES=\"$NODE_PREFIX/node_modules\""
    echo "export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1"
}

case "${1:-all}" in
    --print-env) print_env ;;
    all)
        setup_packages
        setup_venv
        setup_postgres
        setup_browser
        ;;
    --cargo-tools) setup_cargo_tools ;;
    --browser) setup_browser ;;
    *) echo "usage: $0 [--print-env|--browser|--cargo-tools]" >&2; exit 2 ;;
esac
