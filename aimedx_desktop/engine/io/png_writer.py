"""PNG slices of a synthetic scan: 8-bit as displayed, or 16-bit over the series' full range.

8-bit: the window (centre, width) maps [centre - width/2, centre + width/2] linearly onto 0..255,
clipping outside, exactly as the viewer's window/level shows it.
16-bit: the series' minimum..maximum maps onto 0..65535 (one mapping for the whole series, so
slices stay comparable); text chunks RescaleSlope/RescaleIntercept give value = gray*slope +
intercept back in physical units.
Every file carries text chunks naming the model, the direction and the not-for-diagnosis statement.
`read_calibration` is the inverse: raster.py uses it to read these files back in physical units.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from aimedx_desktop import RESEARCH_USE_STATEMENT, __version__
from aimedx_desktop.engine.scan import Modality, Scan

SOFTWARE = "AI-MEDX Desktop"
_UNITS = {Modality.CT: "HU", Modality.MR: "arbitrary units"}
_WINDOW = re.compile(r"centre (\S+) width (\S+)")
_SYNTHETIC = re.compile(r"SYNTHETIC (CT|MR)\b")


@dataclass(frozen=True)
class PngCalibration:
    """What the text chunks of one of our own PNG exports say: value = gray * slope + intercept."""

    slope: float
    intercept: float
    window: tuple[float, float] | None  # 8-bit: the (centre, width) it was rendered with
    modality: Modality | None
    model: str
    direction: str


def read_calibration(text: Mapping[str, str]) -> PngCalibration | None:
    """The calibration of a PNG whose text chunks were written by `PngSeriesWriter`, else None.

    16-bit: RescaleSlope/RescaleIntercept. 8-bit: the Window chunk, gray g meaning
    centre - width/2 + g/255 * width (values outside the window were clipped when written).
    """
    if not str(text.get("Software", "")).startswith(SOFTWARE):
        return None
    window_text = _WINDOW.fullmatch(str(text.get("Window", "")))
    synthetic = _SYNTHETIC.search(str(text.get("Disclaimer", "")))
    try:
        if "RescaleSlope" in text and "RescaleIntercept" in text:
            slope, intercept, window = float(text["RescaleSlope"]), float(text["RescaleIntercept"]), None
        elif window_text:
            window = (float(window_text[1]), float(window_text[2]))
            slope, intercept = window[1] / 255.0, window[0] - window[1] / 2.0
        else:
            return None
    except ValueError:  # a chunk edited by hand: read the gray levels as they are
        return None
    modality = Modality(synthetic[1]) if synthetic else None
    model, direction = str(text.get("Model", "")), str(text.get("Direction", ""))
    return PngCalibration(slope, intercept, window, modality, model, direction)


def window_to_gray(values: np.ndarray, window: tuple[float, float], levels: int = 255) -> np.ndarray:
    """Physical values to gray levels 0..levels through a (centre, width) window, as displayed."""
    centre, width = window
    lo = centre - width / 2.0
    scaled = (np.asarray(values, dtype=np.float64) - lo) * (levels / width)
    return np.rint(np.clip(scaled, 0, levels))


class PngSeriesWriter:
    """Writes slice `index` of a synthetic scan as one PNG file."""

    def __init__(self, scan: Scan, window: tuple[float, float], bits: int) -> None:
        self.scan = scan
        self.window = window
        self.bits = bits
        self.text = {
            "Software": f"{SOFTWARE} {__version__}",
            "Model": f"{scan.provenance.model_name} {scan.provenance.model_version}",
            "Direction": str(scan.provenance.direction),
            "Disclaimer": f"{scan.label}, NOT FOR DIAGNOSIS. {RESEARCH_USE_STATEMENT}",
            "Units": _UNITS[scan.modality],
        }
        if scan.provenance.output != "image":
            self.text["Output"] = (
                f"{scan.provenance.output}: per pixel, the calibrated half-width of the model's error interval, "
                f"in {_UNITS[scan.modality]}"
            )
        if bits == 8:
            self.text["Window"] = f"centre {window[0]:.10g} width {window[1]:.10g}"
        else:
            lo, hi = float(scan.voxels.min()), float(scan.voxels.max())
            self.intercept = lo
            self.slope = (hi - lo) / 65535.0 if hi > lo else 1.0
            self.text["RescaleSlope"] = f"{self.slope:.10g}"
            self.text["RescaleIntercept"] = f"{self.intercept:.10g}"

    def gray(self, index: int) -> np.ndarray:
        """The stored gray levels of slice `index` (uint8 or uint16)."""
        values = self.scan.voxels[index]
        if self.bits == 8:
            return window_to_gray(values, self.window).astype(np.uint8)
        scaled = np.rint((values.astype(np.float64) - self.intercept) / self.slope)
        return np.clip(scaled, 0, 65535).astype(np.uint16)

    def write(self, index: int, path: Path) -> None:
        info = PngInfo()
        info.add_text("Title", f"{self.scan.label} slice {index + 1} of {self.scan.n_slices}")
        for key, value in self.text.items():
            info.add_text(key, value)
        Image.fromarray(self.gray(index)).save(path, format="PNG", pnginfo=info)
