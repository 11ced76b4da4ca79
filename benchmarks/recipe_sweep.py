"""Choose a training recipe by patients the model has not seen: a patient-split sweep.

For every recipe (a set of `aimedx train` options) and every fold (patients held out), this
trains with `aimedx train`, scores the held-out patients with `aimedx evaluate`, and, for
models with an uncertainty output, calibrates on one held-out patient and measures coverage on
the other (so the coverage is never measured on the patient it was fitted on). Jobs run
concurrently; everything goes through the product's own commands.

    python benchmarks/recipe_sweep.py --data ../shared/data/aanlib_brain --out /work/runs/sweep \
        --recipes benchmarks/recipes.json --folds 16,34 2,28 --jobs 2

To train on a re-paired copy of the atlas (benchmarks/rematch_pairs.py) but score on the pairs as
published, pass `--data COPY --score-data ORIGINAL`.

recipes.json: {"name": ["--option", "value", ...], ...}. The summary (summary.json and a table on
stdout) gives per recipe the mean over held-out patients and the per-patient numbers.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ATLAS_SLICE = re.compile(r"^(\d+)(\d{3})\.png")
METRICS = ("mae", "mean_error", "psnr", "ssim", "pearson", "ssim_whole", "psnr_whole")
"""Per-slice scores averaged per patient; one an older evaluation lacks is left out."""


def patient_pattern(patient: str) -> str:
    """The atlas names slices PPPSSS.png: patient id, then a 3-digit slice number."""
    return f"{patient}???.png"


def run(command: list[str], log: Path, env: dict[str, str]) -> None:
    with log.open("a", encoding="utf-8") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {' '.join(command[:4])}… (see {log})")


def one_job(args: argparse.Namespace, recipe: str, options: list[str], fold: list[str]) -> dict:
    folder = args.out / recipe / ("fold-" + "-".join(fold))
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "log.txt"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1"}
    aimedx = [args.python, "-m", "aimedx_desktop"]
    data = ["--ct", str(args.data / "CT"), "--mr", str(args.data / "MR")]
    scored = ["--ct", str(args.score_data / "CT"), "--mr", str(args.score_data / "MR")]
    held_out = [patient_pattern(p) for p in fold]
    started = time.perf_counter()
    if not (folder / "bundle" / "model_card.json").is_file():
        resume = ["--resume"] if (folder / "checkpoint.pt").is_file() else [*data, "--exclude", *held_out, *options]
        run([*aimedx, "train", "--out", str(folder), *resume], log, env)
    trained = time.perf_counter() - started
    model = ["--model", str(folder / "bundle")]
    run([*aimedx, "evaluate", *model, *scored, "--include", *held_out, "--json", str(folder / "eval.json")], log, env)
    result = {"recipe": recipe, "fold": fold, "train_seconds": trained, "eval": json.loads((folder / "eval.json").read_text())}
    if "--uncertainty" in options and len(fold) >= 2:
        result["coverage"] = cross_calibrated_coverage(aimedx, model, scored, fold, folder, log, env)
    (folder / "result.json").write_text(json.dumps(result, indent=1))
    return result


def cross_calibrated_coverage(aimedx, model, data, fold, folder, log, env) -> dict[str, dict[str, float]]:
    """Calibrate on each held-out patient in turn and measure the coverage on the next one."""
    coverage: dict[str, dict[str, float]] = {}
    for fit, test in zip(fold, fold[1:] + fold[:1]):
        run([*aimedx, "evaluate", *model, *data, "--include", patient_pattern(fit), "--calibrate"], log, env)
        report = folder / f"coverage-{test}.json"
        run([*aimedx, "evaluate", *model, *data, "--include", patient_pattern(test), "--json", str(report)], log, env)
        scores = json.loads(report.read_text())
        coverage[test] = {d: scores[d]["uncertainty"]["coverage"] for d in ("mr2ct", "ct2mr")}
    return coverage


def per_patient(evaluation: dict) -> dict[str, dict[str, dict[str, float]]]:
    """direction → patient → mean of each metric over that patient's slices."""
    grouped: dict[str, dict[str, list[dict]]] = {}
    for row in evaluation["per_slice"]:
        patient = ATLAS_SLICE.match(row["slice"]).group(1)
        grouped.setdefault(row["direction"], {}).setdefault(patient, []).append(row)
    return {
        direction: {p: {m: float(np.mean([r[m] for r in rows])) for m in METRICS if m in rows[0]} for p, rows in patients.items()}
        for direction, patients in grouped.items()
    }


def summarize(results: list[dict]) -> dict:
    summary: dict = {}
    for result in results:
        entry = summary.setdefault(result["recipe"], {"patients": {}, "uncertainty": {}, "coverage": {}, "train_seconds": []})
        entry["train_seconds"].append(result["train_seconds"])
        for direction, patients in per_patient(result["eval"]).items():
            entry["patients"].setdefault(direction, {}).update(patients)
            unc = result["eval"][direction].get("uncertainty")
            if unc:
                entry["uncertainty"].setdefault(direction, []).append({k: unc[k] for k in ("spearman", "auroc_worst10")})
        for patient, directions in result.get("coverage", {}).items():
            for direction, value in directions.items():
                entry["coverage"].setdefault(direction, {})[patient] = value
    for entry in summary.values():
        entry["mean"] = {
            direction: {m: float(np.mean([s[m] for s in patients.values()])) for m in METRICS if all(m in s for s in patients.values())}
            for direction, patients in entry["patients"].items()
        }
        for direction, rows in entry["uncertainty"].items():
            entry["mean"][direction].update({k: float(np.mean([r[k] for r in rows])) for k in rows[0]})
        for direction, values in entry["coverage"].items():
            entry["mean"][direction]["coverage"] = float(np.mean(list(values.values())))
    return summary


def print_table(summary: dict) -> None:
    for direction in ("mr2ct", "ct2mr"):
        print(f"\n{direction}: mean over held-out patients (head mask; *_whole = whole image)")
        keys = (*METRICS, "spearman", "auroc_worst10", "coverage")
        print(f"{'recipe':28s}" + "".join(f"{k[:11]:>12s}" for k in keys))
        for recipe, entry in sorted(summary.items(), key=lambda kv: kv[1]["mean"].get(direction, {}).get("mae", 1e9)):
            mean = entry["mean"].get(direction, {})
            print(f"{recipe:28s}" + "".join(f"{mean[k]:12.3f}" if k in mean else f"{'—':>12s}" for k in keys))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with CT/ and MR/ atlas slices")
    parser.add_argument("--score-data", type=Path, help="folder with CT/ and MR/ to score on (default: --data)")
    parser.add_argument("--out", type=Path, required=True, help="sweep folder (outside the repository)")
    parser.add_argument("--recipes", type=Path, required=True, help="JSON: recipe name → aimedx train options")
    parser.add_argument("--only", nargs="*", help="run only these recipes")
    parser.add_argument("--folds", nargs="+", required=True, help="held-out patients per fold, e.g. 16,34 2,28")
    parser.add_argument("--jobs", type=int, default=1, help="concurrent jobs")
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per job")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    args.score_data = args.score_data or args.data
    recipes = json.loads(args.recipes.read_text())
    if args.only:
        recipes = {name: recipes[name] for name in args.only}
    folds = [fold.split(",") for fold in args.folds]
    results, failures = [], []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(one_job, args, name, options, fold): (name, fold) for name, options in recipes.items() for fold in folds}
        for future in concurrent.futures.as_completed(futures):
            name, fold = futures[future]
            try:
                results.append(future.result())
                print(f"done {name} fold {fold} ({results[-1]['train_seconds']:.0f} s training)", flush=True)
            except Exception as error:  # one failed job must not lose the others' results
                failures.append(f"{name} {fold}: {error}")
                print(f"FAILED {name} fold {fold}: {error}", flush=True)
    summary = summarize(results)
    (args.out / "summary.json").write_text(json.dumps({"summary": summary, "failures": failures}, indent=1))
    print_table(summary)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
