"""A colour overlay of a per-voxel map (the model's uncertainty) over a slice viewer's image.

Display only: the overlay is a second ImageItem above the image with its own colour map and
opacity; it never touches the image's voxels or its window/level. A colour bar in the pane's
corner says what the colours mean, in the map's units.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPen
from PySide6.QtWidgets import QWidget

from aimedx_desktop.engine.intensity import regular_sample

COLOUR_MAP = "inferno"
"""Perceptually uniform and readable for colour-blind users; dark = confident, bright = unsure."""
DEFAULT_OPACITY = 0.7
TOP_PERCENTILE = 98.0
"""The colour scale runs from 0 to this percentile of the map where it speaks (non-zero), so a
few hot pixels cannot wash out the rest."""
FADE_IN = 0.25
"""Below this fraction of the scale the overlay fades to transparent: where the model is
confident the synthetic image shows through untouched, and only the unsure places glow."""


def overlay_lookup_table(colour_map: pg.ColorMap) -> np.ndarray:
    """The colour map as RGBA, its alpha rising from 0 to opaque over the first FADE_IN of the scale."""
    table = colour_map.getLookupTable(nPts=256, alpha=True)
    table[:, 3] = np.clip(np.linspace(0.0, 1.0, 256) / FADE_IN, 0.0, 1.0) * 255
    return table


class ColourBar(QWidget):
    """A vertical colour bar with its top and bottom values and the units."""

    WIDTH, HEIGHT = 64, 132

    def __init__(self, colour_map: pg.ColorMap, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._colour_map = colour_map
        self._levels = (0.0, 1.0)
        self._units = ""
        self._title = ""
        self.setFixedSize(self.WIDTH, self.HEIGHT)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)

    def set_scale(self, title: str, levels: tuple[float, float], units: str) -> None:
        self._title, self._levels, self._units = title, levels, units
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0, 140))
        bar = QRectF(6, 18, 12, self.HEIGHT - 36)
        gradient = QLinearGradient(bar.bottomLeft(), bar.topLeft())
        for position, colour in zip(*self._colour_map.getStops(mode=pg.ColorMap.QCOLOR)):
            gradient.setColorAt(float(position), colour)
        painter.fillRect(bar, gradient)
        painter.setPen(QPen(QColor(240, 240, 240)))
        font = painter.font()
        font.setPixelSize(10)
        painter.setFont(font)
        low, high = self._levels
        painter.drawText(QRectF(2, 2, self.WIDTH - 4, 14), Qt.AlignmentFlag.AlignLeft, self._title)
        painter.drawText(QRectF(22, bar.top() - 6, self.WIDTH - 24, 14), Qt.AlignmentFlag.AlignLeft, f"{high:.3g}")
        painter.drawText(QRectF(22, bar.bottom() - 8, self.WIDTH - 24, 14), Qt.AlignmentFlag.AlignLeft, f"{low:.3g}")
        painter.drawText(QRectF(2, self.HEIGHT - 16, self.WIDTH - 4, 14), Qt.AlignmentFlag.AlignLeft, self._units)
        painter.end()


class MapOverlay:
    """The map's current slice in colour over a viewer's image, with its colour bar."""

    def __init__(self, view_box: pg.ViewBox) -> None:
        colour_map = pg.colormap.get(COLOUR_MAP)
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setLookupTable(overlay_lookup_table(colour_map))
        self.item.setOpacity(DEFAULT_OPACITY)
        self.item.setZValue(10)  # above the image, below the crosshair
        self.item.setVisible(False)
        view_box.addItem(self.item)
        self.bar = ColourBar(colour_map)
        self.bar.setVisible(False)
        self.values: np.ndarray | None = None
        self.units = ""
        self._shown = False

    @property
    def available(self) -> bool:
        return self.values is not None

    @property
    def shown(self) -> bool:
        return self._shown and self.available

    def set_map(self, values: np.ndarray | None, units: str, extent: QRectF | None, index: int = 0) -> None:
        """A new map (None: the scan has none) on the image's rectangle `extent` (mm), at slice `index`."""
        self.values, self.units = values, units
        if values is not None and extent is not None:
            self.levels = (0.0, _top_level(values))
            self.show_slice(index)  # the item needs an image of the right shape before its rectangle
            self.item.setRect(extent)
            self.bar.set_scale("± σ", self.levels, units)
        else:
            self.item.clear()  # its image is a view of the old map: let that go
        self._update_visibility()

    def show_slice(self, index: int) -> None:
        if self.values is not None:
            self.item.setImage(self.values[index], autoLevels=False, levels=self.levels)

    def set_shown(self, shown: bool) -> None:
        self._shown = shown
        self._update_visibility()

    def set_opacity(self, opacity: float) -> None:
        self.item.setOpacity(min(1.0, max(0.0, opacity)))

    def value_at(self, index: int, row: int, col: int) -> float | None:
        if self.values is None:
            return None
        return float(self.values[index, row, col])

    def _update_visibility(self) -> None:
        self.item.setVisible(self.shown)
        self.bar.setVisible(self.shown)


def _top_level(values: np.ndarray) -> float:
    """The colour scale's top: the TOP_PERCENTILE of the map's positive values, from a regular
    sample as display_window takes one (the whole of a 500-slice map froze the window for seconds)."""
    sample = regular_sample(values)
    speaking = sample[sample > 0]
    top = float(np.percentile(speaking, TOP_PERCENTILE)) if speaking.size else 1.0
    return top if top > 0 else 1.0
