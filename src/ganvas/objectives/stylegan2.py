"""The StyleGAN2 objective, as stylegan2-ada trains it (its `StyleGAN2Loss` and phases).

Phases, in stylegan2-ada's order:
    G      non-saturating loss softplus(−D(G(z))) on a style-mixed batch
    Greg   every model.pl_interval steps: path-length regularization on batch // pl_batch_shrink
           fakes, pl_weight · (‖J_wᵀ y‖ − a)², a the running mean of the lengths (saved state)
    D      softplus(D(G(z))) + softplus(−D(x)); D's real logits go to the D-input pipeline
           (ADA adapts its strength to them)
    Dreg   every model.r1_interval steps: R1, γ/2 · ‖∇_x D(x)‖² on the step's reals; γ is
           model.r1_gamma, or stylegan2-ada's rule 0.0002 · R² / batch when that is 0

An interval of 1 folds the term into the main phase. The loop scales a lazy phase's loss by its
interval and adjusts Adam (`lazy_ratio`). The step draws one real batch (its first phase that
needs one), as stylegan2-ada does; every phase draws its own z. Every random number comes from
`parts.generator`, and every image D sees goes through `parts.d_input` (`judge`), the R1
inputs included, so R1 is taken with respect to the images before augmentation.

The classic objective's settings (`loss.*`, `train.d_steps`, `train.replay_*`) do not apply
here; this family's are in `model.*` (see `StyleGAN2Config`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganvas.losses import zero_centred_penalty
from ganvas.models.registry import Batch
from ganvas.objectives.base import Phase, TrainingParts, judge
from ganvas.training.distributed import mean_over_ranks, per_sample
from ganvas.training.speed import double_backward


def r1_gamma_auto(resolution: int, batch_size: int) -> float:
    """stylegan2-ada's heuristic R1 weight: 0.0002 · resolution² / batch size."""
    return 0.0002 * resolution**2 / batch_size


def mix_styles(
    G: nn.Module,
    z: torch.Tensor,
    probability: float,
    generator: torch.Generator,
    update_w_avg: bool = True,
) -> torch.Tensor:
    """ws [N, num_ws, w_dim] for latents z [N, z_dim], style-mixed: with `probability` (one draw
    per batch), the layers from a random crossover in 1..num_ws-1 on get the w of a second z.

    The mapping network's mean w follows the first z's ws when `update_w_avg`, never the
    second's (as in stylegan2-ada). Draws stay on the device (no host sync).
    """
    ws = G.mapping(z, update_w_avg=update_w_avg)
    if probability <= 0:
        return ws
    n_ws, device = ws.shape[1], z.device
    z2 = per_sample(torch.randn, z.shape, generator=generator, device=device, dtype=z.dtype)
    crossover = torch.randint(1, n_ws, (), generator=generator, device=device)
    mixing = torch.rand((), generator=generator, device=device) < probability
    crossover = torch.where(mixing, crossover, torch.full_like(crossover, n_ws))
    second = torch.arange(n_ws, device=device) >= crossover  # [num_ws]
    return torch.where(second[None, :, None], G.mapping(z2), ws)


def path_length_penalty(
    img: torch.Tensor,
    ws: torch.Tensor,
    pl_mean: torch.Tensor,
    decay: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """StyleGAN2's path-length penalty (Karras et al. 2020, section 3.2).

    For a random image-space direction y ~ N(0, I) / √(H·W), the length of J_wᵀ y (J the
    Jacobian of img with respect to ws) is taken per sample as √(mean over layers of Σ over
    w_dim of g²), g = ∂(img · y)/∂ws. The running mean a moves `decay` of the way to the batch
    mean (kept differentiable, as in stylegan2-ada), and the penalty is (length − a)².

    Args:
        img: [N, C, H, W], made from ws.
        ws: [N, num_ws, w_dim], in img's graph.
        pl_mean: the running mean a, a scalar tensor.
    Returns:
        (penalty [N], new running mean (detached scalar), lengths [N] (detached)).
    """
    h, w = img.shape[2:]
    noise = per_sample(torch.randn, img.shape, generator=generator, device=img.device,
                       dtype=img.dtype)  # fmt: skip
    noise = noise / math.sqrt(h * w)
    (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
    lengths = grads.square().sum(dim=2).mean(dim=1).sqrt()  # [N]
    mean = torch.lerp(pl_mean, mean_over_ranks(lengths.mean()), decay)  # the same on all ranks
    return (lengths - mean).square(), mean.detach(), lengths.detach()


class StyleGAN2Objective:
    def __init__(self, parts: TrainingParts) -> None:
        self.parts = parts
        m = parts.config.model
        self.model_config = m
        self.r1_gamma = m.r1_gamma or r1_gamma_auto(m.resolution, parts.config.train.batch_size)
        self.g_main, self.d_main = Phase("G", "G"), Phase("D", "D")
        self.pl_every_step = m.pl_weight > 0 and m.pl_interval == 1
        self.r1_every_step = m.r1_interval == 1
        lazy_pl, lazy_r1 = m.pl_weight > 0 and m.pl_interval > 1, m.r1_interval > 1
        self.g_reg = Phase("Greg", "G", m.pl_interval) if lazy_pl else None
        self.d_reg = Phase("Dreg", "D", m.r1_interval) if lazy_r1 else None
        self.device = next(parts.G.parameters()).device
        self.pl_mean = torch.zeros((), device=self.device)  # running mean of the path lengths
        self._batch: Batch | None = None  # this step's reals

    # --- The loop's interface ------------------------------------------------------------------

    def phases(self) -> list[Phase]:
        return [p for p in (self.g_main, self.g_reg, self.d_main, self.d_reg) if p is not None]

    def phases_due(self, step: int) -> list[Phase]:
        self._batch = None
        return [p for p in self.phases() if p.due(step)]

    def loss(self, phase: Phase) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if phase is self.g_main:
            return self._generator_loss()
        if phase is self.g_reg:
            return self._path_length_loss()
        if phase is self.d_main:
            return self._discriminator_loss()
        if phase is self.d_reg:
            return self._r1_loss()
        raise ValueError(f"the stylegan2 objective has no phase {phase.name!r}")

    def after_phase(self, phase: Phase) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"pl_mean": self.pl_mean}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "pl_mean" in state:  # checkpoints load onto the CPU
            self.pl_mean = state["pl_mean"].to(self.device)

    # --- The phases ----------------------------------------------------------------------------

    def _reals(self) -> Batch:
        if self._batch is None:
            self._batch = self.parts.feed.reals()
        return self._batch

    def _fakes(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(img [n, C, R, R], ws [n, num_ws, w_dim]) for n fresh latents (default: a batch)."""
        p = self.parts
        z = p.feed.g_inputs(self._reals())["z"][:n]
        ws = mix_styles(p.G, z, self.model_config.style_mixing, p.generator)
        img = p.G.synthesis(ws, "random", p.generator)
        return img, ws

    def _generator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        img, _ = self._fakes()
        logits = judge(self.parts, img, None)
        loss = F.softplus(-logits).mean()
        stats = {"loss_g": loss.detach()}
        if self.pl_every_step:
            penalty, pl_stats = self._path_length_loss()
            loss = loss + penalty
            stats.update(pl_stats)
        return loss, stats

    def _path_length_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        m = self.model_config
        n = max(1, len(self._reals()["image"]) // m.pl_batch_shrink)
        with double_backward():  # G's pass and its Jacobian in fp32, whatever train.precision
            img, ws = self._fakes(n)
            penalty, self.pl_mean, lengths = path_length_penalty(
                img, ws, self.pl_mean, m.pl_decay, self.parts.generator
            )
        loss = m.pl_weight * penalty.mean()
        return loss, {"pl_penalty": penalty.detach().mean(), "pl_length": lengths.mean(),
                      "pl_mean": self.pl_mean}  # fmt: skip

    def _discriminator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p = self.parts
        real = self._reals()["image"]
        with torch.no_grad():
            fake, _ = self._fakes()
        real_logits, fake_logits = judge(p, real, None), judge(p, fake, None)
        p.d_input.observe_real_logits(real_logits.detach())
        loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        stats = {"loss_d": loss.detach(), "score_real": real_logits.detach().mean(),
                 "score_fake": fake_logits.detach().mean()}  # fmt: skip
        if self.r1_every_step:
            penalty, r1_stats = self._r1_loss()
            loss = loss + penalty
            stats.update(r1_stats)
        return loss, stats

    def _r1_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        r1 = zero_centred_penalty(self._judge, self._reals()["image"], None)
        return 0.5 * self.r1_gamma * r1, {"r1": r1.detach()}

    def _judge(self, images: torch.Tensor, labels: torch.Tensor | None) -> Any:
        return judge(self.parts, images, labels)
