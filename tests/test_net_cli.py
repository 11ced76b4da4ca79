"""`aimedx send / echo / listen / fetch` and `convert --send`: output, exit codes, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from net_peers import LOOPBACK, dcmqrscp, free_port, ge_files, require, storescp, storescu, wait_until

from aimedx_desktop.cli import main
from aimedx_desktop.engine.net.inbox import list_inbox
from aimedx_desktop.engine.net.nodes import Node

REPO_ROOT = Path(__file__).resolve().parent.parent
GE_PATIENT = "QMNx85rKkkg"


AS_FROM_A_TERMINAL = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('aimedx_desktop', run_name='__main__')"
)
"""`python -m aimedx_desktop` with Ctrl-C raising KeyboardInterrupt, as when typed at a terminal.

A test run started as a background job of a script (`pytest &`) inherits SIGINT ignored, and so
would the command: Python keeps an inherited SIG_IGN for SIGINT, rightly, so that such jobs
survive the terminal's Ctrl-C. The Ctrl-C tests are about the terminal case."""


def aimedx(*args: str) -> subprocess.Popen:
    """`aimedx ARGS` from this checkout, output captured."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", AS_FROM_A_TERMINAL, *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stored_lines(stdout: str) -> list[str]:
    return [line.split(None, 1)[1] for line in stdout.splitlines() if line.startswith("stored ") and " of " not in line]


def test_send_a_folder_to_storescp(tmp_path, bundled_samples, capsys):
    with storescp(tmp_path / "scp") as node:
        code = main(["send", str(bundled_samples / "head_ct_ge"), "--to", node.address, "--timeout", "5"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert len(stored_lines(out)) == 28 and f"stored 28 of 28 file(s) on {node.address}" in out
    assert "sending 28 file(s)" in err and "28/28 100%" in err
    assert len(list((tmp_path / "scp").glob("CT.*"))) == 28


def test_send_errors_are_one_line_with_exit_status_1(tmp_path, bundled_samples, capsys):
    one = str(bundled_samples / "head_ct_ge" / "01.dcm")
    cases = [
        (["send", one, "--to", f"PACS@{LOOPBACK}:{free_port()}"], "connection refused"),
        (["send", one, "--to", "PACS@host"], "is not a DICOM node"),
        (["send", str(bundled_samples / "head_ct_ge" / "LICENSE-dcm_qa_ct.txt"), "--to", "PACS@host:104"], "not a DICOM file"),
        (["send", one, "--to", "PACS@host:104", "--calling-aet", "MUCH_TOO_LONG_TITLE"], "longer than 16"),
        (["echo", f"PACS@{LOOPBACK}:{free_port()}"], "connection refused"),
    ]
    for argv, reason in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.splitlines()[-1].startswith("error: ") and reason in err.splitlines()[-1], err
        assert "Traceback" not in err


def test_a_partly_refused_send_exits_1_and_says_which_files(tmp_path, bundled_samples, capsys):
    compressed = tmp_path / "jpeg.dcm"
    subprocess.run([require("dcmcjpeg"), "+e1", str(bundled_samples / "head_ct_ge" / "02.dcm"), str(compressed)], check=True, timeout=60)
    with storescp(tmp_path / "scp") as node:
        code = main(["send", str(bundled_samples / "head_ct_ge" / "01.dcm"), str(compressed), "--to", node.address])
        assert main(["echo", node.address]) == 0
    out, err = capsys.readouterr()
    assert code == 1
    assert f"NOT STORED  {compressed}  (refused: the node does not accept CT Image Storage in JPEG Lossless" in out
    assert "stored 1 of 2 file(s)" in out and "error: 1 of 2 file(s) not stored" in err
    assert f"{node.address} answered the C-ECHO in" in out


@pytest.mark.parametrize("stop, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_send_reports_only_what_the_node_confirmed(tmp_path, bundled_samples, stop, status):
    out = tmp_path / "scp"
    with storescp(out, "--sleep-after", "1") as node:
        sender = aimedx("send", str(bundled_samples / "head_ct_ge"), "--to", node.address)
        wait_until(lambda: len(list(out.glob("CT.*"))) >= 2, "two files at storescp")
        sender.send_signal(stop)
        stdout, stderr = sender.communicate(timeout=30)
        arrived = {path.name.split(".", 1)[1] for path in out.glob("CT.*")}
    assert sender.returncode == status, stderr
    stored = stored_lines(stdout)
    assert 1 <= len(stored) < 28
    assert f"cancelled: {len(stored)} of 28 file(s) stored on {node.address}, {28 - len(stored)} not stored" in stderr
    assert {pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID for path in stored} <= arrived
    assert "Traceback" not in stderr


def test_convert_then_send_the_new_series(tmp_path, bundled_samples, tiny_bundle_dir, capsys):
    convert = ["convert", str(bundled_samples / "head_ct_ge"), "--out", str(tmp_path / "out"), "--model", str(tiny_bundle_dir)]
    assert main([*convert, "--send", "PACS@host:104"]) == 1
    assert "--send sends a DICOM series: add --format dicom" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before converting
    assert main([*convert, "--format", "dicom", "--send", "PACS@host:104", "--calling-aet", "MUCH_TOO_LONG_TITLE"]) == 1
    assert "longer than 16" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with storescp(tmp_path / "scp") as node:
        code = main([*convert, "--format", "dicom", "--send", node.address])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "wrote 28 DICOM file(s)" in out and f"stored 28 of 28 file(s) on {node.address}" in out
    assert len(list((tmp_path / "scp").glob("MR.*"))) == 28


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_listen_receives_until_stopped(tmp_path, bundled_samples, stop):
    port, inbox = free_port(), tmp_path / "inbox"
    listener = aimedx("listen", "--port", str(port), "--inbox", str(inbox), "--bind", LOOPBACK, "--allow", "STORESCU")
    try:
        assert "listening as AIMEDX on" in listener.stderr.readline()
        result = storescu(Node("AIMEDX", LOOPBACK, port), ge_files(bundled_samples))
        assert result.returncode == 0, result.stderr
    finally:
        listener.send_signal(stop)
        stdout, stderr = listener.communicate(timeout=30)
    assert listener.returncode == 0, stderr
    assert stdout.count("received CT") == 28 and "stopped: 28 object(s) received" in stderr
    assert [s.files for s in list_inbox(inbox)] == [28]


def test_listen_on_a_port_in_use_says_so(tmp_path, capsys):
    with storescp(tmp_path / "scp") as node:
        code = main(["listen", "--port", str(node.port), "--inbox", str(tmp_path / "inbox")])
    assert code == 1 and "the port is in use" in capsys.readouterr().err


def test_fetch_lists_and_retrieves_from_dcmqrscp(tmp_path, bundled_samples, capsys):
    with dcmqrscp(tmp_path / "qr") as node:
        assert storescu(node, ge_files(bundled_samples)).returncode == 0
        assert main(["fetch", "--from", node.address, "--patient-id", GE_PATIENT, "--list"]) == 0
        listed = capsys.readouterr().out
        assert main(["fetch", "--from", node.address, "--patient-id", GE_PATIENT, "--inbox", str(tmp_path / "inbox")]) == 0
        fetched = capsys.readouterr().out
        assert main(["fetch", "--from", node.address, "--patient-id", "NOBODY", "--inbox", str(tmp_path / "inbox")]) == 1
        nothing = capsys.readouterr().err
        (tmp_path / "a_file").write_text("")
        assert main(["fetch", "--from", node.address, "--patient-id", GE_PATIENT, "--inbox", str(tmp_path / "a_file")]) == 1
        not_a_folder = capsys.readouterr().err
    assert f"[{GE_PATIENT}]" in listed and "  CT  " in listed
    assert "retrieved 28 image(s) of 1 series" in fetched
    assert [s.files for s in list_inbox(tmp_path / "inbox")] == [28]
    assert f"error: {node.address} has no study of patient ID 'NOBODY'" in nothing
    assert f"error: cannot use the inbox {tmp_path / 'a_file'}: it is a file, not a folder" in not_a_folder


@pytest.mark.parametrize("command", [["echo", "PACS@host:104"], ["listen", "--port", "11112", "--inbox", "inbox"]])
@pytest.mark.parametrize("value", ["0", "-5", "inf", "1e10", "soon"])
def test_a_timeout_must_be_a_positive_number_of_seconds_up_to_a_day(command, value, capsys):
    """pynetdicom would take 0 or less as "wait forever"; 1e10 s overflows the socket's timer."""
    with pytest.raises(SystemExit) as stop:
        main([*command, "--timeout", value])
    assert stop.value.code == 2
    assert "--timeout" in capsys.readouterr().err
