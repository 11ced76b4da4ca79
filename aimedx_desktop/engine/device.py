"""Device choice for inference and training: the one place that turns 'auto'/'cpu'/'cuda' into a device."""

from __future__ import annotations

import re

import torch

from aimedx_desktop.engine.errors import UserError

CHOICES = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"auto|cpu|cuda(:(\d+))?")


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU. Anything but the CHOICES, 'cuda' without a
    GPU, or a GPU number this machine does not have is a UserError naming the valid choices."""
    match = _DEVICE.fullmatch(device.strip().lower())
    if match is None:
        raise UserError(f"--device {device!r} is not a device: choose {CHOICES}")
    if match[0] == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if match[0] == "cpu":
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise UserError(f"--device {device} was asked for, but no CUDA GPU is available: choose auto or cpu")
    index = int(match[2] or 0)
    if index >= count:
        raise UserError(f"--device {device}: this machine has {count} GPU(s), numbered 0 to {count - 1}")
    return torch.device("cuda", index)
