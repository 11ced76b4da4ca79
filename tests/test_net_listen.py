"""The storage SCP (`aimedx listen`'s engine) with dcmtk's storescu as the sender, on loopback."""

from __future__ import annotations

import subprocess

import numpy as np
import pydicom
import pytest
from net_peers import LOOPBACK, dataset_bytes, ge_files, require, secondary_capture, storescu

from aimedx_desktop.engine.io import read_scan
from aimedx_desktop.engine.net.association import echo
from aimedx_desktop.engine.net.errors import NetworkError
from aimedx_desktop.engine.net.inbox import instance_path, list_inbox, series_files
from aimedx_desktop.engine.net.listen import StorageServer
from aimedx_desktop.engine.net.nodes import Node
from aimedx_desktop.engine.net.send import collect_files, send_files

TIMEOUT_S = 5.0


@pytest.fixture
def listener(tmp_path):
    """Our storage SCP on a free loopback port, AE title AIMEDX, its log lines collected."""
    lines: list[str] = []
    with StorageServer(tmp_path / "inbox", 0, bind=LOOPBACK, log=lines.append, timeout=TIMEOUT_S) as server:
        server.lines = lines
        yield server


def node_of(server: StorageServer) -> Node:
    return Node(server.aet, LOOPBACK, server.port)


def test_storescu_sends_the_ge_series_and_it_opens_as_the_same_series(listener, bundled_samples):
    files = ge_files(bundled_samples)
    result = storescu(node_of(listener), files)
    assert result.returncode == 0, result.stderr
    [series] = list_inbox(listener.inbox)
    assert series.files == 28 and series.modality == "CT" and series.patient_id == "QMNx85rKkkg"
    assert series.folder == listener.inbox / series.study_uid / series.series_uid
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert dataset_bytes(instance_path(listener.inbox, ds)) == dataset_bytes(path)
    received, original = read_scan(series.folder), read_scan(bundled_samples / "head_ct_ge")
    np.testing.assert_array_equal(received.voxels, original.voxels)
    np.testing.assert_allclose(received.geometry.positions, original.geometry.positions)
    assert listener.receiver.stored == 28 and sum("received CT" in line for line in listener.lines) == 28
    assert not [p for p in series.folder.iterdir() if p.name.startswith(".")]  # no temporary left


@pytest.mark.parametrize("tool, option", [("dcmcjpeg", "-xs"), ("dcmcrle", "-xr"), ("dcmcjpls", "-xt")])
def test_compressed_transfer_syntaxes_are_accepted_as_sent(listener, bundled_samples, tmp_path, tool, option):
    source = bundled_samples / "head_ct_ge" / "05.dcm"
    compressed = tmp_path / "compressed.dcm"
    subprocess.run([require(tool), str(source), str(compressed)], check=True, timeout=60)
    result = storescu(node_of(listener), [compressed], option)
    assert result.returncode == 0, result.stderr
    [series] = list_inbox(listener.inbox)
    [arrived] = series_files(series.folder)
    assert dataset_bytes(arrived) == dataset_bytes(compressed)
    np.testing.assert_array_equal(read_scan(arrived).voxels, read_scan(source).voxels)


def test_an_unsupported_sop_class_is_refused_with_a_status(listener, tmp_path, bundled_samples):
    capture = secondary_capture(tmp_path / "capture.dcm")
    result = storescu(node_of(listener), [capture])
    assert result.returncode != 0 and "no presentation context" in result.stderr.lower()
    report = send_files(collect_files([capture]), node_of(listener), timeout=TIMEOUT_S)
    [refused] = report.results
    assert not refused.stored and refused.detail == "refused: the node does not accept Secondary Capture Image Storage"
    assert list_inbox(listener.inbox) == []
    assert echo(node_of(listener), "AIMEDX", TIMEOUT_S) > 0  # still serving
    assert storescu(node_of(listener), ge_files(bundled_samples)[:2]).returncode == 0


def test_two_senders_at_once_both_succeed(listener, bundled_samples, synthetic_ge_series):
    node = node_of(listener)
    args = [require("storescu"), "-aec", node.aet, node.host, str(node.port)]
    senders = [
        subprocess.Popen([*args, *map(str, files)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for files in (ge_files(bundled_samples), synthetic_ge_series)
    ]
    for sender in senders:
        _, stderr = sender.communicate(timeout=120)
        assert sender.returncode == 0, stderr
    inbox = list_inbox(listener.inbox)
    assert sorted((s.modality, s.files) for s in inbox) == [("CT", 28), ("MR", 28)]


def test_wrong_called_ae_title_and_calling_titles_off_the_allow_list_are_rejected(tmp_path, bundled_samples):
    lines: list[str] = []
    with StorageServer(tmp_path / "inbox", 0, bind=LOOPBACK, allow=["SCANNER"], log=lines.append) as server:
        one = ge_files(bundled_samples)[:1]
        called_wrong = storescu(Node("NOT_US", LOOPBACK, server.port), one, aet="SCANNER")
        assert called_wrong.returncode != 0 and "Called AE Title Not Recognized" in called_wrong.stderr
        not_allowed = storescu(Node(server.aet, LOOPBACK, server.port), one, aet="INTRUDER")
        assert not_allowed.returncode != 0 and "Calling AE Title Not Recognized" in not_allowed.stderr
        with pytest.raises(NetworkError, match="calling AE title AIMEDX not recognised .the node does not know us"):
            echo(Node(server.aet, LOOPBACK, server.port), "AIMEDX", TIMEOUT_S)
        assert storescu(Node(server.aet, LOOPBACK, server.port), one, aet="SCANNER").returncode == 0
    assert any("from INTRUDER" in line and "calling AE title INTRUDER not recognised" in line for line in lines)
    assert any("called AE title not recognised" in line for line in lines)
    assert [s.files for s in list_inbox(tmp_path / "inbox")] == [1]


def test_never_overwrites_a_file_it_did_not_write(listener, bundled_samples):
    source = ge_files(bundled_samples)[0]
    target = instance_path(listener.inbox, pydicom.dcmread(source, stop_before_pixels=True))
    target.parent.mkdir(parents=True)
    target.write_bytes(b"someone else's file")
    assert storescu(node_of(listener), [source]).returncode == 0
    assert target.read_bytes() == b"someone else's file"
    assert "already in the inbox" in listener.lines[-1]
    assert [p.name for p in target.parent.iterdir()] == [target.name]


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_uids_that_could_escape_the_inbox_are_refused(listener, tmp_path):
    capture = tmp_path / "evil.dcm"
    ds = pydicom.dcmread(secondary_capture(tmp_path / "base.dcm"))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
    ds.SeriesInstanceUID = "../../outside"
    ds.save_as(capture, enforce_file_format=True)
    [result] = send_files(collect_files([capture]), node_of(listener), timeout=TIMEOUT_S).results
    assert not result.stored and "0xC000" in result.detail and "not a valid UID" in result.detail
    assert not any(tmp_path.rglob("outside*")) and list_inbox(listener.inbox) == []


def test_stopping_aborts_an_open_association(tmp_path):
    """A sender still associated when the listener stops learns it at once (an A-ABORT), rather
    than from a connection that dies with the process."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    idle_timeout_s = 60.0  # far longer than the test waits: the abort, not a timeout, must end it
    server = StorageServer(tmp_path / "inbox", 0, bind=LOOPBACK, timeout=idle_timeout_s).start()
    try:
        sender = AE(ae_title="SENDER")
        sender.network_timeout = idle_timeout_s
        sender.add_requested_context(Verification)
        association = sender.associate(LOOPBACK, server.port, ae_title=server.aet)
        assert association.is_established
    finally:
        server.stop()
    association.join(TIMEOUT_S)
    assert association.is_aborted, "the association outlived the listener"
    server.stop()  # safe twice


def test_a_connection_that_falls_silent_mid_message_is_closed_after_the_timeout(tmp_path):
    """One byte of a PDU, then nothing: it held one of the listener's association slots for good."""
    import socket
    import time

    with StorageServer(tmp_path / "inbox", 0, bind=LOOPBACK, timeout=1.0) as server:
        with socket.create_connection((LOOPBACK, server.port)) as half_dead:
            half_dead.sendall(b"\x01")
            half_dead.settimeout(10.0)
            started = time.monotonic()
            assert half_dead.recv(100) == b""  # the listener closed it
            assert time.monotonic() - started < 5.0
