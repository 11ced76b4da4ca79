"""Scans on disk → normalised 2D slices: unpaired for training, paired for evaluation.

Everything goes through the same readers, intensity contract and slice layout as inference,
so a model sees in training exactly what the Translator will feed it.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from aimedx_desktop.engine.errors import UserError
from aimedx_desktop.engine.intensity import IntensityContract, prepare_source
from aimedx_desktop.engine.io import read_scan
from aimedx_desktop.engine.io.errors import ScanReadError, os_error_reason
from aimedx_desktop.engine.io.raster import raster_files
from aimedx_desktop.engine.metrics import head_mask
from aimedx_desktop.engine.preprocess import FOREGROUND_LEVEL, SliceLayout, fit_to_model
from aimedx_desktop.engine.scan import Modality, Scan

if TYPE_CHECKING:
    from torchvision.transforms import v2


def expand_inputs(
    paths: list[str | Path], exclude: list[str] | None = None, include: list[str] | None = None
) -> list[Path]:
    """Files and folders to read. Folders of raster slices are expanded to their files so that
    shell patterns on file names can hold a patient out (`exclude`, e.g. '16???.png') or
    select one (`include`)."""
    found: list[Path] = []
    for path in map(Path, paths):
        try:
            slices = raster_files(path) if path.is_dir() else []
        except OSError as error:  # a folder we may not list
            raise ScanReadError(path, f"cannot read ({os_error_reason(error)})") from None
        if slices:
            found += slices
        else:
            found.append(path)
    def matches(path: Path, patterns: list[str]) -> bool:
        return any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns)

    return [p for p in found if not matches(p, exclude or []) and (not include or matches(p, include))]


def read_in_physical_units(path: Path, modality: Modality, contract: IntensityContract) -> Scan:
    """Read a scan; display-windowed 8-bit CT is calibrated to HU on the contract's window."""
    return prepare_source(read_scan(path, modality=modality), contract)


def normalized_slices(scan: Scan, contract: IntensityContract, size: int, multiple: int = 4) -> list[np.ndarray]:
    """Each slice of `scan` as the network would see it: (size, size) float32 in [-1, 1]."""
    layout = SliceLayout.fit(scan.voxels.shape[1:], scan.geometry.pixel_spacing, size, multiple)
    return [fit_to_model(values, contract.input_map(scan.modality, values), layout, size) for values in scan.voxels]


def foreground_fraction(normalized: np.ndarray) -> float:
    return float((normalized > FOREGROUND_LEVEL).mean())


@dataclass
class SliceSet:
    """The usable slices of one modality, with a count of what was skipped and from where.

    sources name each slice as `file[index]`: the key that pairs a CT slice with its MR slice
    (same file name under --ct and --mr, or the same slice of co-registered volumes). grids hold
    each slice's source shape, so slices of volumes on different grids are never paired.
    """

    slices: list[np.ndarray]
    sources: list[str]
    grids: list[tuple[int, int]]
    skipped_empty: int

    @classmethod
    def load(
        cls,
        paths: list[Path],
        modality: Modality,
        contract: IntensityContract,
        size: int,
        min_foreground: float = 0.1,
    ) -> "SliceSet":
        slices, sources, grids, skipped = [], [], [], 0
        for path in paths:
            scan = read_in_physical_units(path, modality, contract)
            for index, normalized in enumerate(normalized_slices(scan, contract, size)):
                if foreground_fraction(normalized) < min_foreground:
                    skipped += 1
                    continue
                slices.append(normalized)
                sources.append(f"{path.name}[{index}]")
                grids.append(scan.voxels.shape[1:])
        if not slices:
            raise UserError(f"no usable {modality.value} slices in {len(paths)} input(s)")
        return cls(slices, sources, grids, skipped)

    def summary(self) -> dict[str, int]:
        return {"slices": len(self.slices), "skipped_almost_empty": self.skipped_empty}


def source_file(source: str) -> str:
    """The file name of a slice's source key (SliceSet.sources are `file[index]`)."""
    return source.rsplit("[", 1)[0]


def check_pair_names(ct_paths: Sequence[Path], mr_paths: Sequence[Path]) -> None:
    """Pairs are matched by file name: refuse a shared name that more than one input on a side
    carries (p1/img.png and p2/img.png), which would pair one patient's CT with another's MR.
    Checked on the inputs, before any slice is dropped as almost empty."""
    ct_counts, mr_counts = Counter(p.name for p in ct_paths), Counter(p.name for p in mr_paths)
    clashing = sorted(name for name in ct_counts.keys() & mr_counts.keys() if ct_counts[name] > 1 or mr_counts[name] > 1)
    if clashing:
        first = clashing[0]
        raise UserError(
            f"pairs are matched by file name, but {len(clashing)} shared name(s) belong to more than one input "
            f"(e.g. {first}: {ct_counts[first]} CT, {mr_counts[first]} MR); give each pair a name of its own"
        )


def pair_indices(ct: SliceSet, mr: SliceSet) -> list[tuple[int, int]]:
    """(CT index, MR index) of the slices that share a source key and a grid (the inputs' names
    already passed `check_pair_names`)."""
    mr_by_key = {key: i for i, key in enumerate(mr.sources)}
    return [
        (i, mr_by_key[key])
        for i, key in enumerate(ct.sources)
        if key in mr_by_key and ct.grids[i] == mr.grids[mr_by_key[key]]
    ]


def export_key(file_name: str, pattern: re.Pattern[str]) -> str:
    """The export a slice belongs to: the pattern's match in its file name (group 1 if it has
    one); a file the pattern does not match is an export of its own."""
    match = pattern.search(file_name)
    if match is None:
        return file_name
    return match.group(1) if pattern.groups else match.group(0)


def soft_tissue(normalized: np.ndarray) -> np.ndarray:
    """The head pixels of a CT slice (model units) that its display window did not clip.

    Display-windowed exports clip air and bone to the window's ends; what lies between is mostly
    brain, so its median places the export's window."""
    return head_mask(normalized, FOREGROUND_LEVEL) & (np.abs(normalized) < 1.0 - 1e-6)


def harmonize_ct_levels(ct: SliceSet, pattern: str, units_per_model_unit: float) -> dict[str, float]:
    """Shift each CT export's soft-tissue level to the median level over exports, in place.

    Display-windowed CT (the atlas PNGs) was saved with windows that differ between patients:
    the same brain sits tens of HU apart. Trained on that, a model learns the average of the
    windows and is off for everyone. `pattern` (a regular expression on file names) says which
    slices share an export; an export's level is the median over its slices of their
    soft-tissue medians, and only soft-tissue pixels move: air, bone and the background stay.
    Returns the offset per export in HU.
    """
    compiled = re.compile(pattern)
    file_names = [source_file(source) for source in ct.sources]
    if not any(compiled.search(name) for name in file_names):
        raise UserError(f"--ct-level-groups {pattern!r} matches none of the CT file names (e.g. {file_names[0]})")
    keys = [export_key(name, compiled) for name in file_names]
    tissues = [soft_tissue(normalized) for normalized in ct.slices]
    levels: dict[str, list[float]] = {}
    for key, normalized, tissue in zip(keys, ct.slices, tissues):
        if tissue.any():
            levels.setdefault(key, []).append(float(np.median(normalized[tissue])))
    export_levels = {key: float(np.median(values)) for key, values in levels.items()}
    if not export_levels:
        return {}
    reference = float(np.median(list(export_levels.values())))
    offsets = {key: reference - level for key, level in export_levels.items()}
    for index, (key, tissue) in enumerate(zip(keys, tissues)):
        normalized = ct.slices[index]
        shifted = np.where(tissue, normalized + offsets.get(key, 0.0), normalized)
        ct.slices[index] = np.clip(shifted, -1.0, 1.0).astype(np.float32)
    return {key: round(offset * units_per_model_unit, 1) for key, offset in sorted(offsets.items())}


@dataclass(frozen=True)
class Augmentation:
    """Random training transforms: flips, an affine jitter, a crop, and an MR contrast jitter.

    degrees, translate (fraction of the side) and scale (± fraction) bound the affine jitter;
    mr_gamma bounds |log gamma| of a random gamma curve applied to MR slices, so that the model
    meets MR of somewhat different weighting and scaling than the training scans.
    """

    crop_size: int
    size: int
    degrees: float = 5.0
    translate: float = 0.04
    scale: float = 0.05
    mr_gamma: float = 0.0

    def geometric(self) -> "v2.Compose":
        """Applied to a stack of channels, every channel gets the same transform: that is how a
        pair (CT, MR and their head masks) stays aligned. The background fill is the model's -1."""
        from torchvision.transforms import v2  # training only: the CPU app bundle ships no torchvision

        steps: list[v2.Transform] = [
            v2.RandomHorizontalFlip(),
            v2.RandomAffine(
                degrees=self.degrees, translate=(self.translate, self.translate), scale=(1 - self.scale, 1 + self.scale), fill=-1.0
            ),
        ]
        if self.crop_size < self.size:
            steps.append(v2.RandomCrop(self.crop_size))
        return v2.Compose(steps)

    def mr_contrast(self, mr: torch.Tensor) -> torch.Tensor:
        """A random gamma curve on [-1, 1] (background -1 and the top 1 stay where they are)."""
        if self.mr_gamma == 0.0:
            return mr
        gamma = math.exp((2.0 * torch.rand(()).item() - 1.0) * self.mr_gamma)
        return ((mr + 1.0) / 2.0).clamp(0.0, 1.0).pow(gamma) * 2.0 - 1.0


def head_sign(normalized: np.ndarray) -> torch.Tensor:
    """The head mask of a normalised slice as +1 (head) / -1 (background), so that the
    augmentation's background fill (-1) and bilinear resampling keep its meaning (> 0 = head)."""
    mask = head_mask(normalized, FOREGROUND_LEVEL)
    return torch.from_numpy(np.where(mask, 1.0, -1.0).astype(np.float32))


class TrainingSlices(Dataset):
    """Item i = (CT slice, MR slice, pair masks): (1, crop, crop), (1, crop, crop), (2, crop, crop).

    Unpaired (the reference CycleGAN): item i is CT slice i and an MR slice drawn by an
    independent per-epoch permutation, so no pairing in the source data leaks in; the pair masks
    are zero. Paired: the items are first the pairs, transformed together; then each slice
    without a partner, unpaired with a random slice of the other side. A pair's masks:

    - 0, the supervised image term: where both images agree on head versus background. A pixel
      that is head in one and background in the other (the atlas CT is cut at its field of view)
      must not teach the model to erase anatomy.
    - 1, the uncertainty term: wherever either image shows head. Disagreement there is exactly
      the kind of error a user meets, so the uncertainty head must learn it too.
    """

    def __init__(
        self, ct: SliceSet, mr: SliceSet, augmentation: Augmentation, seed: int = 0, paired: bool = False
    ) -> None:
        self.ct = torch.from_numpy(np.stack(ct.slices))[:, None]
        self.mr = torch.from_numpy(np.stack(mr.slices))[:, None]
        self.augmentation = augmentation
        self.augment = augmentation.geometric()
        self.seed = seed
        self.pairs = pair_indices(ct, mr) if paired else []
        if self.pairs:
            paired_ct = {i for i, _ in self.pairs}
            paired_mr = {j for _, j in self.pairs}
            self.ct_heads = {i: head_sign(ct.slices[i]) for i in paired_ct}
            self.mr_heads = {j: head_sign(mr.slices[j]) for j in paired_mr}
            self.ct_alone = [i for i in range(len(self.ct)) if i not in paired_ct]
            self.mr_alone = [j for j in range(len(self.mr)) if j not in paired_mr]
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        self.mr_order = torch.randperm(len(self.mr), generator=generator)
        self.ct_order = torch.randperm(len(self.ct), generator=generator)

    def __len__(self) -> int:
        if self.pairs:
            return len(self.pairs) + len(self.ct_alone) + len(self.mr_alone)
        return max(len(self.ct), len(self.mr))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not self.pairs:
            return self._unpaired(index % len(self.ct), int(self.mr_order[index % len(self.mr)]))
        if index < len(self.pairs):
            i, j = self.pairs[index]
            stack = torch.stack([self.ct[i, 0], self.mr[j, 0], self.ct_heads[i], self.mr_heads[j]])
            ct, mr, ct_head, mr_head = self.augment(stack)
            mr = self.augmentation.mr_contrast(mr)
            agree = (ct_head > 0) == (mr_head > 0)
            either = (ct_head > 0) | (mr_head > 0)
            return ct[None], mr[None], torch.stack([agree, either]).float()
        index -= len(self.pairs)
        if index < len(self.ct_alone):
            return self._unpaired(self.ct_alone[index], int(self.mr_order[index % len(self.mr)]))
        index -= len(self.ct_alone)
        return self._unpaired(int(self.ct_order[index % len(self.ct)]), self.mr_alone[index])

    def _unpaired(self, ct_index: int, mr_index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ct, mr = self.augment(self.ct[ct_index]), self.augmentation.mr_contrast(self.augment(self.mr[mr_index]))
        return ct, mr, torch.zeros((2, *ct.shape[1:]))


@dataclass(frozen=True)
class SlicePair:
    """A co-registered CT/MR slice pair in physical units, for evaluation only."""

    name: str
    ct: np.ndarray
    mr: np.ndarray
    ct_scan: Scan
    mr_scan: Scan


def paired_slices(ct_paths: list[Path], mr_paths: list[Path], contract: IntensityContract) -> list[SlicePair]:
    """Pair CT and MR inputs by file name (volumes: slice by slice; shapes must agree)."""
    check_pair_names(ct_paths, mr_paths)
    mr_by_name = {p.name: p for p in mr_paths}
    pairs: list[SlicePair] = []
    for ct_path in ct_paths:
        mr_path = mr_by_name.get(ct_path.name)
        if mr_path is None:
            continue
        ct_scan = read_in_physical_units(ct_path, Modality.CT, contract)
        mr_scan = read_in_physical_units(mr_path, Modality.MR, contract)
        if ct_scan.shape != mr_scan.shape:
            raise UserError(f"{ct_path.name}: CT {ct_scan.shape} and MR {mr_scan.shape} do not line up")
        for index in range(ct_scan.n_slices):
            name = ct_path.name if ct_scan.n_slices == 1 else f"{ct_path.name}[{index}]"
            pairs.append(
                SlicePair(name, ct_scan.voxels[index], mr_scan.voxels[index], _one_slice(ct_scan, index), _one_slice(mr_scan, index))
            )
    if not pairs:
        raise UserError("no CT and MR inputs share a file name, so nothing can be paired")
    return pairs


def _one_slice(scan: Scan, index: int) -> Scan:
    return Scan(
        voxels=scan.voxels[index : index + 1],
        modality=scan.modality,
        geometry=scan.geometry.subset(slice(index, index + 1)),
        provenance=scan.provenance,
    )
