#!/usr/bin/env bash
# Create .venv beside the checkout and install AI-MEDX Desktop with its test tools.
# Safe to run again: once installed, a later run installs nothing (and so needs no network)
# until pyproject.toml or the pinned torch changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# torch and torchvision are pinned to the release this project is tested with; pip takes
# them from a local wheel cache when the machine has one.
TORCH="torch==2.14.1 torchvision==0.29.1"
STAMP=.venv/.aimedx-installed
WANTED="$TORCH $(sha256sum pyproject.toml | cut -d' ' -f1)"

if [ -x .venv/bin/python ] && ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    echo "the .venv here has no pip (python3-venv was missing when it was made?): making it again" >&2
    rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv; then
        rm -rf .venv
        echo "error: $PYTHON cannot create a virtual environment; on Debian/Ubuntu: sudo apt-get install python3-venv" >&2
        exit 1
    fi
fi
if ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "error: .venv has Python $(.venv/bin/python -c 'import platform; print(platform.python_version())'), but 3.10 or newer is needed;" \
        "remove .venv and run again with PYTHON=python3.11 (or another 3.10+)" >&2
    exit 1
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANTED" ]; then
    # shellcheck disable=SC2086 # two requirements
    .venv/bin/python -m pip install --quiet --disable-pip-version-check $TORCH
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
    echo "$WANTED" > "$STAMP"
fi
echo "environment ready: $(pwd)/.venv"
