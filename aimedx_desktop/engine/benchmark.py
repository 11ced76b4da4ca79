"""Inference speed: ms per 256x256 slice for a bundle and for the reference ResNet-9 (ngf 64).

For a bundle with an uncertainty output, the same image weights without the uncertainty head
are timed too, so the cost of the map is a measured number.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from aimedx_desktop.engine.bundle import ModelBundle, new_bundle
from aimedx_desktop.engine.errors import UserError
from aimedx_desktop.engine.networks import GeneratorConfig, build_generator
from aimedx_desktop.engine.scan import Geometry, Modality, Scan
from aimedx_desktop.engine.translator import Translator

REFERENCE = GeneratorConfig(ngf=64, n_blocks=9)


def ms_per_slice(bundle: ModelBundle, slices: int, device: str, repeats: int = 2) -> float:
    """Best-of-`repeats` wall time of a full Translator run (I/O excluded), per slice."""
    rng = np.random.default_rng(0)
    scan = Scan(
        voxels=rng.normal(40.0, 300.0, (slices, 256, 256)).astype(np.float32),
        modality=Modality.CT,
        geometry=Geometry(pixel_spacing=(0.9, 0.9)),
    )
    translator = Translator(bundle, device=device)
    translator.translate(Scan(voxels=scan.voxels[:1], modality=Modality.CT))  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if translator.device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        translator.translate(scan)
        if translator.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 1000.0 * best / slices


MAX_SLICES = 1024
"""Enough for a steady figure; the random input is made in memory at once (a million slices: 500 GB)."""


def run_benchmark(bundle: ModelBundle, slices: int = 16, device: str = "auto", threads: int | None = None) -> str:
    """The report printed by `aimedx bench`."""
    if not 1 <= slices <= MAX_SLICES:
        raise UserError(f"--slices must be from 1 to {MAX_SLICES}, not {slices}")
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, not {threads}")
    if threads:
        torch.set_num_threads(threads)
    reference = new_bundle("reference-resnet9", REFERENCE, bundle.contract, image_size=bundle.image_size)
    arch = bundle.generator_config
    options = f"ngf {arch.ngf}, {arch.n_blocks} blocks" + (", mirror-averaged" if bundle.mirror_average else "")
    name = f"{bundle.name} {bundle.version} ({options})"
    rows = [(name + (", with uncertainty" if arch.uncertainty else ""), ms_per_slice(bundle, slices, device))]
    if arch.uncertainty:
        rows.append((name + ", image only", ms_per_slice(image_only(bundle), slices, device)))
    rows.append(("reference ResNet-9 (ngf 64, 9 blocks)", ms_per_slice(reference, slices, device)))
    header = f"device {Translator(bundle, device=device).device}, torch threads {torch.get_num_threads()}, {slices} slices of 256x256, CT→MR"
    return "\n".join([header] + [f"{name:48s} {ms:8.1f} ms/slice" for name, ms in rows])


def image_only(bundle: ModelBundle) -> ModelBundle:
    """The bundle's image weights without the uncertainty head."""
    config = dataclasses.replace(bundle.generator_config, uncertainty=False)
    card = {**bundle.card, "architecture": {**bundle.card["architecture"], "generator": config.to_dict()}}
    generators = {}
    for direction, generator in bundle.generators.items():
        plain = build_generator(config)
        weights = {k: v for k, v in generator.state_dict().items() if not k.startswith("uncertainty_head.")}
        plain.load_state_dict(weights)
        generators[direction] = plain.eval()
    return ModelBundle(card=card, generators=generators)
