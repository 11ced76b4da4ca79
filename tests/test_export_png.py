"""PNG export: what you see in 8 bits, the full range in 16, safe names, labelled, all-or-nothing."""

from __future__ import annotations

import dataclasses
import errno

import numpy as np
import pytest
from PIL import Image

from aimedx_desktop.engine.intensity import default_window
from aimedx_desktop.engine.io import png_writer
from aimedx_desktop.engine.io.export import ExportError, export_scan, planned_paths
from aimedx_desktop.engine.scan import Modality, Provenance


@pytest.fixture
def synthetic_ct(ct_scan):
    provenance = Provenance(("in.nii.gz",), "nifti", True, "tiny-test", "0.0.1", "mr2ct")
    return dataclasses.replace(ct_scan, provenance=provenance, description="../Doe^Jane/evil:name")


def test_8_bit_is_the_window_as_displayed_with_labels(tmp_path, synthetic_ct):
    calls = []
    written = export_scan(synthetic_ct, tmp_path, window=(40.0, 400.0), progress=lambda *a: calls.append(a))
    assert written == planned_paths(synthetic_ct, tmp_path, "png")
    assert [p.name for p in written] == [f"synthetic_ct_{i:04d}.png" for i in range(1, 6)]
    assert calls == [(i, 5) for i in range(1, 6)]
    with Image.open(written[0]) as image:
        assert image.mode == "L"
        gray = np.asarray(image)
        text = dict(image.text)
    hu = synthetic_ct.voxels[0]
    assert gray[hu == -1000.0].max() == 0 and gray[hu == 1200.0].min() == 255
    assert gray[hu == 35.0][0] == round((35 - (40 - 400 / 2)) / 400 * 255)  # 124
    assert text["Model"] == "tiny-test 0.0.1" and text["Direction"] == "mr2ct"
    assert "NOT FOR DIAGNOSIS" in text["Disclaimer"] and text["Window"] == "centre 40 width 400"


def test_16_bit_keeps_the_full_range_recoverably(tmp_path, synthetic_ct):
    written = export_scan(synthetic_ct, tmp_path, bits=16)
    for index, path in enumerate(written):
        with Image.open(path) as image:
            assert image.mode.startswith("I")
            gray = np.asarray(image).astype(np.float64)
            slope, intercept = float(image.text["RescaleSlope"]), float(image.text["RescaleIntercept"])
        assert gray.max() <= 65535
        assert np.abs(gray * slope + intercept - synthetic_ct.voxels[index]).max() <= slope / 2 + 1e-6
    assert slope < 0.05  # -1000..1204 HU over 65536 levels


def test_defaults_are_the_brain_window_for_ct_and_percentiles_for_mr(synthetic_ct):
    assert default_window(synthetic_ct) == (40.0, 80.0)
    geometry = dataclasses.replace(synthetic_ct.geometry, positions=None)
    mr = dataclasses.replace(synthetic_ct, modality=Modality.MR, voxels=np.arange(1001.0).reshape(1, 7, 143), geometry=geometry)
    centre, width = default_window(mr)
    assert centre == pytest.approx(500.0) and width == pytest.approx(990.0)


def test_names_never_carry_patient_text(tmp_path, synthetic_ct):
    names = [p.name for p in planned_paths(synthetic_ct, tmp_path, "png")]
    assert all(name.startswith("synthetic_ct_") and "/" not in name and "Doe" not in name for name in names)
    unplaced = dataclasses.replace(synthetic_ct.geometry, positions=None)
    many = dataclasses.replace(synthetic_ct, voxels=np.zeros((12345, 1, 1)), geometry=unplaced)
    assert planned_paths(many, tmp_path, "png")[0].name == "synthetic_ct_00001.png"


def test_disk_full_while_writing_leaves_nothing_behind(tmp_path, synthetic_ct, monkeypatch):
    real_write = png_writer.PngSeriesWriter.write

    def write(self, index, path):
        if index == 3:
            path.write_bytes(b"half a file")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, index, path)

    monkeypatch.setattr(png_writer.PngSeriesWriter, "write", write)
    with pytest.raises(ExportError, match=r"synthetic_ct_0004\.png: the disk is full"):
        export_scan(synthetic_ct, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [({"fmt": "tiff"}, "unknown export format"), ({"bits": 12}, "8 or 16"), ({"window": (40.0, 0.0)}, "width must be positive")],
)
def test_bad_options_are_refused_before_anything_is_written(tmp_path, synthetic_ct, options, message):
    with pytest.raises(ExportError, match=message):
        export_scan(synthetic_ct, tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()
