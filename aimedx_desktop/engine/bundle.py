"""Model bundles: the two generators' weights plus a JSON model card, in one folder.

    <bundle>/model_card.json   what the model is, how it was trained, its intensity contract
    <bundle>/weights.pt        {"mr2ct": state_dict, "ct2mr": state_dict} of plain tensors

Weights are loaded with `torch.load(weights_only=True)`, which refuses arbitrary pickled
objects: a bundle is data, never code. Saving writes a temporary folder and renames it.

Format 1 (aimedx-brain 1.0.0) stored each generator as one `model` Sequential and its card had
no architecture name; format 2 names the architecture and splits features from output heads.
Both load.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from aimedx_desktop.engine.errors import BundleError, first_line
from aimedx_desktop.engine.intensity import IntensityContract
from aimedx_desktop.engine.io.errors import os_error_reason
from aimedx_desktop.engine.limits import memory_problem
from aimedx_desktop.engine.networks import GeneratorConfig, build_generator, init_weights
from aimedx_desktop.engine.report import format_table
from aimedx_desktop.engine.scan import UNCERTAINTY, Modality
from aimedx_desktop.resources import models_dir

CARD_NAME = "model_card.json"
WEIGHTS_NAME = "weights.pt"
BUNDLE_FORMAT = "aimedx-bundle"
BUNDLE_FORMAT_VERSION = 2
IMAGE_SIZE_LIMITS = (16, 1024)
DIRECTIONS = ("mr2ct", "ct2mr")
DEFAULT_MODEL_NAME = "default"


NOMINAL_COVERAGE = 0.6827
"""The uncertainty map is calibrated so that |error| ≤ map for this fraction of head pixels
(the ±1σ interval of a normal distribution)."""
LOG_SCALE_RANGE = (-9.0, 3.0)
"""Clamp of a generator's log Laplace scale output (the model's normalised units), in training
and inference alike."""


MAX_CALIBRATION_SCALE = 1e6
"""Fitted scales lie near 1; a card's 1e308 would make every map infinite."""


@dataclass(frozen=True)
class UncertaintyOutput:
    """One generator's uncertainty channel and its calibration, as the model card declares them.

    The channel holds log b of a per-pixel Laplace scale on the model's [-1, 1] scale; the map a
    user sees is `scale * b` (then in the target's units), where `scale` was fitted on patients
    the model was not trained on so that |error| ≤ map for `nominal` of head pixels.
    """

    channel: int = 1
    scale: float = 1.0
    nominal: float = NOMINAL_COVERAGE
    fitted_on: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.scale <= MAX_CALIBRATION_SCALE:  # also refuses NaN
            raise ValueError(f"uncertainty calibration scale must be a positive number up to {MAX_CALIBRATION_SCALE:g}, "
                             f"not {self.scale}")
        if not 0.0 < self.nominal < 1.0:
            raise ValueError(f"uncertainty nominal coverage must lie in (0, 1), not {self.nominal}")

    def half_width(self, log_scale: torch.Tensor) -> torch.Tensor:
        """The calibrated interval half-width on the model's scale, with log_scale's device and dtype."""
        return self.scale * torch.exp(log_scale.clamp(*LOG_SCALE_RANGE))


def uncertainty_card(
    scales: dict[str, float] | None = None, nominal: float = NOMINAL_COVERAGE, fitted_on: str = "", pairs: int | None = None
) -> dict[str, Any]:
    """The card's `outputs.uncertainty`: one calibration scale per direction, and what it was fitted on."""
    scales = scales or dict.fromkeys(DIRECTIONS, 1.0)
    for direction, scale in scales.items():
        UncertaintyOutput(scale=scale, nominal=nominal)  # validates
    return {
        "channel": 1,
        "kind": "laplace_log_scale",
        "meaning": "calibrated half-width of the error interval, in the synthetic image's units",
        "calibration": {
            "nominal_coverage": nominal,
            "scale": dict(scales),
            "fitted_on": fitted_on,
            **({"pairs": pairs} if pairs is not None else {}),
        },
    }


def mirror_average_from_card(card: dict[str, Any]) -> bool:
    """The card's `inference.mirror_average` (false when absent)."""
    inference = card.get("inference", {})
    if not isinstance(inference, dict):
        raise ValueError("inference must be an object")
    unknown = sorted(set(inference) - {"mirror_average"})
    if unknown:
        raise ValueError(f"unknown inference option(s): {', '.join(map(str, unknown))}")
    value = inference.get("mirror_average", False)
    if not isinstance(value, bool):
        raise ValueError(f"inference option mirror_average must be true or false, not {value!r}")
    return value


def _uncertainty_from_card(data: Any, direction: str) -> UncertaintyOutput:
    calibration = data.get("calibration", {}) if isinstance(data, dict) else None
    if not isinstance(calibration, dict) or not isinstance(calibration.get("scale", {}), dict):
        raise ValueError("outputs.uncertainty.calibration must give a scale per direction")
    return UncertaintyOutput(
        scale=float(calibration.get("scale", {}).get(direction, 1.0)),
        nominal=float(calibration.get("nominal_coverage", NOMINAL_COVERAGE)),
        fitted_on=str(calibration.get("fitted_on") or ""),
    )


def direction_name(source: Modality) -> str:
    return f"{source.value.lower()}2{source.other.value.lower()}"


@dataclass
class ModelBundle:
    """Two generators (MR→CT and CT→MR) and the card that describes them."""

    card: dict[str, Any]
    generators: dict[str, torch.nn.Module]
    path: Path | None = None
    contract: IntensityContract = field(init=False)

    def __post_init__(self) -> None:
        self.contract = IntensityContract.from_dict(self.card["intensity"])
        missing = set(DIRECTIONS) - set(self.generators)
        if missing:
            raise BundleError(f"bundle lacks generator(s): {', '.join(sorted(missing))}")
        _check_image_size(self.card.get("image_size", 256), self.generator_config)
        try:
            mirror_average_from_card(self.card)
        except ValueError as error:
            raise BundleError(str(error)) from None

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
        return GeneratorConfig.from_dict(self.card["architecture"]["generator"])

    @property
    def has_uncertainty(self) -> bool:
        return self.generator_config.uncertainty

    @property
    def mirror_average(self) -> bool:
        """Whether each prediction is the mean of the slice's and its left-right mirror's (the card's
        `inference.mirror_average`): a two-view ensemble at twice the network's time."""
        return mirror_average_from_card(self.card)

    def uncertainty(self, source: Modality) -> UncertaintyOutput | None:
        """The uncertainty output of the generator that translates `source`, if it has one."""
        if not self.has_uncertainty:
            return None
        return _uncertainty_from_card(self.card.get("outputs", {}).get(UNCERTAINTY), direction_name(source))

    def generator(self, source: Modality) -> torch.nn.Module:
        """The generator that translates `source` into the other modality."""
        return self.generators[direction_name(source)]

    def describe(self) -> str:
        """The model card as readable text (shown by `aimedx info` and the GUI)."""
        card = self.card
        arch = self.generator_config
        contract = self.contract
        lines = [f"{self.name} {self.version}"]
        lines += [f"{key.replace('_', ' ')}: {card[key]}" for key in ("summary", "intended_use", "licence") if key in card]
        lines.append(
            f"generator: {arch.name}, {arch.ngf} filters, {arch.n_blocks} residual blocks, {arch.upsampling} upsampling, "
            f"input {self.image_size}×{self.image_size}" + (", with an uncertainty output" if arch.uncertainty else "")
            + (", averaged with the mirrored slice" if self.mirror_average else "")
        )
        lines.append(
            f"intensity: CT [{contract.ct.lo_hu:g}, {contract.ct.hi_hu:g}] HU → [-1, 1] (clipped outside); "
            f"MR per-slice percentiles {contract.mr.p_lo:g}–{contract.mr.p_hi:g} → [-1, 1]; "
            f"synthetic MR on {contract.mr.synthetic_lo:g}–{contract.mr.synthetic_hi:g} (arbitrary units)"
        )
        for key in ("limitations", "data", "mr_sequences", "calibration"):
            if key in card:
                lines.append(f"{key.replace('_', ' ')}: {_plain(card[key])}")
        if arch.uncertainty:
            mr2ct, ct2mr = self.uncertainty(Modality.MR), self.uncertainty(Modality.CT)
            lines.append(f"uncertainty calibration: scale mr2ct {mr2ct.scale:.4g}, ct2mr {ct2mr.scale:.4g} for "
                         f"{100 * mr2ct.nominal:.1f} % coverage; fitted on {mr2ct.fitted_on or 'nothing recorded'}")
        training = card.get("training")
        if isinstance(training, dict) and training.get("command"):
            lines.append(f"training command: {training['command']}")
        if "metrics" in card:
            lines += _validation_lines(card["metrics"])
        return "\n".join(lines)


def _validation_lines(metrics: Any) -> list[str]:
    """The card's recorded validation as text. Nothing checks that section when a bundle loads
    (it does not change what the model does), so a shape this version cannot show is said so."""
    try:
        return [f"validation ({metrics.get('pairs', '?')} slice pairs): {metrics.get('command', '')}", format_table(metrics)]
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        return [f"validation: recorded in a form this version cannot show ({type(error).__name__}: {error})"]


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
        generator = build_generator(config)
        init_weights(generator)
        generators[direction] = generator.eval()
    card = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "name": name,
        "version": version,
        "architecture": {"generator": config.to_dict()},
        "outputs": _outputs_card(config),
        "image_size": image_size,
        "intensity": contract.to_dict(),
        **card_fields,
    }
    return ModelBundle(card=card, generators=generators)


def _outputs_card(config: GeneratorConfig) -> dict[str, Any]:
    outputs: dict[str, Any] = {"image": {"channel": 0, "meaning": "the synthetic image, in the target's physical units"}}
    if config.uncertainty:
        outputs[UNCERTAINTY] = uncertainty_card()
    return outputs


def save_bundle(bundle: ModelBundle, path: str | Path) -> Path:
    """Write the bundle folder atomically: a temporary sibling folder renamed into place.

    BundleError when the disk refuses (read-only, no permission, full): the previous bundle stays."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as error:
        raise BundleError(f"cannot save the model bundle {target}: {os_error_reason(error)}") from None
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
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if backup.exists() and not target.exists():
            backup.rename(target)  # put the previous bundle back
        if isinstance(error, OSError):
            raise BundleError(f"cannot save the model bundle {target}: {os_error_reason(error)}") from None
        raise
    bundle.path = target
    return target


def _make_readable_like_a_new_folder(folder: Path) -> None:
    """mkdtemp makes a private (0700) folder; a published bundle gets the usual umask instead."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)


MAX_CARD_BYTES = 1_000_000
"""A model card is a few kilobytes of JSON; anything far larger is not one."""
MAX_CARD_DEPTH = 32
"""A model card nests a few levels; deeper nesting would only exhaust the recursion of whatever
shows it (the card text, `aimedx info`)."""
MAX_GENERATOR_PARAMETERS = 200_000_000
"""Per generator: the reference ResNet-9 has 11 million; more is not a model for this app."""


def read_card(path: str | Path) -> dict[str, Any]:
    """The model card of a bundle folder, validated."""
    card_path = Path(path) / CARD_NAME
    try:
        _require_regular_file(card_path, MAX_CARD_BYTES, "a model card")
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: not a model bundle (no {CARD_NAME})") from None
    except RecursionError:
        raise BundleError(f"{card_path}: model card is nested too deeply to be a model card") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{card_path}: unreadable model card ({error})") from None
    except OSError as error:
        raise BundleError(f"{card_path}: unreadable model card ({os_error_reason(error)})") from None
    if _depth(card) > MAX_CARD_DEPTH:
        raise BundleError(f"{card_path}: model card is nested more than {MAX_CARD_DEPTH} levels deep; not a model card")
    if not isinstance(card, dict) or card.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{card_path}: not an {BUNDLE_FORMAT} model card")
    version = card.get("format_version", 0)
    if not isinstance(version, int):
        raise BundleError(f"{card_path}: format_version must be a whole number, not {version!r}")
    if version > BUNDLE_FORMAT_VERSION:
        raise BundleError(f"{card_path}: made by a newer AI-MEDX (format {version})")
    for key in ("architecture", "intensity"):
        if not isinstance(card.get(key), dict):
            raise BundleError(f"{card_path}: model card lacks '{key}'")
    try:
        IntensityContract.from_dict(card["intensity"])
        config = GeneratorConfig.from_dict(card["architecture"].get("generator"))
        _check_image_size(card.get("image_size", 256), config)
        _check_model_size(config)
        mirror_average_from_card(card)
        if config.uncertainty:
            for direction in DIRECTIONS:
                _uncertainty_from_card(card.get("outputs", {}).get(UNCERTAINTY), direction)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise BundleError(f"{card_path}: {error}") from None
    return card


def _require_regular_file(path: Path, max_bytes: int, what: str) -> None:
    """A FIFO or a device would hang the read, a huge file exhaust memory: refuse both at once."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise BundleError(f"{path}: not a regular file (a pipe or a device?); not read")
    if info.st_size > max_bytes:
        raise BundleError(f"{path}: {info.st_size:,} bytes, too large for {what} (at most {max_bytes:,}); not read")


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in a JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest


def _parameter_count(config: GeneratorConfig) -> int:
    """The generator's parameters, counted on PyTorch's meta device: nothing is allocated."""
    with torch.device("meta"):
        return sum(p.numel() for p in build_generator(config).parameters())


def _check_model_size(config: GeneratorConfig) -> None:
    """Refuse (ValueError) an architecture too large to be a model, or to load here, before building it."""
    count = _parameter_count(config)
    if count > MAX_GENERATOR_PARAMETERS:
        raise ValueError(
            f"the architecture has {count:,} parameters per generator, more than the {MAX_GENERATOR_PARAMETERS:,} "
            "a model for this app may have; not loaded"
        )
    problem = memory_problem(2 * len(DIRECTIONS) * count * 4, f"loading the two {count:,}-parameter generators")
    if problem is not None:
        raise ValueError(f"{problem}; not loaded")


def _check_image_size(size: Any, config: GeneratorConfig) -> None:
    lo, hi = IMAGE_SIZE_LIMITS
    if isinstance(size, bool) or not isinstance(size, int) or not lo <= size <= hi:
        raise BundleError(f"image_size must be a whole number of pixels in [{lo}, {hi}], not {size!r}")
    if size % config.size_multiple:
        raise BundleError(f"image_size {size} is not a multiple of {config.size_multiple}")


def load_bundle(path: str | Path) -> ModelBundle:
    """Load a bundle folder; raises BundleError with the reason on any problem."""
    folder = Path(path)
    card = read_card(folder)
    config = GeneratorConfig.from_dict(card["architecture"]["generator"])
    state = _read_weights(folder / WEIGHTS_NAME, config)
    generators = {}
    for direction in DIRECTIONS:
        weights = state.get(direction) if isinstance(state, dict) else None
        if not isinstance(weights, dict):
            raise BundleError(f"{folder}: {WEIGHTS_NAME} holds no {direction} generator")
        generator = build_generator(config)
        try:
            generator.load_state_dict(_upgrade_format1(weights, generator))
        except (RuntimeError, ValueError, TypeError, KeyError) as error:
            raise BundleError(f"{folder}: {direction} weights do not match the card's architecture ({first_line(error)})") from None
        generators[direction] = generator.eval()
    return ModelBundle(card=card, generators=generators, path=folder)


def _read_weights(path: Path, config: GeneratorConfig) -> Any:
    """The tensors of a weights file, refusing pickled code, non-finite numbers, and a file far
    larger than the card's architecture needs."""
    expected = len(DIRECTIONS) * _parameter_count(config) * 4
    try:
        _require_regular_file(path, 2 * expected + 1_000_000, f"the weights of this architecture ({expected:,} bytes)")
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BundleError(f"{path.parent}: model bundle has no {WEIGHTS_NAME}") from None
    except BundleError:
        raise
    except pickle.UnpicklingError:
        raise BundleError(
            f"{path}: the file holds code or objects other than tensors, so it was not loaded "
            "(model files must be plain weights)"
        ) from None
    except Exception as error:  # torch raises many types for truncated or foreign files
        raise BundleError(f"{path}: not a readable weights file ({first_line(error)})") from None
    for direction, weights in (state.items() if isinstance(state, dict) else []):
        for name, tensor in (weights.items() if isinstance(weights, dict) else []):
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise BundleError(f"{path}: {direction} weight {name} holds NaN or infinite values; the model is broken")
    return state


def _upgrade_format1(state: dict[str, torch.Tensor], generator: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Format-1 weights (one `model` Sequential) renamed to format 2's features/image_head."""
    if not any(key.startswith("model.") for key in state):
        return state
    n_features = len(generator.features)
    renamed = {}
    for key, value in state.items():
        _, index, rest = key.split(".", 2)
        position = int(index)
        prefix = f"features.{position}" if position < n_features else f"image_head.{position - n_features}"
        renamed[f"{prefix}.{rest}"] = value
    return renamed


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
