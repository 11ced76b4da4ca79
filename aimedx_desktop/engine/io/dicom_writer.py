"""A synthetic scan as a new derived DICOM series (CT or MR Image Storage), labelled synthetic.

The synthetic image lies on the source grid, so a DICOM source gives the new series its patient,
study and frame of reference (same StudyInstanceUID and FrameOfReferenceUID: viewers group it
with the source study and can link it spatially; new UIDs where the source has none, and a new
frame of reference where the source gave no slice positions or orientation, which are then
made up) and, slice by slice, its geometry. Everything that describes an acquisition (kVp, echo time,
private tags, ...) is not carried over: this series was not acquired.

A companion map (the uncertainty) is written the same way as a series of its own, its source
headers being the synthetic series' instances: same patient, study and frame of reference,
each instance referencing its synthetic image, labelled "UNCERTAINTY of SYNTHETIC CT".

It is labelled synthetic in every way the standard offers: Image Type DERIVED\\SECONDARY\\AXIAL
(OTHER instead of AXIAL for MR), Derivation Description, Source Image Sequence (DCM 121322)
pointing at each source instance (and frame, for a multi-frame source), Contributing Equipment
Sequence (DCM 109100 "Synthesizing Equipment"), Content Qualification RESEARCH, a Series
Description starting "SYNTHETIC CT" / "SYNTHETIC MR" with "NOT FOR DIAGNOSIS", and Burned In
Annotation NO.

Pixels are int16. CT: Rescale Slope 1, Intercept 0, Rescale Type HU, so stored values are HU
rounded to the nearest unit (±0.5 HU). MR: the classic MR Image IOD has no rescale attributes,
so stored values are the synthetic MR's arbitrary units rounded (the model contract writes
them on 0..1000, i.e. ±0.5 of 1000 levels). Values beyond int16 are clipped.

A source that is not DICOM (PNG, JPEG, NIfTI) starts a new study with placeholder patient
attributes: Patient's Name "UNKNOWN^SYNTHETIC", Patient ID "AIMEDX-" + 8 random hex digits,
birth date and sex empty, study date/time = export time, a new Frame of Reference. Geometry
comes from Scan.geometry; without an orientation the slices are taken as axial, and without
positions they are stacked along the normal from the origin, slice thickness (or 1 mm) apart.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from aimedx_desktop import RESEARCH_USE_STATEMENT, __version__
from aimedx_desktop.engine.io.dicom import frame_positions
from aimedx_desktop.engine.scan import Modality, Scan

MANUFACTURER = "AI-MEDX"
MODEL_NAME = "AI-MEDX Desktop"
PLACEHOLDER_PATIENT_NAME = "UNKNOWN^SYNTHETIC"
_SOP_CLASS = {Modality.CT: CTImageStorage, Modality.MR: MRImageStorage}
# Value 3 of Image Type: AXIAL is CT's defined term for a cross-section; the MR defined terms
# have no AXIAL (dciodvfy warns), OTHER is the one that fits a synthetic image.
_IMAGE_TYPE_3 = {Modality.CT: "AXIAL", Modality.MR: "OTHER"}
_AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)

# Patient, study and frame-of-reference attributes a derived series shares with its source.
# Type 2 in the IOD: always written, empty when the source lacks them.
_SHARED_TYPE2 = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName",
    "PositionReferenceIndicator",
    "PatientPosition",  # Type 2C, required for CT and MR Image Storage
)
# Optional: written only when the source has a value.
_SHARED_OPTIONAL = ("StudyDescription", "BodyPartExamined", "Laterality")
# Laterality is Type 2C: absent for an unpaired body part, valued for a paired one, and empty
# only when unknown, i.e. when neither the body part nor the laterality is known.


def code(value: str, meaning: str, scheme: str = "DCM") -> Dataset:
    """A code sequence item."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _ds(values: Any) -> list[str]:
    """Numbers as DS strings (at most 16 characters, as the VR requires)."""
    return [format_number_as_ds(float(v)) for v in np.atleast_1d(values)]


def _plane(scan: Scan) -> tuple[tuple[float, ...], np.ndarray]:
    """(ImageOrientationPatient, ImagePositionPatient per slice), with the documented fallbacks."""
    geometry = scan.geometry
    orientation = tuple(geometry.orientation) if geometry.orientation is not None else _AXIAL
    if geometry.positions is not None:
        return orientation, np.asarray(geometry.positions, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    step = geometry.slice_thickness or 1.0
    return orientation, np.arange(scan.n_slices)[:, None] * step * normal[None, :]


def stored_values(values: np.ndarray) -> np.ndarray:
    """Physical values as int16 stored pixel values (slope 1, intercept 0)."""
    return np.clip(np.rint(values), -32768, 32767).astype(np.int16)


class DicomSeriesWriter:
    """Builds and writes the instances of one derived series; one writer per export."""

    def __init__(
        self,
        scan: Scan,
        window: tuple[float, float],
        postprocess: Callable[[Dataset], None] | None = None,
        now: datetime | None = None,
    ) -> None:
        """`postprocess` is applied to every finished dataset before it is written (de-identification)."""
        self.scan = scan
        self.postprocess = postprocess
        self.orientation, self.positions = _plane(scan)
        self.normal = np.cross(self.orientation[:3], self.orientation[3:])
        self.frames = _source_frames(scan)
        self.series = self._series_attributes(window, now or datetime.now())
        self.headers: list[Dataset | None] = [None] * scan.n_slices
        """Each written instance without pixel data and before `postprocess`: the source headers
        of a companion series (the uncertainty map) that derives from this one."""

    def _series_attributes(self, window: tuple[float, float], now: datetime) -> Dataset:
        scan, provenance = self.scan, self.scan.provenance
        target = scan.modality.value
        source = scan.dicom_headers[0] if scan.dicom_headers else None
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SOPClassUID = _SOP_CLASS[scan.modality]
        ds.ImageType = ["DERIVED", "SECONDARY", _IMAGE_TYPE_3[scan.modality]]
        ds.Modality = target
        if source is not None:
            _copy_shared(source, ds)
            if scan.geometry.positions is None or scan.geometry.orientation is None:
                # The positions are made up (_plane): in the source's frame of reference, viewers
                # would take them as registered to it and link or fuse the two wrongly.
                ds.FrameOfReferenceUID = generate_uid()
                ds.PositionReferenceIndicator = ""  # the source's landmark does not anchor this frame
        else:
            _placeholder_study(ds, provenance.source_format, target, now)
        model = f"{provenance.model_name} {provenance.model_version}"
        ds.SeriesInstanceUID = generate_uid()
        ds.SeriesNumber = _series_number(source)
        ds.SeriesDescription = f"{scan.label} - NOT FOR DIAGNOSIS - {model}"[:64]
        ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
        ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
        ds.Manufacturer = MANUFACTURER
        ds.ManufacturerModelName = MODEL_NAME
        ds.SoftwareVersions = [__version__, model[:64]]
        ds.DerivationDescription = (
            f"{_derivation(scan)} by {MODEL_NAME} {__version__} with model {model}. {_limits(scan)}"
            f"NOT FOR DIAGNOSIS. {RESEARCH_USE_STATEMENT}"
        )
        ds.ContributingEquipmentSequence = Sequence(_contributing_equipment(source, model, target))
        ds.ContentQualification = "RESEARCH"
        burned_in = burned_in_annotation(scan)
        if burned_in is not None:
            ds.BurnedInAnnotation = burned_in
        _copy_lossy_compression(scan, ds)
        ds.WindowCenter, ds.WindowWidth = _ds(window[0])[0], _ds(window[1])[0]
        if scan.modality is Modality.CT:
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "HU"
            ds.KVP = ""
            ds.AcquisitionNumber = ""
        else:
            ds.ScanningSequence = "RM"  # research mode: no pulse sequence produced this image
            ds.SequenceVariant = "NONE"
            for keyword in ("ScanOptions", "MRAcquisitionType", "RepetitionTime", "EchoTime", "EchoTrainLength"):
                setattr(ds, keyword, "")
        return ds

    def dataset(self, index: int) -> Dataset:
        """The complete instance for slice `index`, pixel data included."""
        ds = copy.deepcopy(self.series)  # postprocess edits in place; the template must stay intact
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = index + 1
        header = self.scan.dicom_headers[index] if self.scan.dicom_headers else None
        position = self.positions[index]
        ds.ImagePositionPatient = _ds(position)
        ds.ImageOrientationPatient = _ds(self.orientation)
        ds.PixelSpacing = _ds(self.scan.geometry.pixel_spacing)
        thickness = _header_value(header, "SliceThickness", self.scan.geometry.slice_thickness)
        ds.SliceThickness = _ds(thickness)[0] if thickness is not None else ""
        frame = self.frames[index]
        # A multi-frame source has one SliceLocation for all its frames: this slice's own comes from its position.
        location = _header_value(header if frame is None else None, "SliceLocation", float(position @ self.normal))
        ds.SliceLocation = _ds(location)[0]
        if header is not None and "SOPInstanceUID" in header and "SOPClassUID" in header:
            ds.SourceImageSequence = Sequence([_source_reference(header, frame)])
        self.headers[index] = copy.deepcopy(ds)
        ds.set_pixel_data(
            stored_values(self.scan.voxels[index]), "MONOCHROME2", 16, generate_instance_uid=False
        )
        if self.postprocess is not None:
            self.postprocess(ds)
        return ds

    def write(self, index: int, path: Path) -> None:
        ds = self.dataset(index)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = f"AIMEDX_{__version__}"[:16]
        ds.file_meta = meta
        ds.save_as(path, enforce_file_format=True)


def _limits(scan: Scan) -> str:
    """The synthetic image's value range, when it is an image the model limited (CT: its HU window)."""
    limits = scan.provenance.value_range
    if limits is None or scan.provenance.output != "image":
        return ""
    units = "HU" if scan.modality is Modality.CT else "(arbitrary units)"
    return f"Values limited to the model's range [{limits[0]:g}, {limits[1]:g}] {units}. "


def _derivation(scan: Scan) -> str:
    target, provenance = scan.modality.value, scan.provenance
    synthetic = f"SYNTHETIC {target} computed from {scan.modality.other.value} ({provenance.direction})"
    if provenance.output == "image":
        return synthetic
    if provenance.output == "uncertainty":
        units = "HU" if scan.modality is Modality.CT else "the synthetic MR's units"
        return (f"UNCERTAINTY of the {synthetic}: per pixel, the calibrated half-width in {units} of the "
                "interval that holds the model's error for the calibrated share of head pixels (see the model card)")
    return f"{provenance.output.upper()} of the {synthetic}"


def _header_value(header: Dataset | None, keyword: str, default: Any) -> Any:
    """The source header's value when it has a non-empty one, else `default`."""
    if header is not None and header.get(keyword) not in (None, ""):
        return header.get(keyword)
    return default


def _source_frames(scan: Scan) -> list[int | None]:
    """For each slice, the number (from 1) of the frame it came from in a multi-frame source,
    None for a single-frame source or none.

    Frames are matched by position (the reader sorts slices along the normal); without positions
    the reader keeps each file's frames in order."""
    frames: list[int | None] = []
    taken: dict[int, int] = {}  # frames already counted, per source header
    for index, header in enumerate(scan.dicom_headers or [None] * scan.n_slices):
        if header is None or int(header.get("NumberOfFrames") or 1) <= 1:
            frames.append(None)
            continue
        positions = frame_positions(header)
        if positions is not None and scan.geometry.positions is not None:
            distances = np.linalg.norm(positions - scan.geometry.positions[index], axis=1)
            frames.append(int(np.argmin(distances)) + 1)
        else:
            taken[id(header)] = taken.get(id(header), 0) + 1
            frames.append(taken[id(header)])
    return frames


def burned_in_annotation(scan: Scan) -> str | None:
    """"YES" when a source slice has text burned into its pixels (the model can reproduce it),
    "NO" when every source slice says it has none, None when the sources do not say."""
    stated = {str(header.get("BurnedInAnnotation", "")).upper() for header in scan.dicom_headers or [] if header is not None}
    if "YES" in stated:
        return "YES"
    return "NO" if stated == {"NO"} else None


def _copy_lossy_compression(scan: Scan, ds: Dataset) -> None:
    """Lossy Image Compression "01" once set must stay set in every derived image (PS3.3
    C.7.6.1.1.5): from a source slice that has it, or from a JPEG file."""
    lossy = [header for header in scan.dicom_headers or [] if header is not None and header.get("LossyImageCompression") == "01"]
    if lossy:
        ds.LossyImageCompression = "01"
        for keyword in ("LossyImageCompressionRatio", "LossyImageCompressionMethod"):
            if lossy[0].get(keyword):
                setattr(ds, keyword, lossy[0].get(keyword))
    elif scan.provenance.source_format in ("jpeg", "mpo"):
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"


def _copy_shared(source: Dataset, ds: Dataset) -> None:
    ds.StudyInstanceUID = source.get("StudyInstanceUID") or generate_uid()
    ds.FrameOfReferenceUID = source.get("FrameOfReferenceUID") or generate_uid()
    for keyword in _SHARED_TYPE2:
        setattr(ds, keyword, source.get(keyword) or "")
    for keyword in _SHARED_OPTIONAL:
        if source.get(keyword):
            setattr(ds, keyword, source.get(keyword))
    if "Laterality" not in ds and "BodyPartExamined" not in ds:
        ds.Laterality = ""  # see _SHARED_OPTIONAL
    if source.get("PatientIdentityRemoved") == "YES":
        ds.PatientIdentityRemoved = "YES"
        # Type 1C once identity is removed; some de-identifiers leave it empty.
        ds.DeidentificationMethod = source.get("DeidentificationMethod") or "as recorded for the source series"


def _placeholder_study(ds: Dataset, source_format: str, target: str, now: datetime) -> None:
    ds.PatientName = PLACEHOLDER_PATIENT_NAME
    ds.PatientID = f"AIMEDX-{secrets.token_hex(4).upper()}"
    ds.PatientBirthDate = ds.PatientSex = ""
    ds.StudyInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.StudyDate, ds.StudyTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.StudyID = "1"
    ds.AccessionNumber = ds.ReferringPhysicianName = ds.PositionReferenceIndicator = ""
    ds.PatientPosition = ""
    ds.Laterality = ""  # body part unknown: see _SHARED_OPTIONAL
    ds.StudyDescription = f"SYNTHETIC {target} from a {source_format} file"[:64]


def _series_number(source: Dataset | None) -> int:
    """1000 + the source's series number, so the synthetic series sorts after it."""
    number = source.get("SeriesNumber") if source is not None else None
    return 1000 + int(number) if number not in (None, "") else 1000


def _contributing_equipment(source: Dataset | None, model: str, target: str) -> list[Dataset]:
    synthesizer = Dataset()
    synthesizer.Manufacturer = MANUFACTURER
    synthesizer.ManufacturerModelName = MODEL_NAME
    synthesizer.SoftwareVersions = [__version__, model[:64]]
    synthesizer.ContributionDescription = f"Synthesized {target} with model {model}"
    synthesizer.PurposeOfReferenceCodeSequence = Sequence([code("109100", "Synthesizing Equipment")])
    items = [synthesizer]
    if source is not None and source.get("Manufacturer") not in (None, "", MANUFACTURER):
        scanner = Dataset()
        scanner.Manufacturer = source.Manufacturer
        for keyword in ("ManufacturerModelName", "InstitutionName"):
            if source.get(keyword):
                setattr(scanner, keyword, source.get(keyword))
        scanner.PurposeOfReferenceCodeSequence = Sequence([code("109101", "Acquisition Equipment")])
        items.append(scanner)
    return items


def _source_reference(header: Dataset, frame: int | None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = header.SOPClassUID
    item.ReferencedSOPInstanceUID = header.SOPInstanceUID
    if frame is not None:  # Type 1C: the reference is to one frame of a multi-frame image
        item.ReferencedFrameNumber = frame
    item.PurposeOfReferenceCodeSequence = Sequence([code("121322", "Source image for image processing operation")])
    return item
