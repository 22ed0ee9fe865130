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

from typing import Any

import torch
import torch.nn.functional as F

from ganvas.objectives.base import (
    Phase,
    TrainingParts,
    discriminator_then_generator,
    reals_and_fakes,
)

D_MAIN, G_MAIN = "D", "G"


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """E relu(1 − D(x)) + E relu(1 + D(G(z))) over logits of any shape → a scalar."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def all_logits(parts: TrainingParts, images: torch.Tensor, labels: torch.Tensor | None):
    """D's logits [N, L] on `images` as D sees them (through the D-input pipeline)."""
    return parts.D.logits(parts.d_input(images), labels)


class ProjectedObjective:
    def __init__(self, parts: TrainingParts) -> None:
        self.parts = parts
        self.train_config = parts.config.train
        self.d_main, self.g_main = Phase(D_MAIN, "D"), Phase(G_MAIN, "G")
        self._d_steps = self._d_done = 0
        self._fakes: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def phases(self) -> list[Phase]:
        return [self.d_main, self.g_main]

    def phases_due(self, step: int) -> list[Phase]:
        due = discriminator_then_generator(step, self.train_config, self.d_main, None, self.g_main)
        self._d_steps, self._d_done = due.count(self.d_main), 0
        return due

    def loss(self, phase: Phase) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if phase.name == D_MAIN:
            return self._discriminator_loss()
        return self._generator_loss()

    def after_phase(self, phase: Phase) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}  # nothing outlives a step

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def _discriminator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p = self.parts
        self._d_done += 1
        keep_graph = self._d_done == self._d_steps  # the last D update's fakes serve G's phase
        batch, fake, fake_c = reals_and_fakes(p, keep_graph)
        if keep_graph:
            self._fakes = (fake, fake_c)
        real_logits = all_logits(p, batch["image"], batch.get("label"))
        fake_logits = all_logits(p, fake.detach(), fake_c)
        p.d_input.observe_real_logits(real_logits.detach().mean(1))
        loss = hinge_d_loss(real_logits, fake_logits)
        return loss, {"loss_d": loss.detach(), "score_real": real_logits.detach().mean(),
                      "score_fake": fake_logits.detach().mean()}  # fmt: skip

    def _generator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fake, fake_c = self._fakes
        self._fakes = None
        loss = -all_logits(self.parts, fake, fake_c).mean()
        return loss, {"loss_g": loss.detach()}
