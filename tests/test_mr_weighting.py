"""The MR weighting named from a DICOM header or a file name, for the T2-trained models' users."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from aimedx_desktop.engine.mr_weighting import weighting_note
from aimedx_desktop.engine.scan import Geometry, Modality, Provenance, Scan


def _mr(name: str = "scan.dcm", modality: Modality = Modality.MR, **times: float) -> Scan:
    header = Dataset()
    for keyword, value in times.items():
        setattr(header, keyword, value)
    return Scan(np.zeros((1, 4, 4), np.float32), modality, Geometry(), Provenance((f"/data/{name}",), "dicom"),
                dicom_headers=[header] if times else None)


@pytest.mark.parametrize("times, says", [
    ({"EchoTime": 12, "RepetitionTime": 450}, "seems to be T1-weighted (TR 450 ms, TE 12 ms)"),
    ({"EchoTime": 120, "RepetitionTime": 9000, "InversionTime": 2500}, "seems to be FLAIR (TI 2500 ms, TE 120 ms)"),
    ({"EchoTime": 15, "RepetitionTime": 3000}, "seems to be proton-density-weighted (TR 3000 ms, TE 15 ms)"),
    ({"EchoTime": 2.98, "RepetitionTime": 2300, "InversionTime": 900}, "seems to be T1-weighted (TI 900 ms, TE 2.98 ms)"),
])
def test_the_header_names_a_weighting_other_than_t2(times, says):
    assert says in weighting_note(_mr(**times))


@pytest.mark.parametrize("scan", [
    _mr(EchoTime=100, RepetitionTime=4000),  # T2
    _mr("brain_t2.nii.gz"),
    _mr("t1_brain.nii.gz", modality=Modality.CT),  # not an MR
    _mr("anatomy.png"),  # nothing to go by
    _mr(EchoTime=20, RepetitionTime=650),  # a T2* gradient echo
    _mr("sub-01_ses-t1_T2w.nii.gz"),  # BIDS: session "t1" of a T2-weighted scan
])
def test_t2_and_the_unknown_say_nothing(scan):
    assert weighting_note(scan) is None


def test_the_file_name_names_it_when_there_is_no_header():
    assert "seems to be FLAIR (its file name says 'flair')" in weighting_note(_mr("flair_brain_stroke.nii.gz"))
    assert "seems to be T1-weighted" in weighting_note(_mr("sub-01_T1w.nii.gz"))
