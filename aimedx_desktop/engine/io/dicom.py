"""DICOM: single files (single- or multi-frame) and folders holding one or more series.

Every frame becomes one slice in physical units: RescaleSlope/Intercept applied (HU for CT),
MONOCHROME1 inverted so that high means bright, colour read as luma. Slices are sorted along
the slice normal, and the scan's warnings say when the stack is not a clean volume (gantry
tilt, uneven spacing, missing positions).

Scan.dicom_headers holds one Dataset per slice, without pixel data. A multi-frame file gives
the same Dataset object once per frame: its per-frame positions are in Scan.geometry, and the
per-frame functional groups stay in that one Dataset.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, get_decoder
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, RTDoseStorage

from aimedx_desktop.engine.io._common import color_warning, natural_key, replace_non_finite, rgb_to_gray
from aimedx_desktop.engine.io.errors import ScanReadError, os_error_reason
from aimedx_desktop.engine.limits import scan_size_problem
from aimedx_desktop.engine.scan import Geometry, Modality, Provenance, Scan

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_HEADERLESS_SUFFIXES = ("", ".dcm", ".dicom", ".ima")
_ORIENTATION_TOLERANCE = 1e-3
_UNIT_TOLERANCE = 1e-2  # direction cosines: unit length and perpendicular, to this
_TILT_DEGREES = 0.5
_OFF_AXIAL_DEGREES = 30.0
"""Beyond this angle between the slice normal and the head-foot axis, slices are not axial
(a tilted axial CT stays well inside it: the GE sample's gantry tilt is 18.5°)."""
_UNEVEN_FRACTION = 0.1


@dataclass(frozen=True)
class SeriesInfo:
    """One series found in a folder, from its headers only."""

    uid: str
    description: str
    modality: str  # the raw DICOM Modality tag: 'CT', 'MR', 'OT', ...
    n_instances: int  # files
    n_slices: int  # frames, summed over the files
    path: Path  # a representative file (the first in name order)


@dataclass(frozen=True)
class _Slice:
    """One frame, decoded and rescaled, with what is needed to place it in the stack."""

    pixels: np.ndarray
    header: Dataset
    path: Path
    position: np.ndarray | None
    orientation: np.ndarray | None
    pixel_spacing: tuple[float, float] | None
    thickness: float | None
    window: tuple[float, float] | None
    order: tuple[int, int]  # (InstanceNumber, frame): the fallback order without positions
    monochrome1: bool
    note: str | None  # e.g. colour converted to gray
    problems: tuple[str, ...]  # unusable geometry attributes, ignored (see _PROBLEMS)


def list_series(folder: Path) -> list[SeriesInfo]:
    """The image series under `folder` (searched recursively), reading headers only.

    Files that are not DICOM images are skipped; an empty list means no DICOM image was found.
    """
    if not folder.is_dir():
        raise ScanReadError(folder, "not a folder")
    return [_series_info(uid, files) for uid, files in _scan_folder(folder)[0].items()]


def read_dicom_series(folder: Path, series_uid: str | None = None, modality: Modality | None = None) -> Scan:
    """One series under `folder`: `series_uid`, or by default the one with the most slices.

    A damaged, unreadable or non-image file is left out with a warning (the uneven-spacing warning then
    shows the gap); when every file of the series fails, the first file's error is raised.
    """
    groups, unreadable = _scan_folder(folder)
    if not groups:
        detail = f" ({len(unreadable)} file(s) left out: {unreadable[0]})" if unreadable else ""
        raise ScanReadError(folder, f"no DICOM images found in this folder{detail}")
    if series_uid is None:
        series_uid = max(groups, key=lambda uid: _series_info(uid, groups[uid]).n_slices)
    elif series_uid not in groups:
        raise ScanReadError(folder, f"no series {series_uid} here; found {', '.join(groups)}")
    warnings: list[str] = []
    files = _one_stack(groups[series_uid], warnings)
    promised = sum(math.prod(_promised_shape(ds)) for _, ds in files)
    problem = scan_size_problem((promised,), f"the headers of its {len(files)} files")
    if problem is not None:
        raise ScanReadError(folder, problem)
    resolved = _modality(files[0][1], modality, folder, warnings)
    if len(groups) > 1:
        chosen = _series_info(series_uid, groups[series_uid])
        warnings.append(f"folder holds {len(groups)} series; read {chosen.description or chosen.uid}")
    slices: list[_Slice] = []
    errors: list[ScanReadError] = []
    for path, _ in files:
        try:
            slices += _slices_of(_read_file(path), path)
        except ScanReadError as error:
            errors.append(error)
            unreadable.append(f"{path.relative_to(folder)}: {error.reason}")
    if not slices:
        raise errors[0]
    warnings += [f"skipped a file: {note}" for note in unreadable]
    return _build_scan(slices, folder, resolved, warnings)


_STACKS = {"EchoNumbers": "echo", "TemporalPositionIdentifier": "time point", "DiffusionBValue": "b-value"}
"""Attributes that tell apart the stacks one series may hold at the same positions."""


def _one_stack(files: list[tuple[Path, Dataset]], warnings: list[str]) -> list[tuple[Path, Dataset]]:
    """The files of one image stack of a series, without copies of the same instance or
    localizer images (when the series holds other images).

    A series may hold several stacks at the same slice positions (the two echoes of a PD/T2
    series, the time points of a dynamic series, the b-values of a diffusion series); read
    together they would interleave into one volume. The largest stack is read (the first on a
    tie) and the warning names it."""
    seen: set[str] = set()
    unique = []
    for path, ds in files:
        instance = str(ds.get("SOPInstanceUID") or path)
        if instance not in seen:
            seen.add(instance)
            unique.append((path, ds))
    if len(unique) < len(files):
        warnings.append(f"left out {len(files) - len(unique)} copy(ies) of files already read (the same SOP Instance UID)")
    localizers = {path for path, ds in unique if _is_localizer(ds)}
    if localizers and len(localizers) < len(unique):
        unique = [(path, ds) for path, ds in unique if path not in localizers]
        warnings.append(f"left out {len(localizers)} localizer image(s): scout views across the stack, not slices of it")
    stacks: dict[tuple[str, ...], list[tuple[Path, Dataset]]] = {}
    for path, ds in unique:
        stacks.setdefault(tuple(str(ds.get(keyword, "")) for keyword in _STACKS), []).append((path, ds))
    positions = {tuple(ds.get("ImagePositionPatient") or ()) for _, ds in unique}
    if len(positions) == len(unique):
        return unique
    if len(stacks) == 1:
        return _first_at_each_position(unique, warnings)
    key, chosen = max(stacks.items(), key=lambda stack: len(stack[1]))
    named = ", ".join(f"{label} {value}" for label, value in zip(_STACKS.values(), key) if value) or (
        f"the images without {' or '.join(_STACKS)}"
    )
    warnings.append(f"series holds {len(stacks)} stacks at the same positions (echoes, time points or b-values); "
                    f"read {named} ({len(chosen)} of {len(unique)} files)")
    return _first_at_each_position(chosen, warnings)


def _first_at_each_position(files: list[tuple[Path, Dataset]], warnings: list[str]) -> list[tuple[Path, Dataset]]:
    """One image per slice position, the first by InstanceNumber: repeats that no header tells
    apart (a repeated scan, time points numbered only by AcquisitionNumber or TriggerTime, a
    vendor's private b-value) would otherwise interleave into one volume. Files without a
    position are left as they are: nothing says which repeat which."""
    by_position: dict[tuple[float, ...], list[tuple[Path, Dataset]]] = {}
    for path, ds in sorted(files, key=lambda item: _float(item[1].get("InstanceNumber"), 0.0)):
        position = tuple(round(float(value), 3) for value in ds.get("ImagePositionPatient") or ())
        plane = tuple(round(float(value), 3) for value in ds.get("ImageOrientationPatient") or ())
        by_position.setdefault(position and position + plane, []).append((path, ds))
    if () in by_position or all(len(group) == 1 for group in by_position.values()):
        return files
    first = [group[0] for group in by_position.values()]
    warnings.append(f"{len(files) - len(first)} image(s) repeat a slice position with nothing in their headers to tell "
                    "the repeats apart (a repeated scan, or time points): read the first at each position, by InstanceNumber")
    return first


def _is_localizer(ds: Dataset) -> bool:
    """Whether Image Type names a localizer (scout) image."""
    image_type = ds.get("ImageType") or []
    values = [image_type] if isinstance(image_type, str) else list(image_type)
    return "LOCALIZER" in (str(value).strip().upper() for value in values)


def read_dicom_file(path: Path, modality: Modality | None = None) -> Scan:
    """A single DICOM file; a multi-frame file gives one slice per frame."""
    ds = _read_file(path)
    refused = _non_image_object(ds)
    if refused is not None:
        raise ScanReadError(path, f"{refused}, not an image: only CT and MR images can be translated")
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        if _is_image_class(ds):
            raise ScanReadError(path, "damaged DICOM file: an image without pixel data (truncated?)")
        kind = UID(ds.SOPClassUID).name if "SOPClassUID" in ds else "unknown SOP class"
        raise ScanReadError(path, f"DICOM file holds no image ({kind})")
    warnings: list[str] = []
    resolved = _modality(ds, modality, path, warnings)
    return _build_scan(_slices_of(ds, path), path, resolved, warnings)


def has_dicm_preamble(path: Path) -> bool:
    """Whether the file has the 'DICM' marker after its 128-byte preamble (DICOM Part 10)."""
    try:
        with path.open("rb") as stream:
            return stream.read(132)[128:] == b"DICM"
    except OSError as exc:
        raise ScanReadError(path, f"cannot open ({os_error_reason(exc)})") from exc


# -- reading files -------------------------------------------------------------------------


def _read_file(path: Path, header_only: bool = False) -> Dataset:
    """The dataset in `path`; a file without the DICM preamble is force-read and kept only when
    it has a SOPClassUID."""
    preamble = has_dicm_preamble(path)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=header_only, force=not preamble)
        looks_dicom = "SOPClassUID" in ds
    except Exception as exc:  # pydicom raises many types on damaged input
        reason = f"damaged DICOM file ({exc})" if preamble else "not a DICOM file (no DICM preamble)"
        raise ScanReadError(path, reason) from exc
    if not preamble and not looks_dicom:
        raise ScanReadError(path, "not a DICOM file (no DICM preamble)")
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    return ds


DICOMDIR = "DICOMDIR"
"""The name PS3.10 gives a media's directory file."""


def _may_be_dicom(path: Path) -> bool:
    """A name a DICOM file may have without its preamble (no suffix, a numeric one, .dcm,
    .dicom, .ima), or any name with the DICM preamble."""
    suffix = path.suffix.lower()
    return suffix in _HEADERLESS_SUFFIXES or suffix[1:].isdigit() or has_dicm_preamble(path)


def is_dicom_image_file(path: Path) -> bool:
    """Whether `path` reads as a DICOM file with an image's rows and columns (header only)."""
    try:
        if path.name.upper() == DICOMDIR or not _may_be_dicom(path):
            return False
        ds = _read_file(path, header_only=True)
    except ScanReadError:
        return False
    return "Rows" in ds and "Columns" in ds


def _scan_folder(folder: Path) -> tuple[dict[str, list[tuple[Path, Dataset]]], list[str]]:
    """Headers of the DICOM images under `folder` grouped by SeriesInstanceUID, and one note per
    file that cannot be opened, is a damaged DICOM file or a DICOM object that is no image
    (segmentation, structure set, report, ...). Files without the DICM preamble are tried only
    when their name could be a DICOM file's (no suffix, a numeric one, .dcm, .dicom, .ima);
    others are skipped quietly."""
    if not folder.is_dir():
        raise ScanReadError(folder, "not a folder")
    groups: dict[str, list[tuple[Path, Dataset]]] = {}
    unreadable: list[str] = []
    for path in sorted(_files_under(folder), key=natural_key):
        if path.name.upper() == DICOMDIR:  # the index of a CD's files, which are read themselves
            continue
        try:
            if not _may_be_dicom(path):
                continue
            ds = _read_file(path, header_only=True)
        except ScanReadError as error:
            if not error.reason.startswith("not a DICOM"):  # damaged, or cannot be opened
                unreadable.append(f"{path.relative_to(folder)}: {error.reason}")
            continue
        refused = _non_image_object(ds)
        if refused is not None:
            unreadable.append(f"{path.relative_to(folder)}: {refused}, not an image")
        elif "Rows" in ds and "Columns" in ds:
            groups.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((path, ds))
        elif _is_image_class(ds):
            unreadable.append(f"{path.relative_to(folder)}: an image without rows and columns (truncated?)")
    return groups, unreadable


def _non_image_object(ds: Dataset) -> str | None:
    """What `ds` is, e.g. "a DICOM Segmentation object (Modality SEG)", when its SOP class is a
    known storage class that holds no image of the patient (segmentations, structure sets,
    reports, presentation states, key objects, plans, ...); None for image classes, RT Dose (a
    grid of values on the patient's geometry, read as a plain multi-frame image when the user
    names its modality) and unknown (private) classes."""
    uid = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
    if uid is None:
        return None
    name = UID(uid).name
    if name == str(uid) or "Image Storage" in name or uid == RTDoseStorage:
        return None
    modality = str(ds.get("Modality") or "").strip()
    return f"a DICOM {name.removesuffix(' Storage')} object" + (f" (Modality {modality})" if modality else "")


def _is_image_class(ds: Dataset) -> bool:
    """Whether the SOP class (from the dataset or the file meta) is an image storage class."""
    uid = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
    return uid is not None and "Image Storage" in UID(uid).name


def _files_under(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*"):
        if not any(part.startswith(".") for part in path.relative_to(folder).parts) and path.is_file():
            yield path


def _series_info(uid: str, files: list[tuple[Path, Dataset]]) -> SeriesInfo:
    first = files[0][1]
    n_slices = sum(int(ds.get("NumberOfFrames") or 1) for _, ds in files)
    return SeriesInfo(uid, _description(first), str(first.get("Modality", "")), len(files), n_slices, files[0][0])


def _description(ds: Dataset) -> str:
    parts = (str(ds.get(k) or "").strip() for k in ("PatientName", "SeriesDescription", "StudyDescription"))
    return " / ".join(dict.fromkeys(p for p in parts if p))[:80]


# -- frames --------------------------------------------------------------------------------


def _slices_of(ds: Dataset, path: Path) -> list[_Slice]:
    """Every frame of one dataset as a `_Slice`; strips the pixel data from `ds` afterwards."""
    try:
        pixels, note = _decode(ds, path)
        frames = [_frame(ds, path, index, values, note) for index, values in enumerate(pixels)]
    except ScanReadError:
        raise
    except Exception as exc:  # malformed header values surface here as many exception types
        raise ScanReadError(path, f"cannot read the image ({type(exc).__name__}: {exc})") from exc
    for keyword in _PIXEL_KEYWORDS:
        if keyword in ds:
            delattr(ds, keyword)
    return frames


def _decode(ds: Dataset, path: Path) -> tuple[np.ndarray, str | None]:
    """Stored values as float32 (frames, rows, cols), and a note when colour was made gray."""
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    try:
        decoder = get_decoder(syntax)
    except (NotImplementedError, ValueError) as exc:
        raise ScanReadError(path, f"no decoder exists for transfer syntax {syntax.name} ({syntax})") from exc
    if not decoder.is_available:
        raise ScanReadError(
            path,
            f"no decoder installed for transfer syntax {syntax.name} ({syntax}); install the pylibjpeg plugins",
        )
    problem = scan_size_problem(_promised_shape(ds))
    if problem is not None:
        raise ScanReadError(path, problem)
    palette = ds.get("PhotometricInterpretation") == "PALETTE COLOR"
    try:
        array = apply_color_lut(ds.pixel_array, ds) if palette else _sign_extended(ds.pixel_array, ds)
    except Exception as exc:  # decoders raise many types on damaged or truncated pixel data
        raise ScanReadError(path, f"cannot decode the pixel data ({syntax.name}): {exc}") from exc
    note = None
    if palette or int(ds.get("SamplesPerPixel") or 1) > 1:
        note = color_warning(array)
        array = rgb_to_gray(array)
    return np.asarray(array, dtype=np.float32).reshape(-1, int(ds.Rows), int(ds.Columns)), note


def _sign_extended(array: np.ndarray, ds: Dataset) -> np.ndarray:
    """Signed values stored in fewer bits than allocated, with their sign bit carried up.

    pydicom does this for native data, but not for JPEG-LS streams coded at the allocated
    precision (as DCMTK's dcmcjpls writes a 12-bit signed CT): air would read as +2596 HU.
    For values already extended, and bits above HighBit that hold no pixel data, it changes nothing."""
    bits = int(ds.get("BitsStored") or 0)
    width = array.dtype.itemsize * 8
    if int(ds.get("PixelRepresentation") or 0) != 1 or array.dtype.kind not in "iu" or not 0 < bits < width:
        return array
    signed = array.astype(np.dtype(f"int{width}"), copy=False)
    return (signed << (width - bits)) >> (width - bits)


def _promised_shape(ds: Dataset) -> tuple[int, ...]:
    """(frames, rows, cols, samples) as the header says: what decoding it would allocate."""
    keywords = ("NumberOfFrames", "Rows", "Columns", "SamplesPerPixel")
    return tuple(max(1, int(ds.get(keyword) or 1)) for keyword in keywords)


def frame_positions(ds: Dataset) -> np.ndarray | None:
    """(frames, 3) ImagePositionPatient of every frame of `ds`, placed as the reader places them;
    None when a frame has no usable position."""
    frames = range(int(ds.get("NumberOfFrames") or 1))
    positions = [_frame_position(ds, index, _orientation(ds, index, []), []) for index in frames]
    return None if any(p is None for p in positions) else np.stack(positions)  # type: ignore[arg-type]


def _frame(ds: Dataset, path: Path, index: int, stored: np.ndarray, note: str | None) -> _Slice:
    slope = _float(_frame_value(ds, index, "PixelValueTransformationSequence", "RescaleSlope"), 1.0)
    intercept = _float(_frame_value(ds, index, "PixelValueTransformationSequence", "RescaleIntercept"), 0.0)
    problems: list[str] = []
    orientation = _orientation(ds, index, problems)
    spacing = _checked(ds, index, "PixelMeasuresSequence", "PixelSpacing", 2, problems)
    thickness = _checked(ds, index, "PixelMeasuresSequence", "SliceThickness", 1, problems)
    centre = _first(_frame_value(ds, index, "FrameVOILUTSequence", "WindowCenter"))
    width = _first(_frame_value(ds, index, "FrameVOILUTSequence", "WindowWidth"))
    usable_window = centre is not None and width is not None and math.isfinite(centre) and math.isfinite(width) and width > 0
    return _Slice(
        pixels=stored * np.float32(slope) + np.float32(intercept),
        header=ds,
        path=path,
        position=_frame_position(ds, index, orientation, problems),
        orientation=orientation,
        pixel_spacing=(float(spacing[0]), float(spacing[1])) if spacing is not None else None,
        thickness=float(thickness[0]) if thickness is not None else None,
        window=(centre, width) if usable_window else None,  # type: ignore[arg-type]
        order=(int(_float(ds.get("InstanceNumber"), 0)), index),
        monochrome1=ds.get("PhotometricInterpretation") == "MONOCHROME1",
        note=note,
        problems=tuple(problems),
    )


_PROBLEMS = {
    "PixelSpacing": "is not a spacing (two positive numbers): assuming 1 mm",
    "SliceThickness": "is not a positive number: ignored",
    "ImagePositionPatient": "is not a position (NaN or infinite): slice positions ignored",
    "ImageOrientationPatient": "is not two perpendicular unit vectors: orientation ignored",
}
"""What the reader does with a geometry attribute that is present but unusable: it warns and
falls back, so that nothing fails later (a division by a zero spacing, a DICOM export that
cannot write NaN, after the whole translation)."""


def _checked(ds: Dataset, index: int, sequence: str, keyword: str, count: int, problems: list[str]) -> np.ndarray | None:
    """The attribute as `count` numbers, or None when absent or unusable (noted in `problems`)."""
    values = _floats(_frame_value(ds, index, sequence, keyword), count)
    if values is None or _usable(keyword, values):
        return values
    shown = "\\".join(f"{v:g}" for v in values)  # as DICOM writes several values
    problems.append(f"{keyword} {shown} {_PROBLEMS[keyword]}")
    return None


def _usable(keyword: str, values: np.ndarray) -> bool:
    if not np.isfinite(values).all():
        return False
    if keyword in ("PixelSpacing", "SliceThickness"):
        return bool((values > 0).all())
    if keyword == "ImageOrientationPatient":
        row, column = values[:3], values[3:]
        lengths = np.array([np.linalg.norm(row), np.linalg.norm(column)])
        return bool(np.abs(lengths - 1).max() < _UNIT_TOLERANCE and abs(float(row @ column)) < _UNIT_TOLERANCE)
    return True


def _frame_value(ds: Dataset, index: int, sequence: str, keyword: str) -> Any:
    """An attribute of frame `index`: from its per-frame functional group, else the shared one
    (Enhanced multi-frame), else the top level (classic single-frame and plain multi-frame)."""
    for groups, item in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        items = ds.get(groups)
        if items and item < len(items) and items[item].get(sequence):
            inner = items[item].get(sequence)[0]
            if inner.get(keyword) not in (None, ""):
                return inner.get(keyword)
    return ds.get(keyword)


def _orientation(ds: Dataset, index: int, problems: list[str]) -> np.ndarray | None:
    return _checked(ds, index, "PlaneOrientationSequence", "ImageOrientationPatient", 6, problems)


def _frame_position(ds: Dataset, index: int, orientation: np.ndarray | None, problems: list[str]) -> np.ndarray | None:
    """ImagePositionPatient of frame `index`. A plain multi-frame file has one position for all
    frames: its frames are placed by GridFrameOffsetVector along the normal, or left unplaced."""
    position = _checked(ds, index, "PlanePositionSequence", "ImagePositionPatient", 3, problems)
    frames = int(ds.get("NumberOfFrames") or 1)
    if position is None or frames == 1 or "PerFrameFunctionalGroupsSequence" in ds:
        return position
    offsets = _floats(ds.get("GridFrameOffsetVector"), frames)
    if offsets is None or orientation is None or not np.isfinite(offsets).all():
        return None
    return position + offsets[index] * np.cross(orientation[:3], orientation[3:])


def _floats(value: Any, count: int) -> np.ndarray | None:
    if value is None or value == "":
        return None
    values = np.array([float(v) for v in np.atleast_1d(value)])
    return values if len(values) == count else None


def _float(value: Any, default: float) -> float:
    return default if value is None or value == "" else float(value)


def _first(value: Any) -> float | None:
    """The first of a possibly multi-valued numeric attribute."""
    if value is None or value == "":
        return None
    return float(value[0]) if isinstance(value, (list, tuple, MultiValue)) else float(value)


# -- the stack -----------------------------------------------------------------------------


def _build_scan(slices: list[_Slice], source: Path, modality: Modality, warnings: list[str]) -> Scan:
    _check_stackable(slices, source)
    slices, orientation, placed = _sort(slices)
    if not placed and len(slices) > 1:
        warnings.append("slice positions missing: slices kept in InstanceNumber and frame order")
    voxels, non_finite = replace_non_finite(np.stack([s.pixels for s in slices]))  # float pixel data may hold NaN
    if non_finite:
        warnings.append(non_finite)
    first = slices[0]
    window = first.window
    inverted = np.array([s.monochrome1 for s in slices])
    if inverted.any() and modality is Modality.CT:
        # MONOCHROME1 says how to display, not what the values mean: rescaled CT values are HU.
        warnings.append("MONOCHROME1 image (meant to show low values bright): HU kept, shown with higher values brighter")
    elif inverted.any():  # MR has no unit: after rescale, value -> max + min - value, as it is meant to look
        low, high = float(voxels[inverted].min()), float(voxels[inverted].max())
        voxels[inverted] = high + low - voxels[inverted]
        if window is not None and first.monochrome1:
            window = (high + low - window[0], window[1])
        warnings.append("MONOCHROME1 image inverted so that higher values are brighter")
    warnings += sorted({s.note for s in slices if s.note})
    warnings += _problem_notes(slices)
    spacings = sorted({tuple(round(v, 4) for v in s.pixel_spacing) for s in slices if s.pixel_spacing is not None})
    if len(spacings) > 1:
        shown = " to ".join(f"{rows:g}×{cols:g}" for rows, cols in (spacings[0], spacings[-1]))
        warnings.append(f"pixel spacing differs between slices ({shown} mm): sizes in mm follow the first slice's")
    if first.pixel_spacing is None:
        warnings.append("pixel spacing not stated; assuming 1 mm")
    geometry = Geometry(
        pixel_spacing=first.pixel_spacing or (1.0, 1.0),
        orientation=tuple(float(v) for v in orientation) if orientation is not None else None,  # type: ignore[arg-type]
        positions=np.stack([s.position for s in slices]) if placed else None,  # type: ignore[misc]
        slice_thickness=first.thickness,
    )
    warnings += _stack_warnings(geometry, [s.header for s in slices])
    return Scan(
        voxels=voxels,
        modality=modality,
        geometry=geometry,
        provenance=Provenance(tuple(str(p) for p in dict.fromkeys(s.path for s in slices)), "dicom"),
        dicom_headers=[s.header for s in slices],
        display_window=window,
        description=_description(first.header),
        warnings=tuple(warnings),
    )


def _problem_notes(slices: list[_Slice]) -> list[str]:
    """Each geometry problem once, naming the first file that has it and how many more do."""
    files: dict[str, list[str]] = {}
    for item in slices:
        for problem in item.problems:
            names = files.setdefault(problem, [])
            if item.path.name not in names:
                names.append(item.path.name)
    return [
        f"{names[0]}{f' and {len(names) - 1} more file(s)' if len(names) > 1 else ''}: {problem}"
        for problem, names in files.items()
    ]


def _check_stackable(slices: list[_Slice], source: Path) -> None:
    """Refuse slices of different sizes or orientations: they cannot form one volume."""
    first = slices[0]
    for other in slices[1:]:
        if other.pixels.shape != first.pixels.shape:
            raise ScanReadError(
                source,
                f"images differ in size ({first.path.name} is {first.pixels.shape[1]}x{first.pixels.shape[0]}, "
                f"{other.path.name} is {other.pixels.shape[1]}x{other.pixels.shape[0]}); cannot stack them",
            )
        if (
            first.orientation is not None
            and other.orientation is not None
            and np.abs(first.orientation - other.orientation).max() > _ORIENTATION_TOLERANCE
        ):
            raise ScanReadError(
                source,
                f"slices have different orientations ({first.path.name} and {other.path.name}); "
                "cannot stack them into one volume: read one orientation per folder",
            )


def _sort(slices: list[_Slice]) -> tuple[list[_Slice], np.ndarray | None, bool]:
    """(slices in order, the common orientation or None, whether every slice has a position).

    With an orientation and a position for every slice, they are sorted by position along the
    slice normal; otherwise by (InstanceNumber, frame)."""
    orientations = [s.orientation for s in slices]
    orientation = orientations[0] if all(o is not None for o in orientations) else None
    if orientation is not None and all(s.position is not None for s in slices):
        normal = np.cross(orientation[:3], orientation[3:])
        return sorted(slices, key=lambda s: (float(s.position @ normal), s.order)), orientation, True  # type: ignore[operator]
    return sorted(slices, key=lambda s: s.order), orientation, False


def _stack_warnings(geometry: Geometry, headers: list[Dataset]) -> list[str]:
    """Notes on gantry tilt and uneven spacing: the stack is then not a regular volume."""
    warnings = []
    tilt = max(abs(_float(h.get("GantryDetectorTilt"), 0.0)) for h in {id(h): h for h in headers}.values())
    shear = 0.0
    normal, positions = geometry.slice_normal, geometry.positions
    if normal is not None and positions is not None and len(positions) > 1:
        travel = positions[-1] - positions[0]
        if np.linalg.norm(travel) > 0:
            cosine = abs(float(travel @ normal)) / float(np.linalg.norm(travel) * np.linalg.norm(normal))
            shear = float(np.degrees(np.arccos(min(cosine, 1.0))))
    if tilt > 0 or shear > _TILT_DEGREES:
        warnings.append(
            f"gantry tilt: GantryDetectorTilt {tilt:g}°, slices offset {shear:.1f}° from their normal; "
            "the stack is sheared, shown and processed slice by slice"
        )
    if normal is not None:
        warnings += _plane_warning(normal)
    spacings = geometry.slice_spacings
    if spacings is not None:
        low, high = float(spacings.min()), float(spacings.max())
        if high - low > _UNEVEN_FRACTION * float(np.median(spacings)):
            warnings.append(f"uneven slice spacing: {low:.2f} to {high:.2f} mm between neighbouring slices")
    return warnings


def _plane_warning(normal: np.ndarray) -> list[str]:
    """A note when the slices are not (near) axial: the models learn from axial slices and
    translate whatever plane they are given, slice by slice, with no sign that it is wrong."""
    unit = np.abs(normal) / float(np.linalg.norm(normal))
    off_axial = float(np.degrees(np.arccos(min(1.0, unit[2]))))
    if off_axial <= _OFF_AXIAL_DEGREES:
        return []
    plane = "sagittal" if unit[0] > 0.9 else "coronal" if unit[1] > 0.9 else "oblique"
    return [f"{plane} slices ({off_axial:.0f}° from axial): the model learnt from axial slices, and its "
            "synthetic image of another plane is not reliable (a NIfTI volume is turned axial when read)"]


def _modality(ds: Dataset, given: Modality | None, source: Path, warnings: list[str]) -> Modality:
    """The caller's modality when given (noting a clash with the header), else the header's."""
    header = str(ds.get("Modality", "")).upper()
    if given is not None:
        if header in ("CT", "MR") and header != given.value:
            warnings.append(f"modality {given.value} given overrides the DICOM Modality {header}")
        return given
    if header in ("CT", "MR"):
        return Modality(header)
    raise ScanReadError(
        source,
        f"DICOM Modality is {header or 'missing'}, neither CT nor MR: pass the modality explicitly (ct or mr)",
    )
