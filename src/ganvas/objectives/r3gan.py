"""R3GAN's objective (Huang et al. 2024): the relativistic pairing loss, regularised by R1 and
R2, with γ decayed over the run.

Phases, per step:
    D  × d_steps   softplus(-(D(x) - D(G(z)))), real i paired with fake i, plus
                   γ/2 · (E‖∇ₓD(x)‖² + E‖∇D(G(z))‖²) on the same images (R1 on reals, R2 on
                   fakes): one pass of D per batch gives the logits and the penalty
    Dreg           every model.r_interval steps, when > 1: the two penalties alone on the
                   step's first D batch (lazy; the loop scales them by the interval)
    G              softplus(-(D(G(z)) - D(x))) on the last D phase's reals and fakes (G runs
                   once per step, as in the classic objective), judged by the updated D

γ follows a cosine from model.gamma_start at the first step to model.gamma_end at the last,
as optim.scheduler='cosine' does for the learning rates. The loss.* settings do not apply:
this is the family's own objective. Every image D sees passes through the D-input pipeline
(`judge`), the penalties' inputs included; their gradients are taken with respect to the
images before it, as in the paper's code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ganvas.objectives.base import DiscriminatorsThenGenerator, TrainingParts, judge
from ganvas.training.schedules import FixedSchedule
from ganvas.training.speed import double_backward


def relativistic_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's loss E softplus(-(D(x_i) - D(G(z_i)))): logits [N] and [N] → a scalar."""
    return F.softplus(fake_logits - real_logits).mean()


def relativistic_g_loss(fake_logits: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """G's loss E softplus(-(D(G(z_i)) - D(x_i))): logits [N] and [N] → a scalar."""
    return F.softplus(real_logits - fake_logits).mean()


def gamma_at(step: int, total_steps: int, start: float, end: float) -> float:
    """γ at `step` (0-based) of a run of `total_steps`: `start` at the first step, `end` at the
    last, along half a cosine between them."""
    progress = min(step / max(1, total_steps - 1), 1.0)
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))


def judge_with_penalty(
    parts: TrainingParts, images: torch.Tensor, labels: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """D's logits [N] on `images` [N, C, H, W] (through the D-input pipeline) and the
    zero-centred penalty E‖∇D‖² with respect to those images, from one pass of D. The
    penalty keeps its graph, so it can be back-propagated to D's parameters. Both come from
    fp32 (`double_backward`), whatever train.precision is."""
    with double_backward():
        images = images.detach().float().requires_grad_(True)
        logits = judge(parts, images, labels)
        (grad,) = torch.autograd.grad(logits.sum(), images, create_graph=True)
        return logits, grad.square().flatten(1).sum(1).mean()


class R3GANObjective(DiscriminatorsThenGenerator):
    def __init__(self, parts: TrainingParts) -> None:
        m = parts.config.model
        super().__init__(parts, reg_interval=m.r_interval)
        self.model_config = m
        # The step count the trainer runs (train.epochs turned into steps, when set).
        self.total_steps = FixedSchedule(parts.config, len(parts.feed.sampler.images)).total_steps
        self.gamma = m.gamma_start  # γ is a function of the step: no state outlives a step
        self._first: tuple[torch.Tensor, ...] = ()  # the step's first D batch (lazy penalties)
        self._pair: tuple[torch.Tensor, ...] = ()  # the last D batch, for G's phase

    def begin_step(self, step: int) -> None:
        m = self.model_config
        self.gamma = gamma_at(step, self.total_steps, m.gamma_start, m.gamma_end)

    def discriminator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p, d = self.parts, self.next_d_batch()
        real, real_c, fake, fake_c = d.real, d.real_c, d.fake, d.fake_c
        if d.last:
            self._pair = (real, real_c, fake, fake_c)
        if d.first:
            self._first = (real, real_c, fake.detach(), fake_c)
        penalise = self.d_reg is None and self.gamma > 0
        if penalise:
            real_logits, r1 = judge_with_penalty(p, real, real_c)
            fake_logits, r2 = judge_with_penalty(p, fake, fake_c)
        else:
            real_logits, fake_logits = judge(p, real, real_c), judge(p, fake.detach(), fake_c)
        p.d_input.observe_real_logits(real_logits.detach())
        loss = relativistic_d_loss(real_logits, fake_logits)
        stats = {"score_real": real_logits.detach().mean(),
                 "score_fake": fake_logits.detach().mean()}  # fmt: skip
        if penalise:
            loss = loss + 0.5 * self.gamma * (r1 + r2)
            stats.update(r1=r1.detach(), r2=r2.detach(), gamma=torch.tensor(self.gamma))
        stats["loss_d"] = loss.detach()
        return loss, stats

    def lazy_regularization(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self._penalties(*self._first)

    def _penalties(
        self,
        real: torch.Tensor,
        real_c: torch.Tensor | None,
        fake: torch.Tensor,
        fake_c: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """γ/2 · (R1 + R2) on the given reals and fakes: the lazy phase's loss."""
        _, r1 = judge_with_penalty(self.parts, real, real_c)
        _, r2 = judge_with_penalty(self.parts, fake, fake_c)
        loss = 0.5 * self.gamma * (r1 + r2)
        return loss, {"r1": r1.detach(), "r2": r2.detach(), "gamma": torch.tensor(self.gamma)}

    def generator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p = self.parts
        real, real_c, fake, fake_c = self._pair
        self._pair = ()
        fake_logits = judge(p, fake, fake_c)
        with torch.no_grad():  # no path from the reals to G: only their logits' values count
            real_logits = judge(p, real, real_c)
        loss = relativistic_g_loss(fake_logits, real_logits)
        return loss, {"loss_g": loss.detach()}
