"""Slice layout: fit a slice in physical units into the model's square input, and back.

A slice is mapped to [-1, 1] by the bundle's intensity contract, resized to the model's square
input keeping its physical aspect (padded with the background value -1), and after translation
cropped and resized back to the source grid. Training, evaluation and inference all use these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from aimedx_desktop.engine.intensity import LinearMap

FOREGROUND_LEVEL = -0.9
"""Normalised values above this count as foreground (the background maps to -1)."""


@dataclass(frozen=True)
class SliceLayout:
    """How one source slice sits inside the model's square input (resize, then centre pad)."""

    rows: int
    cols: int
    top: int
    left: int

    @classmethod
    def fit(cls, shape: tuple[int, int], spacing: tuple[float, float], size: int, multiple: int) -> "SliceLayout":
        """Scale the physical extent to fit `size`, keeping aspect; each side at least `multiple`."""
        height_mm = shape[0] * spacing[0]
        width_mm = shape[1] * spacing[1]
        scale = size / max(height_mm, width_mm)
        rows = max(multiple, min(size, round(height_mm * scale)))
        cols = max(multiple, min(size, round(width_mm * scale)))
        return cls(rows=rows, cols=cols, top=(size - rows) // 2, left=(size - cols) // 2)


def fit_to_model(values: np.ndarray, input_map: LinearMap, layout: SliceLayout, size: int) -> np.ndarray:
    """A slice in physical units as the network's (size, size) input in [-1, 1]."""
    normalized = torch.from_numpy(input_map.to_model(values))
    resized = F.interpolate(
        normalized[None, None], size=(layout.rows, layout.cols), mode="bilinear", antialias=True, align_corners=False
    )[0, 0]
    canvas = torch.full((size, size), -1.0)
    canvas[layout.top : layout.top + layout.rows, layout.left : layout.left + layout.cols] = resized
    return canvas.numpy()


def restore_from_model(outputs: torch.Tensor, layout: SliceLayout, shape: tuple[int, int]) -> torch.Tensor:
    """The inverse of fit_to_model's geometry for a batch (n, size, size): crop the padding and
    resize each slice to the source grid, giving (n, *shape) on the batch's device."""
    crop = outputs[:, layout.top : layout.top + layout.rows, layout.left : layout.left + layout.cols]
    return F.interpolate(crop[:, None], size=shape, mode="bilinear", antialias=True, align_corners=False)[:, 0]


def near_anatomy(normalized: torch.Tensor, margin: int) -> torch.Tensor:
    """For a batch (n, rows, cols) of normalised slices: 1.0 within `margin` pixels (a square
    neighbourhood) of each slice's foreground, else 0.0, on the batch's device.

    The square maximum filter runs as a row pass then a column pass: the same result as one
    (2 margin + 1)² window at a fraction of the cost (26 → 4 ms per 256² slice at margin 12 on a CPU).
    """
    foreground = (normalized > FOREGROUND_LEVEL).float()[:, None]
    side = 2 * margin + 1
    rows = F.max_pool2d(foreground, (1, side), stride=1, padding=(0, margin))
    return F.max_pool2d(rows, (side, 1), stride=1, padding=(margin, 0))[:, 0]
