"""The text of the viewers' corner overlays and orientation letters: pure Python, no Qt."""

from __future__ import annotations

import numpy as np

from aimedx_desktop.engine.scan import Modality, Scan

SYNTHETIC_BADGE = "SYNTHETIC — NOT FOR DIAGNOSIS"
_LPS_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))
"""DICOM patient axes: +x points to the patient's Left, +y Posterior, +z Superior."""


def direction_letters(vector: np.ndarray | tuple[float, ...], threshold: float = 0.3) -> str:
    """Letters for where `vector` points in LPS, dominant axis first ('L', 'PS', ...)."""
    components = np.asarray(vector, dtype=float)
    order = np.argsort(-np.abs(components))
    letters = [
        _LPS_LETTERS[axis][1 if components[axis] > 0 else 0]
        for axis in order
        if abs(components[axis]) >= threshold
    ]
    return "".join(letters[:2])


def orientation_labels(orientation: tuple[float, ...] | None) -> dict[str, str] | None:
    """Letters for the screen edges {left, right, top, bottom}, or None when unknown.

    Column index grows to the right along the row cosines; row index grows downwards (row 0 is
    at the top) along the column cosines.
    """
    if orientation is None:
        return None
    row = np.asarray(orientation[:3], dtype=float)
    col = np.asarray(orientation[3:], dtype=float)
    return {
        "right": direction_letters(row),
        "left": direction_letters(-row),
        "bottom": direction_letters(col),
        "top": direction_letters(-col),
    }


def value_unit(modality: Modality, in_hu: bool) -> str:
    return " HU" if modality is Modality.CT and in_hu else ""


def format_value(value: float | None, modality: Modality, in_hu: bool) -> str:
    """A voxel value for the status bar: '35 HU' for CT, '412.5' for MR, '—' when unknown."""
    if value is None or not np.isfinite(value):
        return "—"
    unit = value_unit(modality, in_hu)
    if unit:
        return f"{value:.0f}{unit}"
    return f"{value:.4g}"


def header_text(scan: Scan) -> str:
    """Top-left corner: patient and series description, and the modality."""
    lines = []
    headers = scan.dicom_headers
    if headers:
        patient = str(getattr(headers[0], "PatientName", "") or "").strip()
        if patient:
            lines.append(patient)
    lines.append(scan.description or scan.provenance.describe())
    lines.append(scan.modality.value + (" (synthetic)" if scan.is_synthetic else ""))
    return "\n".join(lines)


def slice_text(scan: Scan, index: int) -> str:
    """Bottom-left corner: 'slice n / N' and the slice position along its normal when known."""
    text = f"slice {index + 1} / {scan.n_slices}"
    geometry = scan.geometry
    normal = geometry.slice_normal
    if geometry.positions is not None and normal is not None:
        text += f"\npos {float(geometry.positions[index] @ normal):.1f} mm"
    if geometry.slice_thickness:
        text += f"\nthk {geometry.slice_thickness:.3g} mm"
    return text
