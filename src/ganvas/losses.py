"""Adversarial objectives and the regularizers that go with them.

An objective maps the discriminator's raw outputs (logits / critic scores) to the two
players' losses; `loss.name` picks one from `OBJECTIVES`. Regularizers are plain functions
of D (or G) and a batch; the trainer adds them with the weights in `LossConfig`. Every one
can be checked by hand on a tiny network: for a linear critic D(x) = w·x + b the input
gradient is w everywhere, so the gradient penalty is (‖w‖ - 1)² and R1 is ‖w‖².
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ganvas.training.distributed import per_sample
from ganvas.training.speed import double_backward


class Objective(Protocol):
    # True when sigmoid(logit) is a probability of "real" (BCE-type objectives).
    probabilistic: bool

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor: ...

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor: ...


class NonSaturating:
    """Goodfellow et al. 2014 with the non-saturating G loss (DCGAN): D minimises
    BCE(D(x), 1) + BCE(D(G(z)), 0); G minimises -log sigmoid(D(G(z)))."""

    probabilistic = True

    def d_loss(
        self,
        real: torch.Tensor,
        fake: torch.Tensor,
        real_target: torch.Tensor | None = None,
        fake_target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """With targets (label smoothing / flipping) the BCE uses them instead of 1 and 0."""
        if real_target is None and fake_target is None:
            return F.softplus(-real).mean() + F.softplus(fake).mean()
        bce = F.binary_cross_entropy_with_logits
        return bce(real, real_target) + bce(fake, fake_target)

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake).mean()


class Minimax(NonSaturating):
    """The original minimax game: G minimises log(1 - sigmoid(D(G(z)))) = -softplus(D(G(z)))."""

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return -F.softplus(fake).mean()


class Wasserstein:
    """Arjovsky et al. 2017: the critic maximises E[D(x)] - E[D(G(z))]; G maximises E[D(G(z))].
    Needs a Lipschitz constraint: weight clipping (loss.clip) or a penalty (loss.gp_weight)."""

    probabilistic = False

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return fake.mean() - real.mean()

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return -fake.mean()


class Hinge:
    """Lim & Ye 2017; used by SNGAN and BigGAN: D minimises relu(1 - D(x)) + relu(1 + D(G(z)))."""

    probabilistic = False

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return -fake.mean()


class LeastSquares:
    """Mao et al. 2017 (LSGAN, a=0, b=c=1): squared distance of D's output to the targets."""

    probabilistic = False

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((fake - 1) ** 2).mean()


OBJECTIVES: dict[str, type] = {
    "nonsaturating": NonSaturating,
    "minimax": Minimax,
    "wasserstein": Wasserstein,
    "hinge": Hinge,
    "lsgan": LeastSquares,
}
LOSSES = OBJECTIVES  # the name the config validates against


def build_loss(name: str) -> Objective:
    return OBJECTIVES[name]()


# --- Regularizers ---------------------------------------------------------------------------


def adversarial_logits(output: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """D's real/fake logits, whether or not it also returns class logits."""
    return output[0] if isinstance(output, tuple) else output


def _input_gradient_norms(D: nn.Module, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """‖∇_x D(x)‖₂ per sample, keeping the graph so the penalty can be back-propagated.
    Taken in fp32 whatever train.precision is (`double_backward`)."""
    with double_backward():
        x = x.detach().float().requires_grad_(True)
        scores = adversarial_logits(D(x, c))
        (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
        return grad.flatten(1).norm(2, dim=1)  # [N]


def gradient_penalty(
    D: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    c: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(‖∇D(x̂)‖ - 1)²] on x̂ = εx + (1-ε)G(z), ε ~ U(0, 1)."""
    eps = per_sample(torch.rand, (real.shape[0], 1, 1, 1), device=real.device,
                     generator=generator)  # fmt: skip
    mixed = eps * real.detach() + (1 - eps) * fake.detach()
    return ((_input_gradient_norms(D, mixed, c) - 1) ** 2).mean()


def zero_centred_penalty(
    D: nn.Module, x: torch.Tensor, c: torch.Tensor | None = None
) -> torch.Tensor:
    """E[‖∇D(x)‖²]: R1 on real images, R2 on fakes (Mescheder et al. 2018). The usual weight
    γ/2 is applied by the caller."""
    return (_input_gradient_norms(D, x, c) ** 2).mean()


def drift_penalty(real_scores: torch.Tensor) -> torch.Tensor:
    """E[D(x)²] (Karras et al. 2018): keeps a Wasserstein critic's output from drifting."""
    return (real_scores**2).mean()


@torch.no_grad()
def clip_weights(module: nn.Module, bound: float) -> None:
    """WGAN weight clipping: every parameter into [-bound, bound]."""
    for p in module.parameters():
        p.clamp_(-bound, bound)


def orthogonal_regularization(module: nn.Module) -> torch.Tensor:
    """BigGAN's orthogonal regularization: Σ ‖W Wᵀ ⊙ (1 - I)‖²_F over weight matrices
    (each conv/linear weight flattened to [out, in·k·k]); embeddings and norms excluded."""
    total = None
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            w = m.weight.flatten(1)  # [out, fan_in] (the spectral-normalised weight if SN)
            gram = w @ w.t()
            off_diagonal = gram * (1 - torch.eye(gram.shape[0], device=w.device))
            term = (off_diagonal**2).sum()
            total = term if total is None else total + term
    if total is None:
        raise ValueError("orthogonal_regularization found no conv or linear weights")
    return total
