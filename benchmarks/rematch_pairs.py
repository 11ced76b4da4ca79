"""Re-pair atlas slices through the plane: each MR slice with the CT slice that fits it best.

The atlas CT and MR stacks are paired by slice number, but for some patients the MR's slice k shows
the anatomy of CT slice k+1 (patient 32, almost throughout) or drifts by a slice across the stack
(different slice spacing or tilt between the two exports). An in-plane registration cannot fix
that. This tool translates each MR slice with a model that has NOT seen its patient (a fold model
of `recipe_sweep.py`), scores the synthetic CT against CT slices k−R … k+R as `aimedx evaluate`
does (Pearson in the reference's head mask) and writes a copy of the atlas folder in which
`MR/NAME` is paired with the best of them, copied to `CT/NAME`; `pairing.json` records every
choice with its scores. Train and score on the copy with `recipe_sweep.py --data OUT`.

    python benchmarks/rematch_pairs.py ../shared/data/aanlib_brain /work/runs/rematched \\
        --fold-model 16,34=/work/runs/sweep/r/fold-16-34/bundle --fold-model 20,21=... (every patient once)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from aimedx_desktop.engine.bundle import load_bundle
from aimedx_desktop.engine.datasets import SlicePair, expand_inputs, paired_slices
from aimedx_desktop.engine.evaluation import score_slice
from aimedx_desktop.engine.metrics import mae, pearson
from aimedx_desktop.engine.translator import Translator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_sweep import patient_pattern  # noqa: E402  (the atlas' slice names, PPPSSS.png)


def parse_fold_model(text: str) -> tuple[list[str], Path]:
    patients, _, bundle = text.partition("=")
    if not bundle or not patients:
        raise argparse.ArgumentTypeError(f"{text!r}: expected PATIENT[,PATIENT...]=BUNDLE_FOLDER")
    return patients.split(","), Path(bundle)


def rematch_patient(translator: Translator, pairs: list[SlicePair], reach: int) -> list[dict]:
    """Per MR slice (in stack order): the CT slice within ±reach whose reference its synthetic CT fits best."""
    scored = [score_slice(translator.bundle, translator, pair, "mr2ct") for pair in pairs]
    choices = []
    for k, (pair, slice_k) in enumerate(zip(pairs, scored)):
        scores = {
            pairs[j].name: {
                "pearson": pearson(slice_k.prediction, scored[j].target, scored[j].mask),
                "mae": mae(slice_k.prediction, scored[j].target, scored[j].mask),
            }
            for j in range(max(0, k - reach), min(len(pairs), k + reach + 1))
        }
        best = max(scores, key=lambda name: scores[name]["pearson"])
        choices.append({"mr": pair.name, "ct": best, "scores": scores})
    return choices


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="atlas folder with CT/ and MR/")
    parser.add_argument("out", type=Path, help="new folder for the re-paired copy (outside the repository)")
    parser.add_argument("--fold-model", type=parse_fold_model, action="append", required=True,
                        help="PATIENTS=BUNDLE: a model trained without these patients (repeat to cover all)")
    parser.add_argument("--reach", type=int, default=1, help="slices either side to consider (default 1)")
    args = parser.parse_args()
    pairing: dict[str, list[dict]] = {}
    for patients, bundle_dir in args.fold_model:
        translator = Translator(load_bundle(bundle_dir), device="cpu")
        for patient in patients:
            include = [patient_pattern(patient)]
            pairs = paired_slices(
                expand_inputs([args.data / "CT"], include=include),
                expand_inputs([args.data / "MR"], include=include),
                translator.bundle.contract,
            )
            pairing[patient] = rematch_patient(translator, pairs, args.reach)
            moved = "".join("0" if c["ct"] == c["mr"] else ("+" if c["ct"] > c["mr"] else "-") for c in pairing[patient])
            print(f"patient {patient}: {moved}  ({sum(c != '0' for c in moved)} of {len(moved)} slices re-paired)", flush=True)
    for side in ("CT", "MR"):
        (args.out / side).mkdir(parents=True, exist_ok=False)
    for choices in pairing.values():
        for choice in choices:
            shutil.copyfile(args.data / "MR" / choice["mr"], args.out / "MR" / choice["mr"])
            shutil.copyfile(args.data / "CT" / choice["ct"], args.out / "CT" / choice["mr"])
    (args.out / "pairing.json").write_text(json.dumps(pairing, indent=1))
    print(f"wrote {args.out} ({sum(map(len, pairing.values()))} pairs) and its pairing.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
