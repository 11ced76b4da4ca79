#!/usr/bin/env bash
# Create .venv beside the checkout and install AI-MEDX Desktop with its test tools.
# Safe to run again: an existing .venv is reused and only missing packages are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# torch and torchvision are pinned to the release this project is tested with; pip takes
# them from a local wheel cache when the machine has one.
.venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
echo "environment ready: $(pwd)/.venv"
