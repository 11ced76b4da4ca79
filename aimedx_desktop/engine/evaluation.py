"""Paired evaluation of a bundle in both directions, with two baselines as a floor.

MR→CT is scored in HU on the bundle's CT window (MAE in HU, PSNR and SSIM with the window's
width as data range). CT→MR has no absolute unit, so it is scored on the contract's normalised
scale ([-1, 1], data range 2). The head mask comes from the real target image; MAE, PSNR, SSIM
and Pearson's r are taken inside it, and SSIM and PSNR also over the whole image (`*_whole`,
the scale most papers quote).

Baselines, scored the same way: `input` is the source image itself mapped onto the target's
range (what doing nothing gives), `mean_target` is the mean of all real target images.

A model with an uncertainty output is also scored on how well its map points at the real
errors inside the head: Spearman's ρ between map and |error|, the AUROC of the map for finding
the worst 10 % of pixels, and the coverage of the calibrated interval (|error| ≤ map).

The reference itself is scored too: the Dice overlap of the real CT's and the real MR's head
masks (`reference`, and `reference_dice` per slice). Pairs that are only roughly co-registered
put errors along every misaligned edge that no model can remove; this says how much of that a
score carries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aimedx_desktop.engine import metrics
from aimedx_desktop.engine.bundle import ModelBundle, save_bundle, uncertainty_card
from aimedx_desktop.engine.cancel import CancelToken
from aimedx_desktop.engine.datasets import SlicePair
from aimedx_desktop.engine.errors import UserError
from aimedx_desktop.engine.scan import UNCERTAINTY, Modality
from aimedx_desktop.engine.translator import Translator

DIRECTIONS = {"mr2ct": Modality.MR, "ct2mr": Modality.CT}
MASK_FRACTION = 0.02
"""Target values above the bottom 2 % of the scored range count as head before closing/filling."""
WORST_FRACTION = 0.10
"""The uncertainty AUROC asks how well the map finds this fraction of worst pixels."""


@dataclass(frozen=True)
class Scored:
    """One slice of one direction on its scoring scale (uncertainty too, when the model has it)."""

    prediction: np.ndarray
    target: np.ndarray
    source: np.ndarray
    mask: np.ndarray
    uncertainty: np.ndarray | None = None


def _scoring_scale(bundle: ModelBundle, target: Modality) -> tuple[float, float]:
    """(lo, hi) of the scale a direction is scored on."""
    if target is Modality.CT:
        return bundle.contract.ct.lo_hu, bundle.contract.ct.hi_hu
    return -1.0, 1.0


def score_slice(bundle: ModelBundle, translator: Translator, pair: SlicePair, direction: str) -> Scored:
    """One pair translated in `direction` and put on that direction's scoring scale, with its head mask."""
    source_modality = DIRECTIONS[direction]
    target_modality = source_modality.other
    contract = bundle.contract
    source_scan = pair.mr_scan if source_modality is Modality.MR else pair.ct_scan
    target_values = pair.ct if target_modality is Modality.CT else pair.mr
    synthetic_scan = translator.translate(source_scan)
    synthetic = synthetic_scan.voxels[0]
    uncertainty = synthetic_scan.maps[UNCERTAINTY][0] if UNCERTAINTY in synthetic_scan.maps else None
    source_normalized = contract.input_map(source_modality, source_scan.voxels[0]).to_model(source_scan.voxels[0])
    if target_modality is Modality.CT:
        window = contract.ct.window
        target = np.clip(target_values, window.lo, window.hi)
        prediction = np.clip(synthetic, window.lo, window.hi)
        source = window.from_model(source_normalized)
    else:
        output_map = contract.output_map(Modality.MR)
        target = contract.input_map(Modality.MR, target_values).to_model(target_values)
        prediction = output_map.to_model(synthetic)
        source = source_normalized
        if uncertainty is not None:
            uncertainty = uncertainty / output_map.units_per_model_unit
    lo, hi = _scoring_scale(bundle, target_modality)
    mask = metrics.head_mask(target, lo + MASK_FRACTION * (hi - lo))
    if not mask.any():
        raise UserError(f"{pair.name}: the real {target_modality.value} image shows no head to score inside; leave it out")
    return Scored(prediction, target, source, mask, uncertainty)


def _scores(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray, data_range: float) -> dict[str, float]:
    ssim_map = metrics.ssim_map_of(prediction, target, data_range)
    return {
        "mae": metrics.mae(prediction, target, mask),
        "mean_error": metrics.mean_error(prediction, target, mask),
        "psnr": metrics.psnr(prediction, target, data_range, mask),
        "ssim": float(ssim_map[mask].mean()),
        "pearson": metrics.pearson(prediction, target, mask),
        "ssim_whole": float(ssim_map.mean()),
        "psnr_whole": metrics.psnr(prediction, target, data_range),
    }


def _summary(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys() if rows else ()
    return {**{key: float(np.mean([row[key] for row in rows])) for key in keys}, "n": len(rows)}


def uncertainty_scores(scored: list[Scored], nominal: float) -> dict[str, float]:
    """How well the uncertainty map ranks and bounds the real |error| inside the head masks.

    scale_fit is the factor that would make the coverage exactly `nominal` on these slices
    (what `--calibrate` multiplies the card's scale by).
    """
    errors = np.concatenate([np.abs(s.prediction - s.target)[s.mask] for s in scored]).astype(np.float64)
    widths = np.concatenate([s.uncertainty[s.mask] for s in scored if s.uncertainty is not None]).astype(np.float64)
    worst = errors >= np.quantile(errors, 1.0 - WORST_FRACTION)
    return {
        "spearman": metrics.spearman(widths, errors),
        "auroc_worst10": metrics.auroc(widths, worst),
        "coverage": float(np.mean(errors <= widths)),
        "nominal": nominal,
        "scale_fit": float(np.quantile(errors / np.maximum(widths, 1e-12), nominal)),
        "pixels": int(errors.size),
    }


def evaluate(
    bundle: ModelBundle,
    pairs: list[SlicePair],
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelToken | None = None,
) -> dict:
    """Per-slice and mean scores both ways, the two baselines, and the uncertainty figures."""
    if not pairs:
        raise UserError("there are no slice pairs to evaluate")
    translator = Translator(bundle, device=device)
    result: dict = {"baselines": {}, "per_slice": [], "units": {}}
    head_masks: dict[str, list[np.ndarray]] = {}
    total = len(pairs) * len(DIRECTIONS)
    done = 0
    for direction, source_modality in DIRECTIONS.items():
        lo, hi = _scoring_scale(bundle, source_modality.other)
        data_range = hi - lo
        scored = []
        for pair in pairs:
            if cancel is not None:
                cancel.raise_if_cancelled()
            scored.append(score_slice(bundle, translator, pair, direction))
            done += 1
            if progress is not None:
                progress(done, total)
        head_masks[direction] = [s.mask for s in scored]
        model_rows = [_scores(s.prediction, s.target, s.mask, data_range) for s in scored]
        input_rows = [_scores(s.source, s.target, s.mask, data_range) for s in scored]
        result[direction] = _summary(model_rows)
        uncertainty = bundle.uncertainty(source_modality)
        if uncertainty is not None:
            result[direction]["uncertainty"] = uncertainty_scores(scored, uncertainty.nominal)
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
    overlaps = [metrics.dice(ct, mr) for ct, mr in zip(head_masks["mr2ct"], head_masks["ct2mr"])]
    result["reference"] = {"head_dice": float(np.mean(overlaps)), "head_dice_min": float(np.min(overlaps)), "n": len(overlaps)}
    for index, row in enumerate(result["per_slice"]):  # each direction's rows, in the order of `pairs`
        row["reference_dice"] = overlaps[index % len(pairs)]
    return result


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
        "reference": result["reference"],
    }
    save_bundle(bundle, bundle.path)


def check_calibratable(bundle: ModelBundle) -> None:
    """UserError unless `bundle` has an uncertainty output to calibrate."""
    if not bundle.has_uncertainty:
        raise UserError(f"{bundle.name} {bundle.version} has no uncertainty output to calibrate")


def calibrate_uncertainty(bundle: ModelBundle, result: dict, fitted_on: str, pairs: int) -> dict[str, float]:
    """Rescale each direction's uncertainty so that its coverage on `result`'s `pairs` slice pairs is nominal.

    Fit on patients the model was not trained on: on training patients the errors are smaller
    than on new ones, and the calibrated interval would be too narrow. Returns the new scales.
    """
    check_calibratable(bundle)
    scales, nominal = {}, 0.0
    for direction, source in DIRECTIONS.items():
        current = bundle.uncertainty(source)
        assert current is not None
        scales[direction] = current.scale * result[direction]["uncertainty"]["scale_fit"]
        nominal = current.nominal
    bundle.card.setdefault("outputs", {})[UNCERTAINTY] = uncertainty_card(scales, nominal, fitted_on, pairs)
    return scales
