"""Where an export goes: the files it writes, and whether they can be written there at all.

`check_output` answers before the slow part (a translation takes seconds to minutes), so a user
never waits for an export that is doomed: an output that is a file or a device, a folder that
holds the source files, one that cannot be written (read-only, no permission, a name too long),
a disk without room, or files that exist already.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from aimedx_desktop.engine.io.errors import ExportError, os_error_reason
from aimedx_desktop.engine.scan import UNCERTAINTY, Scan

FORMATS = {"png": "png", "dicom": "dcm"}
"""Export format → file extension."""
DICOM_HEADER_BYTES = 4096
"""Roughly what a derived DICOM file adds to its pixels; the free-space check's allowance."""
PNG_BEST_COMPRESSION = 20
"""A PNG slice takes at least 1/20 of its raw bytes: the free-space check stays below any real need."""


def planned_paths(scan: Scan, out_dir: str | Path, fmt: str, output: str | None = None) -> list[Path]:
    """The files one series of `scan` is written to, in slice order: its own output (the image,
    or the map it holds), or the named `output`."""
    suffix = extension(fmt)
    width = max(4, len(str(scan.n_slices)))
    stem = _stem(scan, output or scan.provenance.output)
    return [Path(out_dir) / f"{stem}_{i:0{width}d}.{suffix}" for i in range(1, scan.n_slices + 1)]


def _stem(scan: Scan, output: str) -> str:
    stem = f"synthetic_{scan.modality.value.lower()}"
    return stem if output == "image" else f"{stem}_{output}"


def existing_targets(scan: Scan, out_dir: str | Path, fmt: str, uncertainty: bool = False) -> list[Path]:
    """The files an export would replace (with overwrite=True) or refuse to touch (without):
    those it would write that exist already, then `stale_files`. `scan` may be the source,
    before translation: only its shape and the target modality count."""
    planned = [path for output in _outputs(uncertainty) for path in planned_paths(scan, out_dir, fmt, output)]
    return [path for path in planned if path.exists()] + stale_files(scan, out_dir, fmt, planned)


def stale_files(scan: Scan, out_dir: str | Path, fmt: str, planned: list[Path]) -> list[Path]:
    """The rest of an earlier export of the same modality and format in `out_dir`: its slices
    past the new series' end, and its uncertainty map when the new export writes none. Replacing
    that export removes them too; left behind, they would mix two series (two patients,
    perhaps) in one folder under the same names."""
    folder = Path(out_dir)
    if not folder.is_dir():
        return []
    pattern = re.compile(
        "|".join(rf"{re.escape(_stem(scan, output))}_\d{{4,}}\.{extension(fmt)}" for output in _outputs(uncertainty=True))
    )
    keep = set(planned)
    return sorted(path for path in folder.iterdir() if pattern.fullmatch(path.name) and path not in keep and path.is_file())


def _outputs(uncertainty: bool) -> list[str]:
    return ["image", UNCERTAINTY] if uncertainty else ["image"]


def extension(fmt: str) -> str:
    """The file extension of an export format; ExportError for an unknown format."""
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ExportError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}") from None


def check_output(
    scan: Scan, out_dir: str | Path, fmt: str, overwrite: bool, bits: int = 8, uncertainty: bool = False
) -> None:
    """Raise ExportError, naming the folder and the reason, when exporting `scan` (or a scan on
    its grid), with its uncertainty map if asked, to `out_dir` cannot succeed; return quietly
    when it can."""
    out_dir = Path(out_dir)
    try:
        _check_folder(scan, out_dir)
        _check_targets(scan, out_dir, fmt, overwrite, uncertainty)
        _check_free_space(scan, out_dir, fmt, bits, len(_outputs(uncertainty)))
    except OSError as error:  # e.g. a name too long even to look up
        raise ExportError(f"cannot write to {out_dir}: {os_error_reason(error)}") from None


def _check_folder(scan: Scan, out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        kind = "a file" if out_dir.is_file() else "a device or a pipe"
        raise ExportError(f"cannot write to {out_dir}: it is {kind}, not a folder")
    source_folders = {Path(p).resolve().parent for p in scan.provenance.source_paths if Path(p).is_file()}
    if out_dir.resolve() in source_folders:
        raise ExportError(
            f"{out_dir} holds the source images: the synthetic files would be mixed into the source "
            f"series there; choose another folder, e.g. {out_dir / 'synthetic'}"
        )
    existing = _nearest_existing(out_dir)  # a name too long raises here, reported by check_output
    if not existing.is_dir():
        raise ExportError(f"cannot create the folder {out_dir}: {existing} is not a folder")
    try:  # the real test: permissions, ACLs, a read-only disk
        handle, probe = tempfile.mkstemp(prefix=".aimedx-probe-", dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise ExportError(f"cannot write to {out_dir}: {os_error_reason(error)}") from None


def _check_targets(scan: Scan, out_dir: Path, fmt: str, overwrite: bool, uncertainty: bool) -> None:
    """Never write over a source file; over any other existing file only with `overwrite`."""
    existing = existing_targets(scan, out_dir, fmt, uncertainty)
    sources = {Path(p).resolve() for p in scan.provenance.source_paths}
    for path in existing:
        if path.resolve() in sources:
            raise ExportError(f"refusing to write {path}: it is one of the source files")
    if existing and not overwrite:
        what = f"{existing[0]} already exists"
        if len(existing) > 1:
            what = f"{existing[0]} and {len(existing) - 1} more file(s) already exist"
        raise ExportError(f"{what}; choose another folder or allow overwriting (--overwrite)")


def _check_free_space(scan: Scan, out_dir: Path, fmt: str, bits: int, series: int) -> None:
    pixels = series * scan.n_slices * scan.shape[1] * scan.shape[2]
    if fmt == "dicom":
        needed = pixels * 2 + series * scan.n_slices * DICOM_HEADER_BYTES
    else:
        needed = pixels * bits // 8 // PNG_BEST_COMPRESSION
    free = shutil.disk_usage(_nearest_existing(out_dir)).free
    if needed > free:
        raise ExportError(
            f"cannot write to {out_dir}: the disk is full (the files need about {_megabytes(needed)}, "
            f"{_megabytes(free)} is free)"
        )


def _nearest_existing(path: Path) -> Path:
    """`path` itself when it exists, else its closest existing parent (absolute)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"
