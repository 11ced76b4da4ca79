"""Seconds from launching the desktop app to its window being painted on screen.

Runs the app in a child process (interpreter start-up and imports included) that reports its
first paint of the main window and quits, and prints each run and the median:

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_startup.py [--runs 5]
    xvfb-run -a python benchmarks/gui_startup.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def child() -> None:
    from PySide6.QtCore import QEvent, QObject, QSettings, QTimer

    from aimedx_desktop.ui.app import application, create_window
    from aimedx_desktop.ui.settings import AppSettings

    app = application()
    settings = AppSettings(QSettings(os.path.join(tempfile.mkdtemp(), "s.ini"), QSettings.Format.IniFormat))

    class FirstPaint(QObject):
        def eventFilter(self, watched, event):  # noqa: N802
            if event.type() == QEvent.Type.Paint:
                print("visible", flush=True)
                QTimer.singleShot(0, app.quit)
                watched.removeEventFilter(self)
            return False

    window = create_window(settings)
    spy = FirstPaint()
    window.installEventFilter(spy)
    app.exec()
    window.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child()
        return
    times = []
    for run in range(args.runs):
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, __file__, "--child"], stdout=subprocess.PIPE, text=True)
        line = process.stdout.readline()
        elapsed = time.perf_counter() - started
        process.wait(timeout=120)
        if line.strip() != "visible":
            sys.exit(f"run {run + 1}: the window never reported a paint (exit {process.returncode})")
        times.append(elapsed)
        print(f"run {run + 1}: window visible after {elapsed:.2f} s")
    print(f"median: {statistics.median(times):.2f} s to window visible ({os.environ.get('QT_QPA_PLATFORM', 'default platform')})")


if __name__ == "__main__":
    main()
