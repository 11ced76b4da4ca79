"""Small helpers the readers share: file ordering, gray conversion, non-finite values, the modality guess."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from aimedx_desktop.engine.scan import Modality

_CT_TOKENS = frozenset({"ct", "cect", "ncct", "cta"})
_MR_TOKENS = frozenset({"mr", "mri", "t1", "t1w", "t2", "t2w", "flair", "pd", "pdw", "dwi", "adc"})


def natural_key(path: Path) -> tuple[object, ...]:
    """Sort key that puts 'img2' before 'img10' (digits compare as numbers)."""
    parts = re.split(r"(\d+)", str(path).lower())
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts)


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an (..., 3) array, as float32."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.asarray(rgb[..., :3], dtype=np.float32) @ weights


def color_warning(rgb: np.ndarray) -> str:
    """The note recorded when a colour image is read as gray."""
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return "stored as colour with equal channels; read as gray"
    return "colour image converted to gray (BT.601 luma)"


def replace_non_finite(voxels: np.ndarray) -> tuple[np.ndarray, str | None]:
    """`voxels` with NaN and -inf set to the finite minimum and +inf to the finite maximum (0 when
    nothing is finite), and the warning that says so, or None when every value was finite."""
    finite = np.isfinite(voxels)
    if finite.all():
        return voxels, None
    lo, hi = (float(voxels[finite].min()), float(voxels[finite].max())) if finite.any() else (0.0, 0.0)
    bad = voxels.size - int(np.count_nonzero(finite))
    fixed = np.nan_to_num(voxels, nan=lo, posinf=hi, neginf=lo)
    note = f"{bad} voxel(s) were NaN or infinite: NaN and -inf set to the minimum {lo:g}, +inf to the maximum {hi:g}"
    return fixed, note


GUESSED_FROM_NAME = "modality guessed from the name"
ASSUMED_MR = "modality assumed"
"""In Provenance.notes of a scan whose modality the file did not state: a name said it, or nothing
did and MR was assumed. `aimedx convert --to` may decide the latter but must not contradict the former."""


def guess_modality(path: Path) -> tuple[Modality, str, str]:
    """The modality suggested by the path, the warning that says it was guessed, and the
    provenance note (GUESSED_FROM_NAME or ASSUMED_MR).

    Looks at the file or folder name, then its parent and grandparent, and stops at the first
    name holding a CT token ('ct', 'head_ct_ge') or an MR token ('mr', 'mri', 't1', 'flair', ...)
    but not both; with no such name, assumes MR. The caller (CLI, GUI) lets the user override.
    """
    for part in reversed(path.absolute().parts[-3:]):
        tokens = set(re.split(r"[^a-z0-9]+", part.lower()))
        is_ct, is_mr = bool(tokens & _CT_TOKENS), bool(tokens & _MR_TOKENS)
        if is_ct != is_mr:
            found = Modality.CT if is_ct else Modality.MR
            return found, f"modality not stated; guessed {found.value} from the name {part!r}", GUESSED_FROM_NAME
    return Modality.MR, "modality not stated; assuming MR", ASSUMED_MR
