"""The derived DICOM series: valid by dciodvfy, readable by dcmtk and by the app, labelled synthetic,
written all-or-nothing, optionally de-identified."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, RTDoseStorage, generate_uid

from aimedx_desktop.engine.intensity import CT_DEFAULT_WINDOW
from aimedx_desktop.engine.io import atomic, read_scan
from aimedx_desktop.engine.io.dicom_writer import DicomSeriesWriter
from aimedx_desktop.engine.io.export import ExportError, export_scan
from aimedx_desktop.engine.scan import Geometry, Modality, Provenance, Scan
from aimedx_desktop.engine.bundle import load_bundle
from aimedx_desktop.engine.cancel import CancelToken, Cancelled
from aimedx_desktop.engine.translator import Translator

TILTED = (1.0, 0.0, 0.0, 0.0, 0.9483237, -0.3173047)  # a gantry-tilted CT, as in head_ct_ge
ROWS, COLS, SLICES = 24, 20, 4
SHARED_WITH_SOURCE = (
    "StudyInstanceUID", "FrameOfReferenceUID", "PatientName", "PatientID", "StudyDate", "AccessionNumber",
    "PatientPosition", "BodyPartExamined",
)
EMPTIED_BY_DEIDENTIFICATION = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "AccessionNumber",
    "ReferringPhysicianName", "StudyID",
)


def dciodvfy_errors(path: Path) -> list[str]:
    """dciodvfy's error lines for one file (its warnings are listed in the closing note)."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy is not installed (Debian package dicom3tools; CI installs it)")
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


def assert_valid(paths: list[Path]) -> None:
    errors = {path.name: dciodvfy_errors(path) for path in paths}
    assert not any(errors.values()), errors


def sha256(paths: list[Path]) -> list[str]:
    return [hashlib.sha256(path.read_bytes()).hexdigest() for path in paths]


@pytest.fixture
def source_files(tmp_path) -> list[Path]:
    """A small real-looking CT series on disk, with identifying attributes to carry or remove."""
    folder = tmp_path / "source"
    folder.mkdir()
    study, frame, series = generate_uid(), generate_uid(), generate_uid()
    normal = np.cross(TILTED[:3], TILTED[3:])
    paths = []
    for index in range(SLICES):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.Modality, ds.Manufacturer, ds.ManufacturerModelName = "CT", "ACME", "Scanner 9"
        ds.InstitutionName = "St. Example Hospital"
        ds.PatientName, ds.PatientID = "Doe^Jane", "PID-0042"
        ds.PatientBirthDate, ds.PatientSex = "19700101", "F"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240102", "101500", "77", "ACC1"
        ds.ReferringPhysicianName, ds.StudyDescription = "House^Greg", "HEAD for Jane Doe"
        ds.SeriesNumber, ds.InstanceNumber, ds.AcquisitionNumber = 3, index + 1, 1
        ds.PatientPosition, ds.BodyPartExamined, ds.PositionReferenceIndicator = "HFS", "HEAD", "OM"
        ds.ImageOrientationPatient = list(TILTED)
        position = np.array([-10.0, -12.0, 5.0]) + 3.0 * index * normal
        ds.ImagePositionPatient = [round(float(v), 4) for v in position]
        ds.SliceThickness = 3.0 if index < 2 else 5.0
        ds.SliceLocation = round(float(position @ normal), 4)
        ds.PixelSpacing = [0.8, 0.6]
        ds.KVP = 120
        ds.BurnedInAnnotation = "NO"
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.set_pixel_data(np.full((ROWS, COLS), 1000 + index, np.uint16), "MONOCHROME2", 12, generate_instance_uid=False)
        path = folder / f"{index:02d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def synthetic(voxels: np.ndarray, modality: Modality, geometry: Geometry, *, sources=(), headers=None, fmt="dicom") -> Scan:
    direction = "ct2mr" if modality is Modality.MR else "mr2ct"
    provenance = Provenance(tuple(str(p) for p in sources), fmt, True, "tiny-test", "0.0.1", direction)
    return Scan(voxels, modality, geometry, provenance, dicom_headers=headers)


@pytest.fixture
def mr_from_dicom(source_files) -> Scan:
    """The synthetic MR of `source_files`, as the Translator hands it over (source headers kept)."""
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in source_files]
    positions = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
    geometry = Geometry((0.8, 0.6), TILTED, positions, 3.0)
    rng = np.random.default_rng(0)
    voxels = rng.uniform(0.0, 1000.0, (SLICES, ROWS, COLS)).astype(np.float32)
    return synthetic(voxels, Modality.MR, geometry, sources=source_files, headers=headers)


@pytest.fixture
def ct_from_nifti() -> Scan:
    """A synthetic CT from a NIfTI volume: oblique geometry, no DICOM headers."""
    orientation = (0.9961947, -0.0871557, 0.0, 0.0, 0.0, -1.0)  # coronal, 5° rotated
    normal = np.cross(orientation[:3], orientation[3:])
    positions = np.array([12.5, -30.0, 40.0]) + np.arange(SLICES)[:, None] * 1.25 * normal
    rng = np.random.default_rng(1)
    voxels = rng.uniform(-1024.0, 2000.0, (SLICES, ROWS, COLS)).astype(np.float32)
    return synthetic(voxels, Modality.CT, Geometry((0.9, 1.1), orientation, positions, 1.25), fmt="nifti")


def test_mr_series_from_a_dicom_source_is_valid_labelled_and_in_the_source_study(tmp_path, mr_from_dicom, source_files):
    before = sha256(source_files)
    written = export_scan(mr_from_dicom, tmp_path / "out", fmt="dicom", window=(500.0, 1000.0))
    assert [p.name for p in written] == [f"synthetic_mr_{i:04d}.dcm" for i in range(1, SLICES + 1)]
    assert_valid(written)
    assert sha256(source_files) == before

    sources = [pydicom.dcmread(p) for p in source_files]
    out = [pydicom.dcmread(p) for p in written]
    for ds, src in zip(out, sources):
        assert ds.SOPClassUID == MRImageStorage and ds.Modality == "MR"
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "OTHER"]
        assert ds.SeriesDescription.startswith("SYNTHETIC MR") and "NOT FOR DIAGNOSIS" in ds.SeriesDescription
        assert "tiny-test 0.0.1" in ds.DerivationDescription
        assert ds.ContentQualification == "RESEARCH" and ds.BurnedInAnnotation == "NO"
        purposes = [item.PurposeOfReferenceCodeSequence[0].CodeValue for item in ds.ContributingEquipmentSequence]
        assert purposes == ["109100", "109101"]
        reference = ds.SourceImageSequence[0]
        assert reference.ReferencedSOPInstanceUID == src.SOPInstanceUID
        assert reference.PurposeOfReferenceCodeSequence[0].CodeValue == "121322"
        for keyword in SHARED_WITH_SOURCE:
            assert ds[keyword].value == src[keyword].value, keyword
        assert ds.SeriesInstanceUID != src.SeriesInstanceUID and ds.SOPInstanceUID != src.SOPInstanceUID
        assert ds.ImagePositionPatient == src.ImagePositionPatient
        assert ds.SliceThickness == src.SliceThickness and ds.SliceLocation == src.SliceLocation
        assert [float(v) for v in ds.ImageOrientationPatient] == pytest.approx(TILTED)
        assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (500.0, 1000.0)
    assert len({ds.SOPInstanceUID for ds in out}) == SLICES and len({ds.SeriesInstanceUID for ds in out}) == 1
    assert np.abs(np.stack([ds.pixel_array for ds in out]) - mr_from_dicom.voxels).max() <= 0.5


def test_ct_series_from_a_nifti_scan_keeps_hu_and_geometry(tmp_path, ct_from_nifti):
    written = export_scan(ct_from_nifti, tmp_path, fmt="dicom")
    assert_valid(written)
    out = [pydicom.dcmread(p) for p in written]
    assert out[0].SOPClassUID == CTImageStorage and out[0].RescaleType == "HU"
    assert (float(out[0].WindowCenter), float(out[0].WindowWidth)) == CT_DEFAULT_WINDOW
    assert out[0].PatientName == "UNKNOWN^SYNTHETIC" and out[0].PatientID.startswith("AIMEDX-")
    assert "SourceImageSequence" not in out[0]
    assert len({(ds.StudyInstanceUID, ds.FrameOfReferenceUID, ds.PatientID) for ds in out}) == 1
    hu = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in out])
    assert np.abs(hu - ct_from_nifti.voxels).max() <= 0.5
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in out])
    assert positions == pytest.approx(ct_from_nifti.geometry.positions, abs=1e-6)
    assert [float(v) for v in out[0].PixelSpacing] == [0.9, 1.1]


def test_dcmtk_dumps_and_renders_the_series(tmp_path, ct_from_nifti):
    if shutil.which("dcmdump") is None or shutil.which("dcm2pnm") is None:
        pytest.skip("dcmtk (dcmdump, dcm2pnm) is not installed; CI installs it")
    first = export_scan(ct_from_nifti, tmp_path / "out", fmt="dicom")[0]
    dump = subprocess.run(["dcmdump", "-E", str(first)], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0 and "SYNTHETIC CT" in dump.stdout, dump.stderr
    rendered = tmp_path / "render.pgm"
    command = ["dcm2pnm", "--use-window", "1", str(first), str(rendered)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert rendered.stat().st_size > ROWS * COLS


def test_read_back_through_the_app_reader_groups_with_the_source(tmp_path, mr_from_dicom, source_files, ct_from_nifti):
    ct = read_scan(export_scan(ct_from_nifti, tmp_path / "ct", fmt="dicom")[0].parent)
    assert ct.modality is Modality.CT
    assert np.abs(ct.voxels - ct_from_nifti.voxels).max() <= 1.0
    assert ct.geometry.positions == pytest.approx(ct_from_nifti.geometry.positions, abs=1e-4)
    assert ct.geometry.orientation == pytest.approx(ct_from_nifti.geometry.orientation, abs=1e-6)
    assert ct.geometry.pixel_spacing == pytest.approx(ct_from_nifti.geometry.pixel_spacing)

    folder = source_files[0].parent
    with pytest.raises(ExportError, match="holds the source images: the synthetic files would be mixed into the source series"):
        export_scan(mr_from_dicom, folder, fmt="dicom")
    written = export_scan(mr_from_dicom, tmp_path / "mr", fmt="dicom")
    for path in written:  # the synthetic series beside its source, as a PACS would hold them
        shutil.copy(path, folder / path.name)
    series_uid = pydicom.dcmread(written[0]).SeriesInstanceUID
    mr = read_scan(folder, series_uid=series_uid)
    source = read_scan(folder, series_uid=mr_from_dicom.dicom_headers[0].SeriesInstanceUID)
    assert mr.modality is Modality.MR and source.modality is Modality.CT
    assert np.abs(mr.voxels - mr_from_dicom.voxels).max() <= 1.0
    assert mr.geometry.positions == pytest.approx(source.geometry.positions, abs=1e-4)
    assert mr.dicom_headers[0].StudyInstanceUID == source.dicom_headers[0].StudyInstanceUID


def test_deidentification_removes_identifiers_and_remaps_uids_consistently(tmp_path, mr_from_dicom, source_files):
    written = export_scan(mr_from_dicom, tmp_path, fmt="dicom", deidentify=True)
    assert_valid(written)
    source = pydicom.dcmread(source_files[0])
    out = [pydicom.dcmread(p) for p in written]
    for ds in out:
        for keyword in EMPTIED_BY_DEIDENTIFICATION:
            assert ds[keyword].value in ("", None), keyword
        elements = []
        ds.walk(lambda _, element: elements.append(element))
        keywords = {element.keyword for element in elements}
        assert not keywords & {"InstitutionName", "StudyDescription", "SeriesDate"}
        text = " ".join(str(element.value) for element in elements if element.VR in ("PN", "LO", "SH", "ST", "LT", "DA"))
        assert "Doe" not in text and "PID-0042" not in text and "Example Hospital" not in text and "1970" not in text
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert ds.StudyInstanceUID != source.StudyInstanceUID and ds.FrameOfReferenceUID != source.FrameOfReferenceUID
        assert ds.SeriesDescription.startswith("SYNTHETIC MR")
    assert len({(ds.StudyInstanceUID, ds.FrameOfReferenceUID, ds.SeriesInstanceUID) for ds in out}) == 1
    references = [ds.SourceImageSequence[0].ReferencedSOPInstanceUID for ds in out]
    originals = [h.SOPInstanceUID for h in mr_from_dicom.dicom_headers]
    assert len(set(references)) == SLICES and not set(references) & set(originals)
    assert out[0].file_meta.MediaStorageSOPInstanceUID == out[0].SOPInstanceUID


def test_the_derivation_says_the_range_the_model_limits_values_to(tmp_path, ct_from_nifti):
    limited = dataclasses.replace(ct_from_nifti, provenance=dataclasses.replace(ct_from_nifti.provenance, value_range=(-40.0, 150.0)))
    ds = pydicom.dcmread(export_scan(limited, tmp_path / "out", fmt="dicom")[0])
    assert "Values limited to the model's range [-40, 150] HU." in ds.DerivationDescription
    assert "limited" not in pydicom.dcmread(export_scan(ct_from_nifti, tmp_path / "plain", fmt="dicom")[0]).DerivationDescription


def test_burned_in_text_is_declared_and_refuses_a_deidentified_export(tmp_path, mr_from_dicom):
    """The model can reproduce text burned into the source's pixels: not a clean series."""
    mr_from_dicom.dicom_headers[2].BurnedInAnnotation = "YES"
    written = export_scan(mr_from_dicom, tmp_path / "plain", fmt="dicom")
    assert {pydicom.dcmread(p).BurnedInAnnotation for p in written} == {"YES"}
    with pytest.raises(ExportError, match="burned-in annotation .* a de-identified export would not be clean"):
        export_scan(mr_from_dicom, tmp_path / "deidentified", fmt="dicom", deidentify=True)
    assert not (tmp_path / "deidentified").exists()


def test_what_the_sources_do_not_say_is_not_claimed_and_lossy_stays_lossy(tmp_path, ct_from_nifti, mr_from_dicom):
    (nifti,) = export_scan(dataclasses.replace(ct_from_nifti, voxels=ct_from_nifti.voxels[:1],
                                               geometry=ct_from_nifti.geometry.subset(slice(0, 1))), tmp_path / "n", fmt="dicom")
    ds = pydicom.dcmread(nifti)
    assert "BurnedInAnnotation" not in ds and "LossyImageCompression" not in ds
    jpeg = dataclasses.replace(ct_from_nifti, provenance=dataclasses.replace(ct_from_nifti.provenance, source_format="jpeg"))
    ds = pydicom.dcmread(export_scan(jpeg, tmp_path / "j", fmt="dicom")[0])
    assert (ds.LossyImageCompression, ds.LossyImageCompressionMethod) == ("01", "ISO_10918_1")
    for header in mr_from_dicom.dicom_headers[1:]:
        header.LossyImageCompression, header.LossyImageCompressionRatio = "01", 12.5
        header.LossyImageCompressionMethod = "ISO_14495_1"
    ds = pydicom.dcmread(export_scan(mr_from_dicom, tmp_path / "d", fmt="dicom")[0])
    assert (ds.LossyImageCompression, float(ds.LossyImageCompressionRatio), ds.LossyImageCompressionMethod) == (
        "01", 12.5, "ISO_14495_1")
    assert_valid([nifti])


def test_existing_files_are_replaced_only_when_asked(tmp_path, ct_from_nifti):
    first = export_scan(ct_from_nifti, tmp_path, fmt="dicom")
    before = sha256(first)
    with pytest.raises(ExportError, match="already exist.*--overwrite"):
        export_scan(ct_from_nifti, tmp_path, fmt="dicom")
    assert sha256(first) == before
    assert export_scan(ct_from_nifti, tmp_path, fmt="dicom", overwrite=True) == first
    assert sha256(first) != before  # new SOP Instance UIDs
    assert sorted(tmp_path.iterdir()) == first  # no backups left behind


def test_replacing_a_longer_series_removes_its_extra_slices_and_its_map(tmp_path, ct_from_nifti, uncertain_bundle_dir):
    """Otherwise the old series' slices 3-4 (another patient, perhaps) would stay beside the new
    slices 1-2 under the same names, and its map would still describe the old series."""
    mr_source = dataclasses.replace(ct_from_nifti, modality=Modality.MR, provenance=Provenance())
    longer = Translator(load_bundle(uncertain_bundle_dir), device="cpu").translate(mr_source)
    old = export_scan(longer, tmp_path, fmt="dicom", uncertainty=True)
    shorter = dataclasses.replace(ct_from_nifti, voxels=ct_from_nifti.voxels[:2],
                                  geometry=ct_from_nifti.geometry.subset(slice(0, 2)))
    with pytest.raises(ExportError, match="already exist.*--overwrite"):
        export_scan(shorter, tmp_path, fmt="dicom")
    assert sorted(tmp_path.iterdir()) == sorted(old)
    new = export_scan(shorter, tmp_path, fmt="dicom", overwrite=True)
    assert sorted(tmp_path.iterdir()) == new == [tmp_path / "synthetic_ct_0001.dcm", tmp_path / "synthetic_ct_0002.dcm"]


def test_a_failed_replacement_puts_the_longer_series_back_whole(tmp_path, ct_from_nifti, monkeypatch):
    old = export_scan(ct_from_nifti, tmp_path, fmt="dicom")
    before = sha256(old)
    shorter = dataclasses.replace(ct_from_nifti, voxels=ct_from_nifti.voxels[:2],
                                  geometry=ct_from_nifti.geometry.subset(slice(0, 2)))
    real_replace = atomic.os.replace

    def replace(source, target):
        if str(source).endswith(".partial") and Path(target).name == "synthetic_ct_0002.dcm":
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        real_replace(source, target)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(ExportError, match="the disk is full"):
        export_scan(shorter, tmp_path, fmt="dicom", overwrite=True)
    assert sorted(tmp_path.iterdir()) == old and sha256(old) == before  # slices 3 and 4 are back too


def test_a_failed_overwrite_puts_the_old_series_back(tmp_path, ct_from_nifti, monkeypatch):
    previous = export_scan(ct_from_nifti, tmp_path, fmt="dicom")
    before = sha256(previous)
    real_replace = atomic.os.replace

    def replace(source, target):
        if str(source).endswith(".partial") and Path(target) == previous[1]:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        real_replace(source, target)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(ExportError, match=r"synthetic_ct_0002\.dcm: the disk is full"):
        export_scan(ct_from_nifti, tmp_path, fmt="dicom", overwrite=True)
    assert sorted(tmp_path.iterdir()) == previous
    assert sha256(previous) == before


def test_a_source_file_is_never_a_target_even_with_overwrite(tmp_path, ct_from_nifti):
    source = tmp_path / "source" / "synthetic_ct_0001.dcm"
    source.parent.mkdir()
    source.write_bytes(b"source")
    scan = synthetic(ct_from_nifti.voxels, Modality.CT, ct_from_nifti.geometry, sources=[source])
    with pytest.raises(ExportError, match="holds the source images"):
        export_scan(scan, source.parent, fmt="dicom", overwrite=True)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / source.name).symlink_to(source)  # the source again, under another folder
    with pytest.raises(ExportError, match="it is one of the source files"):
        export_scan(scan, tmp_path / "out", fmt="dicom", overwrite=True)
    assert source.read_bytes() == b"source"


def test_cancel_midway_leaves_the_folder_as_it_was(tmp_path, ct_from_nifti):
    previous = export_scan(ct_from_nifti, tmp_path, fmt="dicom")
    before = sha256(previous)
    token = CancelToken()

    def progress(done: int, total: int) -> None:
        if done == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        export_scan(ct_from_nifti, tmp_path, fmt="dicom", overwrite=True, progress=progress, cancel=token)
    assert sorted(tmp_path.iterdir()) == previous  # no temporary files left, old series intact
    assert sha256(previous) == before


def test_a_failure_while_renaming_removes_the_partial_series(tmp_path, ct_from_nifti, monkeypatch):
    real_replace, calls = atomic.os.replace, []

    def replace(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        real_replace(source, target)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(ExportError, match=r"synthetic_ct_0003\.dcm: the disk is full"):
        export_scan(ct_from_nifti, tmp_path / "out", fmt="dicom")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_source_without_study_or_frame_of_reference_uid_gets_new_ones(tmp_path, mr_from_dicom):
    for header in mr_from_dicom.dicom_headers:
        del header.StudyInstanceUID, header.FrameOfReferenceUID
    written = export_scan(mr_from_dicom, tmp_path, fmt="dicom")
    assert_valid(written)
    out = [pydicom.dcmread(p) for p in written]
    assert len({(ds.StudyInstanceUID, ds.FrameOfReferenceUID) for ds in out}) == 1


@pytest.mark.parametrize(("method", "failing_at"), [("__init__", None), ("dataset", 2)])
def test_a_bug_while_writing_stays_a_bug_and_leaves_nothing(tmp_path, ct_from_nifti, monkeypatch, method, failing_at):
    """Not dressed up as an ExportError (which would hide it from the internal-error log)."""
    real = getattr(DicomSeriesWriter, method)

    def broken(self, *args, **kwargs):
        if failing_at is None or args[0] == failing_at:
            raise KeyError("a header that surprised us")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DicomSeriesWriter, method, broken)
    with pytest.raises(KeyError, match="surprised us"):
        export_scan(ct_from_nifti, tmp_path / "out", fmt="dicom")
    assert list((tmp_path / "out").iterdir()) == []


def multiframe_source(path: Path, offsets: list[float]) -> Path:
    """A plain multi-frame image (RT Dose: one ImagePositionPatient, frames placed by
    GridFrameOffsetVector, one top-level SliceLocation for all frames), frames stored out of
    spatial order."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = RTDoseStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID = "RTDOSE", "Doe^Jane", "PID-0042"
    ds.ImageOrientationPatient, ds.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [-10.0, -12.0, 20.0]
    ds.PixelSpacing, ds.SliceThickness, ds.SliceLocation = [0.8, 0.6], 5.0, 20.0
    ds.NumberOfFrames, ds.GridFrameOffsetVector = len(offsets), offsets
    ds.FrameIncrementPointer = 0x3004000C
    frames = np.stack([np.full((ROWS, COLS), 1000 + 10 * i, np.uint16) for i in range(len(offsets))])
    ds.set_pixel_data(frames, "MONOCHROME2", 12, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_multiframe_source_gives_each_slice_its_location_and_frame(tmp_path):
    source = read_scan(multiframe_source(tmp_path / "multi.dcm", [10.0, 0.0, 5.0]), modality="ct")
    assert len({id(h) for h in source.dicom_headers}) == 1  # one header for every frame
    provenance = Provenance(source.provenance.source_paths, "dicom", True, "tiny-test", "0.0.1", "ct2mr")
    mr = Scan(source.voxels, Modality.MR, source.geometry, provenance, dicom_headers=source.dicom_headers)
    written = export_scan(mr, tmp_path / "out", fmt="dicom")
    assert_valid(written)
    out = [pydicom.dcmread(p) for p in written]
    assert [float(ds.SliceLocation) for ds in out] == [20.0, 25.0, 30.0]
    assert [ds.SourceImageSequence[0].ReferencedFrameNumber for ds in out] == [2, 3, 1]  # offsets 0, 5, 10
    unplaced = Scan(mr.voxels, Modality.MR, Geometry(), provenance, dicom_headers=mr.dicom_headers)
    writer = DicomSeriesWriter(unplaced, (500.0, 1000.0))
    assert [writer.dataset(i).SourceImageSequence[0].ReferencedFrameNumber for i in range(3)] == [1, 2, 3]


def test_an_output_folder_under_a_file_gives_a_clear_message(tmp_path, ct_from_nifti):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match=r"a_file.*not a folder"):
        export_scan(ct_from_nifti, blocker / "out", fmt="dicom")
    with pytest.raises(ExportError, match=r"a_file.*not a folder"):
        export_scan(ct_from_nifti, blocker, fmt="dicom")


def test_only_synthetic_scans_are_exported(tmp_path, ct_scan):
    with pytest.raises(ExportError, match="only synthetic"):
        export_scan(ct_scan, tmp_path, fmt="dicom")


@pytest.mark.slow
def test_head_ct_ge_through_a_real_translator_to_a_valid_mr_series(tmp_path, bundled_samples, tiny_bundle_dir):
    """The issue's acceptance command: aimedx convert head_ct_ge --to mr --format dicom."""
    from aimedx_desktop.cli import main

    source = bundled_samples / "head_ct_ge"
    before = sha256(sorted(source.glob("*.dcm")))
    out = tmp_path / "mr"
    arguments = ["--to", "mr", "--format", "dicom", "--out", str(out), "--model", str(tiny_bundle_dir), "--device", "cpu"]
    assert main(["convert", str(source), *arguments]) == 0
    written = sorted(out.glob("*.dcm"))
    assert len(written) == 28
    assert_valid(written)
    assert sha256(sorted(source.glob("*.dcm"))) == before
    ct, mr = read_scan(source), read_scan(out)
    assert mr.modality is Modality.MR and mr.n_slices == 28
    assert mr.geometry.positions == pytest.approx(ct.geometry.positions, abs=1e-4)
    assert [h.SliceThickness for h in mr.dicom_headers] == [h.SliceThickness for h in ct.dicom_headers]
    assert {h.StudyInstanceUID for h in mr.dicom_headers} == {h.StudyInstanceUID for h in ct.dicom_headers}


@pytest.mark.slow
def test_mr_to_ct_from_a_nifti_volume_is_a_valid_ct_series(tmp_path, bundled_samples, tiny_bundle):

    from aimedx_desktop.engine.translator import Translator

    volume = read_scan(bundled_samples / "head_mr" / "t2_brain_stroke.nii.gz", modality="mr")
    every_tenth = slice(None, None, 10)
    volume = dataclasses.replace(volume, voxels=volume.voxels[every_tenth], geometry=volume.geometry.subset(every_tenth))
    ct = Translator(tiny_bundle, device="cpu").translate(volume, Modality.CT)
    written = export_scan(ct, tmp_path, fmt="dicom")
    assert_valid(written)
    back = read_scan(tmp_path)
    assert np.abs(back.voxels - ct.voxels).max() <= 1.0
    assert back.geometry.positions == pytest.approx(ct.geometry.positions, abs=1e-4)
    assert back.geometry.orientation == pytest.approx(ct.geometry.orientation, abs=1e-6)


def test_made_up_slice_positions_get_a_frame_of_reference_of_their_own(tmp_path, source_files, uncertain_bundle_dir):
    """Without positions the series is stacked from the origin: in the source's frame of
    reference a viewer would link or fuse it with the source as if registered."""
    for path in source_files:
        ds = pydicom.dcmread(path)
        del ds.ImagePositionPatient
        ds.save_as(path)
    source = read_scan(source_files[0].parent)
    assert source.geometry.positions is None
    synthetic = Translator(load_bundle(uncertain_bundle_dir), device="cpu").translate(source)
    export_scan(synthetic, tmp_path / "out", fmt="dicom", uncertainty=True)
    images = [pydicom.dcmread(p) for p in sorted((tmp_path / "out").glob("synthetic_mr_0*.dcm"))]
    maps = [pydicom.dcmread(p) for p in sorted((tmp_path / "out").glob("synthetic_mr_uncertainty_*.dcm"))]
    original = pydicom.dcmread(source_files[0])
    assert {ds.FrameOfReferenceUID for ds in images} == {images[0].FrameOfReferenceUID} != {original.FrameOfReferenceUID}
    assert images[0].StudyInstanceUID == original.StudyInstanceUID  # still the same patient's study
    assert original.PositionReferenceIndicator == "OM" and images[0].PositionReferenceIndicator == ""
    for image, uncertainty in zip(images, maps):
        assert uncertainty.FrameOfReferenceUID == image.FrameOfReferenceUID
        assert uncertainty.ImagePositionPatient == image.ImagePositionPatient
