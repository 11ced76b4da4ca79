"""An exponential moving average of a network's weights, the copy a training run ships.

With batch size 1 each generator step moves the weights along one slice's gradient, so the last
weights carry the noise of the last few slices; their running average (Polyak averaging, as
GAN trainers keep for their generators) is a smoother estimate of the same network at no cost
at inference.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

WARMUP = 10
"""Early on the decay is (1 + n) / (WARMUP + n): the average forgets the random start quickly."""


class WeightAverage:
    """An averaged copy of `network`; call `update(network)` after each optimiser step."""

    def __init__(self, network: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the averaging decay must lie in (0, 1), not {decay}")
        self.decay = decay
        self.updates = 0
        self.network = copy.deepcopy(network).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        decay = min(self.decay, (1 + self.updates) / (WARMUP + self.updates))
        current = network.state_dict()
        for name, tensor in self.network.state_dict().items():
            if tensor.is_floating_point():
                tensor.lerp_(current[name].to(tensor.dtype), 1.0 - decay)
            else:
                tensor.copy_(current[name])
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "weights": self.network.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.network.load_state_dict(state["weights"])
