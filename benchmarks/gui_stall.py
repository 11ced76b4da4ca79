"""Longest event-loop stall (ms) while the app converts the GE head CT series.

A QTimer heartbeat ticks every few milliseconds on the UI thread during the conversion; the
longest gap between two ticks, less the interval, is the longest the window was unresponsive.
Uses the bundled default model when present, else a representative random-weight bundle of the
same architecture (ResNet generator, ngf=16, 9 blocks, 256 px):

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_stall.py [--series ../shared/data/head_ct_ge]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QElapsedTimer, QEventLoop, QSettings, QTimer

from aimedx_desktop.ui.app import application, create_window
from aimedx_desktop.ui.settings import AppSettings

ROOT = Path(__file__).resolve().parent.parent
HEARTBEAT_MS = 5


class Heartbeat:
    """Records the longest gap between ticks of a fast UI-thread timer."""

    def __init__(self) -> None:
        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(HEARTBEAT_MS)
        self.timer.timeout.connect(self._tick)
        self.longest_ms = 0.0
        self._last = 0

    def start(self) -> None:
        self.clock.start()
        self._last = self.clock.nsecsElapsed()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        now = self.clock.nsecsElapsed()
        self.longest_ms = max(self.longest_ms, (now - self._last) / 1e6 - HEARTBEAT_MS)
        self._last = now


def representative_bundle(folder: Path) -> Path:
    from aimedx_desktop.engine.bundle import new_bundle, save_bundle
    from aimedx_desktop.engine.intensity import CTContract, IntensityContract, MRContract
    from aimedx_desktop.engine.networks import GeneratorConfig

    contract = IntensityContract(CTContract(-100.0, 200.0), MRContract(0.0, 99.5))
    bundle = new_bundle("representative", GeneratorConfig(ngf=16, n_blocks=9), contract, image_size=256)
    return save_bundle(bundle, folder / "representative")


def wait(condition, timeout_s: float = 600.0) -> None:
    """Run the real event loop until `condition()` holds."""
    loop = QEventLoop()
    poll = QTimer()
    poll.timeout.connect(lambda: loop.quit() if condition() else None)
    poll.start(20)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    poll.stop()
    if not condition():
        raise SystemExit("timed out")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=Path, default=ROOT.parent / "shared" / "data" / "head_ct_ge")
    args = parser.parse_args()
    application()
    temp = Path(tempfile.mkdtemp())
    settings = AppSettings(QSettings(str(temp / "s.ini"), QSettings.Format.IniFormat))
    window = create_window(settings)
    wait(lambda: window.engine_ready)
    if window.model is None:
        window.import_model(representative_bundle(temp))
    window.open_path(args.series)
    wait(lambda: not window.worker.busy and window._job is None)
    if window.source_scan is None:
        raise SystemExit(f"could not open {args.series}")
    heartbeat = Heartbeat()
    heartbeat.start()
    started = time.perf_counter()
    window.convert()
    wait(lambda: not window.worker.busy and window._job is None)
    elapsed = time.perf_counter() - started
    heartbeat.stop()
    scan = window.synthetic_scan
    if scan is None:
        raise SystemExit("the conversion did not finish")
    print(f"model: {window.model.label}; device: {window.device_text}; threads: {os.environ.get('OMP_NUM_THREADS', 'default')}")
    print(f"converted {scan.n_slices} slices of {args.series.name} in {elapsed:.1f} s")
    print(f"longest event-loop stall while converting: {heartbeat.longest_ms:.0f} ms")
    window.close_without_asking()


if __name__ == "__main__":
    main()
