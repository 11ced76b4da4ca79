"""The README's side-by-side figure: bundled samples and their synthetic counterparts.

    python docs/make_side_by_side.py [--model BUNDLE] [--out docs/side_by_side.png]

Row 1: a slice of the GE head CT (brain window) and its synthetic MR; row 2: a slice of the T2
MR sample and its synthetic CT (brain window). Made with the bundled default model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from aimedx_desktop.engine.bundle import default_bundle_path, load_bundle
from aimedx_desktop.engine.intensity import default_window
from aimedx_desktop.engine.io import read_scan
from aimedx_desktop.engine.scan import Scan
from aimedx_desktop.engine.translator import Translator
from aimedx_desktop.resources import samples_dir

TILE = 320


def tile(scan: Scan, index: int, label: str) -> Image.Image:
    centre, width = default_window(scan)
    values = scan.voxels[index]
    gray = np.clip((values - (centre - width / 2)) / width * 255.0, 0, 255).astype(np.uint8)
    row_mm, col_mm = scan.geometry.pixel_spacing
    height = round(TILE * min(1.0, values.shape[0] * row_mm / (values.shape[1] * col_mm)))
    image = Image.fromarray(gray).resize((TILE, height), Image.Resampling.BILINEAR)
    canvas = Image.new("L", (TILE, TILE), 0)
    canvas.paste(image, (0, (TILE - height) // 2))
    ImageDraw.Draw(canvas).text((6, 4), label, fill=255)
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model bundle (default: the bundled default model)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("side_by_side.png"))
    args = parser.parse_args()
    bundle = load_bundle(args.model or default_bundle_path())
    translator = Translator(bundle)
    ct = read_scan(samples_dir() / "head_ct_ge")
    mr = read_scan(samples_dir() / "head_mr" / "t2_brain_stroke.nii.gz", modality="mr")
    ct_index, mr_index = 16, mr.n_slices // 2 + 10
    tiles = [
        tile(ct, ct_index, "CT (GE sample), W 80 L 40"),
        tile(translator.translate(ct), ct_index, f"SYNTHETIC MR ({bundle.name})"),
        tile(mr, mr_index, "T2 MR (stroke sample)"),
        tile(translator.translate(mr), mr_index, "SYNTHETIC CT, W 80 L 40"),
    ]
    figure = Image.new("L", (2 * TILE, 2 * TILE))
    for position, image in enumerate(tiles):
        figure.paste(image, ((position % 2) * TILE, (position // 2) * TILE))
    figure.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
