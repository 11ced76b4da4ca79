"""Publish a finished training run as the bundled default model, with its descriptive card.

    python scripts/publish_default_model.py RUN_DIR --folds FOLD_RESULT.json... \
        [--calibrated-like FOLD_BUNDLE] [--pairing PAIRING.json] [--dest resources/models/default]

The run's own card already holds the architecture, intensity contract, outputs, exact training
command (paths relative to the data root) and data summary. This adds what a reader needs
besides: the data and its licence, the MR sequences it knows, the HU calibration and its limits,
intended use, and — because the shipped model was trained on every patient there is — its
validation by cross-validation: the `result.json` of each fold of benchmarks/recipe_sweep.py
(models trained with the same recipe without the held-out patients, scored on them). Their mean
becomes the card's `metrics` (what `aimedx info` prints) and each fold is kept with its
per-patient numbers under `cross_validation`.

Where the training data was a re-paired copy of the atlas (benchmarks/rematch_pairs.py), pass its
`pairing.json` with `--pairing`: the card then records every MR slice trained against another CT
slice than its namesake.

The uncertainty calibration, likewise, can only be fitted on patients a model has not seen: it
is copied from `--calibrated-like`, a fold model of the same recipe calibrated on its held-out
patients (`aimedx evaluate --calibrate`).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from aimedx_desktop.engine.bundle import load_bundle, save_bundle, uncertainty_card
from aimedx_desktop.engine.scan import UNCERTAINTY
from aimedx_desktop.resources import models_dir

DIRECTIONS = ("mr2ct", "ct2mr")
ATLAS_SLICE = re.compile(r"^(\d+)\d{3}\.png")

SUPERVISED_WHERE = "the supervised term counts only where both images agree on head versus background"

CARD_NOTES = {
    "summary": (
        "MR↔CT for axial brain slices at 256×256: a hybrid paired + unpaired CycleGAN with compact ResNet "
        "generators (16 filters, 9 residual blocks, resize-convolution upsampling) that run in well under 150 ms "
        "per slice on a 2-core CPU, each with a per-pixel uncertainty output."
    ),
    "intended_use": (
        "Research and teaching only: demonstrating MR→synthetic CT and CT→synthetic MR on axial head "
        "images. Not for diagnosis, treatment planning or any clinical decision."
    ),
    "licence": (
        "Weights trained on images of the Harvard Whole Brain Atlas (K. A. Johnson, J. A. Becker), "
        "copyrighted, used for research and teaching; the images are not redistributed with the model."
    ),
    "data": {
        "source": "Harvard Whole Brain Atlas slices as collected for image-fusion research (aanlib_brain)",
        "images": "256×256 8-bit PNG axial slices, CT and MR roughly (not perfectly) co-registered per slice",
        "training_patients": ["2", "16", "20", "21", "28", "32", "33", "34"],
        "validation": "cross-validation by patient (see cross_validation): no model is scored on a patient it saw",
        "pairs": f"slices with the same file name are pairs; {SUPERVISED_WHERE}",
    },
    "mr_sequences": (
        "Trained on mostly T2-weighted MR with skull and scalp (some proton-density and FLAIR). T1-weighted, "
        "contrast-enhanced or skull-stripped input is outside its training data and gives less faithful synthetic CT."
    ),
    "calibration": {
        "ct_window_hu": [-40.0, 150.0],
        "centre_width_hu": [55.0, 190.0],
        "how": (
            "The atlas CT is a brain-windowed 8-bit export (air 0, bone 255), not HU. The window was "
            "estimated from known tissue values: the intracranial gray-level histogram of the training "
            "CT peaks at ~100 (parenchyma, ~33 HU) with a CSF shoulder at ~60 (~5-10 HU), which a "
            "linear map of [-40, 150] HU onto 0..255 reproduces."
        ),
        "limits": (
            "Synthetic CT is in HU only inside [-40, 150] HU: air, fat and bone are clipped to the window's "
            "ends, so it cannot show bone density or air/fat boundaries. Per-patient brain levels in the "
            "atlas vary from about 26 to 83 HU on this calibration (the exports were not uniform). Training "
            "shifted each patient's export to the median soft-tissue level over patients (--ct-level-groups; "
            "the offsets are in training.data.ct_level_offsets_hu), so the model writes brain at that common "
            "level; a patient whose scanner or export sits elsewhere differs by that amount. Real HU CT fed "
            "to CT→MR is windowed the same way."
        ),
    },
}


def per_patient(evaluation: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """direction → patient → mean of each metric over that patient's slices."""
    grouped: dict[str, dict[str, list[dict[str, float]]]] = {}
    for row in evaluation["per_slice"]:
        patient = ATLAS_SLICE.match(row["slice"]).group(1)
        grouped.setdefault(row["direction"], {}).setdefault(patient, []).append(row)
    metrics = [k for k in evaluation["per_slice"][0] if k not in ("direction", "slice")]
    return {
        direction: {p: {m: round(float(np.mean([r[m] for r in rows])), 4) for m in metrics} for p, rows in patients.items()}
        for direction, patients in grouped.items()
    }


def re_paired_slices(pairing: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """MR slice → the CT slice it was trained against, for the slices rematch_pairs.py moved."""
    return {c["mr"]: c["ct"] for choices in pairing.values() for c in choices if c["ct"] != c["mr"]}


def largest_shift(pairing: dict[str, list[dict[str, Any]]]) -> int:
    """How many slices (in stack order) the farthest re-paired CT slice lies from its MR slice."""
    shifts = [0]
    for choices in pairing.values():  # each patient's choices are in stack order
        stack = [c["mr"] for c in choices]
        shifts += [abs(stack.index(c["ct"]) - k) for k, c in enumerate(choices)]
    return max(shifts)


def re_pairing_note(moved: int, shift: int) -> str:
    """The card's `data.pairs` for a model trained on a copy re-paired by rematch_pairs.py: `moved` MR
    slices paired with a CT slice at most `shift` slices away."""
    within = "k±1" if shift == 1 else f"up to k±{shift}"
    return (
        "the atlas pairs slices by file name, but some MR slices show the anatomy of a neighbouring CT slice; "
        f"training paired {moved} MR slices with the neighbouring CT slice ({within} in "
        "stack order) that a cross-validation model which had not seen the patient fitted best "
        "(benchmarks/rematch_pairs.py; listed in re_paired). Every score here is on the pairs as published; "
        f"{SUPERVISED_WHERE}"
    )


def fold_entry(result: dict[str, Any], with_uncertainty: bool) -> dict[str, Any]:
    evaluation = result["eval"]
    entry = {
        "held_out": result["fold"],
        "training_seconds": round(result["train_seconds"]),
        "per_patient": per_patient(evaluation),
        "model": {d: {k: v for k, v in evaluation[d].items() if k != "uncertainty"} for d in DIRECTIONS},
        "baselines": evaluation["baselines"],
    }
    if with_uncertainty:
        entry["uncertainty"] = {d: evaluation[d].get("uncertainty") for d in DIRECTIONS}
        entry["coverage_calibrated_on_the_other_patient"] = result.get("coverage", {})
    return entry


def mean_over_folds(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """The folds' numbers averaged over patients (each patient once), in evaluate's result shape."""
    result: dict[str, Any] = {"baselines": {}}
    for direction in DIRECTIONS:
        patients = [p for fold in folds for p in fold["per_patient"][direction].values()]
        result[direction] = {m: float(np.mean([p[m] for p in patients])) for m in patients[0]}
        result[direction]["n"] = sum(fold["model"][direction]["n"] for fold in folds)
        uncertainties = [fold["uncertainty"][direction] for fold in folds if fold.get("uncertainty")]
        if uncertainties:
            coverage = [c[direction] for fold in folds for c in fold.get("coverage_calibrated_on_the_other_patient", {}).values()]
            result[direction]["uncertainty"] = {
                "spearman": float(np.mean([u["spearman"] for u in uncertainties])),
                "auroc_worst10": float(np.mean([u["auroc_worst10"] for u in uncertainties])),
                "coverage": float(np.mean(coverage)),
                "nominal": uncertainties[0]["nominal"],
            }
        result["baselines"][direction] = {
            name: {
                m: float(np.mean([f["baselines"][direction][name][m] for f in folds])) if m != "n"
                else sum(f["baselines"][direction][name]["n"] for f in folds)
                for m in folds[0]["baselines"][direction][name]
            }
            for name in folds[0]["baselines"][direction]
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="training run folder (with bundle/)")
    parser.add_argument("--folds", nargs="+", type=Path, required=True, help="result.json of each cross-validation fold")
    parser.add_argument("--uncertainty-folds", nargs="*", type=Path, default=[],
                        help="the folds (of --folds) whose uncertainty head is the shipped design")
    parser.add_argument("--calibrated-like", type=Path, help="a fold bundle calibrated on its held-out patients")
    parser.add_argument("--pairing", type=Path, help="pairing.json of the re-paired copy the model was trained on")
    parser.add_argument("--note", default="", help="how the folds were run (devices, precision), for the card")
    parser.add_argument("--dest", type=Path, default=models_dir() / "default")
    args = parser.parse_args()
    bundle = load_bundle(args.run / "bundle")
    bundle.card.update(copy.deepcopy(CARD_NOTES))
    if args.pairing is not None:
        pairing = json.loads(args.pairing.read_text())
        moved = re_paired_slices(pairing)
        bundle.card["data"]["pairs"] = re_pairing_note(len(moved), largest_shift(pairing))
        bundle.card["data"]["re_paired"] = moved
    results = [json.loads(path.read_text()) for path in args.folds]
    uncertainty_paths = {path.resolve() for path in args.uncertainty_folds}
    folds = [fold_entry(r, path.resolve() in uncertainty_paths) for r, path in zip(results, args.folds)]
    recipe = {r["recipe"] for r in results}
    bundle.card["cross_validation"] = {"recipe": sorted(recipe), "note": args.note, "folds": folds}
    patients = sorted({p for f in folds for p in f["held_out"]}, key=int)
    bundle.card["metrics"] = {
        "command": f"cross-validation: models trained with this recipe without patients {', '.join(patients)}, "
                   "scored on them with aimedx evaluate (benchmarks/recipe_sweep.py)",
        "pairs": sum(f["model"]["mr2ct"]["n"] for f in folds),
        "units": results[0]["eval"]["units"],
        **mean_over_folds(folds),
    }
    if args.calibrated_like is not None and bundle.has_uncertainty:
        reference = load_bundle(args.calibrated_like).card["outputs"][UNCERTAINTY]["calibration"]
        if "pairs" not in reference:
            parser.error(f"{args.calibrated_like} does not record how many pairs calibrated it: calibrate it again "
                         "with aimedx evaluate --calibrate")
        bundle.card["outputs"][UNCERTAINTY] = uncertainty_card(
            dict(reference["scale"]),
            reference["nominal_coverage"],
            f"a cross-validation model of the same recipe, calibrated on {reference['pairs']} slice pairs of patients "
            f"it had not seen ({args.calibrated_like.parent.name}); the shipped model saw every patient, so its own "
            "errors cannot be measured here",
            reference["pairs"],
        )
    print(f"published {save_bundle(bundle, args.dest)}")


if __name__ == "__main__":
    main()
