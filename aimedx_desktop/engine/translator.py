"""Inference: a Scan in, the synthetic Scan of the other modality out, on the source grid.

Each slice is mapped to the network's range by the bundle's intensity contract, resized to the
model's square input keeping its physical aspect (padded with the background value), translated
in batches, resized back to the source grid and mapped back to physical units. A bundle whose
card declares an uncertainty output also gives, per voxel, the calibrated half-width of the
error interval in the target's units, carried in the synthetic Scan's `maps` (0 far outside
the anatomy, see ANATOMY_MARGIN).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from aimedx_desktop.engine.bundle import ModelBundle, direction_name
from aimedx_desktop.engine.cancel import CancelToken
from aimedx_desktop.engine.device import resolve_device
from aimedx_desktop.engine.preprocess import SliceLayout, fit_to_model, near_anatomy, restore_from_model
from aimedx_desktop.engine.scan import UNCERTAINTY, Modality, Provenance, Scan

ProgressCallback = Callable[[int, int], None]
"""Called as progress(done_slices, total_slices) after each batch."""

SliceCallback = Callable[[int, np.ndarray], None]
"""Called as on_slice(index, synthetic_slice) for each slice as soon as its batch is finished."""


ANATOMY_MARGIN = 12
"""Model pixels (about a centimetre) beyond the source's anatomy where the uncertainty map still
speaks: a reference that does not line up puts errors there. Farther out both images are air,
nothing can be wrong, and the map is 0 (the head was never trained on empty background)."""


class Translator:
    """Runs a bundle's generators on Scans. Construct once; `translate` as often as needed."""

    def __init__(self, bundle: ModelBundle, device: str = "auto", batch_size: int = 4) -> None:
        self.bundle = bundle
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.half = self.device.type == "cuda"
        self.mirror_average = bundle.mirror_average
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
        uncertainty = self.bundle.uncertainty(source)
        result = np.empty_like(scan.voxels)
        sigma = np.empty_like(scan.voxels) if uncertainty is not None else None
        total, shape = scan.n_slices, scan.voxels.shape[1:]
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
            with torch.inference_mode():
                inputs = torch.from_numpy(batch).to(self.device)
                outputs = self._run(generator, inputs)
                images = restore_from_model(outputs[:, 0], layout, shape)
                result[start:stop] = output_map.from_model(images.cpu().numpy())
                if sigma is not None and uncertainty is not None:
                    half_width = uncertainty.half_width(outputs[:, uncertainty.channel]) * output_map.units_per_model_unit
                    half_width *= near_anatomy(inputs, ANATOMY_MARGIN)
                    sigma[start:stop] = restore_from_model(half_width, layout, shape).cpu().numpy()
            if on_slice is not None:
                for index in range(start, stop):
                    on_slice(index, result[index])
            if progress is not None:
                progress(stop, total)
        maps = {UNCERTAINTY: sigma} if sigma is not None else {}
        return self._synthetic_scan(scan, result, target, maps)

    def _run(self, generator: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """(batch, channels, size, size) in float32 on the device: the image channel first, then any
        extra outputs. Called under inference mode; post-processing stays on the device and only
        finished slices travel back. With the card's mirror averaging, every channel (the
        uncertainty's log scale too) is the mean over the slice and its left-right mirror."""
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.half):
            output = generator(inputs[:, None]).float()
            if self.mirror_average:
                mirrored = generator(inputs[:, None].flip(-1)).float().flip(-1)
                output = 0.5 * (output + mirrored)
        return output

    def _synthetic_scan(self, scan: Scan, voxels: np.ndarray, target: Modality, maps: dict[str, np.ndarray]) -> Scan:
        provenance = Provenance(
            source_paths=scan.provenance.source_paths,
            source_format=scan.provenance.source_format,
            synthetic=True,
            model_name=self.bundle.name,
            model_version=self.bundle.version,
            direction=direction_name(scan.modality),
            value_range=self._output_range(target),
        )
        return dataclasses.replace(
            scan,
            voxels=voxels,
            modality=target,
            provenance=provenance,
            display_window=None,
            maps=maps,
            description=f"SYNTHETIC {target.value} of {scan.description}".strip(),
            warnings=scan.warnings + self._range_notes(target),
        )

    def _output_range(self, target: Modality) -> tuple[float, float]:
        output = self.bundle.contract.output_map(target)
        return float(output.lo), float(output.hi)

    def _range_notes(self, target: Modality) -> tuple[str, ...]:
        """A synthetic CT never leaves the model's CT window: air and bone sit at its ends."""
        if target is not Modality.CT:
            return ()
        ct = self.bundle.contract.ct
        return (f"synthetic CT values are limited to the model's window [{ct.lo_hu:g}, {ct.hi_hu:g}] HU: air and bone "
                "sit at its ends, not at their real HU",)
