"""Export a synthetic scan: the one entry point the GUI and the CLI (`aimedx convert`) share.

Formats: "png" (one file per slice, 8-bit as displayed or 16-bit full range) and "dicom" (a new
derived series). File names come only from the target modality and the slice number, never
from patient data: synthetic_ct_0001.png, synthetic_mr_0001.dcm, ...

Nothing is lost: existing files are replaced only with `overwrite`, a source file never, and
every file is written under a temporary name and renamed only once the whole series is written,
so a failed or cancelled export leaves the folder as it was.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from aimedx_desktop.engine.cancel import CancelToken
from aimedx_desktop.engine.intensity import default_window
from aimedx_desktop.engine.io.atomic import staged_files
from aimedx_desktop.engine.io.deidentify import Deidentifier
from aimedx_desktop.engine.io.dicom_writer import DicomSeriesWriter
from aimedx_desktop.engine.io.errors import ExportError, os_error_reason
from aimedx_desktop.engine.io.output import check_output, planned_paths
from aimedx_desktop.engine.io.png_writer import PngSeriesWriter
from aimedx_desktop.engine.scan import Scan


def export_scan(
    scan: Scan,
    out_dir: str | Path,
    fmt: str = "png",
    window: tuple[float, float] | None = None,
    bits: int = 8,
    deidentify: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelToken | None = None,
) -> list[Path]:
    """Write `scan` (synthetic) to `out_dir` as PNG or DICOM; returns the files written.

    window: (centre, width) in the scan's physical units, i.e. the current display; None means
        intensity.default_window (the scan's own window, else CT brain 40/80 HU, MR the
        0.5..99.5 percentile range). PNG 8-bit renders with it; DICOM stores it as
        Window Center/Width.
    bits: PNG only, 8 (windowed) or 16 (full range).
    deidentify: DICOM only, the PS3.15 Basic Profile (see deidentify.py).
    Raises ExportError, naming the file and the reason, for what the user can fix (checked
    before anything is written: see output.check_output; or the disk failing while writing),
    Cancelled when `cancel` fires. Whatever goes wrong, nothing is left behind.
    """
    paths = planned_paths(scan, out_dir, fmt)
    if not scan.is_synthetic:
        raise ExportError("only synthetic scans are exported: this scan was not produced by a model")
    if bits not in (8, 16):
        raise ExportError(f"PNG bit depth must be 8 or 16, not {bits}")
    window = window if window is not None else default_window(scan)
    if not window[1] > 0:
        raise ExportError(f"the window width must be positive, not {window[1]:g}")
    out_dir = Path(out_dir)
    check_output(scan, out_dir, fmt, overwrite, bits)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot create the folder {out_dir}: {os_error_reason(error)}") from None
    current = out_dir  # what a failure is reported against: the folder, then each file in turn
    try:
        with staged_files() as staged:
            if fmt == "png":
                writer: PngSeriesWriter | DicomSeriesWriter = PngSeriesWriter(scan, tuple(window), bits)
            else:
                writer = DicomSeriesWriter(scan, tuple(window), postprocess=Deidentifier() if deidentify else None)
            for index, path in enumerate(paths):
                current = path
                if cancel is not None:
                    cancel.raise_if_cancelled()
                staged.stage(path, functools.partial(writer.write, index))
                if progress is not None:
                    progress(index + 1, len(paths))
            return staged.commit(overwrite)
    except OSError as error:
        raise ExportError(f"cannot write {error.filename or current}: {os_error_reason(error)}") from None
