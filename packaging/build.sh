#!/usr/bin/env bash
# Build the offline app into packaging/dist/EDITION/aimedx/ (start it as .../aimedx/aimedx).
#
#   packaging/build.sh [cpu|gpu]      (default cpu)
#
# cpu: a build environment of its own, packaging/build/venv-cpu, with torch's CPU wheel, so the
#      app carries no CUDA library. That wheel is on PyTorch's index, not PyPI: the script uses
#      $TORCH_CPU_WHEEL, else a torch-*+cpu wheel in $PIP_FIND_LINKS, else
#      https://download.pytorch.org/whl/cpu (torch and torchvision).
# gpu: the Python environment this script runs in ($PYTHON, default python3), which must have
#      torch's CUDA build (the PyPI default), its nvidia-* wheels and requirements-frozen.txt.
# AIMEDX_RESOURCES=DIR bundles DIR instead of resources/ (the default model, samples, icons).
set -euo pipefail
cd "$(dirname "$0")/.."
EDITION=${1:-cpu}
VENV=packaging/build/venv-cpu

cpu_python() {
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
    fi
    local pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
    if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
        local wheel=${TORCH_CPU_WHEEL:-}
        for dir in ${PIP_FIND_LINKS:-}; do
            [ -n "$wheel" ] || wheel=$(ls "$dir"/torch-*+cpu-*.whl 2>/dev/null | sort -V | tail -n 1 || true)
        done
        if [ -n "$wheel" ]; then
            "${pip[@]}" "$wheel" >&2
        else
            "${pip[@]}" torch torchvision --index-url https://download.pytorch.org/whl/cpu >&2
        fi
    fi
    "${pip[@]}" -r packaging/requirements-frozen.txt >&2
    echo "$VENV/bin/python"
}

case "$EDITION" in
    cpu) PY=$(cpu_python) ;;
    gpu) PY=${PYTHON:-python3} ;;
    *) echo "usage: $0 [cpu|gpu]" >&2; exit 2 ;;
esac

RESOURCES=${AIMEDX_RESOURCES:-resources}
if [ ! -f "$RESOURCES/models/default/model_card.json" ]; then
    echo "warning: $RESOURCES/models/default has no model: the app will view scans but not convert," >&2
    echo "         and its self-test will fail" >&2
fi

DIST=packaging/dist/$EDITION
started=$SECONDS
AIMEDX_EDITION=$EDITION nice -n "${NICE:-10}" "$PY" -m PyInstaller packaging/aimedx.spec \
    --noconfirm --clean --log-level WARN \
    --distpath "$DIST" --workpath "packaging/build/pyinstaller-$EDITION"
cp packaging/aimedx.desktop packaging/install.sh resources/icons/aimedx.svg "$DIST/aimedx/"
echo "built $DIST/aimedx in $((SECONDS - started)) s: $(du -sh "$DIST/aimedx" | cut -f1)" \
     "($(du -sh "$DIST/aimedx/_internal/resources" | cut -f1) of it model and samples)"
