"""The one in-memory image object every reader returns and every writer and viewer takes.

A `Scan` holds float32 voxels shaped (slices, rows, cols) in physical units: Hounsfield units for
CT (rescale slope/intercept already applied), raw signal for MR, gray levels for plain raster
images. Geometry is kept in DICOM patient coordinates (LPS, millimetres).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np


UNCERTAINTY = "uncertainty"
"""The name of a synthetic scan's uncertainty map in Scan.maps (and of the model output behind it)."""


class Modality(str, Enum):
    """The two imaging modalities the product translates between."""

    CT = "CT"
    MR = "MR"

    @property
    def other(self) -> "Modality":
        return Modality.MR if self is Modality.CT else Modality.CT

    @classmethod
    def parse(cls, text: str) -> "Modality":
        """Accept 'ct', 'CT', 'mr', 'MRI', ... and return the modality."""
        key = text.strip().upper()
        if key in ("MRI",):
            key = "MR"
        try:
            return cls(key)
        except ValueError:
            raise ValueError(f"unknown modality {text!r}: expected 'ct' or 'mr'") from None


@dataclass(frozen=True)
class Geometry:
    """Where the voxels lie in space.

    pixel_spacing: (row spacing, column spacing) in mm, i.e. the distance between rows and
        between columns, as in DICOM PixelSpacing.
    orientation: the six direction cosines of DICOM ImageOrientationPatient (row direction,
        then column direction), or None when unknown.
    positions: (slices, 3) ImagePositionPatient of each slice's first voxel, or None.
    slice_thickness: nominal slice thickness in mm when known.
    """

    pixel_spacing: tuple[float, float] = (1.0, 1.0)
    orientation: tuple[float, float, float, float, float, float] | None = None
    positions: np.ndarray | None = None
    slice_thickness: float | None = None

    @property
    def slice_normal(self) -> np.ndarray | None:
        if self.orientation is None:
            return None
        row = np.asarray(self.orientation[:3], dtype=float)
        col = np.asarray(self.orientation[3:], dtype=float)
        return np.cross(row, col)

    @property
    def slice_spacings(self) -> np.ndarray | None:
        """Distances between consecutive slices along the slice normal (mm)."""
        normal = self.slice_normal
        if self.positions is None or normal is None or len(self.positions) < 2:
            return None
        return np.abs(np.diff(self.positions @ normal))

    def subset(self, index: int | slice) -> "Geometry":
        """The geometry of a subset of slices."""
        if self.positions is None:
            return self
        positions = self.positions[index]
        return dataclasses.replace(self, positions=np.atleast_2d(positions))


@dataclass(frozen=True)
class Provenance:
    """Where a scan came from, and whether it is synthetic."""

    source_paths: tuple[str, ...] = ()
    source_format: str = "unknown"
    synthetic: bool = False
    model_name: str | None = None
    model_version: str | None = None
    direction: str | None = None
    notes: tuple[str, ...] = ()
    output: str = "image"
    """Which of the model's outputs the voxels hold: the synthetic "image", or a map such as
    "uncertainty" exported as a series of its own."""
    value_range: tuple[float, float] | None = None
    """(low, high) a synthetic image's values are limited to: the model's output range."""

    def describe(self) -> str:
        if not self.synthetic:
            return f"{self.source_format} from {', '.join(self.source_paths) or 'memory'}"
        what = "synthetic" if self.output == "image" else f"{self.output} of synthetic"
        return f"{what} ({self.direction}) by {self.model_name} {self.model_version}"


@dataclass
class Scan:
    """A stack of 2D slices in physical units with its modality, geometry and provenance.

    dicom_headers holds one pydicom Dataset per slice (without pixel data) when the source was
    DICOM; writers use them to derive a series that belongs to the same study.
    display_window: (centre, width) suggested by the source (e.g. DICOM WindowCenter/Width).
    maps: per-voxel companion maps on the same grid, by name, in the voxels' units; a synthetic
    scan carries the extra outputs its model declares (e.g. "uncertainty": the calibrated
    half-width of the model's error interval, in HU for synthetic CT).
    """

    voxels: np.ndarray
    modality: Modality
    geometry: Geometry = field(default_factory=Geometry)
    provenance: Provenance = field(default_factory=Provenance)
    dicom_headers: list[Any] | None = None
    display_window: tuple[float, float] | None = None
    description: str = ""
    warnings: tuple[str, ...] = ()
    maps: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        voxels = np.asarray(self.voxels)
        if voxels.ndim == 2:
            voxels = voxels[np.newaxis]
        if voxels.ndim != 3:
            raise ValueError(f"a Scan needs (slices, rows, cols) voxels, got shape {voxels.shape}")
        self.voxels = np.ascontiguousarray(voxels, dtype=np.float32)
        if self.geometry.positions is not None and len(self.geometry.positions) != len(voxels):
            raise ValueError(
                f"{len(self.geometry.positions)} slice positions for {len(voxels)} slices"
            )
        if self.dicom_headers is not None and len(self.dicom_headers) != len(voxels):
            raise ValueError(f"{len(self.dicom_headers)} DICOM headers for {len(voxels)} slices")
        for name, values in self.maps.items():
            if np.shape(values) != voxels.shape:
                raise ValueError(f"map {name!r} has shape {np.shape(values)}, the voxels {voxels.shape}")

    @property
    def n_slices(self) -> int:
        return int(self.voxels.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.voxels.shape)  # type: ignore[return-value]

    @property
    def is_synthetic(self) -> bool:
        return self.provenance.synthetic

    @property
    def label(self) -> str:
        """What the voxels are, as exported files and viewers name them: "SYNTHETIC CT",
        "UNCERTAINTY of SYNTHETIC CT", or the modality of an acquired scan."""
        if not self.is_synthetic:
            return self.modality.value
        synthetic = f"SYNTHETIC {self.modality.value}"
        return synthetic if self.provenance.output == "image" else f"{self.provenance.output.upper()} of {synthetic}"

    def map_scan(self, name: str) -> "Scan":
        """The companion map `name` as a Scan of its own on the same grid (for export and display).

        Its window spans 0 to the 99.5th percentile: a map has no standard window."""
        if name not in self.maps:
            raise KeyError(name)
        values = self.maps[name]
        top = float(np.percentile(values, 99.5)) if values.size else 1.0
        top = top if top > 0 else 1.0
        return dataclasses.replace(
            self,
            voxels=values,
            maps={},
            provenance=dataclasses.replace(self.provenance, output=name),
            display_window=(top / 2.0, top),
            description=f"{name.upper()} of {self.description}".strip(),
        )
