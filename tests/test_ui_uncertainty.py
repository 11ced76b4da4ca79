"""The uncertainty overlay in the window: a key shows it over the synthetic image without touching
the image or its window, the status bar gives ± σ under the cursor, export can write the map."""

from __future__ import annotations

import numpy as np
import pytest
from test_ui_window import (  # noqa: F401 - fixtures
    convert,
    dialogs,
    open_in_memory,
    wait_idle,
    window,
    with_imported_model,
)

from aimedx_desktop.engine.scan import UNCERTAINTY
from aimedx_desktop.ui.jobs import ExportRequest


@pytest.fixture
def with_uncertain_model(window, dialogs, uncertain_bundle_dir):
    return with_imported_model(window, dialogs, uncertain_bundle_dir)


def test_the_overlay_shows_the_map_and_leaves_the_image_alone(qtbot, with_uncertain_model, monkeypatch, ct_scan):
    win = with_uncertain_model
    assert not win.uncertainty_action.isEnabled()
    open_in_memory(qtbot, win, monkeypatch, ct_scan)
    convert(qtbot, win)
    viewer = win.synthetic_viewer
    assert win.uncertainty_action.isEnabled() and viewer.has_map
    voxels, window_before = viewer.scan.voxels.copy(), viewer.window
    overlay = viewer.map_overlay
    assert not overlay.item.isVisible() and not viewer.opacity_slider.isVisible()

    qtbot.keyClick(win, "U")
    assert win.uncertainty_action.isChecked() and overlay.item.isVisible() and overlay.bar.isVisible()
    assert overlay.item.sceneBoundingRect() == viewer.image.sceneBoundingRect()  # lies exactly on the image
    np.testing.assert_array_equal(overlay.item.image, win.synthetic_scan.maps[UNCERTAINTY][viewer.index])
    assert overlay.levels[0] == 0.0 and overlay.levels[1] > 0
    viewer.opacity_slider.setValue(80)
    assert overlay.item.opacity() == pytest.approx(0.8)
    viewer.step(1)
    np.testing.assert_array_equal(overlay.item.image, win.synthetic_scan.maps[UNCERTAINTY][viewer.index])
    np.testing.assert_array_equal(viewer.scan.voxels, voxels)
    assert viewer.window == window_before and viewer.image.levels[0] == window_before.levels[0]

    win._cursor_moved(viewer, 10.0, 12.0)
    sigma = win.synthetic_scan.maps[UNCERTAINTY][viewer.index, 10, 12]
    assert f"± {sigma:.0f} a.u." in win.value_label.text()

    qtbot.keyClick(win, "U")
    assert not overlay.item.isVisible() and not overlay.bar.isVisible()


def test_a_model_without_the_map_offers_no_overlay(qtbot, window, dialogs, tiny_bundle_dir, monkeypatch, ct_scan):
    with_imported_model(window, dialogs, tiny_bundle_dir)
    open_in_memory(qtbot, window, monkeypatch, ct_scan)
    convert(qtbot, window)
    assert not window.uncertainty_action.isEnabled() and not window.synthetic_viewer.has_map
    window._cursor_moved(window.synthetic_viewer, 10.0, 12.0)
    assert "±" not in window.value_label.text()


def test_export_writes_the_map_when_asked(qtbot, with_uncertain_model, monkeypatch, ct_scan, dialogs, tmp_path):
    win = with_uncertain_model
    open_in_memory(qtbot, win, monkeypatch, ct_scan)
    convert(qtbot, win)
    dialogs.export_request = ExportRequest("dicom", tmp_path / "out", uncertainty=True)
    assert win.export("dicom")
    wait_idle(qtbot, win)
    assert dialogs.export_offered_uncertainty and not dialogs.errors
    assert len(list((tmp_path / "out").glob("synthetic_mr_uncertainty_*.dcm"))) == ct_scan.n_slices
    assert len(list((tmp_path / "out").glob("synthetic_mr_0*.dcm"))) == ct_scan.n_slices


def test_export_dialog_offers_the_map_only_when_there_is_one(qtbot, tmp_path):
    from aimedx_desktop.ui.dialogs import _ExportDialog

    offered = _ExportDialog("dicom", (40.0, 80.0), str(tmp_path), None, has_uncertainty=True)
    qtbot.addWidget(offered)
    assert not offered.uncertainty.isHidden() and offered.request().uncertainty
    offered.uncertainty.setChecked(False)
    assert not offered.request().uncertainty
    plain = _ExportDialog("png", (40.0, 80.0), str(tmp_path), None)
    qtbot.addWidget(plain)
    assert plain.uncertainty.isHidden() and not plain.request().uncertainty


def test_opening_another_scan_lets_the_old_map_go(qtbot, with_uncertain_model, monkeypatch, ct_scan):
    win = with_uncertain_model
    open_in_memory(qtbot, win, monkeypatch, ct_scan)
    convert(qtbot, win)
    assert win.synthetic_viewer.map_overlay.item.image is not None
    open_in_memory(qtbot, win, monkeypatch, ct_scan, name="other.dcm")
    assert win.synthetic_viewer.map_overlay.item.image is None  # no view of the old map held


def test_the_colour_scale_of_a_large_map_is_the_percentile_of_a_sample():
    from aimedx_desktop.ui.map_overlay import TOP_PERCENTILE, _top_level

    values = np.random.default_rng(5).gamma(2.0, 10.0, (40, 256, 256)).astype(np.float32)
    values[:, :40] = 0.0  # where the map does not speak
    assert _top_level(values) == pytest.approx(np.percentile(values[values > 0], TOP_PERCENTILE), rel=0.02)
    assert _top_level(np.zeros((2, 4, 4), np.float32)) == 1.0
