"""Objectives and regularizers against values computed by hand."""

import math

import pytest
import torch
from torch import nn

from ganvas.config import scheduled_value
from ganvas.losses import (
    build_loss,
    clip_weights,
    drift_penalty,
    gradient_penalty,
    orthogonal_regularization,
    zero_centred_penalty,
)

REAL = torch.tensor([2.0, -1.0])
FAKE = torch.tensor([0.5, -3.0])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


@pytest.mark.parametrize(
    "name, d_expected, g_expected",
    [
        ("nonsaturating",
         (softplus(-2) + softplus(1)) / 2 + (softplus(0.5) + softplus(-3)) / 2,
         (softplus(-0.5) + softplus(3)) / 2),
        ("minimax",
         (softplus(-2) + softplus(1)) / 2 + (softplus(0.5) + softplus(-3)) / 2,
         -(softplus(0.5) + softplus(-3)) / 2),
        ("wasserstein", (0.5 - 3) / 2 - (2 - 1) / 2, -(0.5 - 3) / 2),
        ("hinge", (0 + 2) / 2 + (1.5 + 0) / 2, -(0.5 - 3) / 2),
        ("lsgan", 0.5 * (1 + 4) / 2 + 0.5 * (0.25 + 9) / 2, 0.5 * (0.25 + 16) / 2),
    ],
)  # fmt: skip
def test_objectives_match_hand_computed_values(name, d_expected, g_expected):
    loss = build_loss(name)
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(d_expected, rel=1e-6)
    assert loss.g_loss(FAKE).item() == pytest.approx(g_expected, rel=1e-6)


class LinearCritic(nn.Module):
    """D(x) = w·x + b: its input gradient is w everywhere, so penalties have closed forms."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(0.3))

    def forward(self, img, c=None):
        return img.flatten(1) @ self.w.flatten() + self.b


def test_gradient_penalty_of_a_linear_critic_is_norm_minus_one_squared():
    w = torch.arange(12.0).reshape(3, 2, 2) / 10  # ‖w‖ = sqrt(sum i²)/10
    D = LinearCritic(w)
    real, fake = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)
    gp = gradient_penalty(D, real, fake)
    assert gp.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)
    gp.backward()  # differentiable w.r.t. D's weights: d/dw (‖w‖-1)² = 2(‖w‖-1) w/‖w‖
    expected = 2 * (w.norm() - 1) * w / w.norm()
    assert torch.allclose(D.w.grad, expected, atol=1e-5)


def test_r1_of_a_linear_critic_is_squared_norm():
    w = torch.tensor([[[0.6, -0.8]]])  # ‖w‖ = 1
    D = LinearCritic(w * 3)
    assert zero_centred_penalty(D, torch.randn(4, 1, 1, 2)).item() == pytest.approx(9.0)


def test_gradient_penalty_is_zero_for_a_1_lipschitz_linear_critic():
    D = LinearCritic(torch.tensor([[[0.6, 0.8]]]))
    assert gradient_penalty(
        D, torch.randn(4, 1, 1, 2), torch.randn(4, 1, 1, 2)
    ).item() == pytest.approx(0, abs=1e-10)


def test_gradient_penalty_uses_the_given_generator():
    D = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0))
    wrapped = lambda img, c=None: D(img)  # noqa: E731
    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    a = gradient_penalty(wrapped, real, fake, generator=torch.Generator().manual_seed(1))
    b = gradient_penalty(wrapped, real, fake, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_drift_and_clip():
    assert drift_penalty(torch.tensor([1.0, -3.0])).item() == pytest.approx(5.0)
    layer = nn.Linear(10, 10)
    nn.init.normal_(layer.weight, std=5)
    clip_weights(layer, 0.01)
    assert layer.weight.abs().max() <= 0.01 and layer.bias.abs().max() <= 0.01


def test_orthogonal_regularization():
    layer = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(3) * 2)  # orthogonal rows: no off-diagonal terms
    assert orthogonal_regularization(layer).item() == 0
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 1.0, 0], [1.0, 0, 0], [0, 0, 1.0]]))
    # W Wᵀ = [[2, 1, 0], [1, 1, 0], [0, 0, 1]]: off-diagonal squares 1 + 1
    assert orthogonal_regularization(layer).item() == pytest.approx(2.0)


def test_schedules_change_at_their_steps():
    schedule = ((100, 4), (200, 3))
    assert [scheduled_value(schedule, s, 5) for s in (0, 99, 100, 199, 200, 10**6)] == [
        5,
        5,
        4,
        4,
        3,
        3,
    ]
