"""Query/retrieve (C-FIND + C-GET) against dcmtk's dcmqrscp holding a small archive made here."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from net_peers import LOOPBACK, dcmqrscp, ge_files, secondary_capture, storescu

from aimedx_desktop.engine.cancel import CancelToken, Cancelled
from aimedx_desktop.engine.io import read_scan
from aimedx_desktop.engine.net.errors import NetworkError
from aimedx_desktop.engine.net.inbox import list_inbox
from aimedx_desktop.engine.net.nodes import Node
from aimedx_desktop.engine.net.query import find, retrieve

TIMEOUT_S = 10.0
GE_PATIENT = "QMNx85rKkkg"


@pytest.fixture(scope="module")
def archive(tmp_path_factory, bundled_samples, synthetic_ge_series):
    """dcmqrscp holding the GE CT, its synthetic MR and a secondary capture, all one study
    (the tests only read from it)."""
    tmp_path = tmp_path_factory.mktemp("archive")
    ge_study = pydicom.dcmread(ge_files(bundled_samples)[0], stop_before_pixels=True).StudyInstanceUID
    capture = tmp_path / "capture.dcm"
    ds = pydicom.dcmread(secondary_capture(capture))
    ds.StudyInstanceUID, ds.PatientID = ge_study, GE_PATIENT
    ds.save_as(capture, enforce_file_format=True)
    with dcmqrscp(tmp_path / "qr") as node:
        for files in (ge_files(bundled_samples), synthetic_ge_series, [capture]):
            result = storescu(node, files)
            assert result.returncode == 0, result.stderr
        yield node


def test_find_lists_the_study_and_its_series(archive):
    [study] = find(archive, "AIMEDX", TIMEOUT_S, patient_id="QMN*")
    assert study.patient_id == GE_PATIENT and study.description == "HEAD"
    kinds = sorted((s.modality, s.retrievable) for s in study.series)
    assert kinds == [("CT", True), ("MR", True), ("OT", False)]
    assert find(archive, "AIMEDX", TIMEOUT_S, study_uid=study.study_uid)[0].series == study.series
    assert find(archive, "AIMEDX", TIMEOUT_S, patient_id="NOBODY") == []
    assert find(archive, "AIMEDX", TIMEOUT_S, patient_id="山*") == []  # sent as '??', a wildcard, it matched everyone
    with pytest.raises(NetworkError, match="give a patient ID or a study"):
        find(archive, "AIMEDX", TIMEOUT_S)
    stopped = CancelToken()
    stopped.cancel()  # Cancel in the app: a wildcard search asks once per study
    with pytest.raises(Cancelled):
        find(archive, "AIMEDX", TIMEOUT_S, patient_id="*", cancel=stopped)


def test_retrieve_brings_ct_and_mr_series_into_the_inbox(archive, tmp_path, bundled_samples):
    [study] = find(archive, "AIMEDX", TIMEOUT_S, patient_id=GE_PATIENT)
    wanted = [s for s in study.series if s.retrievable]
    progress = []
    report = retrieve(archive, "AIMEDX", TIMEOUT_S, tmp_path / "inbox", wanted,
                      progress=lambda done, total: progress.append((done, total)))
    assert report.images == 56 and report.failed == 0 and "retrieved 56 image(s) of 2 series" in report.summary()
    assert progress[-1] == (56, 56)
    inbox = list_inbox(tmp_path / "inbox")
    assert sorted((s.modality, s.files) for s in inbox) == [("CT", 28), ("MR", 28)]
    ct = next(s for s in inbox if s.modality == "CT")
    np.testing.assert_array_equal(read_scan(ct.folder).voxels, read_scan(bundled_samples / "head_ct_ge").voxels)


def test_a_series_level_retrieve_brings_only_that_series(archive, tmp_path):
    [study] = find(archive, "AIMEDX", TIMEOUT_S, patient_id=GE_PATIENT)
    mr = [s for s in study.series if s.modality == "MR"]
    report = retrieve(archive, "AIMEDX", TIMEOUT_S, tmp_path / "inbox", mr)
    assert report.images == 28
    assert [(s.modality, s.series_uid) for s in list_inbox(tmp_path / "inbox")] == [("MR", mr[0].series_uid)]


def test_cancel_stops_a_retrieval_leaving_only_complete_files(archive, tmp_path):
    [study] = find(archive, "AIMEDX", TIMEOUT_S, patient_id=GE_PATIENT)
    token = CancelToken()

    def cancel_at_a_third(done: int, total: int) -> None:
        if done >= 10:
            token.cancel()

    with pytest.raises(Cancelled):
        retrieve(archive, "AIMEDX", TIMEOUT_S, tmp_path / "inbox", [s for s in study.series if s.retrievable],
                 progress=cancel_at_a_third, cancel=token)
    [series] = list_inbox(tmp_path / "inbox")
    assert 10 <= series.files < 28
    assert not [p for p in (tmp_path / "inbox").rglob(".*")]
    for path in series.folder.iterdir():
        pydicom.dcmread(path).pixel_array  # every file that is there is whole


def test_a_wrong_called_ae_title_is_named(archive):
    with pytest.raises(NetworkError, match="called AE title not recognised .WRONG is not that node's AE title"):
        find(Node("WRONG", LOOPBACK, archive.port), "AIMEDX", TIMEOUT_S, patient_id=GE_PATIENT)


def test_a_node_without_c_get_is_said_in_one_line(tmp_path):
    """storescp takes the storage contexts of a retrieve's association, but not C-GET itself."""
    from net_peers import storescp

    from aimedx_desktop.engine.net.query import SeriesMatch

    wanted = [SeriesMatch("1.2.3", "1.2.3.4", "CT", "1", "HEAD", 28)]
    with storescp(tmp_path / "received") as node:
        with pytest.raises(NetworkError, match=f"{node.address} does not offer retrieval by C-GET"):
            retrieve(node, "AIMEDX", TIMEOUT_S, tmp_path / "inbox", wanted)
