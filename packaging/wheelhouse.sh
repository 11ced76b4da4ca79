#!/usr/bin/env bash
# Offline Python install from a wheelhouse (the source install; the frozen app is build.sh).
#
#   packaging/wheelhouse.sh make [DIR]      on a connected machine with the same OS, CPU and
#                                           Python version: wheels of every dependency -> DIR
#   packaging/wheelhouse.sh install [DIR]   on the offline machine, in a copy of this checkout:
#                                           pip install --no-index from DIR
# DIR defaults to wheelhouse/ in the checkout. `install` uses the active virtual environment,
# else creates .venv (as scripts/bootstrap.sh does). TORCH_INDEX=https://download.pytorch.org/whl/cpu
# on `make` takes torch's CPU build instead of the CUDA one (about 3 GB less).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ACTION=${1:-}
DIR=$(realpath -m "${2:-$ROOT/wheelhouse}")
PY=${PYTHON:-python3}
cd "$ROOT"
case "$ACTION" in
    make)
        # setuptools: the build backend, so that the project itself installs with no index.
        "$PY" -m pip download --dest "$DIR" ".[dev]" "setuptools>=64" wheel \
            ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"}
        echo "wheelhouse ready: $DIR ($(ls "$DIR" | wc -l) files, $(du -sh "$DIR" | cut -f1))"
        ;;
    install)
        VENV=${VIRTUAL_ENV:-$ROOT/.venv}
        [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --no-index --find-links "$DIR" -e ".[dev]"
        echo "installed; check it with: $VENV/bin/aimedx --self-test"
        ;;
    *)
        echo "usage: $0 make|install [WHEELHOUSE_DIR]" >&2
        exit 2
        ;;
esac
