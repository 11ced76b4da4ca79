"""PNG export: what you see in 8 bits, the full range in 16, safe names, labelled, all-or-nothing."""

from __future__ import annotations

import dataclasses
import errno

import numpy as np
import pytest
from PIL import Image

from aimedx_desktop.engine.intensity import default_window, is_display_windowed_ct
from aimedx_desktop.engine.io import ScanReadError, png_writer, read_scan
from aimedx_desktop.engine.io.export import ExportError, export_scan
from aimedx_desktop.engine.io.output import existing_targets, planned_paths
from aimedx_desktop.engine.io.raster import CALIBRATED
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


def assert_read_back_as_the_synthetic_ct(scan, synthetic_ct):
    assert scan.modality is Modality.CT and not any("modality not stated" in w for w in scan.warnings)
    assert CALIBRATED in scan.provenance.notes and scan.provenance.synthetic
    assert (scan.provenance.model_name, scan.provenance.model_version) == ("tiny-test", "0.0.1")
    assert scan.provenance.direction == "mr2ct"
    assert not is_display_windowed_ct(scan)  # HU already: must not be mapped back from gray levels


def test_16_bit_export_reopens_in_physical_units(tmp_path, synthetic_ct):
    written = export_scan(synthetic_ct, tmp_path, bits=16)
    with Image.open(written[0]) as image:
        slope = float(image.text["RescaleSlope"])
    single = read_scan(written[0])
    assert_read_back_as_the_synthetic_ct(single, synthetic_ct)
    assert np.abs(single.voxels[0] - synthetic_ct.voxels[0]).max() <= slope / 2 + 1e-3
    assert single.display_window is None and single.warnings == ()
    folder = read_scan(tmp_path)
    assert np.abs(folder.voxels - synthetic_ct.voxels).max() <= slope / 2 + 1e-3


def test_8_bit_export_reopens_through_its_window_with_a_clipping_warning(tmp_path, synthetic_ct):
    centre, width = 40.0, 400.0
    written = export_scan(synthetic_ct, tmp_path, window=(centre, width))
    scan = read_scan(written[0])
    assert_read_back_as_the_synthetic_ct(scan, synthetic_ct)
    assert scan.display_window == (centre, width)
    (warning,) = scan.warnings
    assert "window (centre 40, width 400)" in warning and "clipped" in warning
    lo, hi = centre - width / 2, centre + width / 2
    hu = synthetic_ct.voxels[0]
    inside = (hu >= lo) & (hu <= hi)
    assert inside.any() and np.abs(scan.voxels[0][inside] - hu[inside]).max() <= width / 255 / 2 + 1e-3
    np.testing.assert_allclose(scan.voxels[0][~inside], np.clip(hu[~inside], lo, hi), atol=1e-3)
    brain = read_scan(export_scan(synthetic_ct, tmp_path / "brain")[0])  # 40/80: HU 0..80, inside 0..255
    assert not is_display_windowed_ct(brain) and brain.voxels.max() == pytest.approx(80.0)


def test_caller_modality_wins_and_other_pngs_stay_gray_levels(tmp_path, synthetic_ct):
    written = export_scan(synthetic_ct, tmp_path, bits=16)
    assert read_scan(written[0], modality="mr").modality is Modality.MR
    plain = tmp_path / "plain" / "slice.png"
    plain.parent.mkdir()
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(plain)
    scan = read_scan(plain, modality="ct")
    assert scan.provenance.notes == () and not scan.provenance.synthetic and float(scan.voxels.max()) == 7.0
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    written[0].rename(mixed / "a.png")
    Image.fromarray(np.zeros((48, 40), np.uint8)).save(mixed / "b.png")
    with pytest.raises(ScanReadError, match="^b.png: AI-MEDX exports .* cannot form one stack"):
        read_scan(mixed)


def test_existing_targets_lists_the_files_an_export_would_replace(tmp_path, synthetic_ct):
    assert existing_targets(synthetic_ct, tmp_path, "png") == []
    written = export_scan(synthetic_ct, tmp_path)
    written[1].unlink()
    written[3].unlink()
    assert existing_targets(synthetic_ct, tmp_path, "png") == [written[0], written[2], written[4]]
    assert existing_targets(synthetic_ct, tmp_path, "dicom") == []
