"""What we accept over DICOM and the C-STORE handler that files it into the inbox.

Shared by the storage SCP (listen.py) and C-GET (query.py), whose images arrive as C-STOREs on
our own association. Accepted: CT and MR image storage (classic, enhanced, legacy converted) in
every transfer syntax pydicom can decode on this machine, so that whatever is accepted opens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.uid import UID, AllTransferSyntaxes, UncompressedTransferSyntaxes
from pynetdicom import evt
from pynetdicom.sop_class import (
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    LegacyConvertedEnhancedCTImageStorage,
    LegacyConvertedEnhancedMRImageStorage,
    MRImageStorage,
)

from aimedx_desktop.engine.net.errors import NetworkError
from aimedx_desktop.engine.net.inbox import store_instance

IMAGE_STORAGE_CLASSES: tuple[UID, ...] = (
    CTImageStorage,
    EnhancedCTImageStorage,
    LegacyConvertedEnhancedCTImageStorage,
    MRImageStorage,
    EnhancedMRImageStorage,
    LegacyConvertedEnhancedMRImageStorage,
)
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
_MAX_COMMENT = 64  # Error Comment is LO


def readable_transfer_syntaxes() -> tuple[UID, ...]:
    """Transfer syntaxes whose pixel data pydicom can decode here, uncompressed ones first."""
    readable = []
    for uid in AllTransferSyntaxes:
        try:
            if get_decoder(uid).is_available:
                readable.append(uid)
        except NotImplementedError:  # no decoder for this syntax at all (video, private)
            continue
    return tuple(sorted(readable, key=lambda uid: uid not in UncompressedTransferSyntaxes))


def _status(code: int, comment: str) -> Dataset:
    status = Dataset()
    status.Status = code
    status.ErrorComment = comment[:_MAX_COMMENT]
    return status


class Receiver:
    """Handles EVT_C_STORE: checks the object, stores it in `inbox`, answers with a status.

    `log` gets one line per received object (or refusal); it is called from pynetdicom's
    association threads, several at once when several senders are connected.
    """

    def __init__(self, inbox: Path, log: Callable[[str], None] | None = None) -> None:
        self.inbox = Path(inbox)
        self._log = log
        self._lock = threading.Lock()
        self.stored = 0

    @property
    def handler(self) -> tuple[evt.InterventionEvent, Callable[[evt.Event], Dataset | int]]:
        return (evt.EVT_C_STORE, self.on_store)

    def on_store(self, event: evt.Event) -> Dataset | int:
        sender = event.assoc.requestor.ae_title
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
        except Exception as error:  # undecodable bytes: pydicom raises many types
            return self._refuse(CANNOT_UNDERSTAND, f"cannot decode the data set ({type(error).__name__})", sender)
        declared = event.request.AffectedSOPClassUID
        if str(ds.get("SOPClassUID", "")) != declared:
            return self._refuse(DOES_NOT_MATCH_SOP_CLASS, f"SOP Class UID is not {declared}", sender)
        try:
            path, new = store_instance(self.inbox, ds, event.encoded_dataset())
        except NetworkError as error:
            return self._refuse(CANNOT_UNDERSTAND, str(error), sender)
        except OSError as error:
            return self._refuse(OUT_OF_RESOURCES, f"cannot write to the inbox: {error.strerror or error}", sender)
        with self._lock:
            self.stored += 1
        kept = "" if new else " (already in the inbox: kept the copy there)"
        self._say(f"received {ds.get('Modality', '?')} {path.name} from {sender}{kept}")
        return 0x0000

    def _refuse(self, code: int, reason: str, sender: str) -> Dataset:
        self._say(f"refused an object from {sender}: status 0x{code:04X}, {reason}")
        return _status(code, reason)

    def _say(self, line: str) -> None:
        if self._log is not None:
            self._log(line)
