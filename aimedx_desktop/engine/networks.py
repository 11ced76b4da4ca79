"""The CycleGAN networks: ResNet generators, the 70x70 PatchGAN discriminator, a name registry.

Both follow the reference design of Zhu et al. (junyanz/pytorch-CycleGAN-and-pix2pix):
reflection padding, instance normalisation, stride-2 down/up-samplings around a stack of
residual blocks; the discriminator is three stride-2 4x4 convolutions and two stride-1 ones.

A model card names its generator architecture and options (`GeneratorConfig.to_dict`);
`build_generator` looks the name up in `GENERATORS`, so a new architecture is one entry there.
Cards written before the name existed (aimedx-bundle 1.0.0) mean the reference ResNet with
transposed-convolution upsampling, which are the defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from aimedx_desktop.engine.fast_layers import run_layers

UPSAMPLING = ("transpose", "resize")
"""transpose: ConvTranspose2d, as in the reference; resize: nearest-neighbour upsampling then a
3x3 convolution (Odena et al. 2016, "Deconvolution and checkerboard artifacts"), which cannot
produce the regular checkerboard texture that uneven kernel overlap gives transposed convolutions."""

LIMITS: dict[str, tuple[int, int]] = {
    "in_channels": (1, 1),  # one gray slice in, one out: the translator, training and the
    "out_channels": (1, 1),  # uncertainty head (the channel after the image) all assume it
    "ngf": (1, 256),
    "n_blocks": (0, 64),
    "n_downsampling": (1, 5),
}
"""Sane bounds for each integer option: a card outside them is refused before anything is built
(a card is data from outside; n_blocks 10,000,000 would otherwise allocate gigabytes)."""


@dataclass(frozen=True)
class GeneratorConfig:
    """Constructor arguments of a generator, stored in a bundle's model card.

    `uncertainty` adds a second output channel, the log of a per-pixel Laplace scale in the
    model's normalised units, trained on paired slices (see training.py). `dropout` acts in
    training only; a card records it so that the recipe is complete.
    """

    name: str = "resnet"
    in_channels: int = 1
    out_channels: int = 1
    ngf: int = 64
    n_blocks: int = 9
    n_downsampling: int = 2
    upsampling: str = "transpose"
    uncertainty: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in GENERATORS:
            raise ValueError(f"unknown generator architecture {self.name!r} (known: {', '.join(GENERATORS)})")
        for key, (lo, hi) in LIMITS.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"generator option {key} must be a whole number in [{lo}, {hi}], not {value!r}")
        if self.upsampling not in UPSAMPLING:
            raise ValueError(f"generator upsampling must be one of {', '.join(UPSAMPLING)}, not {self.upsampling!r}")
        if not isinstance(self.uncertainty, bool):
            raise ValueError(f"generator option uncertainty must be true or false, not {self.uncertainty!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"generator option dropout must be a number in [0, 1), not {self.dropout!r}")

    @classmethod
    def from_dict(cls, data: Any) -> "GeneratorConfig":
        """From a card's `architecture.generator`; unknown keys are an error, missing ones default."""
        if not isinstance(data, dict):
            raise ValueError("architecture.generator must be an object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown generator option(s): {', '.join(map(str, unknown))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The card's form. Dropout 0 is left out: it changes nothing at inference, and cards
        without it stay readable by app versions that predate the option."""
        data = asdict(self)
        if not self.dropout:
            del data["dropout"]
        return data

    @property
    def size_multiple(self) -> int:
        """Input sides must be a multiple of this."""
        return 2**self.n_downsampling


class ResidualBlock(nn.Module):
    """Two 3×3 convolutions with a skip; dropout between them (pix2pix) only while training.

    Dropout is applied in forward rather than as a layer so that the convolutions keep their
    state-dict names with and without it.
    """

    def __init__(self, channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = dropout
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.dropout):
            return x + self.body(x)
        hidden = F.dropout(self.body[:4](x), self.dropout, training=True)
        return x + self.body[4:](hidden)


def _upsample(channels: int, out: int, mode: str) -> list[nn.Module]:
    if mode == "transpose":
        return [nn.ConvTranspose2d(channels, out, 3, stride=2, padding=1, output_padding=1)]
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(channels, out, 3)]


class ResnetGenerator(nn.Module):
    """c7s1-ngf, d(2ngf), d(4ngf), R(4ngf) x n_blocks, u(2ngf), u(ngf), c7s1-out, tanh.

    Fully convolutional: any input whose sides are multiples of 2**n_downsampling works, so
    training on crops and inferring on whole slices use the same weights. With `uncertainty`,
    a small second head on the last features adds one channel (log Laplace scale, no tanh).
    """

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        ngf = config.ngf
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(config.in_channels, ngf, 7),
            nn.InstanceNorm2d(ngf),
            nn.ReLU(inplace=True),
        ]
        channels = ngf
        for _ in range(config.n_downsampling):
            layers += [
                nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1),
                nn.InstanceNorm2d(channels * 2),
                nn.ReLU(inplace=True),
            ]
            channels *= 2
        layers += [ResidualBlock(channels, config.dropout) for _ in range(config.n_blocks)]
        for _ in range(config.n_downsampling):
            layers += [*_upsample(channels, channels // 2, config.upsampling), nn.InstanceNorm2d(channels // 2), nn.ReLU(inplace=True)]
            channels //= 2
        self.features = nn.Sequential(*layers)
        self.image_head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(channels, config.out_channels, 7), nn.Tanh())
        self.uncertainty_head = (
            nn.Sequential(
                nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.ReLU(inplace=True),
                nn.ReflectionPad2d(3), nn.Conv2d(channels, 1, 7),
            )
            if config.uncertainty
            else None
        )

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = run_layers(self.features, x)
        image = run_layers(self.image_head, features)
        if self.uncertainty_head is None:
            return image
        # Detached: the head learns how wrong the image is without changing how the image is learned.
        return torch.cat([image, run_layers(self.uncertainty_head, features.detach())], dim=1)


GENERATORS: dict[str, type[nn.Module]] = {"resnet": ResnetGenerator}
"""Architecture name (as a model card writes it) → generator class taking a GeneratorConfig."""


def build_generator(config: GeneratorConfig) -> nn.Module:
    return GENERATORS[config.name](config)


class PatchDiscriminator(nn.Module):
    """The 70x70 PatchGAN: classifies overlapping 70x70 patches as real or fake."""

    def __init__(self, in_channels: int = 1, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        channels = ndf
        for index in range(1, n_layers + 1):
            out = ndf * min(2**index, 8)
            stride = 2 if index < n_layers else 1
            layers += [
                nn.Conv2d(channels, out, 4, stride=stride, padding=1),
                nn.InstanceNorm2d(out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels = out
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """normal(0, gain) initialisation of convolutions, as in the reference CycleGAN."""

    def init(layer: nn.Module) -> None:
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    module.apply(init)
