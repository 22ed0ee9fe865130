"""DiffAugment's ops: what each does to an image, differentiable, drawn from the given
generator only."""

import pytest
import torch

from ganvas.augment.diffaugment import OPS, DiffAugment, color, cutout, translation
from ganvas.config import DIFFAUGMENT_OPS


def _images(n=16, size=16, seed=0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g, dtype=dtype) * 1.8 - 0.9


def _gen(seed=1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_op_names_agree_with_the_config():
    assert tuple(OPS) == DIFFAUGMENT_OPS


def test_translation_shifts_whole_images_by_at_most_an_eighth_with_zeros():
    x = _images()
    y = translation(x, _gen())
    assert y.shape == x.shape and y.min() >= -0.9 and y.max() <= 0.9  # [-1, 1] stays [-1, 1]
    shifts = set()
    for original, out in zip(x, y):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(out, _shifted(original, dy, dx))]  # fmt: skip
        assert found, "not a pure shift of at most 16/8 = 2 pixels"
        shifts.add(found[0])
    assert len(shifts) > 5  # drawn per image


def _shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """image [C, H, W] moved down by dy and right by dx, zeros shifted in."""
    out = torch.zeros_like(image)
    h, w = image.shape[1:]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_cutout_zeroes_one_square_of_half_the_side_clipped_by_the_border():
    x = _images(n=64)
    y = cutout(x, _gen())
    assert y.shape == x.shape and y.min() >= -0.9 and y.max() <= 0.9
    cut = (y == 0).all(dim=1)  # [N, H, W]: pixels set to zero (the data has no exact zeros)
    assert torch.equal(y[~cut[:, None].expand_as(y)], x[~cut[:, None].expand_as(x)])
    for mask in cut:
        rows, cols = mask.any(1).nonzero().squeeze(1), mask.any(0).nonzero().squeeze(1)
        assert mask.sum() == len(rows) * len(cols)  # one rectangle
        assert 1 <= len(rows) <= 8 and 1 <= len(cols) <= 8
        for line in (rows, cols):  # the full 8 unless it touches the border
            assert len(line) == 8 or line[0] == 0 or line[-1] == 15
    # The centre is uniform over 17 corner positions per axis: (9/17)² ≈ 28 % lie inside.
    assert 0.15 < (cut.sum((1, 2)) == 64).float().mean() < 0.45


def test_color_changes_brightness_saturation_and_contrast_per_image():
    x = _images(n=64)
    y = color(x, _gen())
    assert y.shape == x.shape
    mean_shift = (y.mean((1, 2, 3)) - x.mean((1, 2, 3))).abs()
    assert mean_shift.max() > 0.3 and mean_shift.std() > 0.05  # brightness ±0.5, per image
    spread = y.std((1, 2, 3)) / x.std((1, 2, 3))
    assert spread.min() < 0.8 and spread.max() > 1.2  # contrast and saturation
    grey = torch.linspace(-0.5, 0.5, 256).view(1, 1, 16, 16).expand(4, 3, 16, 16)
    assert (color(grey, _gen()).std(1) < 1e-6).all()  # saturation leaves grey grey


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_every_op_is_differentiable(policy):
    x = _images(n=3, size=8, dtype=torch.float64).requires_grad_()
    fn = lambda images: DiffAugment(policy, torch.Generator().manual_seed(3))(images)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5)


def test_only_the_given_generator_draws():
    x = _images()
    torch.manual_seed(0)
    a = DiffAugment("color,translation,cutout", _gen(5))(x)
    torch.manual_seed(1)  # torch's global generator plays no part
    b = DiffAugment("color,translation,cutout", _gen(5))(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, DiffAugment("color,translation,cutout", _gen(6))(x))


def test_policy_order_and_spaces():
    x = _images()
    assert DiffAugment(" translation ,cutout", _gen()).policy == ["translation", "cutout"]
    with pytest.raises(ValueError, match="unknown DiffAugment ops"):
        DiffAugment("colour", _gen())
    assert torch.equal(DiffAugment("cutout", _gen())(x), cutout(x, _gen()))
