"""The storage SCP (`aimedx listen`): receives CT and MR images and files them into the inbox.

Other SOP classes are refused where DICOM refuses them, in association negotiation (presentation
context result 3, "abstract syntax not supported", PS3.8 9.3.3.2): the sender learns it per SOP
class before it sends any data. Verification (C-ECHO) is answered. The called AE title must be
ours; with an allow-list, only those calling AE titles are accepted (rejection reason
"calling AE title not recognised").
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from pynetdicom import AE, evt
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from aimedx_desktop.engine.net.association import guard_socket, rejection_reason
from aimedx_desktop.engine.net.errors import NetworkError
from aimedx_desktop.engine.net.inbox import ensure_inbox
from aimedx_desktop.engine.net.nodes import DEFAULT_AET, DEFAULT_TIMEOUT, check_aet, check_port
from aimedx_desktop.engine.net.receive import IMAGE_STORAGE_CLASSES, Receiver, readable_transfer_syntaxes

ALL_INTERFACES = "0.0.0.0"
STOP_GRACE_S = 5.0
"""How long stop() waits, in all, for the aborted associations to end (a file being written finishes)."""


class StorageServer:
    """A C-STORE SCP on `bind`:`port` (port 0: any free port) writing into `inbox`.

    Use as a context manager, or start() and stop(); stop() is safe twice.
    """

    def __init__(
        self,
        inbox: Path,
        port: int,
        aet: str = DEFAULT_AET,
        bind: str = ALL_INTERFACES,
        allow: Sequence[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.inbox = Path(inbox)
        self.aet = check_aet(aet, "listening AE title")
        self.allow = [check_aet(title, "allowed AE title") for title in allow]
        self.bind = bind
        self.requested_port = check_port(port) if port else 0
        self.timeout = timeout
        self.receiver = Receiver(self.inbox, log)
        self._log = log
        self._server: ThreadedAssociationServer | None = None

    @property
    def port(self) -> int:
        """The port listened on (the one the OS chose when asked for port 0)."""
        if self._server is None:
            return self.requested_port
        return int(self._server.server_address[1])

    def start(self) -> StorageServer:
        ensure_inbox(self.inbox)
        ae = AE(ae_title=self.aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        ae.require_called_aet = True
        ae.require_calling_aet = list(self.allow)
        ae.add_supported_context(Verification)
        syntaxes = list(readable_transfer_syntaxes())
        for sop_class in IMAGE_STORAGE_CLASSES:
            ae.add_supported_context(sop_class, syntaxes)
        try:
            self._server = ae.start_server(
                (self.bind, self.requested_port),
                block=False,
                evt_handlers=[
                    self.receiver.handler,
                    (evt.EVT_ACSE_SENT, self._on_answer),
                    (evt.EVT_CONN_OPEN, guard_socket, [self.timeout]),
                ],
            )
        except OSError as error:
            reason = "the port is in use" if error.errno == errno.EADDRINUSE else (error.strerror or str(error))
            raise NetworkError(f"cannot listen on {self.bind}:{self.requested_port}: {reason}") from None
        return self

    def stop(self) -> None:
        """Stop listening and abort the open associations (their senders learn it at once).

        Closing the socket alone leaves running associations to die with the process, in the
        middle of whatever they were doing, unknown to their senders. The A-ABORTs go out
        together, without waiting for each peer; then up to STOP_GRACE_S in all lets a file that
        is being written into the inbox finish (a sender resends what it was told was aborted)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        associations = [a for a in server.active_associations if a is not threading.current_thread()]
        for association in associations:
            association.abort(block=False)
        deadline = time.monotonic() + STOP_GRACE_S
        for association in associations:
            association.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> StorageServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _on_answer(self, event: evt.Event) -> None:
        """Log the associations we reject, with the reason we gave."""
        answer = event.primitive
        if self._log is None or not isinstance(answer, A_ASSOCIATE) or answer.result not in (0x01, 0x02):
            return
        requestor = event.assoc.requestor
        reason = rejection_reason(answer.result_source, answer.diagnostic, requestor.ae_title)
        self._log(f"rejected an association from {requestor.ae_title} at {requestor.address}: {reason}")
