#!/usr/bin/env bash
# Packaging smoke check: build the app, then run its frozen self-test as a site would: offscreen,
# from an empty environment (no venv, no PYTHONPATH, not in the checkout).
#   packaging/smoke_test.sh [cpu|gpu]       SKIP_BUILD=1 checks the existing build
set -euo pipefail
cd "$(dirname "$0")/.."
EDITION=${1:-cpu}
APP_DIR=$PWD/packaging/dist/$EDITION/aimedx
[ "${SKIP_BUILD:-0}" = 1 ] || bash packaging/build.sh "$EDITION"
if [ "$EDITION" = cpu ]; then
    cuda=$(find "$APP_DIR" -name 'libcu*' -o -name 'libnv*' -o -name 'libtorch_cuda*' -o -name 'libc10_cuda*' | head -n 3)
    if [ -n "$cuda" ]; then
        echo "smoke test FAILED: CUDA libraries in the CPU edition: $cuda" >&2
        exit 1
    fi
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
started=$(date +%s%N)
env -i HOME="$scratch" PATH=/usr/bin:/bin LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen "$APP_DIR/aimedx" --self-test
echo "frozen self-test: $(( ($(date +%s%N) - started) / 1000000 )) ms from start to exit"
