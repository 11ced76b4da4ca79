"""Shared fixtures: tiny bundles and scans made on the fly, and the optional shared data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# One thread: the test networks are tiny, and on a 2-core machine with anything else running,
# torch's spinning worker threads would slow every step several-fold.
torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("AIMEDX_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout (or $AIMEDX_SHARED_DATA); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real scans not available: {SHARED_DATA} does not exist (only in the dev/CI checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def bundled_samples() -> Path:
    """resources/samples: the GE head CT series and the T2 MR volume that ship with the app."""
    return REPO_ROOT / "resources" / "samples"


@pytest.fixture(scope="session")
def tiny_bundle():
    """A randomly initialised bundle with a very small generator: fast, real code paths."""
    from aimedx_desktop.engine.bundle import new_bundle
    from aimedx_desktop.engine.intensity import CTContract, IntensityContract, MRContract
    from aimedx_desktop.engine.networks import GeneratorConfig

    contract = IntensityContract(CTContract(-100.0, 200.0), MRContract(0.0, 99.5))
    return new_bundle("tiny-test", GeneratorConfig(ngf=4, n_blocks=1), contract, image_size=64, version="0.0.1")


@pytest.fixture(scope="session")
def tiny_bundle_dir(tiny_bundle, tmp_path_factory) -> Path:
    from aimedx_desktop.engine.bundle import save_bundle

    return save_bundle(tiny_bundle, tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def uncertain_bundle_dir(tmp_path_factory) -> Path:
    """A tiny bundle whose generators also give an uncertainty map (random weights)."""
    from aimedx_desktop.engine.bundle import new_bundle, save_bundle
    from aimedx_desktop.engine.intensity import CTContract, IntensityContract, MRContract
    from aimedx_desktop.engine.networks import GeneratorConfig

    contract = IntensityContract(CTContract(-40.0, 150.0), MRContract(0.0, 99.5))
    bundle = new_bundle("tiny-uncertain", GeneratorConfig(ngf=4, n_blocks=1, uncertainty=True), contract, image_size=64)
    return save_bundle(bundle, tmp_path_factory.mktemp("models") / "uncertain")


@pytest.fixture
def ct_scan():
    """A 5-slice synthetic head-like CT in HU: air, a skull ring and brain."""
    from aimedx_desktop.engine.scan import Geometry, Modality, Provenance, Scan

    rows, cols = np.mgrid[:48, :40]
    radius = np.hypot((rows - 24) / 20, (cols - 20) / 16)
    slice_hu = np.where(radius < 0.85, 35.0, np.where(radius < 1.0, 1200.0, -1000.0)).astype(np.float32)
    voxels = np.stack([slice_hu + i for i in range(5)])
    positions = np.array([[0.0, 0.0, 2.5 * i] for i in range(5)])
    geometry = Geometry((0.8, 1.0), (1, 0, 0, 0, 1, 0), positions, 2.5)
    return Scan(voxels, Modality.CT, geometry, Provenance(("memory",), "test"), description="phantom")


@pytest.fixture(scope="session")
def synthetic_ge_series(tiny_bundle, bundled_samples, tmp_path_factory) -> list[Path]:
    """The bundled GE head CT (28 slices) as synthetic MR by the tiny bundle, exported as DICOM."""
    from aimedx_desktop.engine.intensity import prepare_source
    from aimedx_desktop.engine.io import read_scan
    from aimedx_desktop.engine.io.export import export_scan
    from aimedx_desktop.engine.scan import Modality
    from aimedx_desktop.engine.translator import Translator

    source = prepare_source(read_scan(bundled_samples / "head_ct_ge"), tiny_bundle.contract)
    synthetic = Translator(tiny_bundle, device="cpu").translate(source, Modality.MR)
    return export_scan(synthetic, tmp_path_factory.mktemp("synthetic_ge"), fmt="dicom")


@pytest.fixture
def log_home(tmp_path, monkeypatch) -> Path:
    """The user log folder, moved into the test's temporary folder."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state" / "aimedx" / "log"
