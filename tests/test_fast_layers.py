"""The fast layer forms give what the layers they replace give, forwards and backwards."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aimedx_desktop.engine.fast_layers import narrow_conv, resize_conv, run_layers
from aimedx_desktop.engine.networks import GeneratorConfig, build_generator


def resize_convolution(in_channels: int, out_channels: int, bias: bool = True, mode: str = "nearest") -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode=mode), nn.ReflectionPad2d(1), nn.Conv2d(in_channels, out_channels, 3, bias=bias)
    )


@pytest.mark.parametrize("shape", [(2, 8, 16, 16), (1, 3, 5, 9), (1, 4, 1, 1)])
@pytest.mark.parametrize("bias", [True, False])
def test_resize_conv_equals_upsample_pad_conv(shape: tuple[int, ...], bias: bool) -> None:
    torch.manual_seed(0)
    layers = resize_convolution(shape[1], 5, bias)
    x = torch.randn(shape)
    expected = layers(x)
    got = resize_conv(x, layers[2])
    assert got.shape == expected.shape == (shape[0], 5, 2 * shape[2], 2 * shape[3])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("out_channels, kernel", [(1, (7, 7)), (2, (3, 5)), (1, (5, 1))])
def test_narrow_conv_equals_conv(out_channels: int, kernel: tuple[int, int]) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(6, out_channels, kernel)
    x = torch.randn(2, 6, 20, 13)
    torch.testing.assert_close(narrow_conv(x, conv), conv(x), atol=1e-5, rtol=1e-5)


def test_run_layers_leaves_other_patterns_to_the_layers() -> None:
    """A bilinear upsampling, a padded head and a wide convolution are not the fast patterns."""
    torch.manual_seed(0)
    layers = nn.Sequential(
        *resize_convolution(4, 4, mode="bilinear"), nn.Conv2d(4, 1, 3, padding=1), nn.Conv2d(1, 8, 3), nn.ReLU()
    )
    x = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(run_layers(layers, x), layers(x))


def test_generator_forward_and_gradients_match_its_plain_layers() -> None:
    """Training goes through the fast forms too: the weights must learn what they would have."""
    torch.manual_seed(0)
    generator = build_generator(GeneratorConfig(ngf=4, n_blocks=1, upsampling="resize", uncertainty=True))
    x = torch.randn(2, 1, 32, 32)

    def plain_forward() -> torch.Tensor:
        features = generator.features(x)
        return torch.cat([generator.image_head(features), generator.uncertainty_head(features.detach())], dim=1)

    outputs = {}
    grads = {}
    for name, forward in (("fast", generator), ("plain", lambda _: plain_forward())):
        generator.zero_grad()
        output = forward(x)
        (output * torch.linspace(-1, 1, output.numel()).view_as(output)).sum().backward()
        outputs[name] = output.detach()
        grads[name] = {key: p.grad.clone() for key, p in generator.named_parameters()}
    torch.testing.assert_close(outputs["fast"], outputs["plain"], atol=1e-5, rtol=1e-5)
    for key, grad in grads["plain"].items():
        torch.testing.assert_close(grads["fast"][key], grad, atol=1e-4, rtol=1e-4, msg=key)
