"""The application: QApplication, settings, the first-start notice, and `run_app`."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from aimedx_desktop.resources import default_sample, resources_dir
from aimedx_desktop.ui.dialogs import Dialogs
from aimedx_desktop.ui.settings import APPLICATION, ORGANISATION, AppSettings


def application(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication([sys.argv[0], *(argv or [])])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    icon = resources_dir() / "icons" / "aimedx.png"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    return app


def create_window(settings: AppSettings | None = None, dialogs: Dialogs | None = None):
    """The main window, shown, with the engine loading in the background."""
    from aimedx_desktop.ui.main_window import MainWindow

    window = MainWindow(settings or AppSettings(), dialogs)
    window.show()
    window.load_engine()
    return window


def start(window, initial: Path | None) -> bool:
    """The first-start notice (until accepted once), then open `initial` or the sample.

    Returns False when the user declines the notice.
    """
    if not window.settings.notice_accepted:
        if not window.dialogs.first_start_notice():
            return False
        window.settings.notice_accepted = True
    path = initial if initial is not None else default_sample()
    if path is not None:
        window.open_path(path)
    return True


def run_app(argv: list[str]) -> int:
    """`aimedx [FILE]`: open the window (on FILE when given) and run until it closes."""
    app = application()
    window = create_window()
    initial = Path(argv[0]) if argv else None

    def begin() -> None:
        if not start(window, initial):
            window.close()

    QTimer.singleShot(0, begin)
    return app.exec()
