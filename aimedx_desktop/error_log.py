"""Real bugs, made visible: the traceback of an unexpected error goes to a rotating log file.

An error the user caused is one of engine.errors.USER_ERRORS and is shown as one line. Anything
else is a bug: its full traceback is appended to `aimedx.log` in the platform's user log folder,
and the user is told where (CLI: `error: internal error, details in …`; GUI: a dialog). The log
holds what a developer needs and nothing about patients beyond file names: the time, the
versions, the command or action, and the traceback (code lines and the exception's message;
no local variables, no command-line options, no DICOM header values).

No Qt and no torch here: both the CLI and the GUI use it, before either has loaded.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import traceback
from logging.handlers import RotatingFileHandler
from pathlib import Path

from aimedx_desktop import __version__

APP_FOLDER = "aimedx"
LOG_NAME = "aimedx.log"
MAX_LOG_BYTES = 1_000_000
KEPT_LOGS = 3
"""The log rotates at MAX_LOG_BYTES and keeps KEPT_LOGS older files beside it."""


def log_dir() -> Path:
    """The user log folder: ~/.local/state/aimedx/log (XDG), ~/Library/Logs/aimedx (macOS),
    %LOCALAPPDATA%\\aimedx\\Logs (Windows)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / APP_FOLDER / "Logs"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Logs" / APP_FOLDER
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / APP_FOLDER / "log"


def log_internal_error(error: BaseException, action: str) -> Path | None:
    """Append `error`'s traceback to the log; its path, or None when it cannot be written (then
    the traceback goes to stderr instead, so that it is never lost)."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    header = f"internal error in {action}: AI-MEDX Desktop {__version__}, Python {platform.python_version()}, {platform.platform()}"
    return _append(f"{header}\n{text}")


def log_start_refusal(message: str) -> Path | None:
    """Append why the desktop did not start: started from a menu, no terminal shows stderr."""
    return _append(f"the desktop did not start: AI-MEDX Desktop {__version__}, {platform.platform()}\n{message}\n")


def _append(entry: str) -> Path | None:
    """Append `entry` to the log; its path, or None when it cannot be written (then the entry goes
    to stderr instead, so that it is never lost)."""
    path = log_dir() / LOG_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(path, maxBytes=MAX_LOG_BYTES, backupCount=KEPT_LOGS, encoding="utf-8")
    except OSError:
        sys.stderr.write(entry)
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    try:
        handler.emit(logging.makeLogRecord({"msg": entry, "levelno": logging.ERROR}))
    finally:
        handler.close()
    return path


def bug_message(error: BaseException, action: str) -> str:
    """Log `error` and say so in the GUI's words."""
    path = log_internal_error(error, action)
    if path is None:
        return f"Something went wrong — the details could not be saved in {log_dir()}, so they were printed on the terminal."
    return f"Something went wrong — details were saved to {path}"


def where_saved(path: Path | None) -> str:
    """'details in PATH', or where they went when the log could not be written."""
    return f"details in {path}" if path is not None else f"details printed above (the log folder {log_dir()} is not writable)"
