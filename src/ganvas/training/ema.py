"""G_ema: an exponential moving average of the generator's weights, used for sampling."""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """`module` follows G as ema ← β·ema + (1 - β)·G after every step; buffers (BatchNorm
    statistics) are copied. Its state is its weights, saved as G_ema.safetensors."""

    def __init__(self, G: nn.Module, beta: float) -> None:
        self.module = copy.deepcopy(G).eval().requires_grad_(False)
        self.beta = beta

    @torch.no_grad()
    def update(self, G: nn.Module) -> None:
        params = list(self.module.parameters())
        torch._foreach_lerp_(params, list(G.parameters()), 1.0 - self.beta)
        for b_ema, b in zip(self.module.buffers(), G.buffers()):
            b_ema.copy_(b)
