#!/usr/bin/env bash
# Set up the environment (if needed) and open the app on its bundled sample and default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/aimedx "$@"
