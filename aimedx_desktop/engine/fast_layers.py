"""Exact, faster forms of two layer patterns that oneDNN runs slowly on CPUs.

The generators keep their layers (and so their state-dict names and the bundles already
shipped); `run_layers` walks a Sequential and computes these two patterns another way, with the
same weights and the same result up to float rounding, in training and inference alike:

- Resize-convolution (nearest 2× upsampling, reflection padding 1, 3×3 convolution) is computed
  at the input's resolution. Each output pixel's 3×3 window over the upsampled image sees only a
  2×2 neighbourhood of the input, so one 2×2 convolution with four times the output channels
  (one per output phase) gives the whole result, at 4/9 of the multiplications and without the
  upsampled and padded tensors. On the 2-core CPU this takes the 16-filter generator's two
  upsamplings from about 95 to 38 ms per 4-slice batch.
- A k×k convolution with one or two output channels (the image and uncertainty heads) runs as k
  row convolutions (1×k) whose outputs are summed shifted by row: about 4× faster for 16→1 7×7.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NARROW_OUTPUTS = 2
"""Convolutions with at most this many output channels take the row form; wider ones are
already efficient as they are."""


def run_layers(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """`layers(x)`, with resize-convolutions and narrow convolutions in their fast forms."""
    modules = list(layers)
    index = 0
    while index < len(modules):
        module = modules[index]
        if _is_resize_convolution(modules[index : index + 3]):
            x = resize_conv(x, modules[index + 2])
            index += 3
            continue
        x = narrow_conv(x, module) if _is_narrow_convolution(module) else module(x)
        index += 1
    return x


def resize_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """conv(reflection_pad_1(nearest_upsample_2(x))) for a 3×3, stride-1, unpadded `conv`.

    After upsampling and reflection padding, row p of the padded image is row (p+1)//2 of x padded
    by one replicated row; so output row 2i+a sees x's padded rows i+a and i+a+1, with the 3×3
    kernel's rows folded to (w0, w1+w2) for a = 0 and (w0+w1, w2) for a = 1, and the same for columns.
    """
    n, _, height, width = x.shape
    out_channels = conv.out_channels
    weight = _fold_phases(conv.weight)
    bias = None if conv.bias is None else conv.bias.repeat_interleave(4)
    phases = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight, bias)
    phases = phases.unflatten(1, (out_channels, 2, 2))
    out = phases.new_empty(n, out_channels, height, 2, width, 2)
    for a in (0, 1):
        for b in (0, 1):
            out[:, :, :, a, :, b] = phases[:, :, a, b, a : a + height, b : b + width]
    return out.view(n, out_channels, 2 * height, 2 * width)


def narrow_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """conv(x) for an unpadded, stride-1 convolution, as kernel-height row convolutions summed."""
    out_channels, in_channels, kernel_height, kernel_width = conv.weight.shape
    row_weight = conv.weight.transpose(1, 2).reshape(out_channels * kernel_height, in_channels, 1, kernel_width)
    rows = F.conv2d(x, row_weight).unflatten(1, (out_channels, kernel_height))
    height = x.shape[-2] - kernel_height + 1
    out = rows[:, :, 0, :height]
    for dy in range(1, kernel_height):
        out = out + rows[:, :, dy, dy : dy + height]
    return out if conv.bias is None else out + conv.bias.view(1, -1, 1, 1)


def _fold_phases(weight: torch.Tensor) -> torch.Tensor:
    """(out, in, 3, 3) → (4·out, in, 2, 2): the 2×2 kernel of each output phase (a, b), phase-minor."""
    by_row = [_fold(weight, phase, dim=2) for phase in (0, 1)]
    by_phase = [_fold(rows, phase, dim=3) for rows in by_row for phase in (0, 1)]
    return torch.stack(by_phase, dim=1).flatten(0, 1)


def _fold(weight: torch.Tensor, phase: int, dim: int) -> torch.Tensor:
    first, middle, last = weight.unbind(dim)
    taps = (first, middle + last) if phase == 0 else (first + middle, last)
    return torch.stack(taps, dim)


def _is_resize_convolution(modules: list[nn.Module]) -> bool:
    if len(modules) < 3:
        return False
    upsample, pad, conv = modules
    return (
        isinstance(upsample, nn.Upsample)
        and upsample.mode == "nearest"
        and upsample.scale_factor in (2, (2, 2))
        and isinstance(pad, nn.ReflectionPad2d)
        and tuple(pad.padding) == (1, 1, 1, 1)
        and _plain_conv(conv)
        and conv.kernel_size == (3, 3)
    )


def _is_narrow_convolution(module: nn.Module) -> bool:
    return _plain_conv(module) and module.out_channels <= NARROW_OUTPUTS and module.kernel_size[0] > 1


def _plain_conv(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv2d
        and module.stride == (1, 1)
        and module.padding == (0, 0)
        and module.dilation == (1, 1)
        and module.groups == 1
        and module.padding_mode == "zeros"
    )
