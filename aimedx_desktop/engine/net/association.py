"""Associations with a node: opened with a one-line reason when they cannot be, closed on exit.

pynetdicom hands back a failed Association without saying why. The why is taken here from the
PDU the node answered with (A-ASSOCIATE-AC, -RJ or A-ABORT, through EVT_PDU_RECV: pynetdicom
3.0 can drop a rejection that arrives together with the connection's close before its own
negotiation reads it, but the PDU event still fires) and, when no TCP connection came about, from
the one error line its transport logs for this association's own thread (the OS's words:
refused, timed out, no route to host).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_AC, A_ASSOCIATE_RJ
from pynetdicom.sop_class import Verification

from aimedx_desktop.engine.net.errors import NetworkError
from aimedx_desktop.engine.net.nodes import Node, check_aet

MAX_CONTEXTS = 128
"""Presentation contexts one association may propose (PS3.8: odd IDs 1..255)."""

_TCP_ERROR_PREFIX = "TCP Initialisation Error: "
_REJECT_REASONS = {
    (1, 2): "application context not supported",
    (1, 3): "calling AE title {calling} not recognised",
    (1, 7): "called AE title not recognised",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded (too many associations at once)",
}
_REJECT_HINTS = {
    (1, 3): " (the node does not know us under that title: ask its administrator to add it, or change ours)",
    (1, 7): " ({aet} is not that node's AE title)",
}


@dataclass(frozen=True)
class Context:
    """A presentation context to propose. scp_role: we take the SCP role (C-GET's C-STOREs)."""

    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]
    scp_role: bool = False


VERIFICATION = Context(Verification, (ExplicitVRLittleEndian, ImplicitVRLittleEndian))


class _Negotiation(logging.Handler):
    """What happened while pynetdicom negotiated: did TCP connect, what did the node answer."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.connected = False
        self.answer: Any = None
        self._tcp_errors: dict[int | None, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(_TCP_ERROR_PREFIX):
            self._tcp_errors[record.thread] = message[len(_TCP_ERROR_PREFIX):]

    def on_open(self, event: evt.Event) -> None:
        self.connected = True

    def on_pdu(self, event: evt.Event) -> None:
        if isinstance(event.pdu, (A_ASSOCIATE_AC, A_ASSOCIATE_RJ, A_ABORT_RQ)) and self.answer is None:
            self.answer = event.pdu

    def tcp_error(self, assoc: Association) -> str:
        return self._tcp_errors.get(assoc.dul.ident, "")


@contextlib.contextmanager
def open_association(
    node: Node,
    calling_aet: str,
    contexts: Sequence[Context],
    timeout: float,
    handlers: Sequence[tuple[Any, Any]] = (),
) -> Iterator[Association]:
    """An established association with `node`, released when the block ends and aborted when it
    raises (Ctrl-C and Cancelled included). NetworkError when it cannot be established."""
    assoc = _associate(node, calling_aet, contexts, timeout, handlers)
    try:
        yield assoc
    except BaseException:
        if assoc.is_established:
            assoc.abort()
        raise
    if assoc.is_established:
        assoc.release()


def _associate(
    node: Node, calling_aet: str, contexts: Sequence[Context], timeout: float, handlers: Sequence[tuple[Any, Any]]
) -> Association:
    calling_aet = check_aet(calling_aet, "calling AE title")
    if len(contexts) > MAX_CONTEXTS:
        raise NetworkError(
            f"{len(contexts)} kinds of DICOM object (SOP class and transfer syntax) are more than one "
            f"association can carry ({MAX_CONTEXTS}); send them in smaller groups"
        )
    _resolve(node)
    ae = AE(ae_title=calling_aet)
    ae.connection_timeout = ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    for context in contexts:
        ae.add_requested_context(context.abstract_syntax, list(context.transfer_syntaxes))
    roles = [build_role(c.abstract_syntax, scp_role=True) for c in contexts if c.scp_role]
    watch = _Negotiation()
    transport_log = logging.getLogger("pynetdicom.transport")
    transport_log.addHandler(watch)
    started = time.monotonic()
    try:
        assoc = ae.associate(
            node.host,
            node.port,
            ae_title=node.aet,
            ext_neg=roles or None,
            evt_handlers=[
                (evt.EVT_CONN_OPEN, watch.on_open),
                (evt.EVT_CONN_OPEN, guard_socket, [timeout]),
                (evt.EVT_PDU_RECV, watch.on_pdu),
                *handlers,
            ],
        )
    finally:
        transport_log.removeHandler(watch)
    if not assoc.is_established:
        waited_out = time.monotonic() - started >= 0.9 * timeout
        raise NetworkError(_failure(node, calling_aet, assoc, watch, timeout, waited_out))
    return assoc


def guard_socket(event: evt.Event, timeout: float) -> None:
    """An association's socket as both ends of ours need it (an EVT_CONN_OPEN handler).

    - A read or write that waits `timeout` seconds fails: pynetdicom's own timeouts run between
      messages, and a peer that falls silent in the middle of one (a dropped link, a stalled
      process) would otherwise block its reading thread, and the app, for ever.
    - Small PDUs go out at once: each C-STORE starts with a small command PDU that Nagle's
      algorithm would hold back (measured: 28 files to storescp 1.7 s with it, 1.4 s without).
    """
    with contextlib.suppress(AttributeError, OSError):
        connection = event.assoc.dul.socket.socket
        connection.settimeout(timeout)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


def _resolve(node: Node) -> None:
    try:
        socket.getaddrinfo(node.host, node.port, type=socket.SOCK_STREAM)
    except OSError:  # socket.gaierror, or the resolver itself failing
        raise NetworkError(f"{node.address}: cannot find the host {node.host!r} (check the name, or give its IP address)") from None


def _failure(
    node: Node, calling_aet: str, assoc: Association, watch: _Negotiation, timeout: float, waited_out: bool
) -> str:
    """One line saying why the association with `node` was not established."""
    where = node.address
    answer = watch.answer
    if not watch.connected:
        reason = watch.tcp_error(assoc)
        if "refused" in reason.lower():
            return f"{where}: connection refused: nothing accepts connections on port {node.port} of {node.host}"
        if "timed out" in reason.lower() or not reason:
            return f"{where}: no answer from {node.host} within {timeout:g} s (host down, or a firewall in the way)"
        return f"{where}: cannot connect ({reason})"
    if isinstance(answer, A_ASSOCIATE_RJ):
        when = " for now (try again later)" if answer.result == 2 else ""
        hint = _REJECT_HINTS.get((answer.source, answer.reason_diagnostic), "").format(aet=node.aet)
        reason = rejection_reason(answer.source, answer.reason_diagnostic, calling_aet)
        return f"{where} rejected the association{when}: {reason}{hint}"
    if isinstance(answer, A_ASSOCIATE_AC) and not assoc.accepted_contexts:
        names = sorted({UID(cx.abstract_syntax).name for cx in assoc.rejected_contexts})
        return f"{where} accepts none of what was asked for: {', '.join(names)}"
    if isinstance(answer, A_ABORT_RQ):
        return f"{where} aborted the association request (is this port a DICOM service?)"
    if waited_out:
        return f"{where}: no answer to the association request within {timeout:g} s"
    return f"{where} closed the connection without answering the association request (is this port a DICOM service?)"


def rejection_reason(source: int | None, diagnostic: int | None, calling_aet: str) -> str:
    """An A-ASSOCIATE-RJ's source and diagnostic in words."""
    template = _REJECT_REASONS.get((source, diagnostic), "no reason given")
    return template.format(calling=calling_aet)


def accepts(assoc: Association, abstract_syntax: str) -> bool:
    return any(cx.abstract_syntax == abstract_syntax for cx in assoc.accepted_contexts)


def check_echo(assoc: Association, node: Node) -> float:
    """Send a C-ECHO on `assoc`: the round trip in seconds, or NetworkError."""
    started = time.perf_counter()
    status = assoc.send_c_echo()
    if "Status" not in status:
        raise NetworkError(f"{node.address} did not answer the C-ECHO (the association was lost)")
    if status.Status != 0x0000:
        raise NetworkError(f"{node.address} answered the C-ECHO with status 0x{status.Status:04X}")
    return time.perf_counter() - started


def echo(node: Node, calling_aet: str, timeout: float) -> float:
    """Verify `node` with a C-ECHO (DICOM's ping): seconds the echo took, or NetworkError."""
    with open_association(node, calling_aet, [VERIFICATION], timeout) as assoc:
        return check_echo(assoc, node)
