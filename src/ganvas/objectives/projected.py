"""Projected GAN's objective: the hinge loss on every logit of the multi-scale discriminator.

Phases, per step:
    D  × d_steps   mean relu(1 − D(x)) + mean relu(1 + D(G(z))) over every position of every
                   scale's logit map (`Discriminator.logits`), reals and fakes through the
                   D-input pipeline
    G              −mean D(G(z)) on the last D phase's fakes, judged by the updated D (G runs
                   once per step, as in the classic objective)

No gradient penalty: the paper trains without one (the frozen feature network and spectral
norm keep D smooth). The loss.* settings do not apply: this is the family's own objective.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganvas.objectives.base import DiscriminatorsThenGenerator, TrainingParts


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """E relu(1 − D(x)) + E relu(1 + D(G(z))) over logits of any shape → a scalar."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def all_logits(parts: TrainingParts, images: torch.Tensor, labels: torch.Tensor | None):
    """D's logits [N, L] on `images` as D sees them (through the D-input pipeline)."""
    return parts.D.logits(parts.d_input(images), labels)


class ProjectedObjective(DiscriminatorsThenGenerator):
    def __init__(self, parts: TrainingParts) -> None:
        super().__init__(parts)
        self._fakes: tuple[torch.Tensor, torch.Tensor | None] | None = None  # for G's phase

    def discriminator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p, d = self.parts, self.next_d_batch()
        if d.last:
            self._fakes = (d.fake, d.fake_c)
        real_logits = all_logits(p, d.real, d.real_c)
        fake_logits = all_logits(p, d.fake.detach(), d.fake_c)
        p.d_input.observe_real_logits(real_logits.detach().mean(1))
        loss = hinge_d_loss(real_logits, fake_logits)
        return loss, {"loss_d": loss.detach(), "score_real": real_logits.detach().mean(),
                      "score_fake": fake_logits.detach().mean()}  # fmt: skip

    def generator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fake, fake_c = self._fakes
        self._fakes = None
        loss = -all_logits(self.parts, fake, fake_c).mean()
        return loss, {"loss_g": loss.detach()}
