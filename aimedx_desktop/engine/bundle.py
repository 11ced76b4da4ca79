"""Model bundles: the two generators' weights plus a JSON model card, in one folder.

    <bundle>/model_card.json   what the model is, how it was trained, its intensity contract
    <bundle>/weights.pt        {"mr2ct": state_dict, "ct2mr": state_dict} of plain tensors

Weights are loaded with `torch.load(weights_only=True)`, which refuses arbitrary pickled
objects: a bundle is data, never code. Saving writes a temporary folder and renames it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from aimedx_desktop.engine.intensity import IntensityContract
from aimedx_desktop.engine.networks import GeneratorConfig, ResnetGenerator, init_weights
from aimedx_desktop.engine.scan import Modality
from aimedx_desktop.resources import models_dir

CARD_NAME = "model_card.json"
WEIGHTS_NAME = "weights.pt"
BUNDLE_FORMAT = "aimedx-bundle"
BUNDLE_FORMAT_VERSION = 1
DIRECTIONS = ("mr2ct", "ct2mr")
DEFAULT_MODEL_NAME = "default"


class BundleError(Exception):
    """A model bundle is missing, malformed or does not match its card."""


def direction_name(source: Modality) -> str:
    return f"{source.value.lower()}2{source.other.value.lower()}"


@dataclass
class ModelBundle:
    """Two generators (MR→CT and CT→MR) and the card that describes them."""

    card: dict[str, Any]
    generators: dict[str, ResnetGenerator]
    path: Path | None = None
    contract: IntensityContract = field(init=False)

    def __post_init__(self) -> None:
        self.contract = IntensityContract.from_dict(self.card["intensity"])
        missing = set(DIRECTIONS) - set(self.generators)
        if missing:
            raise BundleError(f"bundle lacks generator(s): {', '.join(sorted(missing))}")
        multiple = 2**self.generator_config.n_downsampling
        if self.image_size % multiple:
            raise BundleError(f"image_size {self.image_size} is not a multiple of {multiple}")

    @property
    def name(self) -> str:
        return str(self.card.get("name", "unnamed"))

    @property
    def version(self) -> str:
        return str(self.card.get("version", "0"))

    @property
    def image_size(self) -> int:
        return int(self.card.get("image_size", 256))

    @property
    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(**self.card["architecture"]["generator"])

    def generator(self, source: Modality) -> ResnetGenerator:
        """The generator that translates `source` into the other modality."""
        return self.generators[direction_name(source)]

    def describe(self) -> str:
        """The model card as readable text (shown by `aimedx info` and the GUI)."""
        card = self.card
        arch = card["architecture"]["generator"]
        contract = self.contract
        lines = [f"{self.name} {self.version}"]
        lines += [f"{key.replace('_', ' ')}: {card[key]}" for key in ("summary", "intended_use", "licence") if key in card]
        lines.append(f"generator: ResNet, {arch['ngf']} filters, {arch['n_blocks']} residual blocks, input {self.image_size}×{self.image_size}")
        lines.append(
            f"intensity: CT [{contract.ct.lo_hu:g}, {contract.ct.hi_hu:g}] HU → [-1, 1] (clipped outside); "
            f"MR per-slice percentiles {contract.mr.p_lo:g}–{contract.mr.p_hi:g} → [-1, 1]; "
            f"synthetic MR on {contract.mr.synthetic_lo:g}–{contract.mr.synthetic_hi:g} (arbitrary units)"
        )
        for key in ("limitations", "data", "mr_sequences", "calibration"):
            if key in card:
                lines.append(f"{key.replace('_', ' ')}: {_plain(card[key])}")
        if "training" in card and card["training"].get("command"):
            lines.append(f"training command: {card['training']['command']}")
        if "metrics" in card:
            from aimedx_desktop.engine.evaluation import format_table  # evaluation imports this module

            lines.append(f"validation ({card['metrics'].get('pairs', '?')} slice pairs): {card['metrics'].get('command', '')}")
            lines.append(format_table(card["metrics"]))
        return "\n".join(lines)


def _plain(value: Any) -> str:
    """A card field as text: dicts as 'key: value; …', lists comma-separated."""
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def new_bundle(
    name: str,
    config: GeneratorConfig,
    contract: IntensityContract,
    image_size: int = 256,
    version: str = "0.0.0",
    seed: int | None = 0,
    **card_fields: Any,
) -> ModelBundle:
    """A freshly initialised bundle (normal(0, 0.02) weights): the start of training, or tests."""
    if seed is not None:
        torch.manual_seed(seed)
    generators = {}
    for direction in DIRECTIONS:
        generator = ResnetGenerator.from_config(config)
        init_weights(generator)
        generators[direction] = generator.eval()
    card = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "name": name,
        "version": version,
        "architecture": {"generator": config.to_dict()},
        "image_size": image_size,
        "intensity": contract.to_dict(),
        **card_fields,
    }
    return ModelBundle(card=card, generators=generators)


def save_bundle(bundle: ModelBundle, path: str | Path) -> Path:
    """Write the bundle folder atomically: a temporary sibling folder renamed into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    backup = target.with_name(f".{target.name}.old")
    _make_readable_like_a_new_folder(staging)
    try:
        state = {d: {k: v.detach().cpu() for k, v in g.state_dict().items()} for d, g in bundle.generators.items()}
        torch.save(state, staging / WEIGHTS_NAME)
        (staging / CARD_NAME).write_text(json.dumps(bundle.card, indent=2) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(backup, ignore_errors=True)
            target.rename(backup)
        staging.rename(target)
        shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if backup.exists() and not target.exists():
            backup.rename(target)  # put the previous bundle back
        raise
    bundle.path = target
    return target


def _make_readable_like_a_new_folder(folder: Path) -> None:
    """mkdtemp makes a private (0700) folder; a published bundle gets the usual umask instead."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)


def read_card(path: str | Path) -> dict[str, Any]:
    """The model card of a bundle folder, validated."""
    card_path = Path(path) / CARD_NAME
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: not a model bundle (no {CARD_NAME})") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{card_path}: unreadable model card ({error})") from None
    if not isinstance(card, dict) or card.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{card_path}: not an {BUNDLE_FORMAT} model card")
    version = card.get("format_version", 0)
    if not isinstance(version, int):
        raise BundleError(f"{card_path}: format_version must be a whole number, not {version!r}")
    if version > BUNDLE_FORMAT_VERSION:
        raise BundleError(f"{card_path}: made by a newer AI-MEDX (format {version})")
    for key in ("architecture", "intensity"):
        if key not in card:
            raise BundleError(f"{card_path}: model card lacks '{key}'")
    try:
        IntensityContract.from_dict(card["intensity"])
        GeneratorConfig(**card["architecture"]["generator"])
    except (ValueError, TypeError, KeyError) as error:
        raise BundleError(f"{card_path}: {error}") from None
    return card


def load_bundle(path: str | Path) -> ModelBundle:
    """Load a bundle folder; raises BundleError with the reason on any problem."""
    folder = Path(path)
    card = read_card(folder)
    try:
        config = GeneratorConfig(**card["architecture"]["generator"])
        state = torch.load(folder / WEIGHTS_NAME, map_location="cpu", weights_only=True)
        generators = {}
        for direction in DIRECTIONS:
            generator = ResnetGenerator.from_config(config)
            generator.load_state_dict(state[direction])
            generators[direction] = generator.eval()
        return ModelBundle(card=card, generators=generators, path=folder)
    except BundleError:
        raise
    except FileNotFoundError:
        raise BundleError(f"{folder}: model bundle has no {WEIGHTS_NAME}") from None
    except Exception as error:  # torch raises many types for bad or mismatched weights
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BundleError(f"{folder}: weights do not load ({first_line})") from None


def bundled_models() -> list[Path]:
    """Bundle folders shipped in resources/models, the default first."""
    root = models_dir()
    if not root.is_dir():
        return []
    found = sorted(p for p in root.iterdir() if (p / CARD_NAME).is_file())
    return sorted(found, key=lambda p: p.name != DEFAULT_MODEL_NAME)


def default_bundle_path() -> Path:
    """The bundled default model; BundleError when this installation ships none."""
    path = models_dir() / DEFAULT_MODEL_NAME
    if not (path / CARD_NAME).is_file():
        raise BundleError(
            f"no default model is bundled (looked in {path}); pass --model BUNDLE_FOLDER"
        )
    return path
