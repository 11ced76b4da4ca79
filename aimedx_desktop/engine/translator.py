"""Inference: a Scan in, the synthetic Scan of the other modality out, on the source grid.

Each slice is mapped to the network's range by the bundle's intensity contract, resized to the
model's square input keeping its physical aspect (padded with the background value), translated
in batches, resized back to the source grid and mapped back to physical units.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from aimedx_desktop.engine.bundle import ModelBundle, direction_name
from aimedx_desktop.engine.cancel import CancelToken, Cancelled
from aimedx_desktop.engine.intensity import LinearMap
from aimedx_desktop.engine.scan import Modality, Provenance, Scan

ProgressCallback = Callable[[int, int], None]
"""Called as progress(done_slices, total_slices) after each batch."""

SliceCallback = Callable[[int, np.ndarray], None]
"""Called as on_slice(index, synthetic_slice) as soon as a slice is finished."""


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU; 'cuda' without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA GPU is available")
    return torch.device(device)


@dataclass(frozen=True)
class SliceLayout:
    """How one source slice sits inside the model's square input (resize, then centre pad)."""

    rows: int
    cols: int
    top: int
    left: int

    @classmethod
    def fit(cls, shape: tuple[int, int], spacing: tuple[float, float], size: int, multiple: int) -> "SliceLayout":
        """Scale the physical extent to fit `size`, keeping aspect; each side at least `multiple`."""
        height_mm = shape[0] * spacing[0]
        width_mm = shape[1] * spacing[1]
        scale = size / max(height_mm, width_mm)
        rows = max(multiple, min(size, round(height_mm * scale)))
        cols = max(multiple, min(size, round(width_mm * scale)))
        return cls(rows=rows, cols=cols, top=(size - rows) // 2, left=(size - cols) // 2)


def fit_to_model(values: np.ndarray, input_map: LinearMap, layout: SliceLayout, size: int) -> np.ndarray:
    """A slice in physical units as the network's (size, size) input in [-1, 1]."""
    normalized = torch.from_numpy(input_map.to_model(values))
    resized = F.interpolate(
        normalized[None, None], size=(layout.rows, layout.cols), mode="bilinear", antialias=True, align_corners=False
    )[0, 0]
    canvas = torch.full((size, size), -1.0)
    canvas[layout.top : layout.top + layout.rows, layout.left : layout.left + layout.cols] = resized
    return canvas.numpy()


def restore_from_model(output: np.ndarray, layout: SliceLayout, shape: tuple[int, int]) -> np.ndarray:
    """The inverse of fit_to_model's geometry: crop the padding and resize to the source grid."""
    crop = torch.from_numpy(np.ascontiguousarray(output[layout.top : layout.top + layout.rows, layout.left : layout.left + layout.cols]))
    return F.interpolate(crop[None, None], size=shape, mode="bilinear", antialias=True, align_corners=False)[0, 0].numpy()


class Translator:
    """Runs a bundle's generators on Scans. Construct once; `translate` as often as needed."""

    def __init__(self, bundle: ModelBundle, device: str = "auto", batch_size: int = 4) -> None:
        self.bundle = bundle
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.half = self.device.type == "cuda"
        for generator in bundle.generators.values():
            generator.to(self.device).eval()

    def translate(
        self,
        scan: Scan,
        target: Modality | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        on_slice: SliceCallback | None = None,
    ) -> Scan:
        """The synthetic counterpart of `scan`; raises Cancelled if `cancel` fires."""
        target = target or scan.modality.other
        if target is scan.modality:
            raise ValueError(f"the scan is already {target.value}; nothing to translate")
        source = scan.modality
        generator = self.bundle.generator(source)
        size = self.bundle.image_size
        layout = SliceLayout.fit(
            scan.voxels.shape[1:], scan.geometry.pixel_spacing, size, generator.size_multiple
        )
        output_map = self.bundle.contract.output_map(target)
        result = np.empty_like(scan.voxels)
        total = scan.n_slices
        for start in range(0, total, self.batch_size):
            if cancel is not None:
                cancel.raise_if_cancelled()
            stop = min(start + self.batch_size, total)
            batch = np.stack(
                [
                    fit_to_model(scan.voxels[i], self.bundle.contract.input_map(source, scan.voxels[i]), layout, size)
                    for i in range(start, stop)
                ]
            )
            translated = self._run(generator, batch)
            for offset, output in enumerate(translated):
                index = start + offset
                result[index] = output_map.from_model(restore_from_model(output, layout, scan.voxels.shape[1:]))
                if on_slice is not None:
                    on_slice(index, result[index])
            if progress is not None:
                progress(stop, total)
        return self._synthetic_scan(scan, result, target)

    def _run(self, generator: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(batch)[:, None].to(self.device)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.float16, enabled=self.half):
            output = generator(tensor)
        return output[:, 0].float().cpu().numpy()

    def _synthetic_scan(self, scan: Scan, voxels: np.ndarray, target: Modality) -> Scan:
        provenance = Provenance(
            source_paths=scan.provenance.source_paths,
            source_format=scan.provenance.source_format,
            synthetic=True,
            model_name=self.bundle.name,
            model_version=self.bundle.version,
            direction=direction_name(scan.modality),
        )
        return dataclasses.replace(
            scan,
            voxels=voxels,
            modality=target,
            provenance=provenance,
            display_window=None,
            description=f"SYNTHETIC {target.value} of {scan.description}".strip(),
        )
