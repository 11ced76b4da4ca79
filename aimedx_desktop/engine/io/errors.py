"""The one exception the readers raise for input they cannot turn into a Scan."""

from __future__ import annotations

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
