"""Real CycleGAN training steps on tiny data: loss goes down, resume is exact, DDP runs."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from file_size_limit import run_limited
from PIL import Image

from aimedx_desktop.cli import main
from aimedx_desktop.engine.bundle import load_bundle
from aimedx_desktop.engine.training import TrainConfig, load_run, train
from aimedx_desktop.engine.cancel import CancelToken, Cancelled
from aimedx_desktop.engine.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent


def _phantom_folders(root: Path, n: int = 6, size: int = 64) -> tuple[Path, Path]:
    """Unpaired-looking CT and MR PNG slices: ellipses with a bright rim (CT) or bright core (MR)."""
    rng = np.random.default_rng(3)
    rows, cols = np.mgrid[:size, :size]
    ct_dir, mr_dir = root / "CT", root / "MR"
    ct_dir.mkdir(parents=True)
    mr_dir.mkdir(parents=True)
    for i in range(n):
        a, b = rng.uniform(0.55, 0.8, 2) * size / 2
        r = np.hypot((rows - size / 2) / a, (cols - size / 2) / b)
        ct = np.where(r < 0.85, 110, np.where(r < 1.0, 255, 0)) + rng.normal(0, 4, r.shape) * (r < 1)
        mr = np.where(r < 0.85, 160 - 60 * r, np.where(r < 1.0, 30, 0)) + rng.normal(0, 4, r.shape) * (r < 1)
        Image.fromarray(np.clip(ct, 0, 255).astype(np.uint8)).save(ct_dir / f"{i:05d}.png")
        Image.fromarray(np.clip(mr, 0, 255).astype(np.uint8)).save(mr_dir / f"{i:05d}.png")
    return ct_dir, mr_dir


def _config(ct: Path, mr: Path, out: Path, **overrides) -> TrainConfig:
    options = dict(
        ct=[str(ct)], mr=[str(mr)], out=str(out), epochs=2, epochs_decay=2, crop_size=32, image_size=64,
        ngf=8, n_blocks=2, ndf=8, pool_size=4, ct_window=(-40.0, 150.0), seed=11, lr=1e-3,
    )
    options.update(overrides)
    return TrainConfig(**options)


def test_cycle_loss_goes_down_and_bundle_loads(tmp_path):
    ct, mr = _phantom_folders(tmp_path / "data", n=8)
    config = _config(ct, mr, tmp_path / "run", epochs=4, epochs_decay=2, val_ct=[str(ct)], val_mr=[str(mr)], val_include=["0000[01].png"])
    bundle = train(config)
    rows = list(csv.DictReader((tmp_path / "run" / "losses.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert float(rows[-1]["cycle"]) < float(rows[0]["cycle"])
    assert float(rows[-1]["lr"]) < float(rows[0]["lr"])  # the linear decay ran
    assert (tmp_path / "run" / "samples" / "epoch_006.png").is_file()
    loaded = load_bundle(tmp_path / "run" / "bundle")
    assert loaded.contract.ct.lo_hu == -40.0 and loaded.card["training"]["data"]["ct"]["slices"] == 8
    assert bundle is not None and loaded.card["training"]["epochs"] == 6
    metrics = loaded.card["metrics"]
    assert metrics["pairs"] == 2 and metrics["mr2ct"]["n"] == 2 and "input" in metrics["baselines"]["ct2mr"]


def test_resume_continues_the_schedule_exactly(tmp_path):
    ct, mr = _phantom_folders(tmp_path / "data")
    train(_config(ct, mr, tmp_path / "straight", epochs=1, epochs_decay=2))
    token = CancelToken()

    def stop_in_second_epoch(report):
        if report.epoch == 2:
            token.cancel()  # what Ctrl-C or the GUI's Cancel does

    with pytest.raises(Cancelled):
        train(_config(ct, mr, tmp_path / "resumed", epochs=1, epochs_decay=2), progress=stop_in_second_epoch, cancel=token)
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    train(load_run(tmp_path / "resumed"), resume=True)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    assert [r["lr"] for r in a["history"]] == [r["lr"] for r in b["history"]]
    for key, value in a["model"].items():
        assert torch.allclose(value, b["model"][key], atol=1e-6), key


def test_ctrl_c_while_a_checkpoint_is_saved_keeps_the_previous_one_and_one_row_per_epoch(tmp_path, monkeypatch):
    ct, mr = _phantom_folders(tmp_path / "data", n=4)
    run = tmp_path / "run"
    save = torch.save

    def interrupted_in_second_save(state, path, *args, **kwargs):
        save(state, path, *args, **kwargs)
        if isinstance(state, dict) and state.get("epoch") == 2:
            raise KeyboardInterrupt  # Ctrl-C as the file is written, before it replaces the last one

    monkeypatch.setattr(torch, "save", interrupted_in_second_save)
    with pytest.raises(KeyboardInterrupt):
        train(_config(ct, mr, run, epochs=1, epochs_decay=1))
    monkeypatch.undo()
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert [path.name for path in run.iterdir() if "partial" in path.name] == []
    assert [row["epoch"] for row in csv.DictReader((run / "losses.csv").open())] == ["1"]
    train(load_run(run), resume=True)
    assert [row["epoch"] for row in csv.DictReader((run / "losses.csv").open())] == ["1", "2"]


@pytest.mark.parametrize("epoch, advice", [
    (1, "interrupted before the first epoch finished: nothing to resume yet"),
    (2, "continue with: aimedx train --out"),
])
def test_ctrl_c_advises_resume_only_once_there_is_a_checkpoint(tmp_path, monkeypatch, capsys, epoch, advice):
    ct, mr = _phantom_folders(tmp_path / "data", n=2)

    def ctrl_c_during(report):
        if report.epoch == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr("aimedx_desktop.training_cli.print_progress", ctrl_c_during)
    args = ["train", "--ct", str(ct), "--mr", str(mr), "--out", str(tmp_path / "run"), "--epochs", "2",
            "--epochs-decay", "0", "--crop-size", "32", "--image-size", "64", "--ngf", "4", "--n-blocks", "1", "--ndf", "4"]
    assert main(args) == 130
    assert advice in capsys.readouterr().err


def test_train_cli_end_to_end_and_refuses_to_clobber(tmp_path, capsys):
    ct, mr = _phantom_folders(tmp_path / "data", n=4)
    args = ["train", "--ct", str(ct), "--mr", str(mr), "--out", str(tmp_path / "run"), "--epochs", "1",
            "--epochs-decay", "0", "--crop-size", "32", "--image-size", "64", "--ngf", "4", "--n-blocks", "1",
            "--ndf", "4", "--exclude", "00003.png"]
    assert main(args) == 0
    card = json.loads((tmp_path / "run" / "bundle" / "model_card.json").read_text())
    assert card["training"]["data"]["ct_inputs"] == 3
    assert "--exclude" in card["training"]["command"]
    assert main(args) == 1
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--epochs", "2"]) == 0
    assert len(list(csv.DictReader((tmp_path / "run" / "losses.csv").open()))) == 2


def test_a_full_disk_while_checkpointing_is_a_plain_sentence_and_leaves_no_temporary_file(tmp_path):
    """A real refusal by the kernel (a file-size limit), which torch.save reports as RuntimeError."""
    ct, mr = _phantom_folders(tmp_path / "data", n=2)
    out = tmp_path / "run"
    args = ["train", "--ct", str(ct), "--mr", str(mr), "--out", str(out), "--epochs", "1", "--epochs-decay", "0",
            "--crop-size", "32", "--image-size", "64", "--ngf", "4", "--n-blocks", "1", "--ndf", "4"]
    code, errors, stderr = run_limited(args, max_file_bytes=20_000)
    assert code == 1 and errors == [
        f"error: cannot write {out / 'checkpoint.pt'}: the file could not be written to the end (is the disk full?)"
    ], stderr[-2000:]
    assert list(out.iterdir()) == []


def test_a_new_run_removes_what_a_killed_checkpoint_write_left(tmp_path):
    ct, mr = _phantom_folders(tmp_path / "data", n=2)
    leftover = tmp_path / "run" / ".checkpoint.pt.0a1b2c3d.partial"  # SIGKILL during torch.save
    leftover.parent.mkdir()
    leftover.write_bytes(b"half a checkpoint")
    train(_config(ct, mr, tmp_path / "run", epochs=1, epochs_decay=0))
    assert not leftover.exists() and (tmp_path / "run" / "checkpoint.pt").is_file()


def test_two_process_gloo_step_runs_the_same_code(tmp_path):
    ct, mr = _phantom_folders(tmp_path / "data", n=4)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
               "-m", "aimedx_desktop", "train", "--ct", str(ct), "--mr", str(mr), "--out", str(tmp_path / "ddp"),
               "--epochs", "1", "--epochs-decay", "0", "--crop-size", "32", "--image-size", "64", "--ngf", "4",
               "--n-blocks", "1", "--ndf", "4", "--device", "cpu"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    card = json.loads((tmp_path / "ddp" / "bundle" / "model_card.json").read_text())
    assert card["training"]["processes"] == 2
    rows = list(csv.DictReader((tmp_path / "ddp" / "losses.csv").open()))
    assert len(rows) == 1  # rank 0 alone writes


def test_resume_can_lengthen_the_schedule(tmp_path):
    ct, mr = _phantom_folders(tmp_path / "data", n=4)
    train(_config(ct, mr, tmp_path / "run", epochs=1, epochs_decay=0))
    train(load_run(tmp_path / "run", {"epochs_decay": 2}), resume=True)
    history = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["history"]
    assert [round(r["lr"] * 3 / 1e-3, 6) for r in history] == [3.0, 2.0, 1.0]


def test_resume_follows_a_moved_run_folder_and_refuses_changed_options(tmp_path, capsys):
    import shutil

    ct, mr = _phantom_folders(tmp_path / "data", n=4)
    train(_config(ct, mr, tmp_path / "cluster", epochs=1, epochs_decay=0))
    moved = shutil.copytree(tmp_path / "cluster", tmp_path / "moved")
    shutil.rmtree(tmp_path / "cluster")
    assert main(["train", "--out", str(moved), "--resume", "--lr", "0.1"]) == 1
    assert "--lr cannot change" in capsys.readouterr().err
    assert main(["train", "--out", str(moved), "--resume", "--epochs", "2"]) == 0
    assert torch.load(moved / "checkpoint.pt", weights_only=True)["epoch"] == 2
    assert not (tmp_path / "cluster").exists()


@pytest.mark.parametrize("crop, image", [(30, 64), (64, 62), (128, 64)])
def test_sizes_the_generator_cannot_take_are_refused(tmp_path, crop, image):
    from aimedx_desktop.engine.errors import UserError

    with pytest.raises(UserError, match="size"):
        _config(tmp_path, tmp_path, tmp_path / "run", crop_size=crop, image_size=image)


def test_init_from_starts_a_new_run_at_another_runs_weights(tmp_path):
    from aimedx_desktop.engine.training import Trainer

    ct, mr = _phantom_folders(tmp_path / "data", n=4)
    train(_config(ct, mr, tmp_path / "first", epochs=1, epochs_decay=0))
    trained = torch.load(tmp_path / "first" / "checkpoint.pt", weights_only=True)["model"]
    fine_tune = Trainer(_config(ct, mr, tmp_path / "second", init_from=str(tmp_path / "first"), lambda_identity=0.0))
    for key, value in fine_tune.model.state_dict().items():
        assert torch.equal(value, trained[key]), key
    assert fine_tune.epoch == 0 and fine_tune.opt_g.param_groups[0]["lr"] == 1e-3


def test_a_fine_tuned_run_resumes_without_the_run_it_started_from(tmp_path):
    """The checkpoint holds the weights; --init-from is read only when a run starts."""
    ct, mr = _phantom_folders(tmp_path / "data", n=2)
    train(_config(ct, mr, tmp_path / "first", epochs=1, epochs_decay=0))
    train(_config(ct, mr, tmp_path / "second", epochs=1, epochs_decay=0, init_from=str(tmp_path / "first")))
    (tmp_path / "first").rename(tmp_path / "moved")
    train(load_run(tmp_path / "second", {"epochs": 2}), resume=True)
    state = torch.load(tmp_path / "second" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and "scaler" in state  # CUDA's loss scale resumes too


def test_a_resume_cannot_shorten_the_schedule_below_the_epochs_already_run(tmp_path):
    ct, mr = _phantom_folders(tmp_path / "data", n=2)
    train(_config(ct, mr, tmp_path / "run", epochs=2, epochs_decay=1))
    with pytest.raises(UserError, match="already trained 3 epochs: --epochs plus --epochs-decay must be at least that, not 1"):
        train(load_run(tmp_path / "run", {"epochs": 1, "epochs_decay": 0}), resume=True)


@pytest.mark.parametrize("options", [{"val_ct": ["CT"]}, {"val_mr": ["MR"]}, {"val_include": ["0000[01].png"]}])
def test_validation_given_on_one_side_only_is_refused(tmp_path, options):
    with pytest.raises(UserError, match="give both --val-ct and --val-mr"):
        _config(tmp_path, tmp_path, tmp_path / "run", **options)


def test_train_help_shows_defaults_of_zero(capsys):
    """0 == False: a test for 'no default' by `in (..., False)` hid --seed 0 and --dropout 0.0."""
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "machine) (default: 0)" in shown and "(pix2pix uses 0.5) (default: 0.0)" in shown


def test_trainer_image_pool_returns_history():
    from aimedx_desktop.engine.training import ImagePool

    torch.manual_seed(0)
    pool = ImagePool(2)
    first = pool.query(torch.zeros(2, 1, 4, 4))
    assert torch.equal(first, torch.zeros(2, 1, 4, 4)) and len(pool.images) == 2
    mixed = pool.query(torch.ones(8, 1, 4, 4))
    assert (mixed.flatten(1).mean(1) == 0).any()  # some old fakes came back


def test_tiny_run_on_real_atlas_slices(shared_data, tmp_path):
    """A dozen real slices per side, 64x64 crops: the cycle loss goes down within a minute."""
    atlas = shared_data / "aanlib_brain"
    ct = sorted((atlas / "CT").glob("2*.png"))[:12]
    mr = sorted((atlas / "MR").glob("34*.png"))[:12]  # another patient: unpaired on purpose
    config = TrainConfig(
        ct=[str(p) for p in ct], mr=[str(p) for p in mr], out=str(tmp_path / "run"), epochs=3, epochs_decay=0,
        crop_size=64, image_size=128, ngf=8, n_blocks=2, ndf=8, pool_size=8, ct_window=(-40.0, 150.0),
        lr=1e-3, seed=5,
    )
    train(config)
    rows = list(csv.DictReader((tmp_path / "run" / "losses.csv").open()))
    assert float(rows[-1]["cycle"]) < float(rows[0]["cycle"])
    assert load_bundle(tmp_path / "run" / "bundle").card["training"]["data"]["ct"]["slices"] >= 10


def _slice_set(images: list[np.ndarray], names: list[str]):
    from aimedx_desktop.engine.datasets import SliceSet

    return SliceSet([i.astype(np.float32) for i in images], [f"{n}[0]" for n in names], [i.shape for i in images], 0)


def test_a_pair_gets_one_augmentation_and_masks_only_where_both_agree():
    from aimedx_desktop.engine.datasets import Augmentation, TrainingSlices

    rows, cols = np.mgrid[:64, :64]
    head = np.where(np.hypot(rows - 32, cols - 32) < 24, 0.5, -1.0)
    cut = head.copy()
    cut[:, 44:] = -1.0  # the CT's field of view ends where the MR still shows head
    torch.manual_seed(0)
    data = TrainingSlices(_slice_set([cut], ["a.png"]), _slice_set([head], ["a.png"]), Augmentation(64, 64), paired=True)
    assert data.pairs == [(0, 0)] and len(data) == 1
    ct, mr, masks = data[0]
    assert ct.shape == mr.shape == (1, 64, 64) and masks.shape == (2, 64, 64)
    agree, either = masks[0] > 0.5, masks[1] > 0.5
    ct_head, mr_head = ct[0] > -0.9, mr[0] > -0.9
    # after one shared flip/affine, the pair still lines up wherever the CT was not cut
    assert torch.equal(ct_head & ~mr_head, torch.zeros_like(ct_head))
    assert not agree[mr_head & ~ct_head].any()  # the cut-off anatomy teaches nothing
    assert agree[ct_head & mr_head].all() and agree[~ct_head & ~mr_head].float().mean() > 0.95
    assert either[mr_head].all()  # ...but counts for the uncertainty


def test_a_name_two_patients_share_is_refused_rather_than_paired_across_patients(tmp_path, capsys):
    from aimedx_desktop.engine.datasets import expand_inputs, paired_slices

    first = _phantom_folders(tmp_path / "p1", n=2)
    second = _phantom_folders(tmp_path / "p2", n=2)  # the same file names: 00000.png, 00001.png
    ct, mr = [str(first[0]), str(second[0])], [str(first[1]), str(second[1])]
    args = ["train", "--ct", *ct, "--mr", *mr, "--out", str(tmp_path / "run"), "--paired", "--epochs", "1",
            "--epochs-decay", "0", "--crop-size", "32", "--image-size", "64", "--ngf", "4", "--n-blocks", "1", "--ndf", "4"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "pairs are matched by file name, but 2 shared name(s) belong to more than one input (e.g. 00000.png: 2 CT" in err
    contract = _config(tmp_path, tmp_path, tmp_path / "run").contract
    with pytest.raises(UserError, match=r"e\.g\. 00000\.png: 2 CT, 2 MR"):
        paired_slices(expand_inputs(ct), expand_inputs(mr), contract)
    assert len(paired_slices(expand_inputs(ct[:1]), expand_inputs(mr[:1]), contract)) == 2


def test_a_shared_name_is_refused_even_when_its_almost_empty_slices_are_dropped(tmp_path, capsys):
    """Blank p1 CT and p2 MR slices drop out before pairing, and would leave p2's CT paired with p1's MR."""
    first = _phantom_folders(tmp_path / "p1", n=1)
    second = _phantom_folders(tmp_path / "p2", n=1)
    for blank in (first[0] / "00000.png", second[1] / "00000.png"):
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(blank)
    args = ["train", "--ct", str(first[0]), str(second[0]), "--mr", str(first[1]), str(second[1]), "--out",
            str(tmp_path / "run"), "--paired", "--epochs", "1", "--epochs-decay", "0", "--crop-size", "32",
            "--image-size", "64", "--ngf", "4", "--n-blocks", "1", "--ndf", "4"]
    assert main(args) == 1
    assert "(e.g. 00000.png: 2 CT, 2 MR)" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_slices_without_a_partner_train_the_unpaired_terms():
    from aimedx_desktop.engine.datasets import Augmentation, TrainingSlices

    image = np.zeros((32, 32))
    data = TrainingSlices(
        _slice_set([image, image], ["a.png", "b.png"]), _slice_set([image], ["a.png"]), Augmentation(32, 32), paired=True
    )
    assert data.pairs == [(0, 0)] and len(data) == 2
    assert data[0][2].sum() > 0 and data[1][2].sum() == 0


def _ct_slice(tissue: float) -> np.ndarray:
    """A head in model units: a disc of soft tissue in a ring of saturated bone on air."""
    rows, cols = np.mgrid[:64, :64]
    radius = np.hypot(rows - 32, cols - 32)
    return np.select([radius < 20, radius < 24], [tissue, 1.0], -1.0)


def test_each_exports_soft_tissue_level_moves_to_the_median_over_exports():
    from aimedx_desktop.engine.datasets import harmonize_ct_levels

    levels = {"2": 0.0, "16": -0.2, "20": 0.6}  # patient 20 saved with a window 0.6 model units lower
    names = [f"{patient}{slice_:03d}.png" for patient in levels for slice_ in (1, 2)]
    images = [_ct_slice(levels[name[:-7]]) for name in names]
    for image in images:
        image[0, 0] = -0.95  # a faint background pixel, far from the head
    ct = _slice_set(images, names)
    offsets = harmonize_ct_levels(ct, r"^(\d+)\d{3}\.png$", units_per_model_unit=95.0)
    assert offsets == {"16": 19.0, "2": 0.0, "20": -57.0}  # HU: 0.2 and -0.6 model units of 95 HU
    for image in ct.slices:
        assert np.allclose(image[32, 32], 0.0, atol=1e-6)  # every brain at the median level
        assert image[32, 10] == 1.0 and image[1, 1] == -1.0  # bone and air stay saturated
        assert image[0, 0] == np.float32(-0.95)  # only the head's soft tissue moves
    with pytest.raises(UserError, match="matches none"):
        harmonize_ct_levels(ct, r"^patient-(\d+)", units_per_model_unit=95.0)


def test_mr_contrast_jitter_bends_the_curve_but_keeps_its_ends():
    from aimedx_desktop.engine.datasets import Augmentation

    mr = torch.linspace(-1.0, 1.0, 101)
    assert torch.equal(Augmentation(32, 32).mr_contrast(mr), mr)  # off by default
    torch.manual_seed(0)
    bent = [Augmentation(32, 32, mr_gamma=0.5).mr_contrast(mr) for _ in range(8)]
    assert all(b[0] == -1.0 and abs(b[-1] - 1.0) < 1e-6 for b in bent)
    middles = [float(b[50]) for b in bent]
    assert min(middles) < -0.05 and max(middles) > 0.05  # gamma above and below 1


def test_dropout_trains_only_and_keeps_the_weight_names():
    from aimedx_desktop.engine.networks import GeneratorConfig, build_generator

    plain = build_generator(GeneratorConfig(ngf=4, n_blocks=2))
    dropped = build_generator(GeneratorConfig(ngf=4, n_blocks=2, dropout=0.5))
    assert plain.state_dict().keys() == dropped.state_dict().keys()  # bundles load either way
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(plain.eval()(x), dropped.eval()(x))
        assert not torch.equal(plain.train()(x), dropped.train()(x))
    with pytest.raises(ValueError, match="dropout"):
        GeneratorConfig(dropout=1.0)
    assert "dropout" not in GeneratorConfig().to_dict()  # cards older apps can still read
    assert GeneratorConfig.from_dict(GeneratorConfig(dropout=0.5).to_dict()).dropout == 0.5


@pytest.mark.parametrize("option, value, message", [
    ("batch_size", 0, "--batch-size must be at least 1"),
    ("epochs_decay", -1, "--epochs-decay must be at least 0"),
    ("pool_size", -1, "--pool-size must be at least 0"),
    ("lr", 0.0, "--lr must be positive"),
    ("beta1", 1.0, r"--beta1 must lie in \[0, 1\)"),
    ("image_size", 2048, r"--image-size must lie in \[16, 1024\]"),
    ("min_foreground", 1.0, "--min-foreground"),
    ("lambda_cycle", -1.0, "--lambda-cycle must not be negative"),
])
def test_numbers_that_would_fail_mid_run_are_refused_up_front(tmp_path, option, value, message):
    with pytest.raises(UserError, match=message):
        _config(tmp_path, tmp_path, tmp_path / "run", **{option: value})


def test_a_run_of_no_epochs_is_refused(tmp_path, capsys):
    assert main(["train", "--ct", str(tmp_path), "--mr", str(tmp_path), "--out", str(tmp_path / "run"),
                 "--epochs", "0", "--epochs-decay", "0"]) != 0
    assert "--epochs plus --epochs-decay must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_bad_augmentation_and_level_options_are_named(tmp_path):
    with pytest.raises(UserError, match="--mr-gamma"):
        TrainConfig(ct=["a"], mr=["b"], out=str(tmp_path), mr_gamma=-1.0)
    with pytest.raises(UserError, match="--ct-level-groups"):
        TrainConfig(ct=["a"], mr=["b"], out=str(tmp_path), ct_level_groups="(")


def test_paired_training_learns_the_mapping_and_the_uncertainty(tmp_path):
    ct, mr = _phantom_folders(tmp_path / "data", n=6)
    config = _config(ct, mr, tmp_path / "run", epochs=5, epochs_decay=1, paired=True, uncertainty=True,
                     lambda_paired=20.0, lambda_ssim=2.0, lambda_identity=0.0, upsampling="resize",
                     ct_level_groups=r"^0000(\d)", mr_gamma=0.2, dropout=0.2, mirror_average=True)
    bundle = train(config)
    rows = list(csv.DictReader((tmp_path / "run" / "losses.csv").open()))
    assert float(rows[-1]["paired"]) < 0.7 * float(rows[0]["paired"])
    assert float(rows[-1]["uncertainty"]) < float(rows[0]["uncertainty"])
    card = load_bundle(tmp_path / "run" / "bundle").card
    assert card["architecture"]["generator"]["upsampling"] == "resize" and card["outputs"]["uncertainty"]
    assert card["training"]["data"]["pairs"] == 6 and bundle.has_uncertainty
    offsets = card["training"]["data"]["ct_level_offsets_hu"]  # one export per slice here
    assert sorted(offsets) == list("012345") and all(abs(v) < 20 for v in offsets.values())
    assert card["architecture"]["generator"]["dropout"] == 0.2 and card["training"]["options"]["mr_gamma"] == 0.2
    assert card["inference"] == {"mirror_average": True} and bundle.mirror_average


def test_uncertainty_or_ssim_without_pairs_is_refused(tmp_path):
    from aimedx_desktop.engine.errors import UserError

    with pytest.raises(UserError, match="--paired"):
        _config(tmp_path, tmp_path, tmp_path / "run", uncertainty=True)
    with pytest.raises(UserError, match="--lambda-ssim learns from pairs"):
        _config(tmp_path, tmp_path, tmp_path / "run", lambda_ssim=1.0)


def test_the_ssim_loss_is_the_metric_and_its_gradient_restores_structure():
    from aimedx_desktop.engine import metrics
    from aimedx_desktop.engine.training import masked_ssim_loss

    generator = torch.Generator().manual_seed(0)
    target = torch.rand(1, 1, 24, 24, generator=generator) * 2 - 1
    mask = torch.zeros_like(target)
    mask[..., 4:20, 4:20] = 1
    blurred = torch.nn.functional.avg_pool2d(target, 3, stride=1, padding=1, count_include_pad=False)
    prediction = blurred.clone().requires_grad_(True)
    loss = masked_ssim_loss(prediction, target, mask)
    inner = np.zeros((24, 24), bool)
    inner[4 + metrics.SSIM_RADIUS : 20 - metrics.SSIM_RADIUS, 4 + metrics.SSIM_RADIUS : 20 - metrics.SSIM_RADIUS] = True
    expected = 1 - metrics.ssim(blurred[0, 0].numpy(), target[0, 0].numpy(), 2.0, inner)  # windows wholly in the mask
    assert loss.item() == pytest.approx(expected, abs=1e-5) and loss.item() > 0.2
    assert masked_ssim_loss(target, target, mask).item() == pytest.approx(0.0, abs=1e-5)
    loss.backward()
    assert prediction.grad[mask == 0].abs().max() == 0  # nothing is taught where the mask leaves pixels out
    with torch.no_grad():
        better = prediction - 0.5 * prediction.grad / prediction.grad.abs().max()
    assert masked_ssim_loss(better, target, mask).item() < loss.item()
    half = blurred.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # training's CPU autocast: the loss stays float32
        half_loss = masked_ssim_loss(half.to(torch.bfloat16), target.to(torch.bfloat16), mask)
    half_loss.backward()
    assert half_loss.dtype == torch.float32 and torch.isfinite(half.grad).all()
    assert half_loss.item() == pytest.approx(loss.item(), abs=0.02)


def test_every_option_is_on_the_command_line_and_guarded_on_resume(tmp_path, capsys):
    import argparse
    import dataclasses

    from aimedx_desktop.training_cli import add_train_arguments

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    flags = {option for action in parser._actions for option in action.option_strings}
    for item in dataclasses.fields(TrainConfig):
        assert ("--" + item.name.replace("_", "-") in flags) == item.metadata["cli"], item.name
    ct, mr = _phantom_folders(tmp_path / "data", n=4)
    train(_config(ct, mr, tmp_path / "run", epochs=1, epochs_decay=0, paired=True))
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--lambda-paired", "3"]) == 1
    assert "--lambda-paired cannot change" in capsys.readouterr().err


def test_a_shipped_card_records_no_machine_paths(tmp_path):
    ct, mr = _phantom_folders(tmp_path / "data", n=4)
    args = ["train", "--ct", str(ct), "--mr", str(mr), "--out", str(tmp_path / "run"), "--epochs", "1",
            "--epochs-decay", "0", "--crop-size", "32", "--image-size", "64", "--ngf", "4", "--n-blocks", "1",
            "--ndf", "4", "--data-root", str(tmp_path / "data"), "--val-ct", str(ct), "--val-mr", str(mr)]
    assert main(args) == 0
    text = (tmp_path / "run" / "bundle" / "model_card.json").read_text()
    assert str(tmp_path) not in text
    training = json.loads(text)["training"]
    assert "--ct CT --mr MR --out run" in training["command"] and training["inputs"]["ct"] == ["CT"]
