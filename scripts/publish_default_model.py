"""Publish a finished training run as the bundled default model, with its descriptive card.

    python scripts/publish_default_model.py RUN_DIR [--dest resources/models/default]

The run's own card already holds the architecture, intensity contract, exact training command
and data summary; this adds what a reader of the card needs besides: the data and its licence,
the patient split, the MR sequences it knows, the HU calibration and its limits, and intended
use. Validation metrics are added afterwards by `aimedx evaluate … --record` (see the README).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aimedx_desktop.engine.bundle import load_bundle, save_bundle
from aimedx_desktop.resources import models_dir

CARD_NOTES = {
    "summary": (
        "MR↔CT CycleGAN for axial brain slices at 256×256: a compact ResNet generator "
        "(16 filters, 9 residual blocks) chosen to run in well under 150 ms per slice on a 2-core CPU."
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
        "images": "256×256 8-bit PNG axial slices, CT and MR roughly co-registered per slice",
        "training_patients": ["2", "20", "21", "28", "32", "33", "34"],
        "validation_patients": ["16"],
        "split": "by patient; training used the two sides unpaired (shuffled independently)",
        "slices_skipped": "slices with under 10 % foreground after normalisation",
    },
    "mr_sequences": (
        "Trained on mostly T2-weighted MR (some proton-density and FLAIR). T1-weighted, contrast-enhanced "
        "or skull-stripped input is outside its training data and gives less faithful synthetic CT."
    ),
    "limitations": (
        "A small demonstration model: 36 epochs (about 4,500 iterations) on ~120 unpaired slices from "
        "7 patients, trained on a 2-core CPU. On the held-out patient its synthetic CT reproduces the "
        "head outline and a bright skull but keeps much of the MR's soft-tissue contrast (CSF that is "
        "bright on T2 stays bright), and its scores are below the mean-image baseline (see metrics). "
        "Use it to demonstrate the workflow, not as a faithful synthesis."
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
            "ends, so it cannot show bone density or air/fat boundaries. Per-patient brain peaks in the "
            "atlas vary from 85 to 154 gray levels (the exports were not uniform), so absolute HU carry an "
            "uncertainty of roughly ±25 HU. Real HU CT fed to CT→MR is windowed the same way."
        ),
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="training run folder (with bundle/)")
    parser.add_argument("--dest", type=Path, default=models_dir() / "default")
    args = parser.parse_args()
    bundle = load_bundle(args.run / "bundle")
    bundle.card.update(CARD_NOTES)
    bundle.card["training"]["inputs"] = {
        side: [Path(p).name for p in paths] if isinstance(paths, list) else paths
        for side, paths in bundle.card["training"]["inputs"].items()
    }
    print(f"published {save_bundle(bundle, args.dest)}")


if __name__ == "__main__":
    main()
