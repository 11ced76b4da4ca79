#!/usr/bin/env bash
# Set up the environment (if needed) and run the whole test suite offscreen.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export QT_QPA_PLATFORM=offscreen
exec .venv/bin/python -m pytest "$@"
