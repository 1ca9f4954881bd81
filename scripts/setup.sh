#!/usr/bin/env bash
# One-time (and idempotent) machine set-up for building, running and testing Hallmark on Debian:
#   - apt packages: PostgreSQL, the Fashion-MNIST dataset, build tools;
#   - a Python venv with PyTorch 2.13.0 (libtorch for the `tch` crate) and c2pa-python, kept in a
#     cache folder outside the checkout so fresh clones reuse it;
#   - PostgreSQL started when it is not running, and the `hallmark` database created.
# Prints the environment to build with on stdout when called as `scripts/setup.sh --print-env`.
set -euo pipefail

CACHE_DIR="${HALLMARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hallmark}"
VENV="$CACHE_DIR/venv"
TORCH_VERSION="2.13.0"
C2PA_PYTHON_VERSION="0.38.1"
DB_NAME="${HALLMARK_DB_NAME:-hallmark}"

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
    apt_install postgresql postgresql-client dataset-fashion-mnist python3-venv pkg-config
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

print_env() {
    echo "export PATH=\"$VENV/bin:\$PATH\""
    echo "export LIBTORCH_USE_PYTORCH=1"
    echo "export HALLMARK_PYTHON=\"$VENV/bin/python\""
}

case "${1:-all}" in
    --print-env) print_env ;;
    all)
        setup_packages
        setup_venv
        setup_postgres
        ;;
    *) echo "usage: $0 [--print-env]" >&2; exit 2 ;;
esac
