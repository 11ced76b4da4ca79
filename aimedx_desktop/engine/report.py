"""Evaluation results as a readable table: for `aimedx evaluate`, model cards and the GUI.

Torch-free, so that showing a model card never imports the evaluation machinery.
"""

from __future__ import annotations

from typing import Any

DIRECTION_NAMES = ("mr2ct", "ct2mr")

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("mae", "MAE", "{:10.3f}"),
    ("mean_error", "ME", "{:9.2f}"),
    ("psnr", "PSNR dB", "{:10.2f}"),
    ("ssim", "SSIM", "{:8.3f}"),
    ("pearson", "Pearson", "{:9.3f}"),
    ("ssim_whole", "SSIM img", "{:9.3f}"),
    ("psnr_whole", "PSNR img", "{:9.2f}"),
)
"""(key, heading, format): head-mask scores first, then whole-image ones. Cards written before a
metric existed show a dash in its column."""


def _cell(scores: dict[str, Any], key: str, form: str) -> str:
    width = int(form[2 : form.index(".")])
    value = scores.get(key)
    return form.format(value) if isinstance(value, (int, float)) else f"{'—':>{width}s}"


def format_table(result: dict[str, Any]) -> str:
    """Each direction's numbers with its baselines beneath, and the uncertainty figures if any."""
    header = f"{'':24s}" + "".join(f"{title:>{int(form[2:form.index('.')])}s}" for _, title, form in COLUMNS) + f"{'n':>6s}"
    lines = [header]
    for direction in DIRECTION_NAMES:
        if direction not in result:
            continue
        rows = [(f"{direction} model", result[direction])]
        rows += [(f"  baseline: {name}", scores) for name, scores in result.get("baselines", {}).get(direction, {}).items()]
        for label, scores in rows:
            cells = "".join(_cell(scores, key, form) for key, _, form in COLUMNS)
            lines.append(f"{label:24s}{cells}{scores.get('n', 0):6d}")
        lines.append(f"  ({direction} scored in {result.get('units', {}).get(direction, '?')}; head mask, 'img' = whole image)")
        uncertainty = result[direction].get("uncertainty")
        if uncertainty:
            lines.append(
                f"  uncertainty: Spearman ρ {uncertainty['spearman']:.3f}, AUROC(worst 10 %) "
                f"{uncertainty['auroc_worst10']:.3f}, coverage {100 * uncertainty['coverage']:.1f} % "
                f"(nominal {100 * uncertainty['nominal']:.0f} %)"
            )
    reference = result.get("reference")
    if reference:
        lines.append(
            f"reference: the real CT and MR head outlines overlap Dice {reference['head_dice']:.3f} "
            f"(worst slice {reference['head_dice_min']:.3f}); below 1, misaligned edges cost every model"
        )
    return "\n".join(lines)
