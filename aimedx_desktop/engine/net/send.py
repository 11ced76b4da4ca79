"""Sending DICOM files to a node (C-STORE SCU), one status per file.

One association carries everything: a C-ECHO first, then one C-STORE per file. A file counts as
stored only when the node answered its C-STORE with success (or a warning, which the standard
defines as stored). Files are sent as they are on disk; uncompressed ones may go in another
uncompressed transfer syntax when the node prefers one, compressed ones only as they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRBigEndian, UncompressedTransferSyntaxes
from pynetdicom.association import Association
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS, code_to_category

from aimedx_desktop.engine.cancel import CancelToken
from aimedx_desktop.engine.io.errors import ScanReadError, os_error_reason
from aimedx_desktop.engine.net.association import VERIFICATION, Context, accepts, check_echo, open_association
from aimedx_desktop.engine.net.errors import NetworkError
from aimedx_desktop.engine.net.nodes import DEFAULT_AET, DEFAULT_TIMEOUT, Node

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Outgoing:
    """A DICOM file to send, with what the association needs to know about it."""

    path: Path
    sop_class: UID
    transfer_syntax: UID


@dataclass(frozen=True)
class FileResult:
    """The outcome of one file: stored (the node confirmed it) or not, and in words."""

    path: Path
    stored: bool
    detail: str


@dataclass(frozen=True)
class SendReport:
    node: Node
    results: tuple[FileResult, ...]
    seconds: float

    @property
    def stored(self) -> int:
        return sum(result.stored for result in self.results)

    @property
    def complete(self) -> bool:
        return self.stored == len(self.results)

    def summary(self) -> str:
        text = f"stored {self.stored} of {len(self.results)} file(s) on {self.node.address} in {self.seconds:.1f} s"
        return text if self.complete else f"{text}; {len(self.results) - self.stored} not stored"


def collect_files(paths: Iterable[str | Path]) -> list[Outgoing]:
    """The DICOM files named by `paths`, folders searched recursively (hidden names skipped).

    A named file that is not a DICOM Part 10 file is a ScanReadError; in a folder such files
    are passed over. ScanReadError too when nothing is left to send.
    """
    given_paths = [Path(p) for p in paths]
    found: list[Outgoing] = []
    for given in given_paths:
        if given.is_dir():
            try:
                candidates = sorted(p for p in given.rglob("*") if p.is_file() and not _hidden(p, given))
            except OSError as error:
                raise ScanReadError(given, f"cannot read ({os_error_reason(error)})") from None
            found += [item for item in map(_outgoing, candidates) if item is not None]
        elif given.is_file():
            item = _outgoing(given)
            if item is None:
                raise ScanReadError(given, "not a DICOM file (no DICM preamble or no SOP class)")
            found.append(item)
        else:
            raise ScanReadError(given, "no such file or folder")
    if not found:
        others = f" (nor in the {len(given_paths) - 1} other path(s))" if len(given_paths) > 1 else ""
        raise ScanReadError(given_paths[0], f"no DICOM files to send{others}")
    return found


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _outgoing(path: Path) -> Outgoing | None:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return None
    meta = ds.file_meta
    if "MediaStorageSOPClassUID" not in meta or "TransferSyntaxUID" not in meta or "SOPInstanceUID" not in ds:
        return None
    return Outgoing(path, UID(meta.MediaStorageSOPClassUID), UID(meta.TransferSyntaxUID))


CONVERTIBLE = tuple(syntax for syntax in UncompressedTransferSyntaxes if syntax != ExplicitVRBigEndian)
"""The little-endian uncompressed syntaxes, which pynetdicom converts between as it sends; it
does not change byte order, so Big Endian travels like a compressed syntax, as it is."""


def storage_contexts(files: Sequence[Outgoing]) -> list[Context]:
    """Per SOP class: one context with every convertible syntax (when any file has one), and one
    per other syntax in use (compressed, Big Endian), which only that exact syntax can carry."""
    contexts: dict[tuple[UID, str], Context] = {}
    for item in files:
        if item.transfer_syntax in CONVERTIBLE:
            preferred = (item.transfer_syntax, *(s for s in CONVERTIBLE if s != item.transfer_syntax))
            contexts.setdefault((item.sop_class, "uncompressed"), Context(item.sop_class, preferred))
        else:
            contexts.setdefault((item.sop_class, item.transfer_syntax), Context(item.sop_class, (item.transfer_syntax,)))
    return list(contexts.values())


def send_files(
    files: Sequence[Outgoing],
    node: Node,
    calling_aet: str = DEFAULT_AET,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    on_result: Callable[[FileResult], None] | None = None,
) -> SendReport:
    """Send `files` to `node`; the report holds one FileResult per file.

    NetworkError when the association cannot be made or is lost mid-way (its message says how
    many files the node had confirmed). Cancelled (token) or KeyboardInterrupt abort the
    association at once; every result reported before then through `on_result` stands.
    """
    started = time.perf_counter()
    results: list[FileResult] = []

    def record(result: FileResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)
        if progress is not None:
            progress(len(results), len(files))

    with open_association(node, calling_aet, [VERIFICATION, *storage_contexts(files)], timeout) as assoc:
        if accepts(assoc, VERIFICATION.abstract_syntax):
            check_echo(assoc, node)
        for item in files:
            if cancel is not None:
                cancel.raise_if_cancelled()
            if not assoc.is_established:
                raise NetworkError(_lost(node, item, results, len(files)))
            refusal = _refusal(assoc, item)
            if refusal is not None:
                record(FileResult(item.path, False, refusal))
                continue
            status = assoc.send_c_store(item.path)
            if "Status" not in status:
                raise NetworkError(_lost(node, item, results, len(files)))
            record(_result(item.path, int(status.Status), str(status.get("ErrorComment", "") or "")))
    return SendReport(node, tuple(results), time.perf_counter() - started)


def _refusal(assoc: Association, item: Outgoing) -> str | None:
    """Why the negotiated contexts cannot carry `item`, or None when one can."""
    matching = [cx for cx in assoc.accepted_contexts if cx.abstract_syntax == item.sop_class]
    if not matching:
        return f"refused: the node does not accept {item.sop_class.name}"
    syntaxes = {cx.transfer_syntax[0] for cx in matching}
    convertible = item.transfer_syntax in CONVERTIBLE
    if item.transfer_syntax in syntaxes or (convertible and syntaxes & set(CONVERTIBLE)):
        return None
    return f"refused: the node does not accept {item.sop_class.name} in {item.transfer_syntax.name}"


def _result(path: Path, code: int, comment: str) -> FileResult:
    category = code_to_category(code)
    meaning = STORAGE_SERVICE_CLASS_STATUS.get(code, (category, ""))[1]
    words = "; ".join(part for part in (meaning, comment) if part)
    if category == "Success":
        return FileResult(path, True, "stored")
    if category == "Warning":
        return FileResult(path, True, f"stored with warning 0x{code:04X} ({words or 'no detail'})")
    return FileResult(path, False, f"failed: status 0x{code:04X} ({words or category.lower()})")


def _lost(node: Node, item: Outgoing, results: list[FileResult], total: int) -> str:
    stored = sum(result.stored for result in results)
    return (
        f"{node.address} ended the association while {item.path.name} was being sent: "
        f"{stored} of {total} file(s) stored, {total - stored} not stored"
    )
