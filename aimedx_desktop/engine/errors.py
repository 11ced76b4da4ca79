"""The exceptions that are the user's to fix (a bad option, file, model or output folder), not bugs.

The CLI prints them as one line and the GUI shows them in a dialog; anything else is a bug,
logged with its traceback (see aimedx_desktop/error_log.py). Kept free of torch and pydicom,
so that reporting an error never loads the engine.
"""

import re

from aimedx_desktop.engine.io.errors import ExportError, ScanReadError
from aimedx_desktop.engine.net.errors import NetworkError


class UserError(Exception):
    """A problem the user caused and can fix (an option out of range, unusable data, ...).

    Raised where input is checked; str(error) is one line, fit to show as is.
    """


class BundleError(Exception):
    """A model bundle is missing, malformed or does not match its card."""


USER_ERRORS: tuple[type[BaseException], ...] = (UserError, BundleError, ScanReadError, ExportError, NetworkError)


def first_line(error: BaseException) -> str:
    """An error's message as one line, without terminal colour codes (torch's messages have
    them); the exception's type when it has no message."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    return text.splitlines()[0] if text else type(error).__name__
