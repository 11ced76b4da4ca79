"""Readers (and writers) of scans. `read_scan` turns any supported path into a `Scan`.

Supported: DICOM files and folders (see dicom.py), PNG/JPEG/TIFF/BMP files and folders
(raster.py), NIfTI .nii/.nii.gz (nifti.py). Every reader raises `ScanReadError`, with a
one-line message naming the file, for input it cannot read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from aimedx_desktop.engine.io._common import ASSUMED_MR, GUESSED_FROM_NAME
from aimedx_desktop.engine.io.dicom import (
    DICOMDIR,
    SeriesInfo,
    has_dicm_preamble,
    is_dicom_image_file,
    list_series,
    read_dicom_file,
    read_dicom_series,
)
from aimedx_desktop.engine.io.errors import ScanReadError, os_error_reason
from aimedx_desktop.engine.io.nifti import is_nifti_path, read_nifti
from aimedx_desktop.engine.io.raster import RASTER_SUFFIXES, raster_files, read_raster
from aimedx_desktop.engine.scan import Modality, Scan

__all__ = ["ASSUMED_MR", "GUESSED_FROM_NAME", "ScanReadError", "SeriesInfo", "list_series", "read_scan"]


def read_scan(
    path: str | os.PathLike[str],
    modality: Modality | str | None = None,
    series_uid: str | None = None,
) -> Scan:
    """Read the scan at `path`, whatever it is.

    - a folder holding PNG/JPEG/TIFF/BMP images directly (and no DICOM file beside them): those
      images, in natural name order, as one stack;
    - any other folder: a DICOM series found in it recursively, `series_uid` or the largest;
    - .nii / .nii.gz: NIfTI; .png/.jpg/.jpeg/.tif/.tiff/.bmp: one image;
    - any other file: DICOM, with or without the DICM preamble.

    `modality` ('ct', 'mr' or a Modality) overrides what the file says. Without it, DICOM uses
    its Modality tag (and refuses anything but CT and MR), while raster images and NIfTI, which
    do not say, are guessed from their path (default MR) with a warning in Scan.warnings.
    Raises ScanReadError for anything that cannot be read, ValueError for an unknown modality.
    """
    path = Path(path)
    given = Modality.parse(modality) if isinstance(modality, str) else modality
    try:
        if not path.exists():
            raise ScanReadError(path, "no such file or folder")
        if path.is_dir():
            return _read_folder(path, given, series_uid)
        if path.name.upper() == DICOMDIR and path.is_file():  # a CD's index: the series lie beside it
            return _read_folder(path.parent, given, series_uid)
        if not path.is_file():  # reading a FIFO or a device such as /dev/zero would never end
            raise ScanReadError(path, f"{_kind(path)}, not a file or folder; nothing was read")
        if is_nifti_path(path):
            return read_nifti(path, given)
        if path.suffix.lower() in RASTER_SUFFIXES:
            return read_raster(path, given)
        return read_dicom_file(path, given)
    except OSError as exc:  # e.g. a folder or file we may not read
        raise ScanReadError(path, f"cannot read ({os_error_reason(exc)})") from exc


def _kind(path: Path) -> str:
    mode = path.stat().st_mode
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket" if stat.S_ISSOCK(mode) else "a special file"


def _read_folder(folder: Path, modality: Modality | None, series_uid: str | None) -> Scan:
    if not any(folder.iterdir()):
        raise ScanReadError(folder, "the folder is empty")
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() not in RASTER_SUFFIXES]
    images = raster_files(folder)
    if images and not any(is_dicom_image_file(p) for p in files) and not (len(images) <= _LOGO_IMAGES and _dicom_below(folder)):
        return read_raster(folder, modality)
    return read_dicom_series(folder, series_uid, modality)


_LOGO_IMAGES = 2
"""A CD's top folder may hold a logo or a viewer's image or two beside its DICOM/ folder; more
images than that are the scan (a folder of slices whose DICOM output was written below it)."""


def _dicom_below(folder: Path) -> bool:
    """Whether a subfolder holds a DICOM file: a CD or PACS export keeps its series in DICOM/…
    beside a logo or a viewer's images, and the scan is the series, not the logo."""
    subfolders = (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    return any(_is_part10_file(path) for subfolder in subfolders for path in subfolder.rglob("*"))


def _is_part10_file(path: Path) -> bool:
    """Whether `path` is a file with the DICM preamble; False for one that cannot be opened."""
    try:
        return path.is_file() and has_dicm_preamble(path)
    except ScanReadError:
        return False
