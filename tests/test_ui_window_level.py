"""Window/level arithmetic, overlay text and settings helpers: pure Python, no Qt."""

from __future__ import annotations

import numpy as np
import pytest

from aimedx_desktop.engine.scan import Modality
from aimedx_desktop.ui import overlay_text
from aimedx_desktop.ui.settings import pushed_recent
from aimedx_desktop.ui.window_level import (
    CT_PRESETS,
    MIN_WIDTH,
    Window,
    data_range,
    default_window,
    dragged,
    step_index,
)


def test_ct_presets_are_the_issue_values_on_keys_1_to_6():
    table = {p.name: (p.window.centre, p.window.width, p.key) for p in CT_PRESETS}
    assert table == {
        "Brain": (40, 80, "1"),
        "Subdural": (75, 200, "2"),
        "Stroke": (40, 40, "3"),
        "Bone": (400, 1800, "4"),
        "Soft tissue": (40, 400, "5"),
        "Lung": (-600, 1500, "6"),
    }
    assert CT_PRESETS[3].window.levels == (-500.0, 1300.0)


def test_window_levels_and_width_never_collapses():
    assert Window(40, 400).levels == (-160.0, 240.0)
    assert Window(0, -5).width == MIN_WIDTH


def test_default_window_brain_for_ct_in_hu_else_file_window_then_percentiles_then_full_range():
    values = np.arange(1000, dtype=np.float32)
    assert default_window(values, True) == Window(40, 80)
    assert default_window(values, True, (35.0, 90.0)) == Window(35.0, 90.0)
    assert default_window(values, False, (100.0, 50.0)) == Window(100.0, 50.0)
    low, high = default_window(values, False).levels
    assert low == pytest.approx(np.percentile(values, 0.5)) and high == pytest.approx(np.percentile(values, 99.5))
    spiky = np.zeros(1000, np.float32)
    spiky[-1] = 7.0  # percentiles are both 0: fall back to the full range
    assert default_window(spiky, False).levels == (0.0, 7.0)
    assert default_window(np.full(10, 3.0), False).centre == 3.0
    assert default_window(np.empty(0), False).width > 0


def test_drag_scale_is_the_auto_window_width_and_never_zero():
    values = np.arange(1000, dtype=np.float32)
    assert data_range(values) == pytest.approx(default_window(values, False).width)
    assert data_range(np.full(10, 3.0)) == 1.0
    assert data_range(np.empty(0)) == 1.0
    assert data_range(np.array([np.nan, 0.0, 10.0])) == pytest.approx(10.0 * 0.99)


def test_drag_right_widens_and_up_raises_centre_without_touching_data():
    data = np.array([1.0, 2.0])
    start = Window(40, 80)
    assert dragged(start, 50, 0, 1000.0) == Window(40, 180)
    assert dragged(start, 0, -50, 1000.0) == Window(140, 80)
    assert dragged(start, -10_000, 0, 1000.0).width == MIN_WIDTH
    assert data.tolist() == [1.0, 2.0]


def test_step_index_clamps():
    assert step_index(3, 1, 5) == 4
    assert step_index(4, 1, 5) == 4
    assert step_index(0, -1, 5) == 0
    assert step_index(2, 10, 0) == 0


def test_orientation_letters_for_axial_and_oblique():
    axial = overlay_text.orientation_labels((1, 0, 0, 0, 1, 0))
    assert axial == {"right": "L", "left": "R", "bottom": "P", "top": "A"}
    coronal = overlay_text.orientation_labels((1, 0, 0, 0, 0, -1))
    assert (coronal["top"], coronal["bottom"]) == ("S", "I")
    assert overlay_text.direction_letters((0.0, 0.8, 0.6)) == "PS"
    assert overlay_text.orientation_labels(None) is None


def test_value_formatting_says_hu_only_for_ct_in_hu():
    assert overlay_text.format_value(35.4, Modality.CT, True) == "35 HU"
    assert overlay_text.format_value(35.4, Modality.CT, False) == "35.4"
    assert overlay_text.format_value(None, Modality.MR, False) == "—"


def test_slice_text_has_position_along_the_normal(ct_scan):
    assert overlay_text.slice_text(ct_scan, 2).splitlines()[:2] == ["slice 3 / 5", "pos 5.0 mm"]


def test_recent_list_is_most_recent_first_unique_and_bounded():
    recent = [str(i) for i in range(10)]
    assert pushed_recent(recent, "5")[:3] == ["5", "0", "1"]
    assert len(pushed_recent(recent, "new")) == 10


def test_preset_for_names_a_window_only_when_it_is_a_preset():
    from aimedx_desktop.ui.window_level import preset_for

    assert preset_for(Window(400, 1800)) is CT_PRESETS[3]
    assert preset_for(Window(400, 1801)) is None
