"""evaluate() on hand-made pairs whose scores are known in advance."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from aimedx_desktop.engine import metrics
from aimedx_desktop.engine.datasets import SlicePair
from aimedx_desktop.engine.errors import UserError
from aimedx_desktop.engine.evaluation import evaluate
from aimedx_desktop.engine.intensity import CTContract, IntensityContract, MRContract
from aimedx_desktop.engine.report import format_table
from aimedx_desktop.engine.scan import Modality, Scan


class _Identity(torch.nn.Module):
    size_multiple = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.fixture
def identity_bundle(tiny_bundle):
    bundle = copy.copy(tiny_bundle)
    bundle.generators = {"mr2ct": _Identity(), "ct2mr": _Identity()}
    bundle.contract = IntensityContract(CTContract(-1000.0, 1000.0), MRContract(0.0, 100.0))
    return bundle


def _pair(bundle, offset_hu: float) -> SlicePair:
    """An MR head and the CT the identity model predicts from it, shifted by offset_hu."""
    rows, cols = np.mgrid[:64, :64]
    radius = np.hypot(rows - 32, cols - 30)
    mr = np.where(radius < 24, 300.0 + 2.0 * rows, 0.0).astype(np.float32)
    mr[32, 30] = 500.0  # the one brightest pixel (the only one the +offset pushes past the window)
    normalized = bundle.contract.mr.input_map(mr).to_model(mr)
    ct = bundle.contract.ct.window.from_model(normalized) + offset_hu
    scans = [Scan(v[None], m) for v, m in ((ct, Modality.CT), (mr, Modality.MR))]
    return SlicePair("phantom", ct, mr, *scans)


def test_a_perfect_translation_scores_perfectly(identity_bundle):
    result = evaluate(identity_bundle, [_pair(identity_bundle, 0.0)], device="cpu")
    for direction in ("mr2ct", "ct2mr"):
        assert result[direction]["mae"] < 1e-3
        assert result[direction]["ssim"] > 0.999


def test_a_constant_hu_error_is_reported_in_hu(identity_bundle):
    result = evaluate(identity_bundle, [_pair(identity_bundle, 20.0)], device="cpu")
    assert result["mr2ct"]["mae"] == pytest.approx(20.0, abs=0.1)
    assert result["mr2ct"]["mean_error"] == pytest.approx(-20.0, abs=0.1)  # the prediction lacks the +20 HU
    assert " ME" in format_table(result).splitlines()[0]
    older = format_table({"mr2ct": {"mae": 20.0, "n": 1}})  # a card scored before ME existed
    assert older.splitlines()[1].split()[2:4] == ["20.000", "—"]
    assert result["mr2ct"]["psnr"] == pytest.approx(10 * np.log10(2000.0**2 / 20.0**2), abs=0.1)
    assert result["units"]["mr2ct"] == "HU on [-1000, 1000]"


def test_the_reference_alignment_is_the_overlap_of_the_real_head_outlines(identity_bundle):
    aligned = _pair(identity_bundle, 0.0)
    ct_shifted = np.roll(aligned.ct, 6, axis=1)
    shifted = SlicePair("shifted", ct_shifted, aligned.mr, Scan(ct_shifted[None], Modality.CT), aligned.mr_scan)
    result = evaluate(identity_bundle, [aligned, shifted], device="cpu")
    head = aligned.mr > 0
    expected = metrics.dice(head, np.roll(head, 6, axis=1))
    assert 0.7 < expected < 0.9
    per_slice = {row["slice"]: row["reference_dice"] for row in result["per_slice"]}
    assert per_slice == {"phantom": 1.0, "shifted": pytest.approx(expected, abs=0.01)}
    assert result["reference"]["head_dice"] == pytest.approx((1.0 + expected) / 2, abs=0.01)
    assert result["reference"]["head_dice_min"] == pytest.approx(expected, abs=0.01)
    assert f"Dice {result['reference']['head_dice']:.3f}" in format_table(result)


def test_no_pairs_is_a_clear_error(identity_bundle):
    with pytest.raises(UserError, match="no slice pairs"):
        evaluate(identity_bundle, [], device="cpu")
