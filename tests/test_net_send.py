"""Sending (C-STORE SCU) against dcmtk's storescp on loopback: what arrives, and every way it fails."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time

import pydicom
import pytest
from net_peers import LOOPBACK, dataset_bytes, free_port, require, storescp, wait_until
from pydicom.uid import JPEGLosslessSV1

from aimedx_desktop.engine.cancel import CancelToken, Cancelled
from aimedx_desktop.engine.io.errors import ScanReadError
from aimedx_desktop.engine.net.association import echo
from aimedx_desktop.engine.net.errors import NetworkError
from aimedx_desktop.engine.net.nodes import Node
from aimedx_desktop.engine.net.send import collect_files, send_files

TIMEOUT_S = 5.0


def received(folder) -> dict[str, object]:
    """storescp's files by SOP Instance UID."""
    return {path.name.split(".", 1)[1]: path for path in folder.iterdir() if path.name[:3] in ("CT.", "MR.")}


def test_the_synthetic_ge_series_arrives_identical_and_valid(synthetic_ge_series, tmp_path):
    from test_export_dicom import dciodvfy_errors

    assert len(synthetic_ge_series) == 28
    progress = []
    with storescp(tmp_path / "scp") as node:
        report = send_files(collect_files([synthetic_ge_series[0].parent]), node, timeout=TIMEOUT_S,
                            progress=lambda done, total: progress.append((done, total)))
    assert report.complete and report.stored == 28 and "stored 28 of 28" in report.summary()
    assert progress[-1] == (28, 28)
    arrived = received(tmp_path / "scp")
    assert len(arrived) == 28
    for path in synthetic_ge_series:
        uid = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
        assert dataset_bytes(arrived[uid]) == dataset_bytes(path), path.name
    errors = {path.name: dciodvfy_errors(path) for path in arrived.values()}
    assert not any(errors.values()), errors


def test_echo_verifies_a_node_and_names_what_is_wrong(tmp_path):
    closed = Node("STORESCP", LOOPBACK, free_port())
    with pytest.raises(NetworkError, match="connection refused"):
        echo(closed, "AIMEDX", TIMEOUT_S)
    with pytest.raises(NetworkError, match="cannot find the host"):
        echo(Node("PACS", "no-such-host.invalid", 104), "AIMEDX", TIMEOUT_S)
    with storescp(tmp_path / "scp") as node:
        assert 0 < echo(node, "AIMEDX", TIMEOUT_S) < TIMEOUT_S


def test_a_refused_association_is_said_and_nothing_is_stored(tmp_path, bundled_samples):
    files = collect_files([bundled_samples / "head_ct_ge" / "01.dcm"])
    with storescp(tmp_path / "scp", "--refuse") as node:
        with pytest.raises(NetworkError, match="rejected the association"):
            send_files(files, node, timeout=TIMEOUT_S)
    assert not received(tmp_path / "scp")


def test_a_silent_peer_times_out_with_a_message(bundled_samples):
    """A port that accepts TCP but never answers the association request (a hung node)."""
    with socket.socket() as silent:
        silent.bind((LOOPBACK, 0))
        silent.listen()
        node = Node("HUNG", LOOPBACK, silent.getsockname()[1])
        with pytest.raises(NetworkError, match="no answer to the association request within 1 s"):
            send_files(collect_files([bundled_samples / "head_ct_ge" / "01.dcm"]), node, timeout=1.0)


def test_a_peer_that_falls_silent_in_the_middle_of_its_answer_times_out(bundled_samples):
    """Two bytes of an A-ASSOCIATE-AC, then nothing (a dropped link): without a read timeout on
    the socket, pynetdicom waited for the rest for ever, and so did the app."""
    with socket.socket() as stalled:
        stalled.bind((LOOPBACK, 0))
        stalled.listen()
        answered = threading.Event()

        def answer_two_bytes() -> None:
            connection, _ = stalled.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"\x02\x00")
                answered.set()
                time.sleep(6)

        threading.Thread(target=answer_two_bytes, daemon=True).start()
        started = time.monotonic()
        with pytest.raises(NetworkError, match="no answer to the association request within 1 s"):
            echo(Node("STALLED", LOOPBACK, stalled.getsockname()[1]), "AIMEDX", 1.0)
        assert answered.is_set() and time.monotonic() - started < 5


@pytest.mark.parametrize("accepts_big_endian", [True, False])
def test_a_big_endian_file_is_sent_as_it_is_or_refused_on_its_own(tmp_path, bundled_samples, accepts_big_endian):
    """pynetdicom converts between the little-endian syntaxes only: a Big Endian file offered in
    the little-endian context stopped the whole send with an internal error."""
    files = sorted((bundled_samples / "head_ct_ge").glob("*.dcm"))[:2]
    big_endian = tmp_path / "big_endian.dcm"
    subprocess.run([require("dcmconv"), "+tb", str(files[0]), str(big_endian)], check=True, capture_output=True, timeout=60)
    options = () if accepts_big_endian else ("+xi",)  # +xi: implicit little endian only
    with storescp(tmp_path / "received", *options) as node:
        report = send_files(collect_files([big_endian, files[1]]), node, timeout=TIMEOUT_S)
    outcome = {result.path.name: (result.stored, result.detail) for result in report.results}
    assert outcome[files[1].name] == (True, "stored")
    if accepts_big_endian:
        assert outcome["big_endian.dcm"] == (True, "stored")
    else:
        assert outcome["big_endian.dcm"] == (False, "refused: the node does not accept CT Image Storage in Explicit VR Big Endian")


def test_a_transfer_syntax_the_node_refuses_is_reported_per_file(tmp_path, bundled_samples):
    compressed = tmp_path / "jpeg_lossless.dcm"
    subprocess.run([require("dcmcjpeg"), "+e1", str(bundled_samples / "head_ct_ge" / "03.dcm"), str(compressed)],
                   check=True, timeout=60)
    plain = [bundled_samples / "head_ct_ge" / name for name in ("01.dcm", "02.dcm")]
    files = collect_files([*plain, compressed])
    assert files[-1].transfer_syntax == JPEGLosslessSV1
    with storescp(tmp_path / "scp") as node:  # storescp's default: uncompressed syntaxes only
        report = send_files(files, node, timeout=TIMEOUT_S)
    assert [r.stored for r in report.results] == [True, True, False]
    assert "does not accept CT Image Storage in JPEG Lossless" in report.results[-1].detail
    assert not report.complete and "1 not stored" in report.summary()
    assert len(received(tmp_path / "scp")) == 2


def test_a_peer_aborting_on_the_first_file_leaves_nothing_reported_stored(tmp_path, bundled_samples):
    files = collect_files([bundled_samples / "head_ct_ge"])
    confirmed = []
    with storescp(tmp_path / "scp", "--abort-after") as node:
        with pytest.raises(NetworkError, match="0 of 28 file.s. stored, 28 not stored"):
            send_files(files, node, timeout=TIMEOUT_S, on_result=confirmed.append)
    assert confirmed == []


def test_a_peer_dying_halfway_reports_only_what_it_confirmed(tmp_path, bundled_samples):
    files = collect_files([bundled_samples / "head_ct_ge"])
    out = tmp_path / "scp"
    confirmed, outcome = [], {}

    def run(node: Node) -> None:
        try:
            send_files(files, node, timeout=TIMEOUT_S, on_result=confirmed.append)
        except NetworkError as error:
            outcome["error"] = str(error)

    with storescp(out, "--sleep-after", "1") as node:  # one file a second: time to pull the plug
        sender = threading.Thread(target=run, args=(node,))
        sender.start()
        wait_until(lambda: len(received(out)) >= 3, "three files at storescp")
    sender.join(timeout=30)
    assert not sender.is_alive()
    stored = [result.path for result in confirmed if result.stored]
    assert 2 <= len(stored) < 28
    assert f"{len(stored)} of 28 file(s) stored, {28 - len(stored)} not stored" in outcome["error"]
    arrived = set(received(out))
    for path in stored:  # everything reported stored is at the peer
        assert pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID in arrived


def test_cancel_aborts_between_files(tmp_path, bundled_samples):
    files = collect_files([bundled_samples / "head_ct_ge"])
    token = CancelToken()
    confirmed = []

    def cancel_after_three(result) -> None:
        confirmed.append(result)
        if len(confirmed) == 3:
            token.cancel()

    with storescp(tmp_path / "scp") as node:
        with pytest.raises(Cancelled):
            send_files(files, node, timeout=TIMEOUT_S, cancel=token, on_result=cancel_after_three)
    assert len(confirmed) == 3 and all(result.stored for result in confirmed)
    assert len(received(tmp_path / "scp")) == 3


def test_collect_files_skips_non_dicom_in_folders_but_not_when_named(tmp_path, bundled_samples):
    folder = tmp_path / "mixed"
    shutil.copytree(bundled_samples / "head_ct_ge", folder)
    (folder / ".hidden.dcm").write_bytes((folder / "01.dcm").read_bytes())
    files = collect_files([folder])
    assert len(files) == 28 and all(item.path.suffix == ".dcm" for item in files)
    with pytest.raises(ScanReadError, match="LICENSE-dcm_qa_ct.txt: not a DICOM file"):
        collect_files([folder / "LICENSE-dcm_qa_ct.txt"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ScanReadError, match="empty: no DICOM files to send"):
        collect_files([empty])
