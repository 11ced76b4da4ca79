"""The exceptions of reading and writing scans, and OS errors put in plain words."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class ScanReadError(Exception):
    """A file or folder that cannot be read as a scan.

    str(error) is one line, "<file name>: <reason>", fit to show the user as is. The path and
    the reason are kept apart (and are the exception's args, so it pickles) for callers that
    want them.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(str(path), " ".join(str(reason).split()))
        self.path = Path(path)
        self.reason: str = self.args[1]

    def __str__(self) -> str:
        return f"{self.path.name or self.path}: {self.reason}"


class ExportError(Exception):
    """An export that cannot be done; the message names the file or folder and the reason."""


_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file is larger than this disk or account allows",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the disk is read-only",
    errno.ENAMETOOLONG: "the name is too long",
    errno.ENOTDIR: "part of the path is a file, not a folder",
    errno.EISDIR: "a folder of that name is in the way",
    errno.EEXIST: "it already exists",
    errno.ENOENT: "no such file or folder",
    errno.EIO: "the disk reported an input/output error",
    errno.ELOOP: "the path has too many symbolic links (a loop?)",
}
_WINDOWS_PATH_TOO_LONG = 206  # ERROR_FILENAME_EXCED_RANGE


def os_error_reason(error: OSError) -> str:
    """A short, plain-words reason for an OSError (disk full, no permission, name too long, ...).

    Never "[Errno …]". Libraries re-raise the system's error without its errno (pydicom: "With
    tag (7FE0,0010) got exception: [Errno 28] …"): the cause that has one decides.
    """
    error = _with_errno(error)
    if getattr(error, "winerror", None) == _WINDOWS_PATH_TOO_LONG:
        return "the name is too long"
    if error.errno in _REASONS:
        return _REASONS[error.errno]
    if error.strerror:
        return str(error.strerror)
    text = " ".join(str(arg) for arg in error.args if arg is not None).strip()
    return text or "the operating system refused (no reason given)"


def _with_errno(error: OSError) -> OSError:
    """`error`, or the first OSError with an errno among the errors it was raised from."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, OSError) and current.errno is not None:
            return current
        current = current.__cause__ or current.__context__
    return error
