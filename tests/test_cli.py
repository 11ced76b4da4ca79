"""The `aimedx` command end to end with a tiny bundle: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aimedx_desktop.cli import main
from aimedx_desktop.engine.io import read_scan


@pytest.fixture
def mr_png(tmp_path) -> Path:
    rows, cols = np.mgrid[:80, :64]
    image = np.clip(200 - 2.5 * np.hypot(rows - 40, cols - 32), 0, 255).astype(np.uint8)
    path = tmp_path / "brain_mr.png"
    Image.fromarray(image).save(path)
    return path


def test_convert_png_to_synthetic_ct_png(tiny_bundle_dir, mr_png, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["convert", str(mr_png), "--to", "ct", "--out", str(out), "--model", str(tiny_bundle_dir), "--input-modality", "mr"])
    assert code == 0
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["synthetic_ct_0001.png"]
    assert Image.open(files[0]).size == (64, 80)
    assert "wrote 1 PNG" in capsys.readouterr().out


def test_convert_to_dicom_reads_back_as_synthetic_series(tiny_bundle_dir, mr_png, tmp_path):
    out = tmp_path / "dcm"
    assert main(["convert", str(mr_png), "--out", str(out), "--format", "dicom", "--model", str(tiny_bundle_dir), "--input-modality", "mr"]) == 0
    scan = read_scan(out)
    assert scan.modality.value == "CT" and scan.shape == (1, 80, 64)
    assert "SYNTHETIC" in str(scan.dicom_headers[0].SeriesDescription)


def test_convert_refuses_to_overwrite_before_translating(tiny_bundle_dir, mr_png, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["convert", str(mr_png), "--out", str(out), "--model", str(tiny_bundle_dir), "--input-modality", "mr"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--overwrite" in err and err.count("\n") == 1
    assert main(args + ["--overwrite"]) == 0


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda d: d / "missing.dcm", "missing.dcm"),
        (lambda d: (d / "broken.png").write_bytes(b"\x89PNG not really") and d / "broken.png", "broken.png"),
    ],
)
def test_bad_input_is_one_line_error(tiny_bundle_dir, tmp_path, capsys, make_input, message):
    path = make_input(tmp_path)
    code = main(["convert", str(path), "--out", str(tmp_path / "o"), "--model", str(tiny_bundle_dir)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_bad_model_is_one_line_error(mr_png, tmp_path, capsys):
    assert main(["convert", str(mr_png), "--out", str(tmp_path / "o"), "--model", str(tmp_path)]) == 1
    assert "not a model bundle" in capsys.readouterr().err


def test_missing_default_model_is_explained(mr_png, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AIMEDX_RESOURCES", str(tmp_path / "empty"))
    assert main(["convert", str(mr_png), "--out", str(tmp_path / "o")]) == 1
    assert "no default model is bundled" in capsys.readouterr().err


def test_info_lists_the_bundle(tiny_bundle_dir, capsys):
    assert main(["info", "--model", str(tiny_bundle_dir)]) == 0
    out = capsys.readouterr().out
    assert "tiny-test 0.0.1" in out and "not for diagnosis" in out


def test_evaluate_writes_the_documented_json_and_records_in_the_card(tiny_bundle_dir, tmp_path, capsys):
    import shutil

    model = shutil.copytree(tiny_bundle_dir, tmp_path / "model")
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:64, :64]
    head = np.hypot(rows - 32, cols - 32) < 26
    for folder, level in (("CT", 120), ("MR", 170)):
        (tmp_path / folder).mkdir()
        for i in range(3):
            image = np.where(head, level + rng.normal(0, 10, head.shape), 0)
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(tmp_path / folder / f"{i:05d}.png")
    report = tmp_path / "report.json"
    code = main(["evaluate", "--model", str(model), "--ct", str(tmp_path / "CT"), "--mr", str(tmp_path / "MR"),
                 "--include", "0000[01].png", "--json", str(report)])
    assert code == 0
    result = json.loads(report.read_text())
    for direction in ("mr2ct", "ct2mr"):
        assert set(result[direction]) == {"mae", "mean_error", "psnr", "ssim", "pearson", "ssim_whole", "psnr_whole", "n"}
        assert result[direction]["n"] == 2
        assert set(result["baselines"][direction]) == {"input", "mean_target"}
    assert "baseline: input" in capsys.readouterr().out
    assert main(["evaluate", "--model", str(model), "--ct", str(tmp_path / "CT"), "--mr", str(tmp_path / "MR"), "--record"]) == 0
    card = json.loads((model / "model_card.json").read_text())
    assert card["metrics"]["pairs"] == 3 and card["metrics"]["mr2ct"]["n"] == 3 and "mean_target" in card["metrics"]["baselines"]["mr2ct"]
    assert "--record" in card["metrics"]["command"]
    capsys.readouterr()
    assert main(["info", "--model", str(model)]) == 0
    shown = capsys.readouterr().out
    assert "validation (3 slice pairs)" in shown and "baseline: mean_target" in shown


def test_evaluate_without_pairs_is_an_error(tiny_bundle_dir, mr_png, tmp_path, capsys):
    assert main(["evaluate", "--model", str(tiny_bundle_dir), "--ct", str(mr_png.parent), "--mr", str(tmp_path / "none")]) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_to_decides_the_source_when_nothing_says_the_modality(tiny_bundle_dir, mr_png, tmp_path, capsys):
    plain = mr_png.rename(tmp_path / "image.png")  # neither the name nor the file says what it is
    out = tmp_path / "out"
    assert main(["convert", str(plain), "--to", "mr", "--out", str(out), "--model", str(tiny_bundle_dir)]) == 0
    assert [p.name for p in out.iterdir()] == ["synthetic_mr_0001.png"]
    assert "taken as CT because --to mr" in capsys.readouterr().err


def test_a_guess_from_the_name_that_contradicts_to_stops(tiny_bundle_dir, tmp_path, capsys):
    """brain_mr.nii.gz with --to mr: guessed MR from its name; translating it 'as CT' would be wrong."""
    import nibabel as nib

    volume = tmp_path / "brain_mr.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((16, 16, 3)).astype(np.float32), np.eye(4)), volume)
    out = tmp_path / "out"
    assert main(["convert", str(volume), "--to", "mr", "--out", str(out), "--model", str(tiny_bundle_dir)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "converting" not in err
    assert err.startswith("error: brain_mr.nii.gz: its name suggests MR, but --to mr asks for MR output")
    assert "--input-modality" in err and not out.exists()
    assert main(["convert", str(volume), "--to", "mr", "--input-modality", "mr", "--out", str(out), "--model", str(tiny_bundle_dir)]) == 1
    assert "is MR (--input-modality mr says so): --to mr has nothing to translate" in capsys.readouterr().err


def test_record_needs_an_explicit_model(tmp_path, capsys):
    assert main(["evaluate", "--ct", str(tmp_path), "--mr", str(tmp_path), "--record"]) == 1
    assert "--model" in capsys.readouterr().err


def test_a_json_path_that_is_a_folder_is_refused_before_evaluating(tmp_path, tiny_bundle_dir, capsys):
    assert main(["evaluate", "--model", str(tiny_bundle_dir), "--ct", str(tmp_path), "--mr", str(tmp_path), "--json", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "that is a folder; name a file to write" in err and "no CT and MR inputs" not in err


def test_calibrating_a_model_without_uncertainty_is_refused_before_evaluating(tmp_path, tiny_bundle_dir, capsys):
    assert main(["evaluate", "--model", str(tiny_bundle_dir), "--ct", str(tmp_path), "--mr", str(tmp_path), "--calibrate"]) == 1
    err = capsys.readouterr().err
    assert "has no uncertainty output to calibrate" in err and "no CT and MR inputs" not in err


def test_cli_commands_other_than_train_need_no_torchvision(tmp_path):
    """The CPU app bundle ships torch without torchvision: only training may import it."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, *args):\n"
        "        if name.split('.')[0] == 'torchvision': raise ImportError('torchvision blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from aimedx_desktop.cli import main\n"
        "sys.exit(main(['info']))\n"
    )
    env = {"AIMEDX_RESOURCES": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-1000:]
    assert "bundled models: none" in done.stdout
