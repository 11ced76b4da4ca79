"""The exceptions that are the user's to fix (a bad file, model or output folder), not bugs.

The CLI prints them as one line and the GUI shows them in a dialog; anything else is a bug.
"""

from aimedx_desktop.engine.bundle import BundleError
from aimedx_desktop.engine.io.errors import ScanReadError
from aimedx_desktop.engine.io.export import ExportError
from aimedx_desktop.engine.net.errors import NetworkError

USER_ERRORS: tuple[type[BaseException], ...] = (BundleError, ScanReadError, ExportError, NetworkError, ValueError, OSError)
