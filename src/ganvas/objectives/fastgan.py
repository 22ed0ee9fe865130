"""FastGAN's objective (Liu et al. 2021): a hinge loss with random margins on every logit of
D's two logit maps, and, on reals, the reconstruction loss of D's decoders.

Phases, per step:
    D  × d_steps   E relu(u - D(x)) + E relu(u' + D(G(z))), u, u' ~ U(0.8, 1.0) drawn anew
                   for every logit (each of the 2 × 5 × 5 logits an image gets, not their
                   mean), plus model.rec_weight × the reconstruction loss of the real batch:
                   the mean absolute pixel error of D's three reconstructions (the whole image
                   from each path, and a quadrant chosen at random for the batch) against the
                   same augmented reals D judged, box-downsampled to the reconstructions' side
    G              -E D(G(z)) (the mean over all logits) on the last D phase's fakes (G runs
                   once per step, as in the classic objective), judged by the updated D

The paper compares reconstructions with LPIPS on VGG features; LPIPS and VGG weights cannot be
fetched offline here, so this uses L1 on pixels (documented in docs/families.md). Every image
D sees passes through the D-input pipeline (`parts.d_input`): the reals once per D phase, and
the decoders' targets are those augmented reals. The margins and the quadrant come from
`parts.generator`, so a resumed run draws the same. The loss.* settings do not apply: this is
the family's own objective.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganvas.objectives.base import DiscriminatorsThenGenerator, TrainingParts, judge
from ganvas.training.distributed import per_sample

MARGIN_LOW, MARGIN_HIGH = 0.8, 1.0  # the hinge's random margin, per logit


def random_margins(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """U(0.8, 1.0), one per entry of `like`."""
    u = per_sample(torch.rand, like.shape, generator=generator, device=like.device,
                   dtype=like.dtype)  # fmt: skip
    return MARGIN_LOW + (MARGIN_HIGH - MARGIN_LOW) * u


def hinge_real(logits: torch.Tensor, margins: torch.Tensor) -> torch.Tensor:
    """E relu(margin - logit) over every logit: [N, L] and [N, L] → a scalar."""
    return F.relu(margins - logits).mean()


def hinge_fake(logits: torch.Tensor, margins: torch.Tensor) -> torch.Tensor:
    """E relu(margin + logit) over every logit: [N, L] and [N, L] → a scalar."""
    return F.relu(margins + logits).mean()


def reconstruction_loss(
    reconstructions: dict[str, tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The sum over D's reconstructions of the mean absolute error to their targets, and each
    term (detached) as `rec_<name>`."""
    terms = {name: F.l1_loss(rec, target) for name, (rec, target) in reconstructions.items()}
    return sum(terms.values()), {f"rec_{name}": t.detach() for name, t in terms.items()}


class FastGANObjective(DiscriminatorsThenGenerator):
    def __init__(self, parts: TrainingParts) -> None:
        super().__init__(parts)
        self.rec_weight = float(parts.config.model.rec_weight)
        self._fake: torch.Tensor | None = None  # the last D phase's fakes, for G's phase

    def discriminator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p, d = self.parts, self.next_d_batch()
        fake = d.fake
        if d.last:
            self._fake = fake
        real = p.d_input(d.real)  # the decoders' targets: the reals as D saw them
        part = int(torch.randint(4, (1,), generator=p.generator, device=real.device))
        real_logits, reconstructions = p.D(real, None, part=part)  # [N, L], {name: (rec, x)}
        fake_logits = p.D(p.d_input(fake.detach()), None, maps=True)  # [N, L]
        p.d_input.observe_real_logits(real_logits.detach().mean(1))
        loss_real = hinge_real(real_logits, random_margins(real_logits, p.generator))
        loss_fake = hinge_fake(fake_logits, random_margins(fake_logits, p.generator))
        rec, rec_terms = reconstruction_loss(reconstructions)
        loss = loss_real + loss_fake + self.rec_weight * rec
        return loss, {
            "loss_d": loss.detach(),
            "loss_d_real": loss_real.detach(),
            "loss_d_fake": loss_fake.detach(),
            "loss_rec": rec.detach(),
            **rec_terms,
            "score_real": real_logits.detach().mean(),
            "score_fake": fake_logits.detach().mean(),
        }

    def generator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fake, self._fake = self._fake, None
        loss = -judge(self.parts, fake, None).mean()  # each image's mean logit, averaged
        return loss, {"loss_g": loss.detach()}
