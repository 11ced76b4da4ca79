"""Paired evaluation of a bundle in both directions, with two baselines as a floor.

MR→CT is scored in HU on the bundle's CT window (MAE in HU, PSNR and SSIM with the window's
width as data range). CT→MR has no absolute unit, so it is scored on the contract's normalised
scale ([-1, 1], data range 2). The mask is the head in the real target image.

Baselines, scored the same way: `input` is the source image itself mapped onto the target's
range (what doing nothing gives), `mean_target` is the mean of all real target images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aimedx_desktop.engine import metrics
from aimedx_desktop.engine.bundle import ModelBundle, save_bundle
from aimedx_desktop.engine.datasets import SlicePair
from aimedx_desktop.engine.scan import Modality
from aimedx_desktop.engine.translator import CancelToken, Translator

DIRECTIONS = {"mr2ct": Modality.MR, "ct2mr": Modality.CT}
MASK_FRACTION = 0.02
"""Target values above the bottom 2 % of the scored range count as head before closing/filling."""


@dataclass(frozen=True)
class Scored:
    """One slice of one direction on its scoring scale."""

    prediction: np.ndarray
    target: np.ndarray
    source: np.ndarray
    mask: np.ndarray


def _scoring_scale(bundle: ModelBundle, target: Modality) -> tuple[float, float]:
    """(lo, hi) of the scale a direction is scored on."""
    if target is Modality.CT:
        return bundle.contract.ct.lo_hu, bundle.contract.ct.hi_hu
    return -1.0, 1.0


def _score_slice(bundle: ModelBundle, translator: Translator, pair: SlicePair, direction: str) -> Scored:
    source_modality = DIRECTIONS[direction]
    target_modality = source_modality.other
    contract = bundle.contract
    source_scan = pair.mr_scan if source_modality is Modality.MR else pair.ct_scan
    target_values = pair.ct if target_modality is Modality.CT else pair.mr
    synthetic = translator.translate(source_scan).voxels[0]
    source_normalized = contract.input_map(source_modality, source_scan.voxels[0]).to_model(source_scan.voxels[0])
    if target_modality is Modality.CT:
        window = contract.ct.window
        target = np.clip(target_values, window.lo, window.hi)
        prediction = np.clip(synthetic, window.lo, window.hi)
        source = window.from_model(source_normalized)
    else:
        target = contract.input_map(Modality.MR, target_values).to_model(target_values)
        prediction = contract.output_map(Modality.MR).to_model(synthetic)
        source = source_normalized
    lo, hi = _scoring_scale(bundle, target_modality)
    mask = metrics.head_mask(target, lo + MASK_FRACTION * (hi - lo))
    return Scored(prediction, target, source, mask)


def _summary(rows: list[dict[str, float]]) -> dict[str, float]:
    return {
        "mae": float(np.mean([r["mae"] for r in rows])),
        "psnr": float(np.mean([r["psnr"] for r in rows])),
        "ssim": float(np.mean([r["ssim"] for r in rows])),
        "n": len(rows),
    }


def _scores(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray, data_range: float) -> dict[str, float]:
    return {
        "mae": metrics.mae(prediction, target, mask),
        "psnr": metrics.psnr(prediction, target, data_range, mask),
        "ssim": metrics.ssim(prediction, target, data_range, mask),
    }


def evaluate(
    bundle: ModelBundle,
    pairs: list[SlicePair],
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelToken | None = None,
) -> dict:
    """Per-slice and mean MAE/PSNR/SSIM both ways, and the two baselines."""
    translator = Translator(bundle, device=device)
    result: dict = {"baselines": {}, "per_slice": [], "units": {}}
    total = len(pairs) * len(DIRECTIONS)
    done = 0
    for direction, source_modality in DIRECTIONS.items():
        lo, hi = _scoring_scale(bundle, source_modality.other)
        data_range = hi - lo
        scored = []
        for pair in pairs:
            if cancel is not None:
                cancel.raise_if_cancelled()
            scored.append(_score_slice(bundle, translator, pair, direction))
            done += 1
            if progress is not None:
                progress(done, total)
        model_rows = [_scores(s.prediction, s.target, s.mask, data_range) for s in scored]
        input_rows = [_scores(s.source, s.target, s.mask, data_range) for s in scored]
        result[direction] = _summary(model_rows)
        result["baselines"][direction] = {"input": _summary(input_rows)}
        if len({s.target.shape for s in scored}) == 1:
            mean_target = np.mean([s.target for s in scored], axis=0)
            mean_rows = [_scores(mean_target, s.target, s.mask, data_range) for s in scored]
            result["baselines"][direction]["mean_target"] = _summary(mean_rows)
        result["units"][direction] = (
            f"HU on [{lo:g}, {hi:g}]" if source_modality.other is Modality.CT else "normalised MR on [-1, 1]"
        )
        for pair, row in zip(pairs, model_rows):
            result["per_slice"].append({"direction": direction, "slice": pair.name, **row})
    return result


def format_table(result: dict) -> str:
    """A readable table: each direction's numbers with its baselines beneath."""
    lines = [f"{'':24s}{'MAE':>10s}{'PSNR dB':>10s}{'SSIM':>8s}{'n':>6s}"]
    for direction in DIRECTIONS:
        rows = [(f"{direction} model", result[direction])]
        rows += [(f"  baseline: {name}", scores) for name, scores in result["baselines"][direction].items()]
        for label, s in rows:
            lines.append(f"{label:24s}{s['mae']:10.3f}{s['psnr']:10.2f}{s['ssim']:8.3f}{s['n']:6d}")
        lines.append(f"  ({direction} scored in {result['units'][direction]})")
    return "\n".join(lines)


def record_in_card(bundle: ModelBundle, result: dict, command: str) -> None:
    """Store the aggregate metrics and baselines (not the per-slice rows) in the bundle's card."""
    if bundle.path is None:
        raise ValueError("the model has no folder to record its metrics in")
    slices = sorted({row["slice"] for row in result["per_slice"]})
    bundle.card["metrics"] = {
        "command": command,
        "pairs": len(slices),
        "units": result["units"],
        **{direction: result[direction] for direction in DIRECTIONS},
        "baselines": result["baselines"],
    }
    save_bundle(bundle, bundle.path)
