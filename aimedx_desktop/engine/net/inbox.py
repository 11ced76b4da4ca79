"""The inbox: received DICOM files, one folder per study and series, each written atomically.

Layout: INBOX/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm. A file is written
completely under a hidden temporary name (the readers skip hidden names) and then hard-linked to
its final name, which fails rather than replace a file that is there (where the file system has
no hard links, the name is claimed with an exclusive create and the file renamed over the claim):
an existing file is never overwritten. When an instance arrives again, the copy already in the inbox is kept (as PACS such
as Orthanc do by default) and the arrival still counts as stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from aimedx_desktop.engine.io.errors import os_error_reason
from aimedx_desktop.engine.net.errors import NetworkError

SUFFIX = ".dcm"
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_MAX_UID_LENGTH = 64
_SUMMARY_TAGS = ("PatientName", "PatientID", "StudyDate", "Modality", "SeriesDescription", "StudyDescription")


def _uid(ds: Dataset, keyword: str) -> str:
    """A UID fit to be a file or folder name (PS3.5 9.1: digits and dots, at most 64)."""
    value = str(ds.get(keyword, "") or "").strip().rstrip("\0")
    if not _UID.fullmatch(value) or len(value) > _MAX_UID_LENGTH:
        raise NetworkError(f"{keyword} is not a valid UID: {value[:24]!r}")
    return value


def ensure_inbox(inbox: Path) -> None:
    """Create the inbox folder when needed; NetworkError saying why it cannot be one."""
    if inbox.exists() and not inbox.is_dir():
        raise NetworkError(f"cannot use the inbox {inbox}: it is a file, not a folder")
    try:
        inbox.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise NetworkError(f"cannot use the inbox {inbox}: {os_error_reason(error)}") from None


def instance_path(inbox: Path, ds: Dataset) -> Path:
    """Where `ds` belongs in the inbox; NetworkError when its UIDs cannot name files."""
    study, series, instance = (_uid(ds, k) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
    return inbox / study / series / f"{instance}{SUFFIX}"


def store_instance(inbox: Path, ds: Dataset, encoded: bytes) -> tuple[Path, bool]:
    """Write `encoded` (a complete Part 10 file) where `ds` belongs: (path, True), or (path, False)
    when that instance is in the inbox already (the file there is left as it is).

    OSError when the disk refuses (full, no permission)."""
    final = instance_path(inbox, ds)
    if final.exists():
        return final, False
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.{secrets.token_hex(4)}.partial")
    try:
        with open(temporary, "xb") as stream:
            stream.write(encoded)
            stream.flush()
            os.fsync(stream.fileno())
        if not _name_new(temporary, final):  # arrived meanwhile over another association
            return final, False
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
    return final, True


def _name_new(temporary: Path, final: Path) -> bool:
    """Give the file at `temporary` the name `final` unless that name exists; True when it did."""
    try:
        os.link(temporary, final)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here (FAT, some network shares)
        try:
            os.close(os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        try:
            os.replace(temporary, final)
        except OSError:  # the empty claim must not stay as if it were the file (a resend would skip it)
            with contextlib.suppress(OSError):
                final.unlink()
            raise
        return True


@dataclass(frozen=True)
class InboxSeries:
    """One received series, from the header of one of its files."""

    folder: Path
    study_uid: str
    series_uid: str
    patient: str
    patient_id: str
    study_date: str  # YYYY-MM-DD, or '' when unknown
    modality: str
    description: str
    files: int


def series_files(folder: Path) -> list[Path]:
    """The received files of a series folder, without the temporary ones of a transfer under way."""
    return sorted(Path(entry.path) for entry in _received(folder))


def _received(folder: Path) -> list[os.DirEntry]:
    """The entries of the received files in `folder`. os.scandir knows most entries' types from
    the directory listing itself, so a series of hundreds of files costs no stat call per file."""
    with os.scandir(folder) as entries:
        return [e for e in entries if e.name.endswith(SUFFIX) and not e.name.startswith(".") and e.is_file()]


def _subfolders(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:
        return [Path(e.path) for e in entries if not e.name.startswith(".") and e.is_dir()]


def _series_folders(inbox: Path) -> list[Path]:
    if not inbox.is_dir():
        return []
    return sorted(series for study in _subfolders(inbox) for series in _subfolders(study))


class InboxIndex:
    """The series in an inbox folder, kept up to date by polling (the Inbox panel's timer).

    A poll lists the series folders and counts their files, which costs no stat call per file
    (a few tens of ms for 20,000 files), and reads a header only for a series it has not seen:
    while a series arrives, its file count is all that changes.
    """

    def __init__(self, inbox: Path) -> None:
        self.inbox = inbox
        self._counts: dict[Path, int] | None = None
        self._known: dict[Path, InboxSeries] = {}
        self._unread: set[Path] = set()  # series whose header could not be read: tried again on a change

    def poll(self) -> list[InboxSeries] | None:
        """The series, newest study date first, when anything changed since the last poll (the
        first poll always answers); None when nothing did. OSError when the folder cannot be read."""
        counts = {folder: len(_received(folder)) for folder in _series_folders(self.inbox)}
        if counts == self._counts:
            return None
        known, unread = {}, set()
        for folder, count in counts.items():
            if not count:
                continue
            seen = self._known.get(folder)
            if seen is not None and folder not in self._unread:
                known[folder] = dataclasses.replace(seen, files=count)
                continue
            files = series_files(folder)
            header = _header(files[0])
            if header is None:
                unread.add(folder)
            known[folder] = _summary(folder, files, header or Dataset())
        self._counts, self._known, self._unread = counts, known, unread
        return sorted(known.values(), key=lambda s: (s.study_date, s.study_uid, s.series_uid), reverse=True)


def list_inbox(inbox: Path) -> list[InboxSeries]:
    """The series in `inbox`, newest study date first; a series whose file cannot be read is
    listed with what its folder names say."""
    return InboxIndex(inbox).poll() or []


def _header(path: Path) -> Dataset | None:
    """The summary tags of one received file, or None when it cannot be read."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(_SUMMARY_TAGS))
    except Exception:  # a damaged file: pydicom raises many types; the folder still lists
        return None


def _summary(folder: Path, files: list[Path], ds: Dataset) -> InboxSeries:
    """The series in `folder` as its header `ds` describes it (what its folder names say where
    the header is empty)."""
    date = str(ds.get("StudyDate", "") or "")
    description = str(ds.get("SeriesDescription", "") or ds.get("StudyDescription", "") or "")
    return InboxSeries(
        folder=folder,
        study_uid=folder.parent.name,
        series_uid=folder.name,
        patient=str(ds.get("PatientName", "") or "").replace("^", " ").strip(),
        patient_id=str(ds.get("PatientID", "") or ""),
        study_date=f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 and date.isdigit() else "",
        modality=str(ds.get("Modality", "") or ""),
        description=description.strip(),
        files=len(files),
    )
