"""Export a synthetic scan: the one entry point the GUI and the CLI (`aimedx convert`) share.

Formats: "png" (one file per slice, 8-bit as displayed or 16-bit full range) and "dicom" (a new
derived series). File names come only from the target modality and the slice number, never
from patient data: synthetic_ct_0001.png, synthetic_mr_0001.dcm, ...

With `uncertainty`, the model's uncertainty map goes beside it as a series of its own:
synthetic_ct_uncertainty_0001.dcm (a second derived series labelled "UNCERTAINTY of SYNTHETIC
CT", same study, frame of reference and geometry, each instance referencing its synthetic
image) or a 16-bit PNG whose text chunks give the units.

Nothing is lost: existing files are replaced only with `overwrite`, a source file never, and
every file is written under a temporary name and renamed only once the whole series is written,
so a failed or cancelled export leaves the folder as it was.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

from aimedx_desktop.engine.cancel import CancelToken
from aimedx_desktop.engine.intensity import default_window
from aimedx_desktop.engine.io.atomic import staged_files
from aimedx_desktop.engine.io.deidentify import Deidentifier
from aimedx_desktop.engine.io.dicom_writer import DicomSeriesWriter, burned_in_annotation
from aimedx_desktop.engine.io.errors import ExportError, os_error_reason
from aimedx_desktop.engine.io.output import check_output, extension, planned_paths, stale_files
from aimedx_desktop.engine.io.png_writer import PngSeriesWriter
from aimedx_desktop.engine.scan import UNCERTAINTY, Scan

def exported_series(scan: Scan, uncertainty: bool = False) -> list[Scan]:
    """The series an export of `scan` writes: the synthetic image, then its uncertainty map."""
    if not uncertainty:
        return [scan]
    if UNCERTAINTY not in scan.maps:
        raise ExportError("this model gives no uncertainty map, so none can be exported")
    return [scan, scan.map_scan(UNCERTAINTY)]



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
    uncertainty: bool = False,
) -> list[Path]:
    """Write `scan` (synthetic) to `out_dir` as PNG or DICOM; returns the files written.

    window: (centre, width) in the scan's physical units, i.e. the current display; None means
        intensity.default_window (the scan's own window, else CT brain 40/80 HU, MR the
        0.5..99.5 percentile range). PNG 8-bit renders with it; DICOM stores it as
        Window Center/Width.
    bits: PNG only, 8 (windowed) or 16 (full range).
    deidentify: DICOM only, the PS3.15 Basic Profile (see deidentify.py).
    uncertainty: also write the uncertainty map (16-bit for PNG), in the same all-or-nothing step.
    Raises ExportError, naming the file and the reason, for what the user can fix (checked
    before anything is written: see output.check_output; or the disk failing while writing),
    Cancelled when `cancel` fires. Whatever goes wrong, nothing is left behind.
    """
    extension(fmt)  # an unknown format is refused before anything else
    if not scan.is_synthetic:
        raise ExportError("only synthetic scans are exported: this scan was not produced by a model")
    if bits not in (8, 16):
        raise ExportError(f"PNG bit depth must be 8 or 16, not {bits}")
    window = window if window is not None else default_window(scan)
    if not window[1] > 0:
        raise ExportError(f"the window width must be positive, not {window[1]:g}")
    check_deidentifiable(scan, fmt, deidentify)
    series = exported_series(scan, uncertainty)
    out_dir = Path(out_dir)
    check_output(scan, out_dir, fmt, overwrite, bits, uncertainty)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot create the folder {out_dir}: {os_error_reason(error)}") from None
    total = sum(one.n_slices for one in series)
    current = out_dir  # what a failure is reported against: the folder, then each file in turn
    try:
        with staged_files() as staged:
            deidentifier = Deidentifier() if deidentify else None  # one UID mapping for every series
            image_writer = None
            for one in series:
                writer = _writer(one, fmt, window if one is scan else default_window(one), bits if one is scan else 16,
                                 deidentifier, image_writer)
                for index, path in enumerate(planned_paths(one, out_dir, fmt)):
                    current = path
                    if cancel is not None:
                        cancel.raise_if_cancelled()
                    staged.stage(path, functools.partial(writer.write, index))
                    if progress is not None:
                        progress(len(staged.paths), total)
                if isinstance(writer, DicomSeriesWriter):
                    image_writer = writer
            if overwrite:
                staged.retire(stale_files(scan, out_dir, fmt, staged.paths))
            return staged.commit(overwrite)
    except OSError as error:
        raise ExportError(f"cannot write {error.filename or current}: {os_error_reason(error)}") from None


def check_deidentifiable(scan: Scan, fmt: str, deidentify: bool) -> None:
    """ExportError when a de-identified DICOM export was asked of `scan` (or of the source it will
    be made from) and its sources hold burned-in text, which the synthetic image can reproduce."""
    if deidentify and fmt == "dicom" and burned_in_annotation(scan) == "YES":
        raise ExportError(
            "the source images are marked as holding burned-in annotation (text in the pixels, which may name "
            "the patient and which the synthetic image can reproduce): a de-identified export would not be clean; "
            "export without de-identifying, or remove the text from the source first"
        )


def _writer(
    scan: Scan,
    fmt: str,
    window: tuple[float, float],
    bits: int,
    deidentifier: Deidentifier | None,
    image_writer: DicomSeriesWriter | None,
) -> PngSeriesWriter | DicomSeriesWriter:
    """The writer of one series; a map's DICOM series derives from the image series' instances
    and lies on the grid they were written on."""
    if fmt == "png":
        return PngSeriesWriter(scan, tuple(window), bits)
    if image_writer is not None:
        written = dataclasses.replace(scan.geometry, orientation=image_writer.orientation, positions=image_writer.positions)
        scan = dataclasses.replace(scan, dicom_headers=image_writer.headers, geometry=written)
    return DicomSeriesWriter(scan, tuple(window), postprocess=deidentifier)
