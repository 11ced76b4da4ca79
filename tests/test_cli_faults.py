"""`aimedx` under faults: bad options and outputs refused before the translation, OS errors as
sentences, terminating signals that clean up, and real bugs that land in the log."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from file_size_limit import run_limited
from PIL import Image

from aimedx_desktop import error_log
from aimedx_desktop.cli import main
from aimedx_desktop.engine.io import dicom_writer


@pytest.fixture
def mr_png(tmp_path) -> Path:
    rows, cols = np.mgrid[:80, :64]
    path = tmp_path / "in" / "brain_mr.png"
    path.parent.mkdir()
    Image.fromarray(np.clip(200 - 2.5 * np.hypot(rows - 40, cols - 32), 0, 255).astype(np.uint8)).save(path)
    return path


def convert(args: list[str], bundle: Path) -> list[str]:
    return ["convert", *args, "--model", str(bundle)]


def one_error_line(capsys) -> str:
    """The one `error:` line on stderr (progress and warnings aside), without a traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err and "\x1b[" not in err, err
    return lines[0]


@pytest.mark.parametrize("device", ["nonsense", "cuda:99", "cpu:0"])
def test_an_unknown_device_is_one_line_naming_the_choices(tiny_bundle_dir, mr_png, tmp_path, capsys, device):
    code = main(convert([str(mr_png), "--out", str(tmp_path / "o"), "--device", device], tiny_bundle_dir))
    line = one_error_line(capsys)
    assert code == 1 and device in line and ("auto, cpu, cuda or cuda:N" in line or "GPU" in line)


@pytest.mark.parametrize(
    ("make_out", "reason"),
    [
        (lambda d: (d / "a_file").write_text("x") and d / "a_file", "it is a file, not a folder"),
        (lambda d: Path(os.devnull), "it is a device or a pipe, not a folder"),
        (lambda d: Path("/sys/aimedx-out"), "cannot write to /sys/aimedx-out: "),  # refused even to root
        (lambda d: d / ("n" * 300) / "out", "the name is too long"),
        (lambda d: d / "in", "holds the source images"),
    ],
    ids=["file", "dev-null", "unwritable", "name-too-long", "source-folder"],
)
def test_an_unusable_output_is_refused_before_translating(tiny_bundle_dir, mr_png, tmp_path, capsys, make_out, reason):
    out = make_out(tmp_path)
    assert main(convert([str(mr_png), "--input-modality", "mr", "--out", str(out)], tiny_bundle_dir)) == 1
    err = capsys.readouterr().err
    assert "converting" not in err  # refused before the translation, not after it
    assert [reason in line for line in err.splitlines() if line.startswith("error: ")] == [True], err
    assert sorted(p.name for p in mr_png.parent.iterdir()) == ["brain_mr.png"]


def test_a_full_disk_is_a_plain_sentence_and_leaves_nothing(tiny_bundle_dir, mr_png, tmp_path):
    """A real refusal by the kernel: a file-size limit (EFBIG; Python ignores SIGXFSZ)."""
    out = tmp_path / "out"
    args = convert([str(mr_png), "--input-modality", "mr", "--out", str(out), "--format", "dicom"], tiny_bundle_dir)
    code, errors, stderr = run_limited(args, max_file_bytes=4096, timeout=120)
    assert code == 1 and errors == [
        f"error: cannot write {out / 'synthetic_ct_0001.dcm'}: the file is larger than this disk or account allows"
    ], stderr
    assert "Errno" not in stderr and list(out.iterdir()) == []


def test_a_deidentified_export_of_burned_in_text_is_refused_before_translating(tiny_bundle_dir, bundled_samples, tmp_path, capsys):
    import pydicom

    source = tmp_path / "burned"
    source.mkdir()
    for path in sorted((bundled_samples / "head_ct_ge").glob("*.dcm"))[:2]:
        dataset = pydicom.dcmread(path)
        dataset.BurnedInAnnotation = "YES"
        dataset.save_as(source / path.name)
    args = convert([str(source), "--out", str(tmp_path / "out"), "--format", "dicom", "--deidentify"], tiny_bundle_dir)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "burned-in annotation" in err and "converting" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_a_terminating_signal_during_export_removes_the_staged_files(
    tiny_bundle_dir, bundled_samples, tmp_path, capsys, monkeypatch, stop
):
    real_write = dicom_writer.DicomSeriesWriter.write

    def write_then_get_stopped(self, index, path):
        real_write(self, index, path)
        if index == 2:  # three staged files exist now
            assert len(list(path.parent.glob(".synthetic_*.partial"))) == 3
            os.kill(os.getpid(), stop)

    monkeypatch.setattr(dicom_writer.DicomSeriesWriter, "write", write_then_get_stopped)
    out = tmp_path / "out"
    code = main(convert([str(bundled_samples / "head_ct_ge"), "--out", str(out), "--format", "dicom"], tiny_bundle_dir))
    assert code == 128 + stop
    assert list(out.iterdir()) == []  # nothing staged is left behind, nothing half-written
    assert f"stopped by {signal.Signals(stop).name}" in capsys.readouterr().err
    assert signal.getsignal(stop) is signal.SIG_DFL  # main put the previous handler back


def test_an_injected_bug_lands_in_the_log(tiny_bundle_dir, mr_png, tmp_path, capsys, monkeypatch, log_home):
    from aimedx_desktop.engine import translator

    def bug(self, *args, **kwargs):
        return 1 / 0

    monkeypatch.setattr(translator.Translator, "translate", bug)
    out = tmp_path / "out"
    assert main(convert([str(mr_png), "--input-modality", "mr", "--out", str(out)], tiny_bundle_dir)) == 1
    log = log_home / "aimedx.log"
    assert one_error_line(capsys) == f"error: internal error, details in {log}"
    text = log.read_text()
    assert "internal error in aimedx convert" in text and "Traceback" in text
    assert "ZeroDivisionError: division by zero" in text and "return 1 / 0" in text
    assert "--input-modality" not in text  # no command-line options (a patient ID could be one)


def test_the_log_rotates(tmp_path, monkeypatch, log_home):
    monkeypatch.setattr(error_log, "MAX_LOG_BYTES", 2000)
    for attempt in range(4):
        try:
            raise RuntimeError(f"bug {attempt} " + "x" * 1000)
        except RuntimeError as error:
            assert error_log.log_internal_error(error, "a test") == log_home / "aimedx.log"
    assert sorted(p.name for p in log_home.iterdir()) == ["aimedx.log", "aimedx.log.1", "aimedx.log.2", "aimedx.log.3"]
    assert "bug 3" in (log_home / "aimedx.log").read_text()


def test_user_errors_are_not_logged(tiny_bundle_dir, tmp_path, capsys, log_home):
    assert main(convert([str(tmp_path / "missing.dcm"), "--out", str(tmp_path / "o")], tiny_bundle_dir)) == 1
    assert "missing.dcm: no such file or folder" in one_error_line(capsys)
    assert not log_home.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--ngf", "1000"], "generator option ngf must be a whole number in [1, 256], not 1000"),
        (["--crop-size", "250"], "--crop-size must be a multiple of 4"),
        (["--uncertainty"], "--uncertainty learns from pairs: add --paired"),
        (["--ct-window", "100", "-100"], "empty intensity window"),
    ],
)
def test_bad_training_options_are_one_line(tmp_path, capsys, log_home, options, message):
    code = main(["train", "--ct", str(tmp_path), "--mr", str(tmp_path), "--out", str(tmp_path / "run"), *options])
    assert code == 1 and message in one_error_line(capsys)
    assert not log_home.exists()


@pytest.mark.parametrize("options, message", [
    (["--slices", "0"], "--slices must be from 1 to 1024, not 0"),
    (["--slices", "1000000"], "--slices must be from 1 to 1024, not 1000000"),
    (["--threads", "-1"], "--threads must be at least 1, not -1"),
])
def test_bad_bench_options_are_one_line(tiny_bundle_dir, capsys, log_home, options, message):
    assert main(["bench", "--model", str(tiny_bundle_dir), *options]) == 1
    assert message in one_error_line(capsys) and not log_home.exists()


@pytest.mark.parametrize("window, message", [
    (["40", "inf"], "argument --window: not a finite number: 'inf'"),
    (["nan", "400"], "argument --window: not a finite number: 'nan'"),
    (["40", "0"], "--window: the width must be positive, not 0"),
])
def test_a_bad_window_is_refused_before_translating(tiny_bundle_dir, mr_png, tmp_path, capsys, log_home, window, message):
    try:
        code = main(["convert", str(mr_png), "--input-modality", "mr", "--out", str(tmp_path / "out"), "--model",
                     str(tiny_bundle_dir), "--window", *window])
    except SystemExit as usage_error:  # argparse's own refusal
        code = usage_error.code
    err = capsys.readouterr().err
    assert code in (1, 2) and message in err and "converting" not in err and not (tmp_path / "out").exists()
