"""Adversarial objectives. Each maps discriminator logits to the two players' losses.

A loss is an object with `d_loss(real_logits, fake_logits)` and `g_loss(fake_logits)`,
registered by name in `LOSSES`; `loss.name` in the config picks one.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F


class AdversarialLoss(Protocol):
    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor: ...

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor: ...


class NonSaturatingLoss:
    """Goodfellow et al. (2014) with the non-saturating generator loss, as in DCGAN.

    D minimises BCE(D(x), 1) + BCE(D(G(z)), 0); G minimises BCE(D(G(z)), 1), i.e.
    -log sigmoid(D(G(z))), which keeps G's gradients alive when D wins early on.
    """

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_logits).mean()


LOSSES: dict[str, type] = {"nonsaturating": NonSaturatingLoss}


def build_loss(name: str) -> AdversarialLoss:
    return LOSSES[name]()
