"""The classic objective: what every family of the first round trains with.

Phases, per step:
    D      × d_steps   adversarial loss (loss.name) on reals and fakes, with label smoothing /
                       flipping, experience replay, an auxiliary class head (families whose D
                       returns class logits), the WGAN-GP penalty, the drift term, and R1/R2
                       when they are not lazy; weight clipping after the update
    Dreg   every loss.r_interval steps, when > 1: R1 / R2 (lazy regularization)
    G                  adversarial loss on the last D phase's fakes (G runs once per step, as
                       in the DCGAN reference), the class head's loss, orthogonal regularization

Every image D sees goes through the D-input pipeline (`judge`), inside the penalties too.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ganvas.losses import (
    adversarial_logits,
    build_loss,
    clip_weights,
    drift_penalty,
    gradient_penalty,
    orthogonal_regularization,
    zero_centred_penalty,
)
from ganvas.objectives.base import DiscriminatorsThenGenerator, Phase, TrainingParts, judge
from ganvas.objectives.tricks import ReplayBuffer, d_targets


class ClassicObjective(DiscriminatorsThenGenerator):
    def __init__(self, parts: TrainingParts) -> None:
        lc = parts.config.loss
        lazy = lc.r_interval > 1 and (lc.r1_weight > 0 or lc.r2_weight > 0)
        super().__init__(parts, reg_interval=lc.r_interval if lazy else 0)
        self.loss_config = lc
        self.adversarial = build_loss(lc.name)
        self.smoothing = (
            lc.real_label != (1.0, 1.0) or lc.fake_label != (0.0, 0.0) or lc.flip_prob > 0
        )
        capacity = self.train_config.replay_size
        self.replay = ReplayBuffer(capacity) if capacity else None
        self._first: dict[str, Any] = {}  # the step's first D batch: the lazy penalties' inputs
        self._fakes: tuple[torch.Tensor, torch.Tensor | None] | None = None  # for the G phase
        self._last_fakes: tuple[torch.Tensor, torch.Tensor | None] | None = None  # for replay

    # --- The loop's interface ----------------------------------------------------------------

    def after_phase(self, phase: Phase) -> None:
        if phase != self.d_main:
            return
        if self.loss_config.clip:
            clip_weights(self.parts.D, self.loss_config.clip)
        if self.replay is not None:
            self.replay.push(*self._last_fakes)

    def state_dict(self) -> dict[str, Any]:
        return {"replay": self.replay.state_dict()} if self.replay is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.replay is not None and "replay" in state:
            self.replay.load_state_dict(state["replay"])  # checkpoints load onto the CPU
            self.replay.to(next(self.parts.G.parameters()).device)

    # --- The phases ----------------------------------------------------------------------------

    def discriminator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p, lc, d = self.parts, self.loss_config, self.next_d_batch()
        real, real_c, fake, fake_c, first = d.real, d.real_c, d.fake, d.fake_c, d.first
        if d.last:
            self._fakes = (fake, fake_c)
        self._last_fakes = (fake.detach(), fake_c)
        if first:
            self._first = {"real": real, "real_c": real_c, "fake": fake.detach(), "fake_c": fake_c}
        shown, shown_c = fake.detach(), fake_c
        if self.replay is not None and self.step % self.train_config.replay_every == 0:
            shown, shown_c = self.replay.mix(shown, shown_c, self.train_config.replay_fraction,
                                             p.generator)  # fmt: skip
        real_out, fake_out = judge(p, real, real_c), judge(p, shown, shown_c)
        real_logits, fake_logits = adversarial_logits(real_out), adversarial_logits(fake_out)
        p.d_input.observe_real_logits(real_logits.detach())
        loss = self._adversarial_d_loss(real_logits, fake_logits)
        stats = {"score_real": real_logits.detach().mean(),
                 "score_fake": fake_logits.detach().mean()}  # fmt: skip
        if self.adversarial.probabilistic:
            stats["d_real"] = torch.sigmoid(real_logits.detach()).mean()
            stats["d_fake"] = torch.sigmoid(fake_logits.detach()).mean()
        if isinstance(real_out, tuple):  # an auxiliary classifier head (ACGAN)
            # By default D's class head learns from real images only: trained on fakes too,
            # D and G can agree on any labelling of the fakes, and the classes drift away
            # from what they look like in the data (seen on our colour test set).
            aux = F.cross_entropy(real_out[1], real_c)
            if lc.aux_fakes_in_d:
                aux = aux + F.cross_entropy(fake_out[1], shown_c)
            loss = loss + lc.aux_weight * aux
            stats["aux_loss_d"] = aux.detach()
            stats["aux_acc_real"] = (real_out[1].argmax(1) == real_c).float().mean()
        if lc.gp_weight:
            gp = gradient_penalty(self._d_view, real, fake, real_c, generator=p.generator)
            loss = loss + lc.gp_weight * gp
            stats["gp"] = gp.detach()
        if first and self.d_reg is None and (lc.r1_weight or lc.r2_weight):  # not lazy
            penalty, penalty_stats = self._zero_centred_penalties()
            loss, stats = loss + penalty, {**stats, **penalty_stats}
        if lc.drift_weight:
            loss = loss + lc.drift_weight * drift_penalty(real_logits)
        stats["loss_d"] = loss.detach()
        return loss, stats

    def lazy_regularization(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self._zero_centred_penalties()

    def generator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p, lc = self.parts, self.loss_config
        fake, fake_c = self._fakes
        self._fakes = None
        out = judge(p, fake, fake_c)
        loss = self.adversarial.g_loss(adversarial_logits(out))
        stats = {}
        if isinstance(out, tuple):
            aux = F.cross_entropy(out[1], fake_c)
            loss = loss + lc.aux_weight * aux
            stats["aux_acc_fake"] = (out[1].argmax(1) == fake_c).float().mean()
        if lc.ortho_weight:
            loss = loss + lc.ortho_weight * orthogonal_regularization(p.G)
        stats["loss_g"] = loss.detach()
        return loss, stats

    # --- Terms ---------------------------------------------------------------------------------

    def _d_view(self, images: torch.Tensor, labels: torch.Tensor | None) -> Any:
        return judge(self.parts, images, labels)

    def _adversarial_d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        if not self.smoothing:
            return self.adversarial.d_loss(real, fake)
        lc = self.loss_config
        targets = d_targets(len(real), lc.real_label, lc.fake_label, lc.flip_prob,
                            self.parts.generator, real.device)  # fmt: skip
        return self.adversarial.d_loss(real, fake, *targets)

    def _zero_centred_penalties(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """γ/2 · E‖∇D(x)‖² on the step's first reals (R1) and fakes (R2), those weighted."""
        lc, first = self.loss_config, self._first
        total = torch.zeros((), device=first["real"].device)
        stats = {}
        if lc.r1_weight:
            r1 = zero_centred_penalty(self._d_view, first["real"], first["real_c"])
            total = total + 0.5 * lc.r1_weight * r1
            stats["r1"] = r1.detach()
        if lc.r2_weight:
            r2 = zero_centred_penalty(self._d_view, first["fake"], first["fake_c"])
            total = total + 0.5 * lc.r2_weight * r2
            stats["r2"] = r2.detach()
        return total, stats
