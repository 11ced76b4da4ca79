"""PS3.15 Basic Application Level Confidentiality Profile for the attributes the DICOM writer emits.

Applied to each finished dataset, nested sequences included, with the profile's actions:
Z (replace with an empty value) for the Type 2 identifiers and dates, X (remove) for optional
identifying attributes and free text from the source, U (replace UIDs) with one mapping per
export so the series stays internally consistent (study, frame of reference, series and the
source references all map the same way on every slice).

The writer's own descriptors (Series Description, Derivation Description, Contribution
Description) contain only the model name, never patient data, so they are kept and the result
is declared as Basic Profile + Clean Descriptors Option.
"""

from __future__ import annotations

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from aimedx_desktop.engine.io.dicom_writer import code

EMPTY = frozenset({
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName",
    "ContentDate", "ContentTime",
})
REMOVE = frozenset({
    "SeriesDate", "SeriesTime", "StudyDescription", "InstitutionName",
    "PatientIdentityRemoved", "DeidentificationMethod",
})
REMAP = frozenset({
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
    "ReferencedSOPInstanceUID",
})
METHOD = "PS3.15 Basic Profile, Clean Descriptors Option"  # LO: at most 64 characters


class Deidentifier:
    """Call on each dataset of one export; UIDs map consistently across all of them."""

    def __init__(self) -> None:
        self.uid_map: dict[str, str] = {}

    def __call__(self, ds: Dataset) -> None:
        ds.walk(self._apply)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = METHOD
        ds.DeidentificationMethodCodeSequence = Sequence(
            [code("113100", "Basic Application Confidentiality Profile"), code("113105", "Clean Descriptors Option")]
        )

    def _apply(self, ds: Dataset, element: DataElement) -> None:
        keyword = element.keyword
        if keyword in REMOVE:
            del ds[element.tag]
        elif keyword in EMPTY:
            element.value = ""
        elif keyword in REMAP and element.value:
            element.value = self.uid_map.setdefault(str(element.value), generate_uid())
