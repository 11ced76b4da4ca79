"""Query/retrieve from a PACS: C-FIND at study and series level, C-GET of series into the inbox.

Study Root information model. C-GET brings the images back as C-STOREs on our own association
(we take the storage SCP role for the CT and MR classes), so the PACS needs no route back to
this computer, only to support C-GET. A retrieved image counts when it is in the inbox: the
numbers reported are our own, not the PACS's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import UncompressedTransferSyntaxes
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind as FIND_MODEL,
    StudyRootQueryRetrieveInformationModelGet as GET_MODEL,
)
from pynetdicom.status import code_to_category

from aimedx_desktop.engine.cancel import CancelToken
from aimedx_desktop.engine.net.association import Context, accepts, open_association
from aimedx_desktop.engine.net.errors import NetworkError
from aimedx_desktop.engine.net.inbox import ensure_inbox
from aimedx_desktop.engine.net.nodes import Node
from aimedx_desktop.engine.net.receive import IMAGE_STORAGE_CLASSES, Receiver, readable_transfer_syntaxes

RETRIEVABLE_MODALITIES = ("CT", "MR")
"""What the app opens; series of other modalities are listed but not retrieved."""
_STUDY_KEYS = ("PatientName", "PatientID", "StudyDate", "StudyDescription", "ModalitiesInStudy")
_SERIES_KEYS = ("Modality", "SeriesNumber", "SeriesDescription", "NumberOfSeriesRelatedInstances")


@dataclass(frozen=True)
class SeriesMatch:
    study_uid: str
    series_uid: str
    modality: str
    number: str
    description: str
    images: int | None  # when the PACS says

    @property
    def retrievable(self) -> bool:
        return self.modality in RETRIEVABLE_MODALITIES


@dataclass(frozen=True)
class StudyMatch:
    study_uid: str
    patient: str
    patient_id: str
    date: str
    description: str
    series: tuple[SeriesMatch, ...]


@dataclass(frozen=True)
class RetrieveReport:
    node: Node
    inbox: Path
    series: int
    images: int  # stored in the inbox (new or already there)
    failed: int  # sub-operations the PACS reports as failed
    seconds: float

    def summary(self) -> str:
        failed = f"; {self.failed} image(s) failed" if self.failed else ""
        return (f"retrieved {self.images} image(s) of {self.series} series from {self.node.address} "
                f"into {self.inbox} in {self.seconds:.1f} s{failed}")


def find(
    node: Node, calling_aet: str, timeout: float, patient_id: str = "", study_uid: str = "", cancel: CancelToken | None = None
) -> list[StudyMatch]:
    """The studies matching `patient_id` (wildcards * and ? allowed) or `study_uid`, each with its
    series. NetworkError when the node cannot be asked or refuses the query; Cancelled (token)
    between the study query and each study's series query."""
    if not (patient_id.strip() or study_uid.strip()):
        raise NetworkError("give a patient ID or a study instance UID to search for")
    with open_association(node, calling_aet, [Context(FIND_MODEL, tuple(UncompressedTransferSyntaxes))], timeout) as assoc:
        studies = _find(assoc, node, "STUDY", _STUDY_KEYS, PatientID=patient_id.strip(), StudyInstanceUID=study_uid.strip())
        matches = []
        for ds in studies:
            if cancel is not None:
                cancel.raise_if_cancelled()
            if ds.get("StudyInstanceUID"):
                series = _find(assoc, node, "SERIES", _SERIES_KEYS, StudyInstanceUID=str(ds.StudyInstanceUID))
                matches.append(_study(ds, [_series(s) for s in series]))
        return matches


def _find(assoc: Association, node: Node, level: str, keys: Sequence[str], **matching: str) -> list[Dataset]:
    query = Dataset()
    query.QueryRetrieveLevel = level
    for keyword in keys:
        setattr(query, keyword, "")
    for keyword, value in matching.items():
        setattr(query, keyword, value)
    if not all(value.isascii() for value in matching.values()):
        query.SpecificCharacterSet = "ISO_IR 192"  # else pydicom writes '?' for each character: a wildcard
    if level == "SERIES":
        query.SeriesInstanceUID = ""
    responses = _checked(assoc.send_c_find(query, FIND_MODEL), node, "query")
    return [identifier for status, identifier in responses if identifier is not None and code_to_category(status.Status) == "Pending"]


def _checked(
    responses: Iterator[tuple[Dataset, Dataset | None]], node: Node, what: str
) -> Iterator[tuple[Dataset, Dataset | None]]:
    """The (status, identifier) responses; NetworkError at a failure status or a lost association."""
    for status, identifier in responses:
        if "Status" not in status:
            raise NetworkError(f"{node.address} did not answer the {what} (the association was lost or timed out)")
        if code_to_category(int(status.Status)) == "Failure":
            comment = str(status.get("ErrorComment", "") or "").strip()
            raise NetworkError(f"{node.address} refused the {what}: status 0x{status.Status:04X}{' ' + comment if comment else ''}")
        yield status, identifier


def _text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip()


def _study(ds: Dataset, series: list[SeriesMatch]) -> StudyMatch:
    date = _text(ds, "StudyDate")
    return StudyMatch(
        study_uid=_text(ds, "StudyInstanceUID"),
        patient=_text(ds, "PatientName").replace("^", " ").strip(),
        patient_id=_text(ds, "PatientID"),
        date=f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 and date.isdigit() else date,
        description=_text(ds, "StudyDescription"),
        series=tuple(s for s in series if s.series_uid),
    )


def _series(ds: Dataset) -> SeriesMatch:
    images = _text(ds, "NumberOfSeriesRelatedInstances")
    return SeriesMatch(
        study_uid=_text(ds, "StudyInstanceUID"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        modality=_text(ds, "Modality"),
        number=_text(ds, "SeriesNumber"),
        description=_text(ds, "SeriesDescription"),
        images=int(images) if images.isdigit() else None,
    )


def retrieve(
    node: Node,
    calling_aet: str,
    timeout: float,
    inbox: Path,
    series: Sequence[SeriesMatch],
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelToken | None = None,
) -> RetrieveReport:
    """C-GET each of `series` into `inbox`, one association for all. Cancelled (token) or Ctrl-C
    abort it; what arrived before stays in the inbox, complete file by file."""
    started = time.perf_counter()
    receiver = Receiver(inbox)
    syntaxes = readable_transfer_syntaxes()
    contexts = [Context(GET_MODEL, tuple(UncompressedTransferSyntaxes))]
    contexts += [Context(sop_class, syntaxes, scp_role=True) for sop_class in IMAGE_STORAGE_CLASSES]
    ensure_inbox(inbox)
    failed = finished = 0
    with open_association(node, calling_aet, contexts, timeout, handlers=[receiver.handler]) as assoc:
        if not accepts(assoc, GET_MODEL):  # it may take the storage contexts and still not C-GET
            raise NetworkError(
                f"{node.address} does not offer retrieval by C-GET, which this app uses: ask its administrator to "
                f"allow C-GET for {calling_aet}, or have it send the series to this app's listener (aimedx listen)"
            )
        for index, match in enumerate(series):
            later = sum(s.images or 0 for s in series[index + 1:])

            def overall(done: int, total: int) -> None:
                if progress is not None:
                    progress(finished + done, finished + total + later)

            done, series_failed = _get_series(assoc, node, match, overall, cancel)
            finished += done
            failed += series_failed
    return RetrieveReport(node, inbox, len(series), receiver.stored, failed, time.perf_counter() - started)


def _get_series(
    assoc: Association, node: Node, match: SeriesMatch, progress: Callable[[int, int], None], cancel: CancelToken | None
) -> tuple[int, int]:
    """C-GET one series: (sub-operations done, those of them the PACS reports as failed)."""
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = match.study_uid
    query.SeriesInstanceUID = match.series_uid
    done = failed = 0
    for status, _ in _checked(assoc.send_c_get(query, GET_MODEL), node, "retrieval"):
        if cancel is not None:
            cancel.raise_if_cancelled()
        failed = _count(status, "Failed")
        done = _count(status, "Completed") + failed + _count(status, "Warning")
        progress(done, done + _count(status, "Remaining"))
    return done, failed


def _count(status: Dataset, kind: str) -> int:
    return int(status.get(f"NumberOf{kind}Suboperations", 0) or 0)
