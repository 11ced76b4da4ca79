"""PNG, JPEG, TIFF and BMP: one image, or a folder of equal-sized images read as one stack.

Voxels are the stored gray levels (8- or 16-bit) as float32; colour images are read as their
luma with a warning. Raster files carry no geometry, so pixel spacing is 1 (unknown) and there
are no positions.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from aimedx_desktop.engine.io._common import color_warning, guess_modality, natural_key, rgb_to_gray
from aimedx_desktop.engine.io.errors import ScanReadError
from aimedx_desktop.engine.scan import Geometry, Modality, Provenance, Scan

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_GRAY_MODES = frozenset({"1", "L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})


def raster_files(folder: Path) -> list[Path]:
    """The raster images directly in `folder`, in natural name order."""
    found = (p for p in folder.iterdir() if p.suffix.lower() in RASTER_SUFFIXES and not p.name.startswith("."))
    return sorted((p for p in found if p.is_file()), key=natural_key)


def read_raster(path: Path, modality: Modality | None = None) -> Scan:
    """One image file, or every image directly in a folder as slices in natural name order.

    Without `modality`, the modality is guessed from the path (see `guess_modality`) and the
    guess is recorded in the scan's warnings.
    """
    files = raster_files(path) if path.is_dir() else [path]
    if not files:
        raise ScanReadError(path, f"no {'/'.join(s[1:].upper() for s in RASTER_SUFFIXES)} images in this folder")
    slices: list[np.ndarray] = []
    notes: Counter[str] = Counter()
    source_format = ""
    for file in files:
        pixels, file_format, note = _read_image(file)
        if slices and pixels.shape != slices[0].shape:
            raise ScanReadError(
                file,
                f"image is {_size(pixels)} pixels but {files[0].name} is {_size(slices[0])}; "
                "the images of a folder must all have the same size",
            )
        slices.append(pixels)
        source_format = source_format or file_format
        if note:
            notes[note] += 1
    warnings = [note if len(files) == 1 else f"{note} ({n} of {len(files)} images)" for note, n in notes.items()]
    if modality is None:
        modality, guess = guess_modality(path)
        warnings.append(guess)
    return Scan(
        voxels=np.stack(slices),
        modality=modality,
        geometry=Geometry(),
        provenance=Provenance(tuple(str(f) for f in files), source_format),
        description=path.name if path.is_dir() else path.stem,
        warnings=tuple(warnings),
    )


def _read_image(file: Path) -> tuple[np.ndarray, str, str | None]:
    """(gray levels as float32 (rows, cols), format name, note or None) of one image file."""
    try:
        with Image.open(file) as image:
            file_format = (image.format or file.suffix[1:]).lower()
            note = "multi-page image: only the first page is read" if getattr(image, "n_frames", 1) > 1 else None
            if image.mode in _GRAY_MODES:
                return np.asarray(image, dtype=np.float32), file_format, note
            if image.mode in ("LA", "La"):
                return np.asarray(image.convert("L"), dtype=np.float32), file_format, note
            rgb = np.asarray(image.convert("RGB"))
    except FileNotFoundError as exc:
        raise ScanReadError(file, "no such file") from exc
    except Image.UnidentifiedImageError as exc:
        raise ScanReadError(file, "not a readable PNG/JPEG/TIFF/BMP image") from exc
    except Exception as exc:  # Pillow's plugins raise many types on damaged files
        raise ScanReadError(file, f"cannot decode the image ({type(exc).__name__}: {exc})") from exc
    return rgb_to_gray(rgb), file_format, "; ".join(filter(None, (color_warning(rgb), note)))


def _size(pixels: np.ndarray) -> str:
    return f"{pixels.shape[1]}x{pixels.shape[0]}"
