"""The CycleGAN networks: a ResNet generator and the 70x70 PatchGAN discriminator.

Both follow the reference design of Zhu et al. (junyanz/pytorch-CycleGAN-and-pix2pix):
reflection padding, instance normalisation, two stride-2 down/up-samplings around a stack of
residual blocks; the discriminator is three stride-2 4x4 convolutions and two stride-1 ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class GeneratorConfig:
    """Constructor arguments of `ResnetGenerator`, stored in a bundle's model card."""

    in_channels: int = 1
    out_channels: int = 1
    ngf: int = 64
    n_blocks: int = 9
    n_downsampling: int = 2

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, d(2ngf), d(4ngf), R(4ngf) x n_blocks, u(2ngf), u(ngf), c7s1-out, tanh.

    Fully convolutional: any input whose sides are multiples of 2**n_downsampling works, so
    training on crops and inferring on whole slices use the same weights.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        ngf: int = 64,
        n_blocks: int = 9,
        n_downsampling: int = 2,
    ) -> None:
        super().__init__()
        self.config = GeneratorConfig(in_channels, out_channels, ngf, n_blocks, n_downsampling)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7),
            nn.InstanceNorm2d(ngf),
            nn.ReLU(inplace=True),
        ]
        channels = ngf
        for _ in range(n_downsampling):
            layers += [
                nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1),
                nn.InstanceNorm2d(channels * 2),
                nn.ReLU(inplace=True),
            ]
            channels *= 2
        layers += [ResidualBlock(channels) for _ in range(n_blocks)]
        for _ in range(n_downsampling):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1, output_padding=1),
                nn.InstanceNorm2d(channels // 2),
                nn.ReLU(inplace=True),
            ]
            channels //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(channels, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    @classmethod
    def from_config(cls, config: GeneratorConfig) -> "ResnetGenerator":
        return cls(**config.to_dict())

    @property
    def size_multiple(self) -> int:
        """Input sides must be a multiple of this."""
        return 2**self.config.n_downsampling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


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
