"""CycleGAN training: two ResNet generators, two PatchGAN discriminators, unpaired slices.

Losses and defaults follow Zhu et al. 2017 and its reference implementation: LSGAN adversarial
loss, cycle loss (lambda 10 each way), identity loss (0.5 * lambda), an image pool of 50, Adam
(2e-4, betas 0.5/0.999), a constant learning rate then a linear decay to zero.

Data parallelism (torchrun) averages gradients across processes after each backward pass. The
generators run several times per step and the discriminators are frozen during the generator
step, which DistributedDataParallel's per-forward bookkeeping does not allow; an explicit
all-reduce gives the same result as DDP and works for any such graph.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from aimedx_desktop.engine import metrics
from aimedx_desktop.engine.bundle import IMAGE_SIZE_LIMITS, LOG_SCALE_RANGE, ModelBundle, new_bundle, save_bundle
from aimedx_desktop.engine.datasets import (
    Augmentation,
    SliceSet,
    TrainingSlices,
    check_pair_names,
    expand_inputs,
    harmonize_ct_levels,
    paired_slices,
)
from aimedx_desktop.engine.errors import UserError, first_line
from aimedx_desktop.engine.evaluation import evaluate, record_in_card
from aimedx_desktop.engine.intensity import CTContract, IntensityContract, MRContract
from aimedx_desktop.engine.io.atomic import remove_leftovers, replace_file
from aimedx_desktop.engine.networks import UPSAMPLING, GeneratorConfig, PatchDiscriminator, build_generator, init_weights
from aimedx_desktop.engine.scan import Modality
from aimedx_desktop.engine.cancel import CancelToken
from aimedx_desktop.engine.device import resolve_device

CHECKPOINT_NAME = "checkpoint.pt"
LOSSES_NAME = "losses.csv"
AUGMENTATION_LIMITS = {"affine_degrees": 180.0, "affine_translate": 0.5, "affine_scale": 0.5, "mr_gamma": 2.0}
"""Largest sensible value of each augmentation option (their least is 0: off)."""
LEAST_COUNTS = {"epochs": 0, "epochs_decay": 0, "batch_size": 1, "pool_size": 0, "ndf": 1}
"""Least value of each whole-number option the generator's own checks do not cover."""
NON_NEGATIVE_WEIGHTS = ("lambda_paired", "lambda_ssim", "lambda_adv", "lambda_cycle", "lambda_identity")
LOSS_NAMES = ("g_adv", "cycle", "identity", "paired", "uncertainty", "d_ct", "d_mr")


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    resumable: bool = False,
    cli: bool = True,
    choices: tuple[str, ...] | None = None,
    metavar: str | tuple[str, ...] | None = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A TrainConfig field with what the CLI and `--resume` need to know about it.

    Every training option is declared once, here; `training_cli` derives the argparse options
    and the resume check from these fields, so a new option cannot slip past `--resume`.
    resumable: may change when a run is resumed (schedule length, device, validation data).
    """
    metadata = {"help": help, "resumable": resumable, "cli": cli, "choices": choices, "metavar": metavar}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Every option of a run. Saved in the checkpoint; `--resume` reuses it."""

    ct: list[str] = option(factory=list, help="CT DICOM folders, NIfTI volumes or PNG/JPEG slices (files or folders)")
    mr: list[str] = option(factory=list, help="MR inputs, as for --ct; unpaired with the CT unless --paired")
    out: str = option("", help="run folder (checkpoint, losses.csv, samples/, bundle/)", resumable=True)
    exclude: list[str] = option(factory=list, help="file-name patterns to hold out, e.g. '16???.png'")
    name: str = option("aimedx-cyclegan", help="model name in the bundle")
    version: str = option("0.1.0", help="model version in the bundle")
    epochs: int = option(100, help="epochs at the initial learning rate", resumable=True)
    epochs_decay: int = option(100, help="epochs of linear decay to 0", resumable=True)
    batch_size: int = option(1, help="slices per step (per process)")
    crop_size: int = option(256, help="random crop side (≤ image size)")
    image_size: int = option(256, help="model input side")
    ngf: int = option(64, help="generator filters")
    n_blocks: int = option(9, help="generator residual blocks")
    upsampling: str = option("transpose", help="generator upsampling: transpose (reference) or resize (no checkerboard)",
                             choices=UPSAMPLING)
    uncertainty: bool = option(False, help="add a per-pixel uncertainty output (Laplace scale), trained on the pairs; needs --paired")
    dropout: float = option(0.0, help="dropout between the convolutions of each residual block, in training only (pix2pix uses 0.5)")
    ndf: int = option(64, help="discriminator filters")
    paired: bool = option(False, help="add a supervised L1 term on pairs: CT and MR slices with the same file name "
                                      "(or slice of co-registered volumes on one grid)")
    lambda_paired: float = option(10.0, help="weight of the supervised L1 term on pairs (each direction)")
    lambda_ssim: float = option(0.0, help="weight of a supervised 1 - SSIM term on pairs (each direction), beside the L1 term "
                                          "(losses.csv counts it in 'paired'); needs --paired")
    lambda_adv: float = option(1.0, help="weight of the adversarial term")
    lambda_cycle: float = option(10.0, help="weight of the cycle-consistency term (each direction)")
    lambda_identity: float = option(0.5, help="identity term weight, as a fraction of --lambda-cycle")
    pool_size: int = option(50, help="image pool of past fakes shown to the discriminators")
    lr: float = option(2e-4, help="Adam learning rate")
    beta1: float = option(0.5, help="Adam beta1")
    beta2: float = option(0.999, help="Adam beta2")
    init_gain: float = option(0.02, help="std of the normal weight initialisation")
    ct_window: tuple[float, float] = option((-1000.0, 1000.0), metavar=("LO_HU", "HI_HU"),
                                            help="CT HU window mapped to [-1, 1]; 8-bit CT images are taken to be exports of it")
    mr_percentiles: tuple[float, float] = option((0.0, 99.5), metavar=("LO", "HI"),
                                                 help="per-slice MR percentiles mapped to [-1, 1]")
    min_foreground: float = option(0.1, help="skip slices with less foreground than this fraction")
    affine_degrees: float = option(Augmentation.degrees, help="augmentation: largest random rotation in degrees")
    affine_translate: float = option(Augmentation.translate, help="augmentation: largest random shift, as a fraction of the side")
    affine_scale: float = option(Augmentation.scale, help="augmentation: largest random zoom in or out, as a fraction")
    mr_gamma: float = option(Augmentation.mr_gamma, help="augmentation: largest |log gamma| of a random gamma curve on MR slices (0: off)")
    ct_level_groups: str = option("", help="regular expression on CT file names whose match (group 1 if any) names "
                                           "one display-windowed export, e.g. '^(\\d+)\\d{3}\\.png$' for the atlas's "
                                           "patients; each export's soft-tissue level is shifted to the median over exports")
    precision: str = option("fp32", help="CPU autocast (CUDA always uses AMP)", choices=("fp32", "bf16"))
    channels_last: bool = option(False, help="channels-last memory format")
    mirror_average: bool = option(False, help="the bundle averages each prediction with that of the mirrored slice "
                                               "(inference only: twice the network's time)", resumable=True)
    device: str = option("auto", help="auto, cpu or cuda[:N]", resumable=True)
    seed: int = option(0, help="random seed (a run is deterministic on the same machine)")
    licence: str = option("as the training data's licence allows", help="licence statement for the model card")
    init_from: str = option("", help="start from the four networks of this run folder's checkpoint (fine-tuning)")
    val_ct: list[str] = option(factory=list, help="paired validation CT, scored at the end into the card", resumable=True)
    val_mr: list[str] = option(factory=list, help="paired validation MR (same file names as --val-ct)", resumable=True)
    val_include: list[str] = option(factory=list, help="validation file-name patterns, e.g. '16???.png'", resumable=True)
    data_root: str = option("", help="folder the inputs are recorded relative to in the model card (default: "
                                     "their common parent)")
    command: str = option("", help="the command line that started (and resumed) the run", cli=False)

    def __post_init__(self) -> None:
        """Options are the user's input: each bad one is a UserError naming it."""
        self.ct_window = tuple(map(float, self.ct_window))  # type: ignore[assignment]
        self.mr_percentiles = tuple(map(float, self.mr_percentiles))  # type: ignore[assignment]
        try:
            multiple = self.generator_config.size_multiple
            self.contract  # noqa: B018 - validates --ct-window and --mr-percentiles
        except ValueError as error:
            raise UserError(f"bad training option: {error}") from None
        self._check_numbers()
        for name in ("crop_size", "image_size"):
            if getattr(self, name) % multiple:
                raise UserError(f"{option_flag(name)} must be a multiple of {multiple}")
        if self.crop_size > self.image_size:
            raise UserError("--crop-size must not exceed --image-size")
        if self.uncertainty and not self.paired:
            raise UserError("--uncertainty learns from pairs: add --paired")
        if self.lambda_ssim and not self.paired:
            raise UserError("--lambda-ssim learns from pairs: add --paired")
        if bool(self.val_ct) != bool(self.val_mr) or (self.val_include and not self.val_ct):
            raise UserError("validation scores pairs: give both --val-ct and --val-mr (--val-include picks among them)")
        try:
            re.compile(self.ct_level_groups)
        except re.error as error:
            raise UserError(f"--ct-level-groups is not a regular expression: {error}") from None

    def _check_numbers(self) -> None:
        """Refuse, before any data is read, the numbers that would fail only later (an empty data
        loader, a zero division in the schedule, Adam's own checks, the bundle written at the end)."""
        for name, least in LEAST_COUNTS.items():
            if getattr(self, name) < least:
                raise UserError(f"{option_flag(name)} must be at least {least}, not {getattr(self, name)}")
        if self.total_epochs < 1:
            raise UserError("--epochs plus --epochs-decay must be at least 1")
        lo, hi = IMAGE_SIZE_LIMITS
        if not lo <= self.image_size <= hi:
            raise UserError(f"--image-size must lie in [{lo}, {hi}], not {self.image_size}")
        if self.crop_size < 1:
            raise UserError(f"--crop-size must be positive, not {self.crop_size}")
        for name in ("lr", "init_gain"):
            if not getattr(self, name) > 0:
                raise UserError(f"{option_flag(name)} must be positive, not {getattr(self, name)}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UserError(f"{option_flag(name)} must lie in [0, 1), not {getattr(self, name)}")
        if not 0.0 <= self.min_foreground < 1.0:
            raise UserError(f"--min-foreground must lie in [0, 1), not {self.min_foreground}")
        for name in NON_NEGATIVE_WEIGHTS:
            if not getattr(self, name) >= 0:
                raise UserError(f"{option_flag(name)} must not be negative, not {getattr(self, name)}")
        for name, limit in AUGMENTATION_LIMITS.items():
            if not 0.0 <= getattr(self, name) <= limit:
                raise UserError(f"{option_flag(name)} must lie in [0, {limit:g}], not {getattr(self, name)}")

    @property
    def contract(self) -> IntensityContract:
        return IntensityContract(CTContract(*self.ct_window), MRContract(*self.mr_percentiles))

    @property
    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(
            ngf=self.ngf, n_blocks=self.n_blocks, upsampling=self.upsampling, uncertainty=self.uncertainty, dropout=self.dropout
        )

    @property
    def augmentation(self) -> Augmentation:
        return Augmentation(
            self.crop_size, self.image_size, self.affine_degrees, self.affine_translate, self.affine_scale, self.mr_gamma
        )

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay


def _save_state(state: dict[str, Any], path: Path) -> None:
    """torch.save, with a write that fails part-way (a full disk) reported as the OSError it is:
    torch raises RuntimeError ("unexpected pos …") for it."""
    try:
        torch.save(state, path)
    except RuntimeError as error:
        raise OSError(None, "the file could not be written to the end (is the disk full?)") from error


def option_flag(name: str) -> str:
    """The command-line flag of a TrainConfig field."""
    return "--" + name.replace("_", "-")


@dataclass
class EpochReport:
    epoch: int
    total_epochs: int
    iteration: int
    iterations: int
    losses: dict[str, float]
    seconds_per_iteration: float


ProgressCallback = Callable[[EpochReport], None]


def _split(output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A generator's output as (image, log Laplace scale or None)."""
    if output.shape[1] == 1:
        return output, None
    return output[:, :1], output[:, 1:2]


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |prediction - target| over the masked pixels (0 when none is masked)."""
    return ((prediction - target).abs() * mask).sum() / mask.sum().clamp_min(1.0)


def masked_ssim_loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean 1 - SSIM over the masked pixels of images on [-1, 1], the window of `metrics.ssim`,
    at the pixels whose window lies wholly inside the mask.

    Computed in float32 outside autocast: SSIM's variances are differences of nearly equal
    means, which half precision cannot hold.
    """
    with torch.autocast(prediction.device.type, enabled=False):
        ssim_map = metrics.ssim_map_tensor(prediction.float(), target.float(), data_range=2.0)
        inner = _eroded(mask, metrics.SSIM_RADIUS)
        return ((1.0 - ssim_map) * inner).sum() / inner.sum().clamp_min(1.0)


def _eroded(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """The pixels whose whole (2·radius + 1)² window lies in `mask`: an SSIM window reaching
    past the mask would teach from the pixels it excludes (the CT's cut field of view)."""
    size = 2 * radius + 1
    return 1.0 - F.max_pool2d(1.0 - mask, size, stride=1, padding=radius)


def laplace_nll(prediction: torch.Tensor, log_scale: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Laplace negative log-likelihood of the error, teaching `log_scale` the expected |error|.

    The prediction is detached (and the head sees detached features, networks.py): the
    uncertainty head learns how wrong the image is without changing how the image is learned.
    """
    log_scale = log_scale.float().clamp(*LOG_SCALE_RANGE)
    error = (prediction.detach().float() - target.float()).abs()
    nll = error * torch.exp(-log_scale) + log_scale
    return (nll * mask).sum() / mask.sum().clamp_min(1.0)


class ImagePool:
    """History of generated images (Shrivastava et al.): the discriminator sees old fakes too."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        chosen = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.cpu())
                chosen.append(image)
            elif torch.rand(1).item() < 0.5:
                index = int(torch.randint(0, self.size, (1,)).item())
                chosen.append(self.images[index].to(image.device))
                self.images[index] = image.cpu()
            else:
                chosen.append(image)
        return torch.cat(chosen)


class Distributed:
    """This process's place in a torchrun job (or a single process when run alone)."""

    def __init__(self, device: torch.device) -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.enabled = self.world_size > 1
        if self.enabled and device.type == "cuda":  # one GPU per process, as torchrun numbers them
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        self.device = device
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def average_gradients(self, *modules: nn.Module) -> None:
        if not self.enabled:
            return
        for module in modules:
            for parameter in module.parameters():
                if parameter.grad is not None:
                    dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
                    parameter.grad /= self.world_size

    def broadcast(self, *modules: nn.Module) -> None:
        if self.enabled:
            for module in modules:
                for tensor in module.state_dict().values():
                    dist.broadcast(tensor, 0)

    def mean(self, value: float) -> float:
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


class CycleGAN(nn.Module):
    """The four networks, named by direction and domain."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.mr2ct = build_generator(config.generator_config)
        self.ct2mr = build_generator(config.generator_config)
        self.d_ct = PatchDiscriminator(ndf=config.ndf)
        self.d_mr = PatchDiscriminator(ndf=config.ndf)
        init_weights(self, config.init_gain)

    @property
    def generators(self) -> tuple[nn.Module, nn.Module]:
        return self.mr2ct, self.ct2mr

    @property
    def discriminators(self) -> tuple[nn.Module, nn.Module]:
        return self.d_ct, self.d_mr


def linear_decay(config: TrainConfig) -> Callable[[int], float]:
    """Learning-rate factor: 1 for `epochs`, then linearly down towards 0 over `epochs_decay`."""

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - config.epochs) / float(config.epochs_decay + 1)

    return factor


class Trainer:
    """One training run in one run folder; resumable from its checkpoint."""

    def __init__(self, config: TrainConfig, progress: ProgressCallback | None = None, resume: bool = False) -> None:
        self.config = config
        self.out = Path(config.out)
        self.progress = progress
        self.dist = Distributed(resolve_device(config.device))
        self.device = self.dist.device
        torch.manual_seed(config.seed + self.dist.rank)
        self.model = CycleGAN(config).to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if config.init_from and not resume:  # a resumed run's checkpoint holds its weights
            self.model.load_state_dict(read_checkpoint(config.init_from)["model"])
        self.dist.broadcast(self.model)
        generator_params = [p for g in self.model.generators for p in g.parameters()]
        discriminator_params = [p for d in self.model.discriminators for p in d.parameters()]
        betas = (config.beta1, config.beta2)
        self.opt_g = torch.optim.Adam(generator_params, lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam(discriminator_params, lr=config.lr, betas=betas)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, linear_decay(config))
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, linear_decay(config))
        self.pool_ct = ImagePool(config.pool_size)
        self.pool_mr = ImagePool(config.pool_size)
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda")
        self.data_summary: dict[str, Any] = {}

    # ----- data -------------------------------------------------------------------------------

    def load_data(self) -> TrainingSlices:
        config = self.config
        contract = config.contract
        ct_paths = expand_inputs(config.ct, config.exclude)
        mr_paths = expand_inputs(config.mr, config.exclude)
        if config.paired:
            check_pair_names(ct_paths, mr_paths)
        ct = SliceSet.load(ct_paths, Modality.CT, contract, config.image_size, config.min_foreground)
        mr = SliceSet.load(mr_paths, Modality.MR, contract, config.image_size, config.min_foreground)
        levels: dict[str, dict[str, float]] = {}
        if config.ct_level_groups:
            units = contract.ct.window.units_per_model_unit
            levels["ct_level_offsets_hu"] = harmonize_ct_levels(ct, config.ct_level_groups, units)
        dataset = TrainingSlices(ct, mr, config.augmentation, seed=config.seed, paired=config.paired)
        if config.paired and not dataset.pairs:
            raise UserError("--paired: no CT and MR slices share a file name (or a slice of volumes on one grid)")
        self.data_summary = {
            "ct_inputs": len(ct_paths),
            "mr_inputs": len(mr_paths),
            "ct": ct.summary(),
            "mr": mr.summary(),
            "pairs": len(dataset.pairs),
            "exclude": config.exclude,
            **levels,
        }
        return dataset

    # ----- one step ---------------------------------------------------------------------------

    def _autocast(self) -> Any:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.config.precision == "bf16")

    def step(self, real_ct: torch.Tensor, real_mr: torch.Tensor, pair_masks: torch.Tensor | None = None) -> dict[str, float]:
        """One generator update and one discriminator update; returns the losses.

        pair_masks (batch, 2, h, w): for paired items, where the supervised image term counts
        and where the uncertainty term counts (TrainingSlices); all zero for unpaired items.
        """
        model, config = self.model, self.config
        gan_loss, l1 = nn.MSELoss(), nn.L1Loss()
        zero = torch.zeros((), device=self.device)
        for d in model.discriminators:
            d.requires_grad_(False)
        with self._autocast():
            fake_ct, log_scale_ct = _split(model.mr2ct(real_mr))
            fake_mr, log_scale_mr = _split(model.ct2mr(real_ct))
            rec_mr = _split(model.ct2mr(fake_ct))[0]
            rec_ct = _split(model.mr2ct(fake_mr))[0]
            pred_ct = model.d_ct(fake_ct)
            pred_mr = model.d_mr(fake_mr)
            g_adv = (gan_loss(pred_ct, torch.ones_like(pred_ct)) + gan_loss(pred_mr, torch.ones_like(pred_mr))) * config.lambda_adv
            cycle = (l1(rec_mr, real_mr) + l1(rec_ct, real_ct)) * config.lambda_cycle
            identity = zero
            if config.lambda_identity > 0:
                weight = config.lambda_cycle * config.lambda_identity
                identity = (l1(_split(model.mr2ct(real_ct))[0], real_ct) + l1(_split(model.ct2mr(real_mr))[0], real_mr)) * weight
            paired = uncertainty = zero
            if pair_masks is not None and config.paired:
                image_mask, uncertainty_mask = pair_masks[:, :1], pair_masks[:, 1:2]
                paired = (masked_l1(fake_ct, real_ct, image_mask) + masked_l1(fake_mr, real_mr, image_mask)) * config.lambda_paired
                if config.lambda_ssim:
                    paired = paired + config.lambda_ssim * (
                        masked_ssim_loss(fake_ct, real_ct, image_mask) + masked_ssim_loss(fake_mr, real_mr, image_mask)
                    )
                if log_scale_ct is not None and log_scale_mr is not None:
                    uncertainty = laplace_nll(fake_ct, log_scale_ct, real_ct, uncertainty_mask) + laplace_nll(
                        fake_mr, log_scale_mr, real_mr, uncertainty_mask
                    )
            g_total = g_adv + cycle + identity + paired + uncertainty
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(g_total).backward()
        self.dist.average_gradients(*model.generators)
        self.scaler.step(self.opt_g)

        for d in model.discriminators:
            d.requires_grad_(True)
        with self._autocast():
            d_ct = self._discriminator_loss(model.d_ct, real_ct, self.pool_ct.query(fake_ct.float()))
            d_mr = self._discriminator_loss(model.d_mr, real_mr, self.pool_mr.query(fake_mr.float()))
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(d_ct + d_mr).backward()
        self.dist.average_gradients(*model.discriminators)
        self.scaler.step(self.opt_d)
        self.scaler.update()
        values = (g_adv, cycle, identity, paired, uncertainty, d_ct, d_mr)
        return {name: float(value.detach().float()) for name, value in zip(LOSS_NAMES, values)}

    @staticmethod
    def _discriminator_loss(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        gan_loss = nn.MSELoss()
        pred_real = discriminator(real)
        pred_fake = discriminator(fake.detach())
        return 0.5 * (gan_loss(pred_real, torch.ones_like(pred_real)) + gan_loss(pred_fake, torch.zeros_like(pred_fake)))

    # ----- the loop ---------------------------------------------------------------------------

    def fit(self, cancel: CancelToken | None = None) -> ModelBundle | None:
        """Train to the last epoch, checkpointing after each; returns the bundle (rank 0)."""
        dataset = self.load_data()
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            remove_leftovers(self.out / CHECKPOINT_NAME)
        sampler = (
            DistributedSampler(dataset, self.dist.world_size, self.dist.rank, shuffle=True, seed=self.config.seed)
            if self.dist.enabled
            else None
        )
        generator = torch.Generator().manual_seed(self.config.seed)
        loader = DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            generator=generator,
            drop_last=len(dataset) >= self.config.batch_size,
        )
        try:
            while self.epoch < self.config.total_epochs:
                if sampler is not None:
                    sampler.set_epoch(self.epoch)
                dataset.set_epoch(self.epoch)
                generator.manual_seed(self.config.seed * 7919 + self.epoch)
                self._train_epoch(loader, cancel)
                self.epoch += 1
                if self.dist.is_main:
                    self.save_checkpoint()
                    self._write_losses()
                    self._write_samples(dataset)
                self.dist.barrier()
            if not self.dist.is_main:
                return None
            bundle = self.write_bundle()
            if self.config.val_ct and self.config.val_mr:
                self.validate(bundle)
            return bundle
        finally:
            self.dist.close()

    def _train_epoch(self, loader: DataLoader, cancel: CancelToken | None) -> None:
        self.model.train()
        sums = dict.fromkeys(LOSS_NAMES, 0.0)
        started = time.perf_counter()
        iterations = len(loader)
        for iteration, (real_ct, real_mr, pair_masks) in enumerate(loader, start=1):
            if cancel is not None:
                cancel.raise_if_cancelled()
            real_ct, real_mr, pair_masks = map(self._to_device, (real_ct, real_mr, pair_masks))
            for name, value in self.step(real_ct, real_mr, pair_masks).items():
                sums[name] += value
            if self.progress is not None and self.dist.is_main:
                seconds = (time.perf_counter() - started) / iteration
                means = {k: v / iteration for k, v in sums.items()}
                self.progress(EpochReport(self.epoch + 1, self.config.total_epochs, iteration, iterations, means, seconds))
        row = {"epoch": self.epoch + 1, **{k: self.dist.mean(v / max(1, iterations)) for k, v in sums.items()}}
        row["seconds_per_iteration"] = (time.perf_counter() - started) / max(1, iterations)
        row["lr"] = self.opt_g.param_groups[0]["lr"]
        self.sched_g.step()
        self.sched_d.step()
        self.history.append(row)

    def _to_device(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True)
        return batch.contiguous(memory_format=torch.channels_last) if self.config.channels_last else batch

    # ----- files ------------------------------------------------------------------------------

    def _write_losses(self) -> None:
        """losses.csv: one row per epoch of the checkpoint, rewritten from its history after each
        save, so that an epoch interrupted and run again on resume is listed once."""
        def write(path: Path) -> None:
            with path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(self.history[0]))
                writer.writeheader()
                writer.writerows(self.history)

        replace_file(self.out / LOSSES_NAME, write)

    @torch.no_grad()
    def _write_samples(self, dataset: TrainingSlices) -> None:
        """Grid per epoch: rows CT→MR→CT and MR→CT→MR on fixed slices (input, translated, reconstructed)."""
        from torchvision.utils import make_grid, save_image  # training only, like the augmentation

        self.model.eval()
        ct = dataset.ct[:2].to(self.device)
        mr = dataset.mr[:2].to(self.device)
        fake_mr, fake_ct = _split(self.model.ct2mr(ct))[0], _split(self.model.mr2ct(mr))[0]
        rows = [ct, fake_mr, _split(self.model.mr2ct(fake_mr))[0], mr, fake_ct, _split(self.model.ct2mr(fake_ct))[0]]
        images = torch.stack(rows, 1).flatten(0, 1).float().cpu()
        folder = self.out / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        save_image(make_grid(images, nrow=3, normalize=True, value_range=(-1, 1)), folder / f"epoch_{self.epoch:03d}.png")
        self.model.train()

    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "sched_g": self.sched_g.state_dict(),
            "sched_d": self.sched_d.state_dict(),
            "pool_ct": self.pool_ct.images,
            "pool_mr": self.pool_mr.images,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "scaler": self.scaler.state_dict(),  # CUDA's loss scale: a fresh one re-skips overflowing steps
            "history": self.history,
            "data_summary": self.data_summary,
        }

    def save_checkpoint(self) -> Path:
        """Atomic: write a temporary file, then rename over the previous checkpoint."""
        target = self.out / CHECKPOINT_NAME
        state = self.checkpoint_state()
        replace_file(target, lambda path: _save_state(state, path))
        return target

    def load_checkpoint(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.sched_g.load_state_dict(state["sched_g"])
        self.sched_d.load_state_dict(state["sched_d"])
        self.pool_ct.images = list(state["pool_ct"])
        self.pool_mr.images = list(state["pool_mr"])
        torch.set_rng_state(state["rng"])
        if self.device.type == "cuda" and state.get("cuda_rng"):
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        if self.epoch > self.config.total_epochs:
            raise UserError(f"the run has already trained {self.epoch} epochs: --epochs plus --epochs-decay "
                            f"must be at least that, not {self.config.total_epochs}")
        self._apply_schedule()
        self.history = list(state["history"])
        self.dist.broadcast(self.model)

    def _apply_schedule(self) -> None:
        """Set this epoch's learning rate from the current config, which a resume may have
        lengthened (the checkpoint's optimiser state holds the rate of the old schedule)."""
        factor = linear_decay(self.config)(self.epoch)
        for optimizer, scheduler in ((self.opt_g, self.sched_g), (self.opt_d, self.sched_d)):
            scheduler.lr_lambdas = [linear_decay(self.config)] * len(optimizer.param_groups)
            for group, base_lr in zip(optimizer.param_groups, scheduler.base_lrs):
                group["lr"] = base_lr * factor

    def validate(self, bundle: ModelBundle) -> dict:
        """Score the finished bundle on the paired validation set and record it in its card."""
        config = self.config
        pairs = paired_slices(
            expand_inputs(config.val_ct, include=config.val_include),
            expand_inputs(config.val_mr, include=config.val_include),
            config.contract,
        )
        result = evaluate(bundle, pairs, device=str(self.device))
        record_in_card(bundle, result, f"validation at the end of: {self._portable_paths().command(config.command)}")
        return result

    def _portable_paths(self) -> "PortablePaths":
        root = self.config.data_root
        return PortablePaths(Path(root) if root else _common_parent(self.config.ct + self.config.mr))

    def write_bundle(self) -> ModelBundle:
        config = self.config
        portable = self._portable_paths()
        last = self.history[-1] if self.history else {}
        bundle = new_bundle(
            config.name,
            config.generator_config,
            config.contract,
            image_size=config.image_size,
            version=config.version,
            seed=None,
            licence=config.licence,
            intended_use="Research and teaching. Synthetic images are not for diagnosis.",
            inference={"mirror_average": config.mirror_average},
            training={
                "command": portable.command(config.command),
                "paths": "relative to the training data root; other folders by name only",
                "epochs": config.total_epochs,
                "options": {
                    k: v for k, v in asdict(config).items() if k not in ("ct", "mr", "out", "command", "data_root", *_PATH_LISTS)
                },
                "inputs": {
                    "ct": portable.paths(config.ct),
                    "mr": portable.paths(config.mr),
                    "validation": {"ct": portable.paths(config.val_ct), "mr": portable.paths(config.val_mr)},
                },
                "data": self.data_summary,
                "final_losses": {k: last.get(k) for k in LOSS_NAMES},
                "seconds_per_iteration": last.get("seconds_per_iteration"),
                "device": str(self.device),
                "precision": "fp16 AMP" if self.device.type == "cuda" else config.precision,
                "processes": self.dist.world_size,
            },
        )
        bundle.generators = {"mr2ct": self.model.mr2ct.cpu().eval(), "ct2mr": self.model.ct2mr.cpu().eval()}
        self.model.to(self.device)
        save_bundle(bundle, self.out / "bundle")
        return bundle


_PATH_LISTS = ("val_ct", "val_mr", "init_from")


def _common_parent(paths: list[str]) -> Path | None:
    if not paths:
        return None
    resolved = [Path(p).resolve() for p in paths]
    return Path(os.path.commonpath([p if p.is_dir() else p.parent for p in resolved]))


@dataclass(frozen=True)
class PortablePaths:
    """Paths as a shipped model card records them: no folder names of the training machine.

    Paths under the data root become relative to it; other absolute paths keep only their name.
    """

    root: Path | None

    def path(self, text: str) -> str:
        candidate = Path(text)
        if not (candidate.is_absolute() or candidate.exists()):
            return text  # an option value or a file-name pattern, not a path here
        resolved = candidate.resolve()
        if self.root is not None and resolved.is_relative_to(self.root.resolve()):
            return resolved.relative_to(self.root.resolve()).as_posix() or "."
        return resolved.name if candidate.is_absolute() else text

    def paths(self, texts: list[str]) -> list[str]:
        return [self.path(text) for text in texts]

    def command(self, command: str) -> str:
        """Each run of the command (started; resumed: ...) with its paths made portable."""
        return "; resumed: ".join(
            shlex.join(self.path(token) if token.startswith(("/", ".")) else token for token in shlex.split(part))
            for part in command.split("; resumed: ")
        ) if command else command


def load_run(out: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The config saved in a run folder's checkpoint, optionally with a longer schedule etc."""
    state = read_checkpoint(out)
    config = TrainConfig(**state["config"])
    return dataclasses.replace(config, **(overrides or {}))


def read_checkpoint(out: str | Path) -> dict[str, Any]:
    path = Path(out) / CHECKPOINT_NAME
    if not path.is_file():
        raise UserError(f"{path}: no checkpoint to resume from")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for truncated or foreign files
        raise UserError(f"{path}: not a readable checkpoint ({first_line(error)})") from None


def train(
    config: TrainConfig,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> ModelBundle | None:
    """Run (or resume) training in config.out; returns the bundle written at the end."""
    trainer = Trainer(config, progress, resume=resume)
    if resume:
        trainer.load_checkpoint(read_checkpoint(config.out))
    return trainer.fit(cancel)
