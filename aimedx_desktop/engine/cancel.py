"""Cancelling long jobs: a flag any thread may set, checked by the job between steps.

Kept free of torch so that the GUI can hand one to a job before the engine has loaded.
"""

from __future__ import annotations

import threading


class Cancelled(Exception):
    """The job was cancelled through its CancelToken."""


class CancelToken:
    """Thread-safe flag checked between batches; `cancel()` may be called from any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")
