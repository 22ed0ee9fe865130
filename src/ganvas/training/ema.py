"""G_ema: an exponential moving average of the generator's weights, used for sampling."""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """`module` follows G as ema ← β·ema + (1 - β)·G after every step; buffers (BatchNorm
    statistics, a tracked w average) are copied. Its state is its weights, saved as
    G_ema.safetensors.

    β is fixed (`beta`), or, with `half_life_kimg` > 0, set each step as stylegan2-ada does:
    β = 0.5 ** (batch / half-life in images), the half-life capped at `rampup` × the images
    seen so far when `rampup` > 0 (so early, random weights are forgotten quickly). Both are
    functions of the images seen, so nothing else needs saving."""

    def __init__(
        self, G: nn.Module, beta: float, half_life_kimg: float = 0.0, rampup: float = 0.0
    ) -> None:
        self.module = copy.deepcopy(G).eval().requires_grad_(False)
        self.beta, self.half_life_kimg, self.rampup = beta, half_life_kimg, rampup

    def beta_at(self, batch_size: int, images_seen: int) -> float:
        if self.half_life_kimg <= 0:
            return self.beta
        half_life = self.half_life_kimg * 1000
        if self.rampup > 0:
            half_life = min(half_life, images_seen * self.rampup)
        return 0.5 ** (batch_size / max(half_life, 1e-8))

    @torch.no_grad()
    def update(self, G: nn.Module, batch_size: int = 0, images_seen: int = 0) -> None:
        beta = self.beta_at(batch_size, images_seen)
        params = list(self.module.parameters())
        torch._foreach_lerp_(params, list(G.parameters()), 1.0 - beta)
        for b_ema, b in zip(self.module.buffers(), G.buffers()):
            b_ema.copy_(b)
