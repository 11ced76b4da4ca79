"""The packaging files, without building: what the bundle keeps, the desktop entry, the icon, the scripts.

The build itself (minutes, GBs) is packaging/smoke_test.sh, documented in packaging/README.md.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

PACKAGING = Path(__file__).resolve().parent.parent / "packaging"
ICONS = PACKAGING.parent / "resources" / "icons"
sys.path.insert(0, str(PACKAGING))

from bundle_filter import keep_file, keep_module  # noqa: E402

CUDA_FILES = [
    "nvidia/cublas/lib/libcublas.so.13",
    "nvidia/cudnn/lib/libcudnn_engines_precompiled.so.9",
    "torch/lib/libtorch_cuda.so",
    "torch/lib/libc10_cuda.so",
    "torch/lib/libtorch_nvshmem.so",
    "torchvision.libs/libnvjpeg.36e11081.so.13",
    "torchvision.libs/libcudart.faf08d9a.so.13",
    "libcudart.so.13",
    "triton/backends/nvidia/lib/cupti/libcupti.so.13",
]
RUN_TIME_FILES = [
    "torch/lib/libtorch_cpu.so",
    "torch/lib/libc10.so",
    "torch/lib/libgomp.so.1",
    "PySide6/Qt/plugins/platforms/libqxcb.so",
    "PySide6/Qt/plugins/platforms/libqoffscreen.so",
    "libjpeg/_libjpeg.cpython-311-x86_64-linux-gnu.so",
    "openjpeg/_openjpeg.cpython-311-x86_64-linux-gnu.so",
    "pylibjpeg_libjpeg-2.5.0.dist-info/entry_points.txt",
    "pydicom/data/urls.json",
    "resources/models/default/weights.pt",
    "resources/samples/head_ct_ge/LICENSE-dcm_qa_ct.txt",
    "resources/samples/tests/01.dcm",
]
NOT_RUN_TIME_FILES = [
    "torch/include/ATen/ATen.h",
    "PySide6/include/pyside.h",
    "numpy/_core/tests/data/umath-validation-set-log.csv",
    "torch/_C/__init__.pyi",
    "torch/share/cmake/Torch/TorchConfig.cmake",
]


@pytest.mark.parametrize("dest", CUDA_FILES)
def test_cuda_libraries_stay_out_of_the_cpu_edition_only(dest):
    assert not keep_file(dest, "cpu")
    assert keep_file(dest, "gpu")


@pytest.mark.parametrize("dest", RUN_TIME_FILES)
def test_run_time_files_and_resources_ship_in_both_editions(dest):
    assert keep_file(dest, "cpu") and keep_file(dest, "gpu")


@pytest.mark.parametrize("dest", NOT_RUN_TIME_FILES)
def test_headers_tests_and_stubs_ship_in_neither(dest):
    assert not keep_file(dest, "cpu") and not keep_file(dest, "gpu")


def test_test_packages_are_left_out_but_torch_testing_stays():
    assert not keep_module("numpy.tests.test_api")
    assert not keep_module("nibabel.tests")
    assert keep_module("torch.testing._internal.common_dtype")  # `import torch` needs it
    assert keep_module("aimedx_desktop.selftest")


def test_desktop_entry():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(PACKAGING / "aimedx.desktop", encoding="utf-8")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application"
    assert section["Exec"].split()[0] == "aimedx"
    assert section["Icon"] == "aimedx"
    assert section["Terminal"] == "false"
    if shutil.which("desktop-file-validate"):
        result = subprocess.run(["desktop-file-validate", str(PACKAGING / "aimedx.desktop")], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_icon_svg_and_its_png_rendering():
    assert "<svg" in (ICONS / "aimedx.svg").read_text(encoding="utf-8")
    with Image.open(ICONS / "aimedx.png") as png:
        assert png.size == (256, 256)
        assert png.mode == "RGBA"


@pytest.mark.parametrize("script", ["build.sh", "smoke_test.sh", "gui_check.sh", "wheelhouse.sh", "install.sh"])
def test_scripts_parse(script):
    path = PACKAGING / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    shell = "sh" if path.read_text().startswith("#!/bin/sh") else "bash"
    subprocess.run([shell, "-n", str(path)], check=True)


def _fake_checkout(root: Path) -> Path:
    """A checkout holding the real bootstrap.sh and pyproject.toml, and a .venv whose python only
    logs how it was called (its pip "installs" instantly)."""
    repo = PACKAGING.parent
    (root / "scripts").mkdir(parents=True)
    shutil.copy(repo / "scripts" / "bootstrap.sh", root / "scripts" / "bootstrap.sh")
    shutil.copy(repo / "pyproject.toml", root / "pyproject.toml")
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text('#!/bin/sh\necho "$@" >> "$(dirname "$0")/../../calls.log"\n')
    python.chmod(0o755)
    return root


def test_bootstrap_installs_once_and_then_needs_no_network(tmp_path):
    """run-app.sh bootstraps at every start: a second start must not run pip install (offline sites)."""
    checkout = _fake_checkout(tmp_path / "checkout")
    for _ in range(2):
        subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=checkout, check=True, capture_output=True, timeout=60)
    installs = [line for line in (checkout / "calls.log").read_text().splitlines() if "pip install" in line]
    assert len(installs) == 2 and "torch==2.14.1" in installs[0] and "-e .[dev]" in installs[1]
    with (checkout / "pyproject.toml").open("a") as changed:
        changed.write("\n# a new dependency\n")
    subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=checkout, check=True, capture_output=True, timeout=60)
    assert sum("pip install" in line for line in (checkout / "calls.log").read_text().splitlines()) == 4
