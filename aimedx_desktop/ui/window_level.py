"""Window/level arithmetic and presets: pure Python, no Qt.

A window (centre, width) maps [centre - width/2, centre + width/2] onto black..white. It only
changes what is displayed; no function here ever touches the voxels it is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aimedx_desktop.engine.intensity import CT_DEFAULT_WINDOW, display_window

MIN_WIDTH = 1e-3


@dataclass(frozen=True)
class Window:
    """A display window; `width` is never below MIN_WIDTH."""

    centre: float
    width: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", max(float(self.width), MIN_WIDTH))
        object.__setattr__(self, "centre", float(self.centre))

    @property
    def levels(self) -> tuple[float, float]:
        """(low, high): the values shown as black and white."""
        return self.centre - self.width / 2.0, self.centre + self.width / 2.0

    def label(self) -> str:
        places = decimals_for(self.width)
        return f"C {round(self.centre, places):g} / W {round(self.width, places):g}"


def decimals_for(width: float) -> int:
    """Decimal places that show a window `width` wide to about three significant digits (1 to 6):
    one for HU, four for MR normalised to 0–0.02, where one would show every window as 0."""
    return int(min(6, max(1, 2 - math.floor(math.log10(max(width, MIN_WIDTH))))))


@dataclass(frozen=True)
class Preset:
    name: str
    window: Window
    key: str


CT_PRESETS: tuple[Preset, ...] = (
    Preset("Brain", Window(*CT_DEFAULT_WINDOW), "1"),
    Preset("Subdural", Window(75, 200), "2"),
    Preset("Stroke", Window(40, 40), "3"),
    Preset("Bone", Window(400, 1800), "4"),
    Preset("Soft tissue", Window(40, 400), "5"),
    Preset("Lung", Window(-600, 1500), "6"),
)


def preset_for(window: Window, presets: tuple[Preset, ...] = CT_PRESETS) -> Preset | None:
    """The preset whose window `window` is, if any."""
    return next((preset for preset in presets if preset.window == window), None)


def default_window(
    voxels: np.ndarray, is_ct_in_hu: bool, suggested: tuple[float, float] | None = None
) -> Window:
    """CT in HU opens with the file's window or the brain preset; anything else is auto."""
    return Window(*display_window(voxels, is_ct_in_hu, suggested))


def data_range(voxels: np.ndarray) -> float:
    """The scale of a W/L drag: the width of the data's automatic window.

    That is the 0.5–99.5 percentile range (a few outlying voxels do not make the drag jumpy),
    else the full range, else 1.0 for flat or empty data; display_window does the sampling.
    """
    return display_window(voxels, False)[1]


def dragged(start: Window, dx: float, dy: float, value_range: float, pixels: float = 500.0) -> Window:
    """The window after a mouse drag of (dx, dy) screen pixels from `start`.

    Right widens, left narrows; up raises the centre (the image darkens), down lowers it.
    Dragging `pixels` screen pixels moves by the whole data range.
    """
    step = value_range / pixels
    return Window(start.centre - dy * step, start.width + dx * step)


def step_index(index: int, delta: int, count: int) -> int:
    """`index + delta` clamped to 0..count-1 (0 when count is 0)."""
    if count <= 0:
        return 0
    return min(max(index + delta, 0), count - 1)
