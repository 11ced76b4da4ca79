"""The intensity contract: the one place that maps physical units to the network's [-1, 1].

A model bundle declares one contract per modality:

* CT: a fixed HU window [lo, hi] mapped linearly onto [-1, 1]; values outside are clipped.
* MR: per-slice percentile scaling: the p_lo..p_hi percentile range of each slice maps onto
  [-1, 1]. MR signal has no absolute unit, so synthetic MR is written on a fixed
  arbitrary-unit range `synthetic_range`.

Every mapping is a `LinearMap`, whose inverse is exact (to float precision) inside its window.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from aimedx_desktop.engine.scan import Modality, Scan


@dataclass(frozen=True)
class LinearMap:
    """Maps [lo, hi] in physical units linearly onto [-1, 1], clipping outside."""

    lo: float
    hi: float

    def __post_init__(self) -> None:
        if not self.hi > self.lo:
            raise ValueError(f"empty intensity window [{self.lo}, {self.hi}]")

    def to_model(self, values: np.ndarray) -> np.ndarray:
        scaled = (np.asarray(values, dtype=np.float32) - self.lo) * (2.0 / (self.hi - self.lo)) - 1.0
        return np.clip(scaled, -1.0, 1.0).astype(np.float32)

    @property
    def units_per_model_unit(self) -> float:
        """How many physical units one unit of the model's [-1, 1] scale spans."""
        return (self.hi - self.lo) / 2.0

    def from_model(self, values: np.ndarray) -> np.ndarray:
        clipped = np.clip(np.asarray(values, dtype=np.float32), -1.0, 1.0)
        return ((clipped + 1.0) * ((self.hi - self.lo) / 2.0) + self.lo).astype(np.float32)


MAX_INTENSITY = 1e6
"""No CT or MR value comes near it; far larger window ends overflow float32 into NaN images."""


def _require_finite(contract: Any) -> None:
    """Contract values come from model cards: NaN, infinity or 1e39 would silently zero every image."""
    for item in fields(contract):
        value = getattr(contract, item.name)
        if not math.isfinite(value):
            raise ValueError(f"intensity value {item.name} must be a finite number, not {value}")
        if abs(value) > MAX_INTENSITY:
            raise ValueError(f"intensity value {item.name} must lie within ±{MAX_INTENSITY:g}, not {value:g}")


@dataclass(frozen=True)
class CTContract:
    """CT in HU, windowed to [lo_hu, hi_hu]."""

    lo_hu: float = -1000.0
    hi_hu: float = 1000.0

    def __post_init__(self) -> None:
        _require_finite(self)
        if not self.hi_hu > self.lo_hu:
            raise ValueError(f"empty intensity window [{self.lo_hu}, {self.hi_hu}] HU")

    @property
    def window(self) -> LinearMap:
        return LinearMap(self.lo_hu, self.hi_hu)

    def input_map(self, slice_values: np.ndarray) -> LinearMap:
        return self.window

    def output_map(self) -> LinearMap:
        return self.window

    def gray_to_hu(self, gray: np.ndarray, levels: int = 255) -> np.ndarray:
        """Calibrate a display-windowed raster CT (gray 0..levels) back to HU on this window."""
        return (np.asarray(gray, np.float32) / levels * (self.hi_hu - self.lo_hu) + self.lo_hu).astype(
            np.float32
        )


@dataclass(frozen=True)
class MRContract:
    """MR signal scaled per slice by percentiles; synthetic MR written on a fixed range."""

    p_lo: float = 0.0
    p_hi: float = 99.5
    synthetic_lo: float = 0.0
    synthetic_hi: float = 1000.0

    def __post_init__(self) -> None:
        _require_finite(self)
        if not 0.0 <= self.p_lo < self.p_hi <= 100.0:
            raise ValueError(f"MR percentiles must satisfy 0 <= lo < hi <= 100, got {self.p_lo}, {self.p_hi}")
        if not self.synthetic_hi > self.synthetic_lo:
            raise ValueError(f"empty synthetic MR range [{self.synthetic_lo}, {self.synthetic_hi}]")

    def input_map(self, slice_values: np.ndarray) -> LinearMap:
        lo, hi = np.percentile(slice_values, [self.p_lo, self.p_hi])
        if hi <= lo:  # a flat slice: any non-empty window maps it to one value
            hi = lo + 1.0
        return LinearMap(float(lo), float(hi))

    def output_map(self) -> LinearMap:
        return LinearMap(self.synthetic_lo, self.synthetic_hi)


@dataclass(frozen=True)
class IntensityContract:
    """The pair of per-modality contracts that a model bundle was trained with."""

    ct: CTContract
    mr: MRContract

    def for_modality(self, modality: Modality) -> CTContract | MRContract:
        return self.ct if modality is Modality.CT else self.mr

    def input_map(self, modality: Modality, slice_values: np.ndarray) -> LinearMap:
        return self.for_modality(modality).input_map(slice_values)

    def output_map(self, modality: Modality) -> LinearMap:
        return self.for_modality(modality).output_map()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ct": {"kind": "hu_window", **asdict(self.ct)},
            "mr": {"kind": "percentile", **asdict(self.mr)},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "IntensityContract":
        try:
            return cls(ct=_build(CTContract, data["ct"]), mr=_build(MRContract, data["mr"]))
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"malformed intensity contract: {error}") from None


def _build(kind: type, values: dict[str, Any]) -> Any:
    """Build a contract from its JSON form, ignoring descriptive keys such as 'kind' or 'note'."""
    names = {f.name for f in fields(kind)}
    return kind(**{name: float(value) for name, value in values.items() if name in names})


def is_display_windowed_ct(scan: Scan) -> bool:
    """A CT read from an 8-bit raster image (PNG, JPEG, ...) holds display gray levels, not HU.

    Not so for the app's own PNG exports, whose text chunks give physical units back on read.
    """
    return (
        _uncalibrated_raster_ct(scan)
        and float(scan.voxels.max(initial=0.0)) <= 255.0
        and float(scan.voxels.min(initial=0.0)) >= 0.0
    )


def _uncalibrated_raster_ct(scan: Scan) -> bool:
    """A CT read from a raster image that is not one of the app's own calibrated exports: nothing
    in the file says what its values are in HU."""
    from aimedx_desktop.engine.io.raster import CALIBRATED, RASTER_FORMATS  # imported late: pulls in pydicom

    provenance = scan.provenance
    return (
        scan.modality is Modality.CT
        and provenance.source_format in RASTER_FORMATS
        and CALIBRATED not in provenance.notes
        and not provenance.synthetic
    )


def calibrate_display_ct(scan: Scan, ct: CTContract) -> Scan:
    """Gray levels 0..255 of a display-windowed CT export, mapped back to HU on `ct`'s window.

    The export clipped everything outside its window, so HU outside [lo_hu, hi_hu] cannot be
    recovered: air and bone come back as the window's ends.
    """
    note = f"8-bit CT gray levels calibrated to HU assuming the window [{ct.lo_hu:g}, {ct.hi_hu:g}] HU"
    return dataclasses.replace(scan, voxels=ct.gray_to_hu(scan.voxels), warnings=scan.warnings + (note,))


CT_DEFAULT_WINDOW = (40.0, 80.0)
"""(centre, width) in HU shown when nothing else is known: the brain window (a head product)."""

DISPLAY_PERCENTILES = (0.5, 99.5)
"""Data without a standard scale (MR, plain images): this percentile range fills the display."""

WINDOW_SAMPLES = 250_000
"""Percentiles are estimated on at most this many voxels: fast enough for a UI thread."""


def regular_sample(values: np.ndarray) -> np.ndarray:
    """Every n-th value of `values`, at most about WINDOW_SAMPLES of them (a view, no copy, for
    contiguous data): enough for percentiles, quick for a UI thread on a 500-slice volume."""
    flat = np.asarray(values).reshape(-1)
    return flat[:: max(1, flat.size // WINDOW_SAMPLES)]


def display_window(
    voxels: np.ndarray, ct_in_hu: bool, suggested: tuple[float, float] | None = None
) -> tuple[float, float]:
    """The (centre, width) to show data with when the user has not chosen one.

    The window the source suggests (DICOM Window Center/Width) wins; CT in HU gets the brain
    window; anything else its 0.5–99.5 percentile range, else its full range (flat data), else
    a unit window (no data).
    """
    if suggested is not None and suggested[1] > 0:
        return float(suggested[0]), float(suggested[1])
    if ct_in_hu:
        return CT_DEFAULT_WINDOW
    sample = regular_sample(voxels)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.5, 1.0
    for low, high in (np.percentile(sample, DISPLAY_PERCENTILES), (sample.min(), sample.max())):
        if high > low:
            return float((low + high) / 2.0), float(high - low)
    return float(sample[0]), 1.0


def is_ct_in_hu(scan: Scan) -> bool:
    """CT whose voxels are HU: every CT but a display-windowed raster not yet calibrated."""
    return scan.modality is Modality.CT and not is_display_windowed_ct(scan)


def default_window(scan: Scan) -> tuple[float, float]:
    """display_window for a whole scan."""
    return display_window(scan.voxels, is_ct_in_hu(scan), scan.display_window)


def prepare_source(scan: Scan, contract: IntensityContract) -> Scan:
    """The scan as a model with `contract` takes it: display-windowed 8-bit CT calibrated to HU.

    Readers, the CLI, the GUI and training all go through this, so a PNG of CT means the same
    thing everywhere.
    """
    if is_display_windowed_ct(scan):
        return calibrate_display_ct(scan, contract.ct)
    from aimedx_desktop.engine.mr_weighting import weighting_note  # imported late: intensity is imported everywhere

    notes = tuple(note for note in (_raster_ct_note(scan), weighting_note(scan)) if note)
    return dataclasses.replace(scan, warnings=scan.warnings + notes) if notes else scan


def _raster_ct_note(scan: Scan) -> str | None:
    """What to know about a CT read from a raster image beyond 8 bits: its values are taken as HU
    as they are, and many tools store HU + 1024 in an unsigned 16-bit image."""
    if not _uncalibrated_raster_ct(scan):
        return None
    lowest = float(scan.voxels.min())
    note = "CT values of a raster image taken as HU as stored (the image has no rescale)"
    if lowest >= 0.0:
        note += (f"; its lowest value is {lowest:g}, where air would be about -1000 HU: if the image stores "
                 "HU + 1024, open the DICOM or NIfTI it came from instead")
    return note
