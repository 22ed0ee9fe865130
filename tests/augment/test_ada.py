"""ADA: its transforms (identity at p = 0, differentiable at p = 1, exact blits, flat colours
kept flat), the adaptation of p and its saved state."""

import io
import itertools

import pytest
import torch
from torch import nn

from ganvas.augment.ada import (
    GROUPS,
    AdaptiveAugment,
    ada_augment,
    blit,
    color,
    geom,
    resample,
)
from ganvas.augment.pixels import mirror_index
from ganvas.config import ADA_PIPELINES


def _images(n=4, channels=3, size=16, seed=0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=g, dtype=dtype) * 2 - 1


def _gen(seed=1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_pipeline_names_agree_with_the_config():
    assert tuple(GROUPS) == ADA_PIPELINES


@pytest.mark.parametrize("pipeline", ADA_PIPELINES)
def test_p_zero_is_exactly_the_identity(pipeline):
    x = _images()
    g = _gen()
    state = g.get_state()
    assert ada_augment(x, 0.0, g, pipeline) is x
    assert torch.equal(g.get_state(), state)  # and draws nothing
    ada = AdaptiveAugment(_gen(), pipeline, p=0.0)
    assert torch.equal(ada(x), x)


@pytest.mark.parametrize("pipeline", ADA_PIPELINES)
def test_p_one_changes_every_image_and_keeps_the_shape(pipeline):
    x = _images(n=8)
    y = ada_augment(x, 1.0, _gen(), pipeline)
    assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()
    assert ((y - x).abs().flatten(1).amax(1) > 1e-3).float().mean() >= 0.75


def _reseeded(fn, seed=3):
    """fn(images, p, generator) with the same random draws at every call (for gradcheck)."""
    return lambda images: fn(images, 1.0, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("fn", [blit, geom, color, ada_augment], ids=lambda f: f.__name__)
def test_p_one_is_differentiable_with_respect_to_the_images(fn):
    x = _images(n=2, size=8, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(_reseeded(fn), (x,), eps=1e-6, atol=1e-5)


def test_gradients_reach_the_generator_through_the_augmentation():
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 3 * 8 * 8), nn.Tanh(), nn.Unflatten(1, (3, 8, 8)))
    D = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1))
    ada = AdaptiveAugment(_gen(), "bgc", p=1.0)
    fake = G(torch.randn(6, 4))
    D(ada(fake)).mean().backward()
    for name, param in G.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
        assert torch.isfinite(param.grad).all(), name


def _dihedral_shifts(image: torch.Tensor, max_shift: int):
    """Every flip/quarter turn of `image` [C, S, S], shifted by up to max_shift pixels with a
    mirrored border."""
    size = image.shape[-1]
    for flip, quarter in itertools.product((False, True), range(4)):
        turned = torch.rot90(image.flip(-1) if flip else image, quarter, dims=(-2, -1))
        for dy, dx in itertools.product(range(-max_shift, max_shift + 1), repeat=2):
            rows = mirror_index(torch.arange(size) - dy, size)
            cols = mirror_index(torch.arange(size) - dx, size)
            yield turned[:, rows][:, :, cols]


def test_blit_copies_pixels_exactly():
    # Every pixel distinct: an output is a flip/turn/shift of its input, exactly, or nothing.
    size = 16
    x = torch.arange(8 * 3 * size * size, dtype=torch.float32).view(8, 3, size, size)
    y = blit(x, 1.0, _gen())
    max_shift = round(0.125 * size)
    for original, out in zip(x, y):
        assert any(torch.equal(out, c) for c in _dihedral_shifts(original, max_shift))
    assert not torch.equal(y, x)


def test_geometric_transforms_keep_a_flat_image_flat():
    # Reflection at the border: rotated or shrunk, a one-colour image shows no edges.
    x = torch.full((16, 3, 16, 16), 0.3)
    x[:, 1] = -0.7
    for fn in (blit, geom):
        y = fn(x, 1.0, _gen())
        assert torch.allclose(y, x, atol=1e-5), fn.__name__


def test_resample_with_the_identity_is_a_slight_blur_and_a_turn_is_a_turn():
    x = _images(n=2, size=16)
    identity = torch.eye(3)[:2].expand(2, 2, 3)
    blurred = resample(x, identity)
    k = torch.tensor([1 / 8, 3 / 4, 1 / 8])
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="replicate").reshape(6, 1, 18, 18)
    expected = nn.functional.conv2d(padded, (k[:, None] * k[None, :])[None, None])
    assert torch.allclose(blurred, expected.view_as(x), atol=1e-6)
    quarter = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]).expand(2, 2, 3)
    turned = resample(x, quarter)
    assert torch.allclose(turned, torch.rot90(blurred, 1, dims=(-2, -1)), atol=1e-5)


def test_colour_transforms_keep_grey_images_grey_and_act_per_image():
    # Hue and saturation turn around / scale away from the grey axis: grey stays on it.
    # Brightness, contrast and luma flip make each image a·x + b.
    x = torch.linspace(-1, 1, 8 * 16 * 16).view(8, 1, 16, 16).expand(8, 3, 16, 16)
    y = color(x, 1.0, _gen())
    assert torch.allclose(y[:, 0], y[:, 1], atol=1e-5) and torch.allclose(y[:, 1], y[:, 2],
                                                                         atol=1e-5)  # fmt: skip
    for original, out in zip(x[:, 0].flatten(1), y[:, 0].flatten(1)):
        design = torch.stack([original, torch.ones_like(original)], 1)
        coef = torch.linalg.lstsq(design, out[:, None]).solution
        assert torch.allclose(design @ coef, out[:, None], atol=1e-4)
    assert not torch.allclose(y, x, atol=1e-3)


def test_one_channel_images_get_the_colour_transforms_that_make_sense():
    x = _images(n=8, channels=1)
    y = ada_augment(x, 1.0, _gen())
    assert y.shape == x.shape and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="1 or 3 channels"):
        color(_images(channels=2), 1.0, _gen())


def test_an_image_given_no_transform_is_untouched():
    # At a small p most images get none: they must come out bit for bit as they went in.
    x = _images(n=64)
    y = ada_augment(x, 0.02, _gen())
    same = [torch.equal(a, b) for a, b in zip(x, y)]
    assert 30 < sum(same) < 64


def _feed(ada: AdaptiveAugment, steps: int, logits: torch.Tensor, start: int = 0) -> list[float]:
    ps = []
    for step in range(start, start + steps):
        ada.begin_step(step)
        ada.observe_real_logits(logits)
        ps.append(ada.p)
    return ps


def test_p_rises_while_d_wins_on_reals_and_falls_while_it_loses():
    # 8 reals a step, updates every 4 steps: p moves by 32 / (0.1 · 1000) = 0.32 each time.
    ada = AdaptiveAugment(_gen(), p=0.0, target=0.6, kimg=0.1, interval=4)
    ps = _feed(ada, 17, torch.full((8,), 3.0))
    assert ps[:4] == [0.0] * 4
    assert ps[4] == pytest.approx(0.32) and ps[8] == pytest.approx(0.64)
    assert ps[12] == pytest.approx(0.96) and ps[16] == 1.0  # clamped
    assert ada.log_values() == {"ada_p": 1.0, "ada_rt": 1.0}

    ps = _feed(ada, 20, torch.full((8,), -2.0), start=17)  # D now always wrong on reals
    assert ps[-1] == 0.0 and ps[3] == pytest.approx(1 - 0.32)
    assert ada.log_values()["ada_rt"] == -1.0


def test_p_follows_the_share_of_reals_judged_real():
    # r_t = E[sign]: 7 of 8 positive is 0.75 > 0.6 (up), 6 of 8 is 0.5 < 0.6 (down).
    up, down = torch.tensor([1.0] * 7 + [-1.0]), torch.tensor([1.0] * 6 + [-1.0] * 2)
    ada = AdaptiveAugment(_gen(), p=0.5, target=0.6, kimg=1.0, interval=1)
    _feed(ada, 2, up)  # step 1 moves p by step 0's 8 reals
    assert ada.p == pytest.approx(0.508) and ada.rt == 0.75
    _feed(ada, 3, down, start=2)  # step 2: step 1's up; steps 3, 4: down
    assert ada.p == pytest.approx(0.5) and ada.rt == 0.5


def test_state_round_trips_bit_for_bit_through_a_checkpoint_file():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0, 1.0, 0.1, 4.0, 2.0])  # r_t = 0.75: p rises
    straight = AdaptiveAugment(_gen(), p=0.1, target=0.6, kimg=0.5, interval=3)
    _feed(straight, 7, logits)  # mid-interval: the counters since the last update matter
    buffer = io.BytesIO()
    torch.save(straight.state_dict(), buffer)
    buffer.seek(0)
    resumed = AdaptiveAugment(_gen(), p=0.9, target=0.6, kimg=0.5, interval=3)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.state_dict() == straight.state_dict()
    assert _feed(resumed, 10, logits, start=7) == _feed(straight, 10, logits, start=7)
    assert resumed.state_dict() == straight.state_dict() and 0 < straight.p < 1


def test_p_is_a_checked_property():
    ada = AdaptiveAugment(_gen(), p=0.25)
    assert ada.p == 0.25
    ada.p = 0.5
    assert ada.log_values()["ada_p"] == 0.5
    with pytest.raises(ValueError, match="p=1.5"):
        ada.p = 1.5


def test_resampling_is_grid_sample_and_differentiates_twice():
    """ADA's geometric resampling is exactly grid_sample (bilinear, reflection), and R1 needs
    its second derivative with respect to the images, which torch < 2.5 lacks natively."""
    import torch.nn.functional as F

    from ganvas.augment.ada import GridSample

    x = torch.randn(2, 3, 5, 5, dtype=torch.double, generator=torch.Generator().manual_seed(0))
    theta = torch.tensor([[[0.9, 0.2, 0.1], [-0.15, 1.1, -0.05]]] * 2, dtype=torch.double)
    grid = F.affine_grid(theta, [2, 3, 6, 6], align_corners=False)
    native = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    assert torch.equal(GridSample.apply(x, grid), native)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda images: GridSample.apply(images, grid), (x,))
    assert torch.autograd.gradgradcheck(lambda images: GridSample.apply(images, grid), (x,))
