"""Terminating signals end the app the way Ctrl-C does, so that its cleanup runs.

Without a handler, SIGTERM (a shutdown, `kill`, a service manager) or SIGHUP (the terminal
closed) ends the process at once, and an export leaves its hidden staged files behind. Here every
signal whose default action terminates the process and that a process can catch raises
`Terminated` (a KeyboardInterrupt, so every Ctrl-C path cleans up for it too) in the CLI, or
closes the window in the GUI. SIGINT already raises KeyboardInterrupt; SIGPIPE and SIGXFSZ are
ignored by Python and come back as write errors; SIGKILL cannot be caught.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

TERMINATING: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name)
    for name in ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGXCPU")
    if hasattr(signal, name)  # Windows has only SIGTERM of these
)


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by `signum`; exit status 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def on_termination(handler: Callable[[int], None], signals: tuple[signal.Signals, ...] = TERMINATING) -> Iterator[None]:
    """Call handler(signum) on every one of `signals` inside the block, then restore the previous
    handlers. Signals are delivered to the main thread only: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def receive(signum: int, frame: FrameType | None) -> None:
        handler(signum)

    previous = {number: signal.signal(number, receive) for number in signals}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old if old is not None else signal.SIG_DFL)


def raise_terminated(signum: int) -> None:
    """The CLI's handler: stop what runs now, as Ctrl-C would."""
    raise Terminated(signum)
