"""The README screenshot: the real window on the bundled sample, converted by the default model.

Run under a real (virtual) display, not offscreen:

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/gui_screenshot.py \
        [--input ../shared/data/head_ct_ge] [--model BUNDLE] [--uncertainty] [--out docs/screenshot.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer

from aimedx_desktop.resources import default_sample
from aimedx_desktop.ui.app import application, create_window
from aimedx_desktop.ui.settings import AppSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gui_stall import wait  # noqa: E402  (the same event-loop wait)

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, help="scan to show (default: the bundled sample)")
    parser.add_argument("--model", type=Path, help="model bundle (default: the bundled default model)")
    parser.add_argument("--slice", type=int, help="slice index to show (default: the middle)")
    parser.add_argument("--preset", default="1", help="CT window preset key for the CT pane(s)")
    parser.add_argument("--uncertainty", action="store_true", help="show the uncertainty overlay (key U)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    args = parser.parse_args()
    app = application()
    settings = AppSettings(QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat))
    settings.notice_accepted = True
    window = create_window(settings)
    window.resize(1500, 820)
    wait(lambda: window.engine_ready)
    if args.model is not None and not window.import_model(args.model):
        sys.exit(f"not a model bundle: {args.model}")
    if window.model is None:
        sys.exit("no model: bundle the default model or pass --model")
    source = args.input or default_sample() or ROOT.parent / "shared" / "data" / "head_ct_ge"
    window.open_path(source)
    wait(lambda: not window.worker.busy and window._job is None)
    if window.source_scan is None:
        sys.exit(f"could not open {source}")
    window.convert()
    wait(lambda: not window.worker.busy and window._job is None)
    if window.synthetic_scan is None:
        sys.exit("the conversion did not finish")
    viewer = window.source_viewer
    if args.slice is not None:
        viewer.set_index(args.slice)
    for preset in window.preset_actions:
        if preset.shortcut().toString() == args.preset:
            preset.trigger()
    if args.uncertainty:
        window.uncertainty_action.trigger()
        viewer = window.synthetic_viewer
    rows, cols = window.source_scan.shape[1:]
    viewer.cursorMoved.emit(rows * 0.45, cols * 0.55)
    shot: list = []
    QTimer.singleShot(800, lambda: shot.append(app.primaryScreen().grabWindow(window.winId())))
    wait(lambda: bool(shot))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not shot[0].save(str(args.out)):
        sys.exit(f"could not write {args.out}")
    print(f"wrote {args.out} ({shot[0].width()}×{shot[0].height()}) with {window.model.label} on {window.device_text}")
    window.close_without_asking()


if __name__ == "__main__":
    main()
