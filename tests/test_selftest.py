"""`aimedx --self-test` on a tiny bundle and a tiny DICOM sample in a temporary resources folder."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from aimedx_desktop import cli
from aimedx_desktop.engine.bundle import save_bundle
from aimedx_desktop.engine.io.export import export_scan
from aimedx_desktop.engine.scan import Provenance
from aimedx_desktop.selftest import run_self_test


@pytest.fixture
def resources(tmp_path, monkeypatch, tiny_bundle, ct_scan) -> Path:
    """AIMEDX_RESOURCES with models/default (the tiny bundle) and samples/tiny_ct (5 CT slices)."""
    root = tmp_path / "resources"
    save_bundle(tiny_bundle, root / "models" / "default")
    # export_scan writes only synthetic scans; as an input sample the label does not matter.
    labelled = dataclasses.replace(ct_scan, provenance=Provenance(synthetic=True, model_name="fixture"))
    export_scan(labelled, root / "samples" / "tiny_ct", fmt="dicom")
    (root / "samples" / "tiny_ct" / "LICENSE.txt").write_text("made by the test\n")
    monkeypatch.setenv("AIMEDX_RESOURCES", str(root))
    return root


def test_passes_and_prints_one_line(resources, capsys):
    assert cli.main(["--self-test"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("self-test passed: model tiny-test 0.0.1, 4 slices CT→MR in ")
    assert "PNG+DICOM written and read back" in line
    assert "JPEG/JPEG 2000 decoders ok" in line
    assert "main window" in line


def test_without_a_model_it_fails_naming_the_step(resources, capsys):
    for path in (resources / "models" / "default").iterdir():
        path.unlink()
    assert cli.main(["--self-test"]) == 1
    line = capsys.readouterr().out.strip()
    assert line.startswith("self-test FAILED: model: no default model is bundled")


def test_without_a_sample_it_fails_naming_the_step(resources):
    for path in (resources / "samples" / "tiny_ct").iterdir():
        path.unlink()
    passed, line = run_self_test(check_window=False)
    assert not passed
    assert line.startswith("self-test FAILED: sample: ")


def test_without_the_desktop_interface_the_window_is_skipped(resources, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "PySide6" else real_find_spec(name, *a))
    passed, line = run_self_test(slices=1)
    assert passed, line
    assert line.endswith("DICOM network ok, main window skipped (desktop interface not installed: PySide6)")


def test_a_desktop_interface_that_cannot_load_fails_the_window_step(resources, monkeypatch):
    """PySide6 installed but a system library missing: the app would not start, so neither may the test pass."""
    monkeypatch.setitem(sys.modules, "aimedx_desktop.ui.main_window", None)  # its import fails
    passed, line = run_self_test(slices=1)
    assert not passed and line.startswith("self-test FAILED: main window: "), line


def test_self_test_takes_no_other_arguments(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--self-test", "info"])
    assert stop.value.code == 2
    assert "--self-test takes no other arguments" in capsys.readouterr().err


def test_a_broken_engine_fails_the_model_step_in_one_line(resources, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "aimedx_desktop.engine.bundle", None)  # as a frozen build missing torch
    assert cli.main(["--self-test"]) == 1
    line = capsys.readouterr().out.strip()
    assert line.startswith("self-test FAILED: model: ")


def test_an_unwritable_temporary_folder_fails_the_export_step(resources, monkeypatch, tmp_path):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "missing"))  # as a TMPDIR that went away
    passed, line = run_self_test(slices=1, check_window=False)
    assert not passed
    assert line.startswith("self-test FAILED: export: ")
