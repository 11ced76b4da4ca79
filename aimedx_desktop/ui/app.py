"""The application: QApplication, settings, the first-start notice, and `run_app`."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from aimedx_desktop.error_log import bug_message
from aimedx_desktop.resources import default_sample, resources_dir
from aimedx_desktop.termination import TERMINATING, on_termination
from aimedx_desktop.ui.dialogs import Dialogs
from aimedx_desktop.ui.settings import APPLICATION, ORGANISATION, AppSettings

SIGNAL_CHECK_MS = 200


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
    if initial is not None:
        window.open_path(initial)
    elif (sample := default_sample()) is not None:
        window.open_path(sample, remember=False)  # the user's last folder and Recent stay theirs
    return True


def report_bugs_in(window) -> None:
    """An exception that escapes a slot of the UI thread is a bug: logged, and said in a dialog."""

    def hook(kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
        if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit: Python's own handling
            sys.__excepthook__(kind, error, traceback)
            return
        window.dialogs.error("Something went wrong", bug_message(error.with_traceback(traceback), "the desktop app"))

    sys.excepthook = hook


def close_on_termination(window, received: list[int] | None = None):
    """A context in which SIGTERM, SIGHUP, ... and Ctrl-C in the terminal close the window as its
    Quit does: the running job is cancelled (an export removes its staged files) before the app
    ends. Each signal is appended to `received`, for the exit status. (Python's own Ctrl-C
    raised KeyboardInterrupt in whatever slot ran, printed a traceback and the app went on.)"""

    def close(signum: int) -> None:
        if received is not None:
            received.append(signum)
        QTimer.singleShot(0, window.close_without_asking)

    return on_termination(close, (*TERMINATING, signal.SIGINT))


def run_app(argv: list[str]) -> int:
    """`aimedx [FILE]`: open the window (on FILE when given) and run until it closes."""
    app = application()
    window = create_window()
    initial = Path(argv[0]) if argv else None
    report_bugs_in(window)

    def begin() -> None:
        if not start(window, initial):
            window.close()

    # Python handles a signal only when it runs: a timer lets it run while Qt waits for events.
    heartbeat = QTimer(window)
    heartbeat.timeout.connect(lambda: None)
    heartbeat.start(SIGNAL_CHECK_MS)
    QTimer.singleShot(0, begin)
    received: list[int] = []
    with close_on_termination(window, received):
        status = app.exec()
    return 128 + received[0] if received else status  # as a shell reports a process a signal ended
