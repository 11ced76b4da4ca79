"""One slice viewer: a pyqtgraph ImageItem in a ViewBox, with window/level and slice navigation.

View coordinates are millimetres: the image is placed on a rectangle of cols × col spacing by
rows × row spacing, so a locked 1:1 aspect shows the true physical aspect, and two panes on the
same grid can share pan and zoom through pyqtgraph's axis links. Row 0 is at the top.
Window/level only sets the ImageItem's levels; the voxels are never modified. A synthetic scan's
uncertainty map can be shown in colour over the image (map_overlay.py), display only as well.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from aimedx_desktop.engine.intensity import is_ct_in_hu
from aimedx_desktop.engine.scan import UNCERTAINTY, Modality, Scan
from aimedx_desktop.ui import overlay_text
from aimedx_desktop.ui.map_overlay import DEFAULT_OPACITY, MapOverlay
from aimedx_desktop.ui.window_level import Window, data_range, decimals_for, default_window, dragged, step_index

_OVERLAY_STYLE = "color: #f0f0f0; background: rgba(0, 0, 0, 130); font-size: 11px; padding: 1px 3px;"
_BADGE_STYLE = (
    "color: white; background: rgba(190, 0, 0, 215); font-weight: bold; font-size: 13px;"
    "padding: 3px 8px; border-radius: 3px;"
)


class _Overlay(QLabel):
    """Overlay text on a dark translucent box; an empty overlay draws nothing at all."""

    def __init__(self, alignment: Qt.AlignmentFlag, style: str) -> None:
        super().__init__("")
        self._style = style
        self.setAlignment(alignment)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setStyleSheet("background: transparent;")

    def setText(self, text: str) -> None:  # noqa: N802
        if bool(text) != bool(self.text()):
            self.setStyleSheet(self._style if text else "background: transparent;")
        super().setText(text)


class _SliceViewBox(pg.ViewBox):
    """Left drag = window/level, middle drag = pan, right drag = zoom; wheel = slice, Ctrl+wheel = zoom."""

    def __init__(self, viewer: "SliceViewer") -> None:
        super().__init__(invertY=True, lockAspect=True, enableMenu=False)
        self._viewer = viewer
        self._drag_start: Window | None = None

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 (Qt naming)
        if ev.button() != Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        if ev.isStart():
            self._drag_start = self._viewer.window
        if self._drag_start is None:
            return
        delta = ev.screenPos() - ev.buttonDownScreenPos()
        self._viewer.set_window(
            dragged(self._drag_start, delta.x(), delta.y(), self._viewer.value_range)
        )
        if ev.isFinish():
            self._drag_start = None

    def wheelEvent(self, ev, axis=None) -> None:  # noqa: N802
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        ev.accept()
        self._viewer.step(-1 if ev.delta() > 0 else 1)


class SliceViewer(QWidget):
    """Shows one Scan slice by slice. Signals carry slice indices and pixel coordinates."""

    sliceChanged = Signal(int)
    windowChanged = Signal(object)
    cursorMoved = Signal(float, float)
    """(row, col) in pixels under the mouse; (-1, -1) when the mouse left the image."""

    def __init__(self, title: str, synthetic: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.synthetic = synthetic
        self.scan: Scan | None = None
        self.index = 0
        self.window = Window(0.5, 1.0)
        self.auto_window = self.window  # what reset_window would set: the toolbar shows "Auto" for it
        self.value_range = 1.0
        self._ready: np.ndarray | None = None
        self._in_hu = False

        self.graphics = pg.GraphicsView(background="k")
        self.view_box = _SliceViewBox(self)
        self.graphics.setCentralItem(self.view_box)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image)
        pen = pg.mkPen((255, 210, 0, 150), width=1)
        self.h_line = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        self.v_line = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        for line in (self.h_line, self.v_line):
            line.setVisible(False)
            self.view_box.addItem(line, ignoreBounds=True)
        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        self.map_overlay = MapOverlay(self.view_box)

        self._build_overlays(synthetic)
        self._build_controls()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        header = QLabel(f"<b>{title}</b>")
        header.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(header)
        layout.addWidget(self.graphics, 1)
        layout.addLayout(self._controls)
        self._show_empty()

    # --- construction -------------------------------------------------------------------
    def _overlay_label(self, alignment: Qt.AlignmentFlag, style: str = _OVERLAY_STYLE) -> QLabel:
        return _Overlay(alignment, style)

    def _build_overlays(self, synthetic: bool) -> None:
        A = Qt.AlignmentFlag
        grid = QGridLayout(self.graphics)
        grid.setContentsMargins(6, 6, 6, 6)
        self.corner = {
            "top_left": self._overlay_label(A.AlignLeft | A.AlignTop),
            "top_right": self._overlay_label(A.AlignRight | A.AlignTop),
            "bottom_left": self._overlay_label(A.AlignLeft | A.AlignBottom),
            "bottom_right": self._overlay_label(A.AlignRight | A.AlignBottom),
        }
        self.edge = {
            "top": self._overlay_label(A.AlignHCenter | A.AlignTop),
            "bottom": self._overlay_label(A.AlignHCenter | A.AlignBottom),
            "left": self._overlay_label(A.AlignLeft | A.AlignVCenter),
            "right": self._overlay_label(A.AlignRight | A.AlignVCenter),
        }
        # Added with their alignment, labels take their text's size (nothing shows when empty).
        for label, row, col in (
            (self.corner["top_left"], 0, 0),
            (self.corner["top_right"], 0, 2),
            (self.corner["bottom_left"], 2, 0),
            (self.corner["bottom_right"], 2, 2),
            (self.edge["left"], 1, 0),
            (self.edge["right"], 1, 2),
            (self.edge["bottom"], 2, 1),
        ):
            grid.addWidget(label, row, col, label.alignment())
        top = QVBoxLayout()
        self.badge = self._overlay_label(A.AlignHCenter | A.AlignTop, _BADGE_STYLE)
        self.badge.setText(overlay_text.SYNTHETIC_BADGE)
        self.badge.setVisible(synthetic)
        top.addWidget(self.badge, 0, A.AlignHCenter)
        top.addWidget(self.edge["top"], 0, A.AlignHCenter)
        top.addStretch(1)
        grid.addLayout(top, 0, 1)
        grid.setRowStretch(1, 1)
        grid.setColumnStretch(1, 1)
        self.placeholder = self._overlay_label(A.AlignCenter)
        grid.addWidget(self.placeholder, 1, 1, A.AlignCenter)
        grid.addWidget(self.map_overlay.bar, 1, 2, A.AlignRight | A.AlignTop)

    def _build_controls(self) -> None:
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setMinimum(0)
        self.slider.valueChanged.connect(self.set_index)
        self.slice_label = QLabel("0 / 0")
        self.slice_label.setMinimumWidth(64)
        self.centre_box = self._spin_box("Window centre")
        self.width_box = self._spin_box("Window width")
        self.width_box.setMinimum(0.001)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(round(DEFAULT_OPACITY * 100))
        self.opacity_slider.setMaximumWidth(90)
        self.opacity_slider.setToolTip("Opacity of the uncertainty overlay")
        self.opacity_slider.valueChanged.connect(lambda value: self.map_overlay.set_opacity(value / 100.0))
        self.opacity_label = QLabel("Overlay")
        self._controls = QHBoxLayout()
        self._controls.addWidget(self.slider, 1)
        self._controls.addWidget(self.slice_label)
        self._controls.addWidget(self.opacity_label)
        self._controls.addWidget(self.opacity_slider)
        self._controls.addWidget(QLabel("C"))
        self._controls.addWidget(self.centre_box)
        self._controls.addWidget(QLabel("W"))
        self._controls.addWidget(self.width_box)

    def _spin_box(self, tip: str) -> QDoubleSpinBox:
        box = _WindowBox()
        box.setRange(-100_000.0, 100_000.0)
        box.setDecimals(1)
        box.setKeyboardTracking(False)
        box.setToolTip(tip)
        box.setMinimumWidth(80)
        box.editingFinished.connect(self._boxes_edited)
        return box

    # --- content ------------------------------------------------------------------------
    def set_scan(self, scan: Scan | None, keep_view: bool = False, keep_window: bool = False) -> None:
        """Show `scan` (None: empty). keep_view keeps slice, pan and zoom when the grid matches."""
        same_grid = self.scan is not None and scan is not None and self.scan.shape == scan.shape
        self.scan = scan
        self._ready = None
        if scan is None:
            self._show_empty()
            return
        self._in_hu = is_ct_in_hu(scan)
        self.auto_window = default_window(scan.voxels, self._in_hu, scan.display_window)
        if not keep_window:
            self.window = self.auto_window
        self.value_range = data_range(scan.voxels)
        self._configure(scan, keep_index=keep_view and same_grid, keep_range=keep_view and same_grid)
        units = "HU" if scan.modality is Modality.CT else "a.u."
        self.map_overlay.set_map(scan.maps.get(UNCERTAINTY), units, self._extent(), self.index)
        self._sync_map_controls()

    def begin_partial(self, template: Scan, modality: Modality) -> None:
        """An empty volume on `template`'s grid that fill_slice fills as results arrive.

        The current slice index is kept, so the pane shows the slice the user is looking at.
        """
        same_grid = self.scan is not None and self.scan.shape == template.shape
        self.scan = dataclasses.replace(
            template,
            voxels=np.zeros(template.voxels.shape, np.float32),  # calloc: no upfront page writes
            modality=modality,
            description=f"SYNTHETIC {modality.value} (converting…)",
            display_window=None,
            dicom_headers=None,
        )
        self._ready = np.zeros(template.n_slices, dtype=bool)
        self.map_overlay.set_map(None, "", None)
        self._sync_map_controls()
        self._in_hu = modality is Modality.CT
        self.window = self.auto_window = default_window(self.scan.voxels[:0], self._in_hu)
        self.value_range = 1.0
        self._configure(self.scan, keep_index=True, keep_range=same_grid)

    def fill_slice(self, index: int, data: np.ndarray) -> None:
        if self.scan is None or self._ready is None:
            return
        first = not self._ready.any()
        self.scan.voxels[index] = data
        self._ready[index] = True
        if first:
            if not self._in_hu:
                self.window = self.auto_window = default_window(data, False)
            self.value_range = data_range(data)
        if first or index == self.index:
            self._refresh()

    def is_ready(self, index: int) -> bool:
        return self._ready is None or bool(self._ready[index])

    def _configure(self, scan: Scan, keep_index: bool, keep_range: bool) -> None:
        count = scan.n_slices
        self.index = self.index if keep_index else count // 2
        self.index = step_index(self.index, 0, count)
        self.slider.blockSignals(True)
        self.slider.setMaximum(count - 1)
        self.slider.setValue(self.index)
        self.slider.blockSignals(False)
        self.slider.setEnabled(count > 1)
        labels = overlay_text.orientation_labels(scan.geometry.orientation) or {}
        for edge, label in self.edge.items():
            label.setText(labels.get(edge, ""))
        self._refresh()
        self.image.setRect(self._extent())
        if not keep_range:
            self.reset_view()

    def _show_empty(self) -> None:
        self.image.clear()
        self.image.setVisible(False)
        self.map_overlay.set_map(None, "", None)
        self._sync_map_controls()
        self.slider.setMaximum(0)
        self.slider.setEnabled(False)
        self.slice_label.setText("0 / 0")
        for label in (*self.corner.values(), *self.edge.values()):
            label.setText("")
        self.placeholder.setText("No synthetic image yet" if self.synthetic else "No image: File → Open, or drop a file here")
        self._sync_boxes()

    def _refresh(self) -> None:
        scan = self.scan
        if scan is None:
            return
        ready = self.is_ready(self.index)
        self.image.setImage(scan.voxels[self.index], autoLevels=False, levels=self.window.levels)
        self.image.setVisible(ready)
        self.map_overlay.show_slice(self.index)
        self.placeholder.setText("" if ready else "converting…")
        self.slice_label.setText(f"{self.index + 1} / {scan.n_slices}")
        self.corner["top_left"].setText(overlay_text.header_text(scan))
        self.corner["top_right"].setText(self.window.label())
        self.corner["bottom_left"].setText(overlay_text.slice_text(scan, self.index))
        self.corner["bottom_right"].setText(
            f"{scan.shape[2]}×{scan.shape[1]} px\n"
            f"{scan.geometry.pixel_spacing[1]:.3g}×{scan.geometry.pixel_spacing[0]:.3g} mm"
        )
        self._sync_boxes()

    # --- slices -------------------------------------------------------------------------
    @property
    def n_slices(self) -> int:
        return 0 if self.scan is None else self.scan.n_slices

    def set_index(self, index: int) -> None:
        index = step_index(index, 0, self.n_slices)
        if self.scan is None or index == self.index:
            return
        self.index = index
        self.slider.blockSignals(True)
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        self._refresh()
        self.sliceChanged.emit(index)

    def step(self, delta: int) -> None:
        self.set_index(step_index(self.index, delta, self.n_slices))

    # --- window/level -------------------------------------------------------------------
    def set_window(self, window: Window) -> None:
        if window == self.window:
            return
        self.window = window
        if self.scan is not None:
            self.image.setLevels(window.levels)
            self.corner["top_right"].setText(window.label())
        self._sync_boxes()
        self.windowChanged.emit(window)

    def reset_window(self) -> None:
        if self.scan is None:
            return
        suggested = self.scan.display_window
        voxels = self.scan.voxels if self._ready is None else self.scan.voxels[self._ready]
        self.auto_window = default_window(voxels, self._in_hu, suggested)
        self.set_window(self.auto_window)

    @property
    def shows_hu(self) -> bool:
        """True when the pane holds CT in Hounsfield units (where CT presets make sense)."""
        return self.scan is not None and self._in_hu

    def _sync_boxes(self) -> None:
        places = decimals_for(self.window.width)
        for box, value in ((self.centre_box, self.window.centre), (self.width_box, self.window.width)):
            box.blockSignals(True)
            box.setDecimals(places)
            box.setSingleStep(10.0 ** (1 - places))
            box.setValue(value)
            box.blockSignals(False)

    def _boxes_edited(self) -> None:
        """Apply typed values; leaving a box without typing (Tab, a click elsewhere) also ends
        editing, and must not replace the window by its rounded display."""
        shown = [(box.value(), min(max(round(value, box.decimals()), box.minimum()), box.maximum()))
                 for box, value in ((self.centre_box, self.window.centre), (self.width_box, self.window.width))]
        if all(abs(typed - rounded) < 0.5 * 10.0 ** -self.centre_box.decimals() for typed, rounded in shown):
            return
        self.set_window(Window(self.centre_box.value(), self.width_box.value()))

    # --- cursor, crosshair, overlays ----------------------------------------------------
    def _mouse_moved(self, scene_pos: QPointF) -> None:
        if self.scan is None or not self.view_box.sceneBoundingRect().contains(scene_pos):
            self.cursorMoved.emit(-1.0, -1.0)
            return
        point = self.view_box.mapSceneToView(scene_pos)
        row_mm, col_mm = self.scan.geometry.pixel_spacing
        self.cursorMoved.emit(point.y() / row_mm, point.x() / col_mm)

    def pixel_inside(self, row: float, col: float) -> bool:
        if self.scan is None:
            return False
        rows, cols = self.scan.voxels.shape[1:]
        return 0 <= row < rows and 0 <= col < cols

    def value_at(self, row: float, col: float) -> float | None:
        """The voxel value at pixel (row, col) of the current slice, None outside or not ready."""
        if not self.pixel_inside(row, col) or not self.is_ready(self.index):
            return None
        return float(self.scan.voxels[self.index, int(row), int(col)])

    def map_value_at(self, row: float, col: float) -> float | None:
        """The uncertainty at pixel (row, col) of the current slice, None where there is none."""
        if not self.pixel_inside(row, col) or not self.is_ready(self.index):
            return None
        return self.map_overlay.value_at(self.index, int(row), int(col))

    # --- uncertainty overlay ------------------------------------------------------------
    @property
    def has_map(self) -> bool:
        return self.map_overlay.available

    def set_map_shown(self, shown: bool) -> None:
        self.map_overlay.set_shown(shown)
        self._sync_map_controls()

    def _sync_map_controls(self) -> None:
        for widget in (self.opacity_label, self.opacity_slider):
            widget.setVisible(self.map_overlay.shown)

    def format_value(self, value: float | None) -> str:
        modality = self.scan.modality if self.scan is not None else Modality.MR
        return overlay_text.format_value(value, modality, self._in_hu)

    def set_crosshair(self, row: float, col: float) -> None:
        visible = self.pixel_inside(row, col)
        if visible:
            row_mm, col_mm = self.scan.geometry.pixel_spacing
            self.h_line.setPos((int(row) + 0.5) * row_mm)
            self.v_line.setPos((int(col) + 0.5) * col_mm)
        self.h_line.setVisible(visible)
        self.v_line.setVisible(visible)

    def set_overlays_visible(self, visible: bool) -> None:
        """Corner and edge text; the SYNTHETIC badge stays whatever this says."""
        for label in (*self.corner.values(), *self.edge.values()):
            label.setVisible(visible)

    def link_to(self, other: "SliceViewer | None") -> None:
        """Share pan and zoom with `other` (None unlinks)."""
        target = None if other is None else other.view_box
        self.view_box.setXLink(target)
        self.view_box.setYLink(target)

    def _extent(self) -> QRectF:
        """The image's rectangle in view coordinates (mm)."""
        row_mm, col_mm = self.scan.geometry.pixel_spacing
        rows, cols = self.scan.voxels.shape[1:]
        return QRectF(0, 0, cols * col_mm, rows * row_mm)

    def reset_view(self) -> None:
        """Fit the whole image (pan and zoom back to the start)."""
        if self.scan is not None:
            self.view_box.setRange(self._extent(), padding=0.0)


class _WindowBox(QDoubleSpinBox):
    """A centre or width box whose arrow, page, Home and End keys act on the box while it has the
    focus: otherwise the window's slice shortcuts take them first and the slice moves instead."""

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and event.key() in _BOX_KEYS:
            event.accept()
            return True
        return super().event(event)

    def stepBy(self, steps: int) -> None:  # noqa: N802
        """A step (arrow, page key, wheel) applies at once, as a typed value does on Enter."""
        super().stepBy(steps)
        self.editingFinished.emit()


_BOX_KEYS = frozenset({Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown,
                       Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Home, Qt.Key.Key_End})
