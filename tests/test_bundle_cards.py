"""Hostile model bundles: cards and weights made here, each refused with one line before
anything large is built, and never a model that runs but gives zeros."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import threading
import tracemalloc
from pathlib import Path

import pytest
import torch

from aimedx_desktop.cli import main
from aimedx_desktop.engine.bundle import BundleError, load_bundle


def bundle_with(source: Path, folder: Path, change) -> Path:
    """A copy of `source` whose card `change(card)` edited."""
    shutil.copytree(source, folder)
    card = json.loads((folder / "model_card.json").read_text())
    change(card)
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder


def refused_quickly(folder: Path, match: str) -> None:
    """load_bundle refuses `folder` with `match`, allocating little on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(BundleError, match=match):
            load_bundle(folder)
        assert tracemalloc.get_traced_memory()[1] < 50_000_000
    finally:
        tracemalloc.stop()


def one_line_from_info(folder: Path, capsys) -> str:
    assert main(["info", "--model", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err and "\x1b[" not in err, err
    return err.strip()


@pytest.mark.parametrize(
    ("depth", "message"),
    [(5_000, "model card is nested too deeply to be a model card"), (100, "model card is nested more than 32 levels deep")],
)
def test_a_card_nested_deeply_is_refused(tiny_bundle_dir, tmp_path, capsys, depth, message):
    """5000 levels exhaust the JSON parser's recursion; 100 load but would exhaust the card text's."""
    nested = bundle_with(tiny_bundle_dir, tmp_path / "nested", lambda card: card.update(limitations=0))
    card = (nested / "model_card.json").read_text().replace('"limitations": 0', '"limitations": ' + "[" * depth + "]" * depth)
    (nested / "model_card.json").write_text(card)
    refused_quickly(nested, rf"model_card.json: {message}")
    assert message in one_line_from_info(nested, capsys)


@pytest.mark.parametrize("size", [0, -256, 65536, 256.0, True])
def test_an_image_size_out_of_bounds_is_refused(tiny_bundle_dir, tmp_path, size):
    folder = bundle_with(tiny_bundle_dir, tmp_path / "m", lambda card: card.update(image_size=size))
    refused_quickly(folder, rf"image_size must be a whole number of pixels in \[16, 1024\], not {size!r}")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("n_blocks", 10_000_000, r"n_blocks must be a whole number in \[0, 64\], not 10000000"),
        ("n_downsampling", 40, r"n_downsampling must be a whole number in \[1, 5\], not 40"),
        ("ngf", 0, r"ngf must be a whole number in \[1, 256\], not 0"),
        ("in_channels", 3.5, r"in_channels must be a whole number in \[1, 1\], not 3.5"),
        ("in_channels", 2, r"in_channels must be a whole number in \[1, 1\], not 2"),  # would crash in convert
        ("out_channels", 2, r"out_channels must be a whole number in \[1, 1\], not 2"),  # its map would be an image
        ("secret", 1, r"unknown generator option\(s\): secret"),
    ],
)
def test_architecture_numbers_out_of_bounds_are_refused(tiny_bundle_dir, tmp_path, option, value, message):
    folder = bundle_with(tiny_bundle_dir, tmp_path / "m", lambda card: card["architecture"]["generator"].update({option: value}))
    refused_quickly(folder, message)


def test_an_architecture_too_large_to_be_a_model_is_refused_before_it_is_built(tiny_bundle_dir, tmp_path):
    """Each number within bounds, together 78 billion parameters (312 GB of weights)."""
    big = {"ngf": 256, "n_blocks": 64, "n_downsampling": 5}
    folder = bundle_with(tiny_bundle_dir, tmp_path / "m", lambda card: card["architecture"]["generator"].update(big))
    refused_quickly(folder, r"the architecture has 78,115,028,993 parameters per generator, more than the 200,000,000")


def test_an_architecture_larger_than_the_memory_left_is_refused(tiny_bundle_dir, tmp_path, monkeypatch):
    """The machine's free memory is the one boundary a test cannot set: it is replaced."""
    from aimedx_desktop.engine import limits

    monkeypatch.setattr(limits, "available_memory", lambda: 1_000)
    refused_quickly(tiny_bundle_dir, r"loading the two [\d,]+-parameter generators needs about .* more than the 1.0 kB of memory available; not loaded")


def test_nan_weights_are_refused_in_plain_words(tiny_bundle_dir, tmp_path, capsys):
    folder = shutil.copytree(tiny_bundle_dir, tmp_path / "m")
    state = torch.load(folder / "weights.pt", weights_only=True)
    name = next(iter(state["ct2mr"]))
    state["ct2mr"][name][0] = math.nan
    torch.save(state, folder / "weights.pt")
    refused_quickly(folder, rf"weights.pt: ct2mr weight {name} holds NaN or infinite values; the model is broken")
    assert "NaN" in one_line_from_info(folder, capsys)


@pytest.mark.parametrize("value", [-math.inf, math.nan])
def test_a_non_finite_ct_window_is_refused_before_anything_is_translated(tiny_bundle_dir, tmp_path, capsys, value):
    folder = bundle_with(tiny_bundle_dir, tmp_path / "m", lambda card: card["intensity"]["ct"].update(lo_hu=value))
    assert "-Infinity" in (folder / "model_card.json").read_text() or "NaN" in (folder / "model_card.json").read_text()
    refused_quickly(folder, rf"intensity value lo_hu must be a finite number, not {value}")
    scan = tmp_path / "brain_ct.png"
    from PIL import Image

    Image.new("L", (32, 32), 90).save(scan)
    out = tmp_path / "out"
    assert main(["convert", str(scan), "--input-modality", "ct", "--out", str(out), "--model", str(folder)]) == 1
    assert "lo_hu must be a finite number" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("section, key, value", [("ct", "hi_hu", 1e39), ("mr", "synthetic_hi", 1e300)])
def test_an_intensity_value_too_large_for_float32_is_refused(tiny_bundle_dir, tmp_path, section, key, value):
    """It would translate to an all-NaN image, written without complaint."""
    folder = bundle_with(tiny_bundle_dir, tmp_path / "m", lambda card: card["intensity"][section].update({key: value}))
    refused_quickly(folder, re.escape(f"intensity value {key} must lie within ±1e+06, not {value:g}"))


def test_pickled_code_is_refused_in_our_words(tiny_bundle_dir, tmp_path, capsys):
    folder = shutil.copytree(tiny_bundle_dir, tmp_path / "evil")

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    torch.save({"mr2ct": Payload(), "ct2mr": {}}, folder / "weights.pt")
    line = one_line_from_info(folder, capsys)
    assert line == (
        f"error: {folder / 'weights.pt'}: the file holds code or objects other than tensors, so it was not loaded "
        "(model files must be plain weights)"
    )
    assert "weights_only" not in line and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("name", ["model_card.json", "weights.pt"])
def test_a_pipe_in_place_of_a_bundle_file_is_refused_at_once(tiny_bundle_dir, tmp_path, name):
    folder = shutil.copytree(tiny_bundle_dir, tmp_path / "m")
    (folder / name).unlink()
    os.mkfifo(folder / name)
    outcome: list[BaseException] = []
    loader = threading.Thread(target=lambda: outcome.append(pytest.raises(BundleError, load_bundle, folder).value), daemon=True)
    loader.start()
    loader.join(30)
    assert not loader.is_alive(), f"load_bundle hangs on a FIFO {name}"
    assert "not a regular file" in str(outcome[0])


def test_a_weights_file_far_larger_than_its_architecture_is_refused(tiny_bundle_dir, tmp_path):
    folder = shutil.copytree(tiny_bundle_dir, tmp_path / "m")
    with (folder / "weights.pt").open("ab") as stream:
        stream.write(bytes(3_000_000))
    refused_quickly(folder, r"weights.pt: [\d,]+ bytes, too large for the weights of this architecture")


def test_saving_where_the_disk_refuses_is_a_bundle_error(tiny_bundle):
    from aimedx_desktop.engine.bundle import save_bundle

    with pytest.raises(BundleError, match=r"^cannot save the model bundle /sys/aimedx-model: "):  # sysfs refuses even root
        save_bundle(tiny_bundle, Path("/sys/aimedx-model"))


@pytest.mark.parametrize("change", [
    lambda card: card.update(metrics={"mr2ct": {"n": "x"}}),
    lambda card: card.update(metrics=[1, 2]),
    lambda card: card.update(metrics={"mr2ct": {"n": 2, "uncertainty": {"spearman": 0.3}}}),
    lambda card: card.update(metrics={"baselines": {"mr2ct": ["a"]}, "mr2ct": {"n": 2}}),
    lambda card: card.update(training="by hand"),
])
def test_info_shows_a_card_whose_recorded_sections_it_cannot_read(tiny_bundle_dir, tmp_path, capsys, log_home, change):
    """The metrics and training sections do not change what the model does: shown, not a crash."""
    folder = bundle_with(tiny_bundle_dir, tmp_path / "m", change)
    assert main(["info", "--model", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "\ntiny-test 0.0.1\n" in out and not log_home.exists()
