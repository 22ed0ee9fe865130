"""G_ema's averaging speed: fixed, or stylegan2-ada's half-life with ramp-up."""

import pytest
import torch
from torch import nn

from ganvas.training.ema import WeightAverage


def test_a_fixed_beta_moves_the_average_by_one_minus_beta():
    G = nn.Linear(2, 1, bias=False)
    ema = WeightAverage(G, beta=0.9)
    with torch.no_grad():
        G.weight.fill_(1.0)
        ema.module.weight.fill_(0.0)
    ema.update(G)
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 0.1))


def test_half_life_in_kimg_halves_the_gap_after_that_many_images():
    ema = WeightAverage(nn.Linear(1, 1), beta=0.999, half_life_kimg=10.0)
    beta = ema.beta_at(batch_size=32, images_seen=10**6)
    assert beta ** (10_000 / 32) == pytest.approx(0.5)  # 10k images later, half the gap left


def test_ramp_up_forgets_early_weights_quickly():
    ema = WeightAverage(nn.Linear(1, 1), beta=0.999, half_life_kimg=10.0, rampup=0.05)
    early, late = ema.beta_at(32, images_seen=3200), ema.beta_at(32, images_seen=10**7)
    assert early == pytest.approx(0.5 ** (32 / 160))  # half-life 5 % of 3,200 images
    assert late == pytest.approx(0.5 ** (32 / 10_000)) and early < late
