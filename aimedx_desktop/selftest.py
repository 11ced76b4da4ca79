"""`aimedx --self-test`: prove that an installation works, offscreen and offline, in seconds.

The check a site runs after installing from a USB stick, and the packaging smoke test runs on
the frozen app. It goes through the same public engine calls as the GUI and `aimedx convert`:
load the bundled default model, convert the first few slices of a bundled sample, export them
as PNG and as DICOM into a temporary folder and read both back. It also decodes a JPEG 2000
DICOM through the pylibjpeg plugins (found through package metadata, so the first thing a
frozen build loses) and, when the desktop interface is installed, builds the main window on
Qt's offscreen platform.

The result is one line: `self-test passed: …`, or `self-test FAILED: <step>: <reason>`.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from aimedx_desktop.resources import default_sample, samples_dir

DICOM_TOLERANCE = 1.0
"""DICOM stores int16 with slope 1: read-back values may differ by rounding, never more."""

T = TypeVar("T")


class SelfTestFailed(Exception):
    """One step failed; str() is `<step>: <reason>`."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step


def run_self_test(slices: int = 4, check_window: bool = True) -> tuple[bool, str]:
    """Run every step; returns (passed, the one-line result). Never raises."""
    try:
        return True, "self-test passed: " + ", ".join(_steps(slices, check_window))
    except SelfTestFailed as failure:
        return False, f"self-test FAILED: {failure}"


def main() -> int:
    """Print the one-line result; exit status 0 when every step passed, else 1."""
    passed, line = run_self_test()
    print(line, flush=True)
    return 0 if passed else 1


def _step(step: str, action: Callable[[], T]) -> T:
    """Run one step, turning any exception into SelfTestFailed naming the step."""
    try:
        return action()
    except SelfTestFailed:
        raise
    except Exception as error:  # the point is to report whatever broke, in one line
        lines = str(error).strip().splitlines()
        raise SelfTestFailed(step, lines[0] if lines else type(error).__name__) from error


def _steps(slices: int, check_window: bool) -> list[str]:
    bundle = _step("model", _load_default_model)
    scan = _step("sample", lambda: _first_slices(_read_sample(), slices))
    target = scan.modality.other
    translator = _step("device", lambda: _translator(bundle))
    started = time.perf_counter()
    synthetic = _step("convert", lambda: translator.translate(scan, target))
    seconds = time.perf_counter() - started
    if not np.isfinite(synthetic.voxels).all():
        raise SelfTestFailed("convert", "the model produced non-finite values")
    done = [
        f"model {bundle.name} {bundle.version}",
        f"{scan.n_slices} slices {scan.modality.value}→{target.value} in {seconds:.1f} s on {translator.device}",
    ]
    scratch = _step("export", lambda: tempfile.TemporaryDirectory(prefix="aimedx-selftest-", ignore_cleanup_errors=True))
    with scratch as tmp:
        _step("PNG", lambda: _png_round_trip(synthetic, Path(tmp) / "png"))
        _step("DICOM", lambda: _dicom_round_trip(synthetic, Path(tmp) / "dicom"))
    done.append("PNG+DICOM written and read back")
    _step("DICOM decoders", _check_decoders)
    done.append("JPEG/JPEG 2000 decoders ok")
    _step("DICOM network", lambda: importlib.import_module("pynetdicom"))
    done.append("DICOM network ok")
    if check_window:
        done.append(_step("main window", _check_window))
    return done


def _load_default_model():
    """The bundled default model; importing the engine is part of the step (torch may be what broke)."""
    from aimedx_desktop.engine.bundle import default_bundle_path, load_bundle

    return load_bundle(default_bundle_path())


def _translator(bundle):
    from aimedx_desktop.engine.translator import Translator

    return Translator(bundle, device="auto")


def find_sample() -> Path:
    """The bundled sample to convert (see resources.default_sample)."""
    sample = default_sample()
    if sample is None:
        raise FileNotFoundError(f"no sample scan in {samples_dir()}")
    return sample


def _read_sample():
    from aimedx_desktop.engine.io import read_scan

    return read_scan(find_sample())


def _first_slices(scan, count: int):
    """The first `count` slices of `scan`, with their geometry and DICOM headers."""
    keep = slice(0, min(count, scan.n_slices))
    headers = scan.dicom_headers[keep] if scan.dicom_headers is not None else None
    return dataclasses.replace(
        scan, voxels=scan.voxels[keep], geometry=scan.geometry.subset(keep), dicom_headers=headers
    )


def _png_round_trip(synthetic, folder: Path) -> None:
    from aimedx_desktop.engine.io import read_scan
    from aimedx_desktop.engine.io.export import export_scan

    written = export_scan(synthetic, folder, fmt="png")
    back = read_scan(folder, modality=synthetic.modality)
    if len(written) != synthetic.n_slices or back.shape != synthetic.shape:
        raise SelfTestFailed("PNG", f"read back {back.shape}, wrote {synthetic.shape}")


def _dicom_round_trip(synthetic, folder: Path) -> None:
    from aimedx_desktop.engine.io import read_scan
    from aimedx_desktop.engine.io.export import export_scan

    export_scan(synthetic, folder, fmt="dicom")
    back = read_scan(folder)
    if back.modality is not synthetic.modality or back.shape != synthetic.shape:
        raise SelfTestFailed("DICOM", f"read back {back.modality.value} {back.shape}, wrote {synthetic.shape}")
    error = float(np.abs(back.voxels - synthetic.voxels).max())
    if error > DICOM_TOLERANCE:
        raise SelfTestFailed("DICOM", f"values differ by up to {error:.1f} after the round trip")
    if not np.allclose(back.geometry.pixel_spacing, synthetic.geometry.pixel_spacing, atol=1e-3):
        raise SelfTestFailed("DICOM", "pixel spacing changed in the round trip")
    before, after = synthetic.geometry.positions, back.geometry.positions
    if (before is None) != (after is None) or (before is not None and not np.allclose(before, after, atol=1e-3)):
        raise SelfTestFailed("DICOM", "slice positions changed in the round trip")


def _check_decoders() -> None:
    """The pylibjpeg plugins are registered (entry points) and decode a JPEG 2000 round trip."""
    from pydicom import uid
    from pydicom.dataset import Dataset, FileMetaDataset
    from pylibjpeg.utils import get_pixel_data_decoders

    registered = get_pixel_data_decoders(version=2)
    missing = [s.name for s in (uid.JPEGBaseline8Bit, uid.JPEGLosslessSV1, uid.JPEG2000Lossless) if s not in registered]
    if missing:
        raise SelfTestFailed("DICOM decoders", f"no pylibjpeg decoder for {', '.join(missing)}")
    pixels = (np.arange(64 * 64, dtype=np.int16).reshape(64, 64) - 900) * 3
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = pixels.tobytes()
    ds.compress(uid.JPEG2000Lossless, encoding_plugin="pylibjpeg")
    ds.pixel_array_options(decoding_plugin="pylibjpeg")
    if not np.array_equal(ds.pixel_array, pixels):
        raise SelfTestFailed("DICOM decoders", "JPEG 2000 lossless round trip changed the pixels")


def _check_window() -> str:
    """Build the main window on Qt's offscreen platform. Skipped only where PySide6 is not
    installed (a command-line install): one that is there but cannot load (a system library
    missing) fails, as does one whose signals drop references (desktop_check.signal_problem)."""
    if importlib.util.find_spec("PySide6") is None:
        return "main window skipped (desktop interface not installed: PySide6)"
    from aimedx_desktop.desktop_check import signal_problem
    from aimedx_desktop.ui.main_window import MainWindow
    from aimedx_desktop.ui.settings import AppSettings

    problem = signal_problem()
    if problem is not None:
        raise SelfTestFailed("main window", problem.removeprefix("error: "))
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QSettings, qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    # The offscreen platform warns about what it cannot do (size hints, ...); keep the one line.
    previous = qInstallMessageHandler(lambda *_: None)
    try:
        app = QApplication.instance() or QApplication(["aimedx-self-test"])
        with tempfile.TemporaryDirectory(prefix="aimedx-selftest-qt-") as tmp:
            # A throwaway settings file: the self-test must not touch the user's settings.
            store = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
            window = MainWindow(AppSettings(store))
            window.show()
            app.processEvents()
            shown = window.isVisible()
            window.close()
            app.processEvents()
    finally:
        qInstallMessageHandler(previous)
    if not shown:
        raise SelfTestFailed("main window", "the window did not show")
    return f"main window ok ({app.platformName()})"
