"""Pre-register atlas pairs: each MR slice moved onto its CT (similarity transform, Mattes MI).

The experiment behind the README's note on pre-registration: it writes a registered copy of an
atlas folder (CT/ unchanged, MR/ resampled onto the CT) and prints, per patient, the Dice of the
CT and MR head masks before and after. Train and score on the copy with
`benchmarks/recipe_sweep.py --data OUT`. Needs SimpleITK, which the app does not
(`pip install SimpleITK`): the registration did not improve held-out patients, so it is not part
of training.

    python benchmarks/register_pairs.py ../shared/data/aanlib_brain /work/runs/registered
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from aimedx_desktop.engine.metrics import dice, head_mask

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_sweep import ATLAS_SLICE  # noqa: E402  (the atlas' slice names, PPPSSS.png)

MASK_LEVEL = 0.1 * 255
"""Head-mask threshold on the 8-bit atlas slices: a tenth of the range, above the background noise."""


def register(ct: np.ndarray, mr: np.ndarray) -> np.ndarray:
    """The MR slice resampled onto the CT slice after a 3-level similarity registration."""
    fixed, moving = sitk.GetImageFromArray(ct), sitk.GetImageFromArray(mr)
    initial = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Similarity2DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.3, 1)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-4, 200)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2, 1, 0])
    method.SetInitialTransform(initial, inPlace=False)
    transform = method.Execute(fixed, moving)
    return sitk.GetArrayFromImage(sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("atlas", type=Path, help="folder with CT/ and MR/ slices of the same names")
    parser.add_argument("out", type=Path, help="where the registered copy goes (outside the repository)")
    args = parser.parse_args()
    for modality in ("CT", "MR"):
        (args.out / modality).mkdir(parents=True, exist_ok=True)
    overlap: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for ct_path in sorted((args.atlas / "CT").glob("*.png")):
        ct = np.asarray(Image.open(ct_path).convert("L"), np.float32)
        mr = np.asarray(Image.open(args.atlas / "MR" / ct_path.name).convert("L"), np.float32)
        moved = register(ct, mr)
        Image.fromarray(ct.astype(np.uint8)).save(args.out / "CT" / ct_path.name)
        Image.fromarray(np.clip(moved, 0, 255).astype(np.uint8)).save(args.out / "MR" / ct_path.name)
        ct_head = head_mask(ct, MASK_LEVEL)
        patient = ATLAS_SLICE.match(ct_path.name).group(1)
        overlap[patient].append((dice(ct_head, head_mask(mr, MASK_LEVEL)), dice(ct_head, head_mask(moved, MASK_LEVEL))))
    print("patient  slices  head-mask Dice before  after")
    for patient, values in sorted(overlap.items(), key=lambda item: int(item[0])):
        before, after = np.mean(values, axis=0)
        print(f"{patient:>7}  {len(values):>6}  {before:21.3f}  {after:5.3f}")
    before, after = np.mean([v for values in overlap.values() for v in values], axis=0)
    print(f"{'all':>7}  {sum(map(len, overlap.values())):>6}  {before:21.3f}  {after:5.3f}")


if __name__ == "__main__":
    main()
