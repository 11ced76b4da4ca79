"""PNG, JPEG, TIFF and BMP: one image, or a folder of equal-sized images read as one stack.

Voxels are the stored gray levels (8- or 16-bit, or float) as float32; colour images are read
as their luma with a warning. Raster files carry no geometry, so pixel spacing is 1 (unknown)
and there are no positions.

The exception is this app's own PNG export (see png_writer.py): its text chunks give the way
back to physical units (HU for CT), its modality and its model, so such a scan is read
calibrated, marked synthetic and has CALIBRATED in Provenance.notes: its voxels are not
display gray levels, whatever their range.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from aimedx_desktop.engine.io._common import (
    color_warning,
    guess_modality,
    natural_key,
    replace_non_finite,
    rgb_to_gray,
)
from aimedx_desktop.engine.io.errors import ScanReadError
from aimedx_desktop.engine.io.png_writer import PngCalibration, read_calibration
from aimedx_desktop.engine.limits import scan_size_problem
from aimedx_desktop.engine.scan import Geometry, Modality, Provenance, Scan

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
"""File name suffixes (lower case) of the raster images the app reads: the one list to use."""
RASTER_FORMATS = ("png", "jpeg", "mpo", "tiff", "bmp")
"""Provenance.source_format of scans read from those files (Pillow's format names, lower case)."""
CALIBRATED = "calibrated"
"""In Provenance.notes when the voxels are physical units taken from the app's own PNG text chunks."""
_GRAY_MODES = frozenset({"1", "L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})


@dataclass(frozen=True)
class _Image:
    pixels: np.ndarray  # float32 (rows, cols)
    file_format: str
    notes: tuple[str, ...]
    calibration: PngCalibration | None


def raster_files(folder: Path) -> list[Path]:
    """The raster images directly in `folder`, in natural name order, without hidden files
    (names starting with '.', such as macOS '._0001.png' resource forks)."""
    found = (p for p in folder.iterdir() if p.suffix.lower() in RASTER_SUFFIXES and not p.name.startswith("."))
    return sorted((p for p in found if p.is_file()), key=natural_key)


def read_raster(path: Path, modality: Modality | None = None) -> Scan:
    """One image file, or every image directly in a folder as slices in natural name order.

    Without `modality`, the app's own export says it; otherwise the modality is guessed from
    the path (see `guess_modality`) and the guess is recorded in the scan's warnings.
    """
    files = raster_files(path) if path.is_dir() else [path]
    if not files:
        raise ScanReadError(path, f"no {'/'.join(s[1:].upper() for s in RASTER_SUFFIXES)} images in this folder")
    images: list[_Image] = []
    notes: Counter[str] = Counter()
    for file in files:
        image = _read_image(file)
        if not images and (problem := scan_size_problem((len(files), *image.pixels.shape), "the first image's size")):
            raise ScanReadError(path, problem)
        if images and image.pixels.shape != images[0].pixels.shape:
            raise ScanReadError(
                file,
                f"image is {_size(image.pixels)} pixels but {files[0].name} is {_size(images[0].pixels)}; "
                "the images of a folder must all have the same size",
            )
        if images and (image.calibration is None) != (images[0].calibration is None):
            raise ScanReadError(
                file,
                "AI-MEDX exports (physical units) and other images cannot form one stack; "
                "read them from separate folders",
            )
        images.append(image)
        notes.update(image.notes)
    voxels, non_finite = replace_non_finite(np.stack([image.pixels for image in images]))
    warnings = [note if len(files) == 1 else f"{note} ({n} of {len(files)} images)" for note, n in notes.items()]
    warnings += [non_finite] if non_finite else []
    calibration = images[0].calibration
    guessed: tuple[str, ...] = ()
    if modality is None and calibration is not None and calibration.modality is not None:
        modality = calibration.modality
    elif modality is None:
        modality, guess, note = guess_modality(path)
        warnings.append(guess)
        guessed = (note,)
    return Scan(
        voxels=voxels,
        modality=modality,
        geometry=Geometry(),
        provenance=_provenance(files, images[0].file_format, calibration, guessed),
        display_window=calibration.window if calibration is not None else None,
        description=path.name if path.is_dir() else path.stem,
        warnings=tuple(warnings),
    )


def _provenance(files: list[Path], file_format: str, calibration: PngCalibration | None, notes: tuple[str, ...]) -> Provenance:
    paths = tuple(str(f) for f in files)
    if calibration is None:
        return Provenance(paths, file_format, notes=notes)
    name, _, version = calibration.model.rpartition(" ")
    direction = calibration.direction or None
    return Provenance(paths, file_format, True, name or None, version or None, direction, (CALIBRATED, *notes))


def _png_depth_problem(file: Path) -> str | None:
    """Why a PNG cannot be read at its full depth: Pillow reads 16-bit colour and 16-bit gray
    with alpha as 8 bits per channel, which would silently cut 65,536 levels to 256."""
    with file.open("rb") as stream:
        header = stream.read(26)  # signature (8), IHDR length and type (8), width, height, depth, colour type
    depth, colour_type = header[24], header[25]
    if depth == 16 and colour_type in (2, 4, 6):
        kind = {2: "RGB", 4: "gray with alpha", 6: "RGB with alpha"}[colour_type]
        return f"a 16-bit {kind} PNG would be read at 8 bits; save it as 16-bit gray (no alpha) to keep its levels"
    return None


def _read_image(file: Path) -> _Image:
    """One image file as gray levels, or in physical units when it is the app's own PNG export."""
    try:
        with Image.open(file) as opened:
            file_format = (opened.format or file.suffix[1:]).lower()
            notes = ["multi-page image: only the first page is read"] if getattr(opened, "n_frames", 1) > 1 else []
            calibration = read_calibration(getattr(opened, "text", {}))
            if file_format == "png" and (problem := _png_depth_problem(file)):
                raise ScanReadError(file, problem)
            image = ImageOps.exif_transpose(opened)  # as every viewer shows it (a camera's rotation tag)
            if image.mode in _GRAY_MODES:
                pixels = np.asarray(image, dtype=np.float32)
            elif image.mode in ("LA", "La"):
                pixels = np.asarray(image.convert("L"), dtype=np.float32)
            else:
                rgb = np.asarray(image.convert("RGB"))
                pixels = rgb_to_gray(rgb)
                notes.insert(0, color_warning(rgb))
    except ScanReadError:
        raise
    except FileNotFoundError as exc:
        raise ScanReadError(file, "no such file") from exc
    except Image.UnidentifiedImageError as exc:
        raise ScanReadError(file, "not a readable PNG/JPEG/TIFF/BMP image") from exc
    except Exception as exc:  # Pillow's plugins raise many types on damaged files
        raise ScanReadError(file, f"cannot decode the image ({type(exc).__name__}: {exc})") from exc
    if calibration is not None:
        pixels = (pixels.astype(np.float64) * calibration.slope + calibration.intercept).astype(np.float32)
        if calibration.window is not None:
            centre, width = calibration.window
            notes.append(
                f"AI-MEDX 8-bit export read back through its window (centre {centre:g}, width {width:g}): "
                "values outside the window were clipped to its edges when it was written"
            )
    return _Image(pixels, file_format, tuple(notes), calibration)


def _size(pixels: np.ndarray) -> str:
    return f"{pixels.shape[1]}x{pixels.shape[0]}"
