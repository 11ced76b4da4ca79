"""DICOM reading: tiny series built here, pydicom's bundled test files, dcmtk-compressed files,
and the real tilted GE head CT bundled in resources/samples."""

from __future__ import annotations

import pickle
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ComprehensiveSRStorage,
    GrayscaleSoftcopyPresentationStateStorage,
    KeyObjectSelectionDocumentStorage,
    MPEG2MPML,
    RTStructureSetStorage,
    SegmentationStorage,
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    MRImageStorage,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from aimedx_desktop.engine.io import ScanReadError, list_series, read_scan
from aimedx_desktop.engine.io import dicom as dicom_module
from aimedx_desktop.engine.scan import Modality

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def ramp(value: int, rows: int = 6, cols: int = 5) -> np.ndarray:
    """A small int16 image whose pixels tell which slice it came from."""
    return (np.arange(rows * cols, dtype=np.int16).reshape(rows, cols) + 100 * value).astype(np.int16)


def make_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    series_uid: str = "1.2.3.4",
    instance: int | None = 1,
    position: tuple[float, float, float] | None = (0.0, 0.0, 0.0),
    orientation: tuple[float, ...] | None = AXIAL,
    modality: str = "CT",
    slope: float = 1.0,
    intercept: float = -1024.0,
    photometric: str = "MONOCHROME2",
    **attributes: object,
) -> Dataset:
    """Write a minimal single-frame image (Explicit VR Little Endian) and return its dataset."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SOPClassUID = {"CT": CTImageStorage, "MR": MRImageStorage}.get(modality, SecondaryCaptureImageStorage)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.PatientName = "Test^Patient"
    ds.SeriesDescription = f"series {series_uid}"
    ds.PixelSpacing = [0.5, 0.75]
    ds.SliceThickness = 2.0
    if instance is not None:
        ds.InstanceNumber = instance
    if position is not None:
        ds.ImagePositionPatient = list(position)
    if orientation is not None:
        ds.ImageOrientationPatient = list(orientation)
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.set_pixel_data(pixels, photometric, 16, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)
    return ds


def make_series(
    folder: Path, n: int = 4, spacing: float = 2.5, series_uid: str = "1.2.3.4", shape: tuple[int, int] = (6, 5)
) -> Path:
    """`n` axial slices with positions z = i * spacing, written under shuffled file names and
    shuffled instance numbers, so that only the positions give the right order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(n)
    names, instances = rng.sample(range(100, 200), n), rng.sample(range(1, n + 1), n)
    for i in range(n):
        make_dicom(
            folder / f"im{names[i]}",
            ramp(i, *shape),
            series_uid=series_uid,
            instance=instances[i],
            position=(-10.0, -20.0, i * spacing),
        )
    return folder


def bundled(name: str) -> Path:
    """A file bundled with pydicom (never downloaded)."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom does not bundle {name} in this install")
    return Path(path)


# -- tiny series built here ----------------------------------------------------------------


def test_series_sorted_by_position_with_hu_and_geometry(tmp_path):
    scan = read_scan(make_series(tmp_path / "s", n=4))
    assert scan.modality is Modality.CT and scan.shape == (4, 6, 5)
    for i in range(4):  # rescale applied: stored ramp + 100 i, intercept -1024
        np.testing.assert_array_equal(scan.voxels[i], ramp(i) - 1024.0)
    geometry = scan.geometry
    assert geometry.pixel_spacing == (0.5, 0.75) and geometry.orientation == AXIAL
    assert geometry.slice_thickness == 2.0
    np.testing.assert_allclose(geometry.positions[:, 2], [0.0, 2.5, 5.0, 7.5])
    assert scan.warnings == ()
    assert scan.provenance.source_format == "dicom" and len(scan.provenance.source_paths) == 4
    assert len(scan.dicom_headers) == 4 and not any("PixelData" in h for h in scan.dicom_headers)
    assert scan.description == "Test^Patient / series 1.2.3.4"


def test_sorting_follows_the_slice_normal_not_z(tmp_path):
    """Coronal slices: the normal is (0, 1, 0), so y decides the order."""
    folder = tmp_path / "coronal"
    folder.mkdir()
    for i, y in enumerate([30.0, 10.0, 20.0]):
        make_dicom(folder / f"{i}.dcm", ramp(i), instance=i + 1, position=(0.0, y, 50.0 - y), orientation=CORONAL)
    scan = read_scan(folder)
    normal = scan.geometry.slice_normal
    np.testing.assert_allclose(normal, [0.0, 1.0, 0.0])
    assert list(scan.geometry.positions @ normal) == [10.0, 20.0, 30.0]
    assert [float(v[0, 0]) for v in scan.voxels] == [100 - 1024.0, 200 - 1024.0, -1024.0]


def test_missing_positions_fall_back_to_instance_number(tmp_path):
    folder = tmp_path / "nopos"
    folder.mkdir()
    for name, instance in (("a", 3), ("b", 1), ("c", 2)):
        make_dicom(folder / name, ramp(instance), instance=instance, position=None)
    scan = read_scan(folder)
    assert [float(v[0, 0]) for v in scan.voxels] == [100 * i - 1024.0 for i in (1, 2, 3)]
    assert scan.geometry.positions is None
    assert any("InstanceNumber" in w for w in scan.warnings)


def test_uneven_spacing_and_gantry_tilt_are_warned(tmp_path):
    folder = tmp_path / "uneven"
    folder.mkdir()
    for i, z in enumerate([0.0, 2.0, 4.0, 10.0]):
        make_dicom(folder / f"{i}", ramp(i), instance=i + 1, position=(0.0, 0.0, z), GantryDetectorTilt=12.0)
    warnings = " | ".join(read_scan(folder).warnings)
    assert "uneven slice spacing: 2.00 to 6.00 mm" in warnings
    assert "gantry tilt" in warnings and "12" in warnings


def test_sheared_positions_are_warned_as_tilt_without_the_tag(tmp_path):
    folder = tmp_path / "sheared"
    folder.mkdir()
    for i in range(3):  # each slice moves 1 mm in y for 2 mm in z: about 26.6 degrees off the normal
        make_dicom(folder / f"{i}", ramp(i), instance=i + 1, position=(0.0, 1.0 * i, 2.0 * i))
    (warning,) = read_scan(folder).warnings
    assert "gantry tilt" in warning and "26.6°" in warning


def test_two_series_are_listed_and_the_largest_is_read(tmp_path):
    folder = tmp_path / "two"
    make_series(folder / "a", n=2, series_uid="1.2.3.100")
    make_series(folder / "b" / "deeper", n=3, series_uid="1.2.3.200")
    (folder / "README.txt").write_text("not an image")
    series = {info.uid: info for info in list_series(folder)}
    assert set(series) == {"1.2.3.100", "1.2.3.200"}
    big = series["1.2.3.200"]
    assert (big.n_instances, big.n_slices, big.modality) == (3, 3, "CT")
    assert big.description == "Test^Patient / series 1.2.3.200" and big.path.parent.name == "deeper"
    assert read_scan(folder).n_slices == 3
    chosen = read_scan(folder, series_uid="1.2.3.100")
    assert chosen.n_slices == 2 and any("2 series" in w for w in chosen.warnings)
    with pytest.raises(ScanReadError, match="no series 9.9"):
        read_scan(folder, series_uid="9.9")


def test_list_series_of_a_folder_without_dicom_is_empty(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert list_series(tmp_path) == []


def test_mixed_orientations_are_refused(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    make_dicom(folder / "ax.dcm", ramp(0), instance=1, orientation=AXIAL)
    make_dicom(folder / "cor.dcm", ramp(1), instance=2, orientation=CORONAL)
    with pytest.raises(ScanReadError, match=r"^mixed: slices have different orientations \(ax.dcm and cor.dcm\)"):
        read_scan(folder)


def test_mixed_sizes_are_refused(tmp_path):
    folder = tmp_path / "sizes"
    folder.mkdir()
    make_dicom(folder / "small.dcm", ramp(0), instance=1, position=(0, 0, 0))
    make_dicom(folder / "large.dcm", ramp(0, rows=8), instance=2, position=(0, 0, 1))
    with pytest.raises(ScanReadError, match="images differ in size .*large.dcm is 5x8"):
        read_scan(folder)


def test_modality_rules(tmp_path):
    ot = tmp_path / "ot.dcm"
    make_dicom(ot, ramp(0), modality="OT")
    with pytest.raises(ScanReadError, match="ot.dcm: DICOM Modality is OT, neither CT nor MR: pass the modality"):
        read_scan(ot)
    assert read_scan(ot, modality="ct").modality is Modality.CT
    ct = tmp_path / "ct.dcm"
    make_dicom(ct, ramp(0), modality="CT")
    overridden = read_scan(ct, modality=Modality.MR)
    assert overridden.modality is Modality.MR and "overrides the DICOM Modality CT" in overridden.warnings[0]
    with pytest.raises(ValueError, match="unknown modality"):
        read_scan(ct, modality="pet")


def test_window_first_value_and_an_mr_in_monochrome1_inverted_after_rescale(tmp_path):
    path = tmp_path / "m1.dcm"
    stored = ramp(1)
    make_dicom(
        path,
        stored,
        modality="MR",
        slope=2.0,
        intercept=-100.0,
        photometric="MONOCHROME1",
        WindowCenter=[40, 50],
        WindowWidth=[400, 500],
    )
    scan = read_scan(path)
    rescaled = stored * 2.0 - 100.0
    np.testing.assert_array_equal(scan.voxels[0], rescaled.max() + rescaled.min() - rescaled)
    assert scan.display_window == (rescaled.max() + rescaled.min() - 40.0, 400.0)  # the same tissue, now inverted
    assert any("MONOCHROME1" in w for w in scan.warnings)


def test_a_monochrome1_ct_keeps_its_hounsfield_units(tmp_path):
    """MONOCHROME1 is a display instruction; inverting HU would turn air into bone."""
    path = tmp_path / "m1.dcm"
    stored = ramp(1)
    make_dicom(path, stored, modality="CT", slope=1.0, intercept=-1024.0, photometric="MONOCHROME1",
               WindowCenter=40, WindowWidth=400)
    scan = read_scan(path)
    np.testing.assert_array_equal(scan.voxels[0], stored - 1024.0)
    assert scan.display_window == (40.0, 400.0)
    assert any("MONOCHROME1" in w and "HU kept" in w for w in scan.warnings)


def test_enhanced_multiframe_uses_functional_groups(tmp_path):
    """Three frames stored out of order, each with its own position and rescale."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = EnhancedMRImageStorage, generate_uid()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = (
        ds.SOPClassUID,
        ds.SOPInstanceUID,
    )
    ds.Modality, ds.SeriesInstanceUID, ds.NumberOfFrames = "MR", "1.2.9", 3
    shared = Dataset()
    shared.PixelMeasuresSequence = [Dataset()]
    shared.PixelMeasuresSequence[0].PixelSpacing = [0.8, 0.9]
    shared.PixelMeasuresSequence[0].SliceThickness = 3.0
    shared.PlaneOrientationSequence = [Dataset()]
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = list(AXIAL)
    shared.FrameVOILUTSequence = [Dataset()]
    shared.FrameVOILUTSequence[0].WindowCenter, shared.FrameVOILUTSequence[0].WindowWidth = 300, 600
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.PerFrameFunctionalGroupsSequence = []
    for z, slope in ((6.0, 1.0), (0.0, 2.0), (3.0, 3.0)):
        item = Dataset()
        item.PlanePositionSequence = [Dataset()]
        item.PlanePositionSequence[0].ImagePositionPatient = [0.0, 0.0, z]
        item.PixelValueTransformationSequence = [Dataset()]
        item.PixelValueTransformationSequence[0].RescaleSlope = slope
        item.PixelValueTransformationSequence[0].RescaleIntercept = 0
        ds.PerFrameFunctionalGroupsSequence.append(item)
    ds.set_pixel_data(np.stack([np.full((4, 4), 10 * (i + 1), np.uint16) for i in range(3)]), "MONOCHROME2", 16)
    path = tmp_path / "enhanced.dcm"
    ds.save_as(path, enforce_file_format=True)
    scan = read_scan(path)
    assert scan.shape == (3, 4, 4)
    np.testing.assert_allclose(scan.geometry.positions[:, 2], [0.0, 3.0, 6.0])
    assert [float(v[0, 0]) for v in scan.voxels] == [20.0 * 2, 30.0 * 3, 10.0 * 1]
    assert scan.geometry.pixel_spacing == (0.8, 0.9) and scan.geometry.slice_thickness == 3.0
    assert scan.display_window == (300.0, 600.0)
    assert len(scan.dicom_headers) == 3 and scan.dicom_headers[0] is scan.dicom_headers[2]
    assert "PixelData" not in scan.dicom_headers[0]


def test_dicom_without_preamble_and_extension(tmp_path):
    source = make_dicom(tmp_path / "with_meta.dcm", ramp(2), modality="MR")
    del source.file_meta
    folder = tmp_path / "bare"
    folder.mkdir()
    pydicom.dcmwrite(folder / "IM0001", source, implicit_vr=True, little_endian=True)
    assert (folder / "IM0001").read_bytes()[128:132] != b"DICM"
    np.testing.assert_array_equal(read_scan(folder / "IM0001").voxels[0], ramp(2) - 1024.0)
    assert read_scan(folder).n_slices == 1


def test_compressed_series_match_the_uncompressed(tmp_path):
    """RLE and JPEG 2000 lossless, encoded by pydicom itself, decode to the same HU."""
    plain = read_scan(make_series(tmp_path / "plain", n=3, shape=(32, 32)))  # openjpeg needs 32x32
    for syntax in (RLELossless, JPEG2000Lossless):
        folder = tmp_path / syntax.name.split()[0]
        shutil.copytree(tmp_path / "plain", folder)
        for path in folder.iterdir():
            ds = pydicom.dcmread(path)
            ds.compress(syntax)
            ds.save_as(path, enforce_file_format=True)
        np.testing.assert_array_equal(read_scan(folder).voxels, plain.voxels)


# -- errors ----------------------------------------------------------------------------------


def test_non_dicom_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "scan.dcm"
    path.write_text("just some text\nover two lines")
    with pytest.raises(ScanReadError) as caught:
        read_scan(path)
    assert str(caught.value) == "scan.dcm: not a DICOM file (no DICM preamble)"
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == str(caught.value) and copy.path == path


def test_damaged_files(tmp_path):
    good = tmp_path / "good.dcm"
    make_dicom(good, ramp(0))
    data = good.read_bytes()
    truncated_header = tmp_path / "cut_header.dcm"
    truncated_header.write_bytes(data[:500])
    truncated_pixels = tmp_path / "cut_pixels.dcm"
    truncated_pixels.write_bytes(data[:-10])
    cases = ((truncated_header, "damaged DICOM file"), (truncated_pixels, "cannot decode the pixel data"))
    for path, reason in cases:
        with pytest.raises(ScanReadError) as caught:
            read_scan(path)
        assert str(caught.value).startswith(f"{path.name}: {reason}") and "\n" not in str(caught.value)
    with pytest.raises(ScanReadError, match="^MR_truncated.dcm: cannot decode the pixel data"):
        read_scan(bundled("MR_truncated.dcm"))


def test_damaged_files_in_a_series_folder_are_skipped_with_a_warning(tmp_path):
    folder = make_series(tmp_path / "s", n=4)
    first, second, *_ = sorted(folder.iterdir())
    first.write_bytes(first.read_bytes()[:500])  # header cut: no rows, columns or pixels
    second.write_bytes(second.read_bytes()[:-10])  # pixel data cut
    scan = read_scan(folder)
    assert scan.n_slices == 2
    skipped = [w for w in scan.warnings if w.startswith("skipped a file")]
    assert len(skipped) == 2 and first.name in skipped[0] + skipped[1] and second.name in skipped[0] + skipped[1]


def test_series_whose_files_all_fail_raises_the_first_error(tmp_path):
    folder = make_series(tmp_path / "s", n=2)
    for path in folder.iterdir():
        path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ScanReadError, match="^im1.*: cannot decode the pixel data"):
        read_scan(folder)


def test_file_without_image(tmp_path):
    with pytest.raises(ScanReadError, match=r"^rtplan.dcm: a DICOM RT Plan object \(Modality RTPLAN\), not an image"):
        read_scan(bundled("rtplan.dcm"))
    private = pydicom.dcmread(bundled("rtplan.dcm"))
    private.SOPClassUID = private.file_meta.MediaStorageSOPClassUID = "1.2.826.0.1.3680043.99.1"
    private.save_as(tmp_path / "private.dcm")
    with pytest.raises(ScanReadError, match=r"^private.dcm: DICOM file holds no image \(1.2.826.0.1.3680043.99.1\)"):
        read_scan(tmp_path / "private.dcm")


def test_unknown_and_missing_decoders_name_the_transfer_syntax(tmp_path, monkeypatch):
    path = tmp_path / "video.dcm"
    make_dicom(path, ramp(0))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([ds.PixelData])
    ds.save_as(path)
    with pytest.raises(ScanReadError, match="video.dcm: no decoder exists for transfer syntax MPEG2 Main Profile"):
        read_scan(path)

    class Missing:
        is_available = False

    monkeypatch.setattr(dicom_module, "get_decoder", lambda uid: Missing())
    with pytest.raises(
        ScanReadError, match=r"no decoder installed for transfer syntax JPEG 2000 .*\(1.2.840.10008.1.2.4.91\)"
    ):
        read_scan(bundled("693_J2KI.dcm"))


# -- pydicom's bundled files ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_implicit.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
    ],
)
def test_encodings_of_mr_small_match_the_reference(name):
    reference = read_scan(bundled("MR_small.dcm"))
    scan = read_scan(bundled(name))
    assert scan.modality is Modality.MR and scan.shape == (1, 64, 64)
    np.testing.assert_array_equal(scan.voxels, reference.voxels)
    assert scan.display_window == reference.display_window == (600.0, 1600.0)


def test_ct_small_in_hu():
    scan = read_scan(bundled("CT_small.dcm"))
    raw = pydicom.dcmread(bundled("CT_small.dcm")).pixel_array
    assert scan.modality is Modality.CT
    np.testing.assert_array_equal(scan.voxels[0], raw.astype(np.float32) - 1024.0)
    assert scan.geometry.positions.shape == (1, 3) and scan.geometry.orientation is not None


def test_jpeg_2000_ct_with_rescale():
    scan = read_scan(bundled("693_J2KI.dcm"))
    raw = pydicom.dcmread(bundled("693_J2KI.dcm")).pixel_array
    np.testing.assert_array_equal(scan.voxels[0], raw.astype(np.float32) - 1024.0)


def test_jpeg_lossless_and_baseline_colour_match_rle_reference():
    reference = read_scan(bundled("SC_rgb_rle.dcm"), modality="mr")
    assert reference.warnings == ("colour image converted to gray (BT.601 luma)",)
    lossless = read_scan(bundled("SC_rgb_jpeg_gdcm.dcm"), modality="mr")  # JPEG Lossless SV1
    np.testing.assert_array_equal(lossless.voxels, reference.voxels)
    baseline = read_scan(bundled("SC_rgb_jpeg_dcmtk.dcm"), modality="mr")  # JPEG baseline, YBR
    assert np.abs(baseline.voxels - reference.voxels).mean() < 2.0


def test_jpeg_ls_near_lossless_16bit():
    scan = read_scan(bundled("JPEGLSNearLossless_16.dcm"), modality="mr")
    assert scan.shape == (1, 50, 10) and scan.voxels.max() > 0


def test_plain_multiframe_is_placed_by_grid_frame_offsets():
    scan = read_scan(bundled("rtdose.dcm"), modality="ct")
    rle = read_scan(bundled("rtdose_rle.dcm"), modality="ct")
    assert scan.shape == (15, 10, 10) and len(scan.dicom_headers) == 15
    np.testing.assert_array_equal(rle.voxels, scan.voxels)
    header = pydicom.dcmread(bundled("rtdose.dcm"), stop_before_pixels=True)
    along_normal = scan.geometry.positions @ scan.geometry.slice_normal
    np.testing.assert_allclose(np.diff(along_normal), np.diff(sorted(map(float, header.GridFrameOffsetVector))))


def test_colour_multiframe_jpeg_baseline():
    scan = read_scan(bundled("examples_ybr_color.dcm"), modality="mr")
    assert scan.shape == (30, 240, 320)
    assert any("colour" in w for w in scan.warnings) and any("InstanceNumber" in w for w in scan.warnings)


def test_two_echoes_of_one_series_are_not_interleaved_and_copies_are_left_out(tmp_path):
    """A dual-echo PD/T2 series: 4 positions × 2 echoes under one Series Instance UID."""
    folder = tmp_path / "pd_t2"
    folder.mkdir()
    for echo in (1, 2):
        for i in range(4):
            make_dicom(folder / f"e{echo}_{i}.dcm", ramp(10 * echo + i), modality="MR", instance=4 * (echo - 1) + i + 1,
                       position=(0.0, 0.0, 2.5 * i), intercept=0.0, EchoNumbers=echo)
    shutil.copy(folder / "e1_2.dcm", folder / "e1_2 (copy).dcm")
    scan = read_scan(folder)
    assert scan.n_slices == 4
    np.testing.assert_array_equal(scan.voxels[:, 0, 0], [100 * (10 + i) for i in range(4)])  # echo 1, in position order
    assert any("left out 1 copy(ies)" in w for w in scan.warnings)
    assert any("2 stacks at the same positions" in w and "read echo 1 (4 of 8 files)" in w for w in scan.warnings)
    assert not any("uneven" in w for w in scan.warnings)


def test_a_localizer_in_the_series_is_left_out(tmp_path):
    folder = make_series(tmp_path / "s", n=4)
    make_dicom(folder / "scout", ramp(9), series_uid="1.2.3.4", instance=99, position=(0.0, -50.0, 0.0),
               orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0), ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    scan = read_scan(folder)
    assert scan.n_slices == 4 and any("left out 1 localizer image(s)" in w for w in scan.warnings)


@pytest.mark.parametrize("orientation, plane", [
    ((0.0, 1.0, 0.0, 0.0, 0.0, -1.0), "sagittal"),
    ((1.0, 0.0, 0.0, 0.0, 0.0, -1.0), "coronal"),
    (AXIAL, None),
])
def test_slices_in_another_plane_than_axial_are_named(tmp_path, orientation, plane):
    """The models learn from axial slices: a sagittal series translated without a word came out 41 HU off."""
    folder = tmp_path / "s"
    folder.mkdir()
    normal = np.cross(orientation[:3], orientation[3:])
    for i in range(3):
        make_dicom(folder / f"{i}.dcm", ramp(i), modality="MR", instance=i + 1, orientation=orientation,
                   position=tuple(float(v) for v in 2.0 * i * normal))
    named = [w for w in read_scan(folder).warnings if "from axial" in w]
    assert named == ([] if plane is None else [named[0]]) and (plane is None or named[0].startswith(f"{plane} slices (90° from axial)"))


def test_repeats_of_a_position_that_no_header_tells_apart_are_not_interleaved(tmp_path):
    """Three time points told apart only by AcquisitionNumber, or a volume copied under new UIDs."""
    folder = tmp_path / "repeats"
    folder.mkdir()
    for repeat in range(3):
        for i in range(4):
            make_dicom(folder / f"r{repeat}_{i}.dcm", ramp(10 * repeat + i), modality="CT", instance=4 * repeat + i + 1,
                       position=(0.0, 0.0, 5.0 * i), intercept=0.0, AcquisitionNumber=repeat + 1)
    scan = read_scan(folder)
    assert scan.n_slices == 4
    np.testing.assert_array_equal(scan.voxels[:, 0, 0], [100 * i for i in range(4)])  # the first repeat, in order
    assert any("8 image(s) repeat a slice position" in w for w in scan.warnings)
    assert not any("uneven" in w for w in scan.warnings)


# -- real tools: dcmtk -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "tool, options, exact",
    [
        ("dcmcjpeg", ["+e1"], True),  # JPEG lossless SV1
        ("dcmcjpeg", ["+el"], True),  # JPEG lossless, any predictor
        ("dcmcjpls", [], True),  # JPEG-LS lossless
        ("dcmcrle", [], True),
        ("dcmcjpeg", ["+eb"], False),  # JPEG baseline: 8-bit, lossy
    ],
)
def test_files_compressed_by_dcmtk(tmp_path, tool, options, exact):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not found: install dcmtk (apt-get install dcmtk) to run this test")
    source = tmp_path / "source.dcm"
    rows, cols = np.mgrid[:32, :32]
    if exact:
        pixels = (rows * 40 + cols * 7 - 600).astype(np.int16)
        make_dicom(source, pixels, modality="CT")
    else:
        pixels = (rows * 6 + cols).astype(np.uint8)
        ds = make_dicom(source, pixels.astype(np.int16), modality="MR", slope=1.0, intercept=0.0)
        ds.set_pixel_data(pixels, "MONOCHROME2", 8, generate_instance_uid=False)
        ds.save_as(source, enforce_file_format=True)
    compressed = tmp_path / "compressed.dcm"
    subprocess.run([tool, *options, str(source), str(compressed)], check=True, capture_output=True, timeout=60)
    syntax = pydicom.dcmread(compressed, stop_before_pixels=True).file_meta.TransferSyntaxUID
    assert syntax.is_compressed
    expected, scan = read_scan(source).voxels, read_scan(compressed).voxels
    if exact:
        np.testing.assert_array_equal(scan, expected)
    else:
        assert np.abs(scan - expected).mean() < 2.0


@pytest.mark.parametrize("tool, options", [("dcmcjpeg", ["+e1"]), ("dcmcjpls", []), ("dcmcrle", [])])
def test_signed_12_bit_ct_compressed_by_dcmtk_keeps_its_negative_hu(tmp_path, tool, options):
    """Air at -1000 HU, stored in 12 of 16 bits: a JPEG-LS stream decodes without its sign."""
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not found: install dcmtk (apt-get install dcmtk) to run this test")
    rows, cols = np.mgrid[:32, :32]
    hu = (rows * 90 + cols * 3 - 1500).astype(np.int16)  # -1500 ... 1383
    source = tmp_path / "source.dcm"
    ds = make_dicom(source, hu, modality="CT", intercept=0.0)
    ds.BitsStored, ds.HighBit = 12, 11
    ds.PixelData = (hu.view(np.uint16) & 0x0FFF).tobytes()  # the sign bit is bit 11; bits 12-15 are 0
    ds.save_as(source, enforce_file_format=True)
    compressed = tmp_path / "compressed.dcm"
    subprocess.run([tool, *options, str(source), str(compressed)], check=True, capture_output=True, timeout=60)
    np.testing.assert_array_equal(read_scan(source).voxels[0], hu)
    np.testing.assert_array_equal(read_scan(compressed).voxels[0], hu)


def test_a_dicomdir_given_as_the_path_reads_the_series_beside_it(tmp_path, bundled_samples):
    """CD users pick the DICOMDIR file itself; reading its folder must not warn about it either."""
    tool = shutil.which("dcmmkdir")
    if tool is None:
        pytest.skip("dcmmkdir not found: install dcmtk (apt-get install dcmtk) to run this test")
    disc = tmp_path / "disc"
    (disc / "IMAGES").mkdir(parents=True)
    for index, source in enumerate(sorted((bundled_samples / "head_ct_ge").glob("*.dcm"))[:3]):
        shutil.copy(source, disc / "IMAGES" / f"IM{index}")
    subprocess.run([tool, "-Pgp", "+I", "+r", "IMAGES"], cwd=disc, check=True, capture_output=True, timeout=60)  # +I: invent what the GE files lack
    assert (disc / "DICOMDIR").is_file()
    scan = read_scan(disc / "DICOMDIR")
    assert scan.n_slices == 3 and not any("DICOMDIR" in w for w in scan.warnings)


def test_slices_of_different_pixel_spacing_are_named(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    for i, spacing in enumerate((0.5, 0.5, 0.8)):
        make_dicom(folder / f"{i}.dcm", ramp(i), instance=i + 1, position=(0.0, 0.0, 2.0 * i), PixelSpacing=[spacing, spacing])
    assert "pixel spacing differs between slices (0.5×0.5 to 0.8×0.8 mm): sizes in mm follow the first slice's" in read_scan(folder).warnings


# -- the real tilted head CT ---------------------------------------------------------------


def test_real_head_ct_with_gantry_tilt(bundled_samples):
    folder = bundled_samples / "head_ct_ge"
    (info,) = list_series(folder)
    assert (info.modality, info.n_instances, info.n_slices) == ("CT", 28, 28)
    scan = read_scan(folder)
    assert scan.modality is Modality.CT and scan.shape == (28, 512, 512)
    along_normal = scan.geometry.positions @ scan.geometry.slice_normal
    assert np.all(np.diff(along_normal) > 0)
    np.testing.assert_allclose(scan.geometry.pixel_spacing, (0.4882812, 0.4882812))
    assert scan.geometry.orientation is not None and scan.geometry.slice_thickness == 4.0
    middle = scan.voxels[14]
    air = middle[(middle > -1200) & (middle < -500)]  # inside the field of view; padding is -1500
    assert abs(float(np.median(air)) + 1000) < 30
    assert 20 <= float(np.median(middle[220:290, 220:290])) <= 45  # brain
    assert scan.display_window == (35.0, 100.0)
    warnings = " ".join(scan.warnings)
    assert "gantry tilt" in warnings and "18.5" in warnings
    assert "uneven slice spacing: 1.08 to 7.00 mm" in warnings
    assert len(scan.dicom_headers) == 28 and scan.dicom_headers[0].InstanceNumber == 1


def test_a_file_that_cannot_be_opened_is_skipped_with_a_warning(tmp_path, monkeypatch):
    """Permissions cannot lock root out, so opening is made to fail as it does for a locked file."""
    folder = make_series(tmp_path / "s", n=3)
    (folder / "locked.txt").write_bytes(b"?")  # its name alone does not say it is not DICOM
    (folder / "locked.dcm").write_bytes(b"?")
    real_open = Path.open

    def open_(self, *args, **kwargs):
        if self.name.startswith("locked"):
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_)
    scan = read_scan(folder)
    assert scan.n_slices == 3
    skipped = sorted(w for w in scan.warnings if w.startswith("skipped a file"))
    assert skipped == [
        f"skipped a file: {name}: cannot open (permission denied)" for name in ("locked.dcm", "locked.txt")
    ]
    assert [s.n_slices for s in list_series(folder)] == [3]


# -- hostile headers -------------------------------------------------------------------------


def non_image_object(path: Path, sop_class: str, modality: str, with_pixels: bool) -> Path:
    """A DICOM object of a class that holds no image of the patient; SEG carries binary frames."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = "1.2.3", generate_uid(), modality
    if with_pixels:
        ds.NumberOfFrames = 2
        ds.set_pixel_data(np.ones((2, 6, 5), np.uint8), "MONOCHROME2", 8, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize(
    ("sop_class", "modality", "what"),
    [
        (SegmentationStorage, "SEG", "Segmentation"),
        (RTStructureSetStorage, "RTSTRUCT", "RT Structure Set"),
        (ComprehensiveSRStorage, "SR", "Comprehensive SR"),
        (GrayscaleSoftcopyPresentationStateStorage, "PR", "Grayscale Softcopy Presentation State"),
        (KeyObjectSelectionDocumentStorage, "KO", "Key Object Selection Document"),
    ],
)
def test_non_image_objects_are_refused_by_sop_class_even_with_a_modality_given(tmp_path, sop_class, modality, what):
    path = non_image_object(tmp_path / "object.dcm", sop_class, modality, with_pixels=modality == "SEG")
    expected = rf"^object.dcm: a DICOM {what} object \(Modality {modality}\), not an image: only CT and MR images"
    with pytest.raises(ScanReadError, match=expected):
        read_scan(path, modality="ct")
    folder = make_series(tmp_path / "study", n=3)
    shutil.copy(path, folder / "zz_object.dcm")
    scan = read_scan(folder, modality="ct")  # the segmentation is not a second series
    assert scan.n_slices == 3 and [s.n_slices for s in list_series(folder)] == [3]
    assert f"skipped a file: zz_object.dcm: a DICOM {what} object (Modality {modality}), not an image" in scan.warnings
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(path, only / "object.dcm")
    with pytest.raises(ScanReadError, match=rf"no DICOM images found in this folder \(1 file\(s\) left out: object.dcm: a DICOM {what}"):
        read_scan(only, modality="ct")


@pytest.mark.parametrize(("spacing", "shown"), [([0.0, 0.0], "0\\\\0"), ([float("nan"), 0.5], "nan\\\\0.5"), ([-1.0, 1.0], "-1\\\\1")])
def test_an_unusable_pixel_spacing_falls_back_to_1_mm_naming_the_file(tmp_path, tiny_bundle, spacing, shown):
    from aimedx_desktop.engine.translator import Translator

    folder = make_series(tmp_path / "s", n=3)
    first = sorted(folder.iterdir())[0]
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.PixelSpacing = spacing
        ds.save_as(path)
    scan = read_scan(folder)
    assert scan.geometry.pixel_spacing == (1.0, 1.0)
    assert [w for w in scan.warnings if "PixelSpacing" in w] == [
        f"{first.name} and 2 more file(s): PixelSpacing {shown.replace(chr(92) * 2, chr(92))} is not a spacing (two positive numbers): assuming 1 mm"
    ]
    synthetic = Translator(tiny_bundle, device="cpu").translate(scan)  # was a ZeroDivisionError / NaN to integer
    assert synthetic.shape == scan.shape and np.isfinite(synthetic.voxels).all()


def test_a_nan_image_position_is_dropped_on_read_so_the_export_works(tmp_path, tiny_bundle):
    from aimedx_desktop.engine.io.export import export_scan
    from aimedx_desktop.engine.translator import Translator

    folder = make_series(tmp_path / "s", n=3)
    broken = sorted(folder.iterdir())[1]
    ds = pydicom.dcmread(broken)
    ds.ImagePositionPatient = [0.0, float("nan"), 2.5]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.save_as(broken)
    scan = read_scan(folder)
    assert scan.geometry.positions is None and scan.geometry.orientation == AXIAL
    assert f"{broken.name}: ImagePositionPatient 0\\nan\\2.5 is not a position (NaN or infinite): slice positions ignored" in scan.warnings
    synthetic = Translator(tiny_bundle, device="cpu").translate(scan)
    written = export_scan(synthetic, tmp_path / "out", fmt="dicom")
    positions = [pydicom.dcmread(p).ImagePositionPatient for p in written]
    assert all(np.isfinite(np.asarray(p, float)).all() for p in positions)


def test_a_non_unit_orientation_is_dropped_with_a_warning(tmp_path):
    folder = make_series(tmp_path / "s", n=2)
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.ImageOrientationPatient = [0, 0, 0, 0, 0, 0]
        ds.save_as(path)
    scan = read_scan(folder)
    assert scan.geometry.orientation is None and scan.geometry.positions is None
    assert any("ImageOrientationPatient 0\\0\\0\\0\\0\\0 is not two perpendicular unit vectors" in w for w in scan.warnings)


def test_a_header_promising_more_voxels_than_a_scan_may_have_is_refused_before_decoding(tmp_path):
    """A 1-kB JPEG 2000 file claiming 4096 frames of 4096²: the decoder would allocate 137 GB."""
    import tracemalloc

    ds = make_dicom(tmp_path / "claim.dcm", ramp(0))
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.Rows = ds.Columns = 4096
    ds.NumberOfFrames = 4096
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(64)])
    ds.save_as(tmp_path / "claim.dcm", enforce_file_format=True)
    tracemalloc.start()
    try:
        with pytest.raises(ScanReadError, match=r"^claim.dcm: 4096×4096×4096×1 voxels according to the header .*: more than the 1,073,741,824 a scan may have; not read"):
            read_scan(tmp_path / "claim.dcm")
        assert tracemalloc.get_traced_memory()[1] < 50_000_000
    finally:
        tracemalloc.stop()


def test_a_series_larger_than_the_memory_left_is_refused_before_decoding(tmp_path, monkeypatch):
    """The machine's free memory is the one boundary a test cannot set: it is replaced."""
    from aimedx_desktop.engine import limits

    folder = make_series(tmp_path / "s", n=4, shape=(64, 64))
    monkeypatch.setattr(limits, "available_memory", lambda: 100_000)
    with pytest.raises(ScanReadError, match=r"^s: 16384 voxels according to the headers of its 4 files: reading them needs about 0.3 MB, more than the 0.1 MB of memory available; not read"):
        read_scan(folder)
    monkeypatch.setattr(limits, "available_memory", lambda: 10_000_000)
    assert read_scan(folder).n_slices == 4
