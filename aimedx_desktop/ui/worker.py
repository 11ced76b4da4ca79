"""Long work off the UI thread: one job at a time on a QThread, reporting through signals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from aimedx_desktop.engine.cancel import Cancelled
from aimedx_desktop.error_log import bug_message


class JobContext:
    """Handed to a job function: report progress and finished slices, check for cancel."""

    def __init__(self, thread: "_JobThread", cancel: Any) -> None:
        self._thread = thread
        self.cancel = cancel

    def progress(self, done: int, total: int) -> None:
        self._thread.progress.emit(int(done), int(total))

    def slice_ready(self, index: int, data: Any) -> None:
        self._thread.slice_ready.emit(int(index), data.copy())


class _JobThread(QThread):
    progress = Signal(int, int)
    slice_ready = Signal(int, object)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, function: Callable[[JobContext], Any], cancel: Any, lands_outside: bool, parent: QObject) -> None:
        super().__init__(parent)
        self._function = function
        self._context = JobContext(self, cancel)
        self._lands_outside = lands_outside

    def run(self) -> None:  # runs in the worker thread
        value: Any = None
        failure: Exception | None = None
        try:
            value = self._function(self._context)
        except Exception as error:  # every failure becomes a signal; the UI thread decides
            failure = error
        cancel = self._context.cancel
        if failure is None and self._lands_outside:
            self.succeeded.emit(value)  # its files are written, its images stored: a late cancel changed nothing
        elif cancel is not None and cancel.cancelled:
            self.cancelled.emit()  # cancelled while it could not stop: drop what it produced
        elif failure is not None:
            self._report(failure)
        else:
            self.succeeded.emit(value)

    def _report(self, error: Exception) -> None:
        from aimedx_desktop.engine.errors import USER_ERRORS, first_line  # here: it loads the readers (pydicom)

        if isinstance(error, Cancelled):
            self.cancelled.emit()
        elif isinstance(error, USER_ERRORS):
            self.failed.emit(first_line(error))
        else:
            self.failed.emit(bug_message(error, "a background job of the desktop app"))


class Worker(QObject):
    """Runs one job at a time; a second `start` while busy is refused.

    Signals: progress(done, total), slice_ready(index, array), result(value), error(message),
    cancelled(), and finished() after any of the last three.
    """

    progress = Signal(int, int)
    slice_ready = Signal(int, object)
    result = Signal(object)
    error = Signal(str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: _JobThread | None = None
        self._cancel: Any = None

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def start(self, function: Callable[[JobContext], Any], cancel: Any = None, lands_outside: bool = False) -> bool:
        """Run `function(context)` on a new thread; False when a job is already running.

        A job that returns after a cancel came too late to stop it is reported cancelled and its
        value dropped (an opened scan, a conversion), unless its work `lands_outside` the app
        (exported files, images sent or retrieved): then it happened, and is reported so."""
        if self._thread is not None:
            return False
        self._cancel = cancel
        thread = _JobThread(function, cancel, lands_outside, self)
        thread.progress.connect(self.progress)
        thread.slice_ready.connect(self.slice_ready)
        thread.succeeded.connect(self.result)
        thread.failed.connect(self.error)
        thread.cancelled.connect(self.cancelled)
        thread.finished.connect(self._on_finished)
        self._thread = thread
        thread.start()
        return True

    @property
    def cancellable(self) -> bool:
        return self._cancel is not None

    def cancel(self) -> None:
        """Ask the running job to stop; it stops at its next check (within one batch)."""
        if self._cancel is not None:
            self._cancel.cancel()

    def wait(self, msecs: int) -> bool:
        """Block up to `msecs` for the running job's thread; True when none is left running."""
        return self._thread is None or self._thread.wait(msecs)

    def _on_finished(self) -> None:
        # QThread.finished is delivered after the result/error signal queued before it.
        thread, self._thread, self._cancel = self._thread, None, None
        if thread is not None:
            thread.deleteLater()
        self.finished.emit()
