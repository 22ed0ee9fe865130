"""ADA, adaptive discriminator augmentation (Karras et al. 2020, "Training Generative
Adversarial Networks with Limited Data"), with the 'bgc' transforms.

Every image D sees goes through the same random transforms, each applied with probability p,
and p follows D's overfitting: every `interval` steps

    r_t = E[sign(D(real))]   over the reals D judged since the last update
    p  += sign(r_t - target) · (those reals) / (kimg · 1000),   clamped to [0, 1]

so p can go from 0 to 1 in `kimg` thousand real images. Below p ≈ 0.8 the transforms do not
"leak" (G is not pushed to produce augmented-looking images): each one keeps a share of the
images as they are, so the distribution of augmented images still determines the original one.
At p = 1 the x-flip, the quarter turns, the luma flip and the hue rotation do leak: chosen
uniformly over their whole group, they make an image and its flipped, turned or hue-shifted
version indistinguishable after augmentation (tests/augment/test_leak.py, docs/augment.md).

The groups (ada_pipeline: 'blit', 'geom', 'color', 'bg' or 'bgc'), in the paper's order:

    b  blit    x-flip (50 % of the chosen images), rotation by 0/90/180/270°, an integer
               translation of up to ±1/8 of the side; exact pixel copies, mirrored at the border
    g  geom    isotropic scaling 2^N(0, 0.2²), rotation U(-π, π) (before or after: each with
               1 - sqrt(1 - p), so that either happens with p), anisotropic scaling
               (s, 1/s) with s = 2^N(0, 0.2²), a translation N(0, 0.125²) of the side
    c  color   brightness + N(0, 0.2²), contrast × 2^N(0, 0.5²), luma flip (50 %), hue: a
               rotation U(-π, π) around the grey axis, saturation × 2^N(0, 1); one 4×4 colour
               matrix per image, applied in [-1, 1] units (0 = mid-grey); one-channel images
               get brightness, contrast and luma flip only

Where this differs from stylegan2-ada's augment.py: the general geometric transforms are one
affine matrix per image, applied with `grid_sample` (bilinear, 'reflection' padding: the edge
pixel is repeated) at 2×2 points per output pixel, averaged. The paper pads by reflection
without repeating the edge, upsamples 2× with a sym6 wavelet filter, samples bilinearly and
filters back down with the wavelet: a sharper low-pass. Ours blurs a resampled image more (the
identity comes out convolved with [1/8, 3/4, 1/8] along each axis) and aliases a little more
when it shrinks one. Blits are exact pixel copies done before the resampling (the paper folds
them into the same matrix); an image given no geometric transform is not resampled at all. The
ranges, probabilities and order of the transforms follow the paper.

kornia has none of this as functions we can use: its random augmentations draw from torch's
global generator (a resume must draw from the run's), and its colour functions work in HSV on
[0, 1] images, not as the linear maps above. So this is plain torch.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ganvas.augment.pixels import gather_pixels
from ganvas.config import ADA_PIPELINES
from ganvas.training.distributed import per_sample, sum_over_ranks, world_size

# The ranges of the transforms, as in the paper (its appendix B and code defaults).
XINT_MAX = 0.125  # integer translation: U(-1/8, 1/8) of the side, rounded to whole pixels
SCALE_STD = 0.2  # isotropic scaling: 2^N(0, 0.2²)
ROTATE_MAX = 1.0  # rotation: U(-π, π) · ROTATE_MAX
ANISO_STD = 0.2  # anisotropic scaling: (s, 1/s), s = 2^N(0, 0.2²)
XFRAC_STD = 0.125  # fractional translation: N(0, 0.125²) of the side
BRIGHTNESS_STD = 0.2  # + N(0, 0.2²) in [-1, 1] units
CONTRAST_STD = 0.5  # × 2^N(0, 0.5²) around mid-grey
HUE_MAX = 1.0  # rotation around the grey axis: U(-π, π) · HUE_MAX
SATURATION_STD = 1.0  # chroma × 2^N(0, 1)

GROUPS = {"blit": "b", "geom": "g", "color": "c", "bg": "bg", "bgc": "bgc"}
assert tuple(GROUPS) == ADA_PIPELINES  # config.py validates train.ada_pipeline against those


# --- The transforms, at a given p --------------------------------------------------------------


class _Draw:
    """Per-image random numbers from one generator, on one device (float32)."""

    def __init__(self, n: int, generator: torch.Generator, device: torch.device) -> None:
        self.n, self.generator, self.device = n, generator, device

    def uniform(self, *shape: int) -> torch.Tensor:
        return per_sample(torch.rand, (self.n, *shape), generator=self.generator,
                          device=self.device)  # fmt: skip

    def normal(self, *shape: int) -> torch.Tensor:
        return per_sample(torch.randn, (self.n, *shape), generator=self.generator,
                          device=self.device)  # fmt: skip

    def chosen(self, p: float, *shape: int) -> torch.Tensor:
        """True for each image with probability p. [N, *shape] bool."""
        return self.uniform(*shape) < p


def blit(images: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """x-flip, quarter turns, integer translation, each with probability p: exact pixel copies.

    Args:
        images: [N, C, S, S] (square).
        p: the probability of each transform.
        generator: draws the parameters.

    Returns:
        [N, C, S, S].
    """
    n, _, size, _ = images.shape
    draw = _Draw(n, generator, images.device)
    flip = (draw.uniform() < 0.5) & draw.chosen(p)  # [N]
    quarter = torch.floor(draw.uniform() * 4).long() * draw.chosen(p)  # [N] in 0..3
    shift = (draw.uniform(2) * 2 - 1) * XINT_MAX * draw.chosen(p, 1)  # [N, 2] (x, y), of the side
    shift = torch.round(shift * size).long()
    # Pixel centres in doubled, centred coordinates (integers for either parity of `size`):
    # column j sits at 2j - (size - 1). Flips and quarter turns map these onto each other.
    centres = 2 * torch.arange(size, device=images.device) - (size - 1)
    u = centres.view(1, 1, size).expand(n, size, size)  # [N, S, S] x of each output pixel
    v = centres.view(1, size, 1).expand(n, size, size)  # ... and y
    # Where each output pixel comes from: undo the transforms in reverse order.
    u, v = u - 2 * shift[:, 0, None, None], v - 2 * shift[:, 1, None, None]
    q = quarter[:, None, None]
    u, v = (
        torch.where(q == 0, u, torch.where(q == 1, v, torch.where(q == 2, -u, -v))),
        torch.where(q == 0, v, torch.where(q == 1, -u, torch.where(q == 2, -v, u))),
    )
    u = torch.where(flip[:, None, None], -u, u)
    src_x, src_y = (u + size - 1) // 2, (v + size - 1) // 2
    return gather_pixels(images, src_y, src_x, "mirror")


def _rotation(theta: torch.Tensor) -> torch.Tensor:
    """[N] angles → [N, 3, 3] homogeneous 2-D rotations."""
    c, s = torch.cos(theta), torch.sin(theta)
    zero, one = torch.zeros_like(theta), torch.ones_like(theta)
    return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], dim=1).view(-1, 3, 3)


def _scaling(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    """[N] factors → [N, 3, 3] homogeneous 2-D scalings."""
    zero, one = torch.zeros_like(sx), torch.ones_like(sx)
    return torch.stack([sx, zero, zero, zero, sy, zero, zero, zero, one], dim=1).view(-1, 3, 3)


def _translation(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """[N] offsets → [N, 3, 3] homogeneous 2-D translations."""
    zero, one = torch.zeros_like(tx), torch.ones_like(tx)
    return torch.stack([one, zero, tx, zero, one, ty, zero, zero, one], dim=1).view(-1, 3, 3)


def resample(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """images sampled at theta · (x, y, 1) for each output position, 2×2 supersampled.

    Args:
        images: [N, C, H, W].
        theta: [N, 2, 3], output → input, in grid_sample's normalized coordinates
            (align_corners=False: ±1 are the outer edges of the border pixels).

    Returns:
        [N, C, H, W]; outside the image it reads the mirror image (edge pixel repeated).
    """
    n, c, h, w = images.shape
    dtype = torch.promote_types(images.dtype, torch.float32)  # coordinates need float32 at least
    # Four bilinear samples per output pixel, averaged: a shrunk image aliases less than with
    # one (the paper filters with a wavelet instead: sharper, and costlier). The identity
    # comes out blurred by [1/8, 3/4, 1/8] along each axis.
    grid = F.affine_grid(theta.to(dtype), [n, c, 2 * h, 2 * w], align_corners=False)
    out = GridSample.apply(images.to(dtype), grid)
    return F.avg_pool2d(out, 2).to(images.dtype)


# grid_sample's settings in resample, as aten's enums: bilinear, reflection padding
_BILINEAR, _REFLECTION, _ALIGN_CORNERS = 0, 2, False


class GridSample(torch.autograd.Function):
    """`F.grid_sample(images, grid)` (bilinear, reflection padding) that can be differentiated
    twice with respect to `images`: R1 and path penalties take the gradient of D(augment(x))
    with respect to x and then backpropagate through it, and torch before 2.5 has no
    derivative for grid_sample's backward ("derivative for aten::grid_sampler_2d_backward is
    not implemented"). The grid (random transforms) gets no gradient.

    The sample is linear in `images`, so its backward is another linear map of the gradient
    (`_GridSampleAdjoint`), whose own backward is the sample again."""

    @staticmethod
    def forward(ctx: Any, images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(grid)
        ctx.images_shape = images.shape
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
                             align_corners=_ALIGN_CORNERS)  # fmt: skip

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        (grid,) = ctx.saved_tensors
        grad_images = None
        if ctx.needs_input_grad[0]:
            grad_images = _GridSampleAdjoint.apply(grad_out, grid, ctx.images_shape)
        return grad_images, None


class _GridSampleAdjoint(torch.autograd.Function):
    """The gradient of `GridSample` with respect to its images, for a gradient `grad_out`."""

    @staticmethod
    def forward(ctx: Any, grad_out: torch.Tensor, grid: torch.Tensor,
                images_shape: torch.Size) -> torch.Tensor:  # fmt: skip
        ctx.save_for_backward(grid)
        shape_only = grad_out.new_zeros(()).expand(images_shape)  # only its shape is read
        grad_images, _ = torch.ops.aten.grid_sampler_2d_backward(
            grad_out, shape_only, grid, _BILINEAR, _REFLECTION, _ALIGN_CORNERS, (True, False)
        )
        return grad_images

    @staticmethod
    def backward(ctx: Any, grad_grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (grid,) = ctx.saved_tensors
        grad = None
        if ctx.needs_input_grad[0]:
            grad = GridSample.apply(grad_grad, grid)
        return grad, None, None


def geom(images: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Isotropic scaling, rotation, anisotropic scaling, rotation, fractional translation,
    each with probability p (the two rotations: either one with p), as one resampling.

    Args:
        images: [N, C, S, S] (square: the transforms are defined in units of the side).
        p: the probability of each transform.
        generator: draws the parameters.

    Returns:
        [N, C, S, S]; images given no transform are returned untouched.
    """
    draw = _Draw(len(images), generator, images.device)
    ones = torch.ones(len(images), device=images.device)
    pick = draw.chosen(p)
    scale = torch.where(pick, torch.exp2(draw.normal() * SCALE_STD), ones)
    p_rot = 1 - math.sqrt(max(0.0, 1 - p))  # P(pre or post) = p
    pre = draw.chosen(p_rot)
    theta_pre = (draw.uniform() * 2 - 1) * math.pi * ROTATE_MAX * pre
    pick_aniso = draw.chosen(p)
    aniso = torch.where(pick_aniso, torch.exp2(draw.normal() * ANISO_STD), ones)
    post = draw.chosen(p_rot)
    theta_post = (draw.uniform() * 2 - 1) * math.pi * ROTATE_MAX * post
    pick_shift = draw.chosen(p, 1)
    shift = draw.normal(2) * XFRAC_STD * pick_shift  # [N, 2] (x, y), of the side
    moved = pick | pre | pick_aniso | post | pick_shift[:, 0]  # [N]
    # G_inv maps output coordinates to input ones: the inverses, in the order applied. In
    # normalized coordinates one side is 2 units (square images: one scale for x and y).
    g_inv = (
        _scaling(1 / scale, 1 / scale)
        @ _rotation(-theta_pre)
        @ _scaling(1 / aniso, aniso)
        @ _rotation(-theta_post)
        @ _translation(-2 * shift[:, 0], -2 * shift[:, 1])
    )  # [N, 3, 3]
    # Resample only the images that move: at a small p most do not, and resampling (at twice
    # the resolution) is the pipeline's main cost. Finding them costs one synchronization.
    index = moved.nonzero().squeeze(1)
    if len(index) == 0:
        return images
    warped = resample(images.index_select(0, index), g_inv[index, :2])
    return images.index_copy(0, index, warped)


def _colour_matrices(n: int, channels: int, p: float, generator: torch.Generator,
                     device: torch.device) -> torch.Tensor:  # fmt: skip
    """[N, 4, 4] homogeneous colour transforms: brightness, contrast, luma flip, hue,
    saturation, each with probability p. An image given none of them gets exactly I."""
    draw = _Draw(n, generator, device)
    eye = torch.eye(4, device=device).repeat(n, 1, 1)  # [N, 4, 4]
    axis = torch.tensor([1.0, 1.0, 1.0, 0.0], device=device) / math.sqrt(3)  # grey (luma) axis
    grey = torch.outer(axis, axis)  # projection onto it, [4, 4]
    ones = torch.ones(n, device=device)
    shift = draw.normal() * BRIGHTNESS_STD * draw.chosen(p)
    c = eye.clone()
    c[:, :3, 3] = shift[:, None]  # + shift on every channel
    factor = torch.where(draw.chosen(p), torch.exp2(draw.normal() * CONTRAST_STD), ones)
    c = torch.diag_embed(torch.stack([factor, factor, factor, ones], dim=1)) @ c
    flip = torch.floor(draw.uniform() * 2) * draw.chosen(p)  # [N] 0 or 1: Householder reflection
    c = (eye - 2 * flip[:, None, None] * grey) @ c
    if channels == 1:
        return c  # hue and saturation need colour (as in the paper)
    theta = (draw.uniform() * 2 - 1) * math.pi * HUE_MAX * draw.chosen(p)
    # Rodrigues: cos θ I + sin θ [axis]× + (1 - cos θ) axis axisᵀ, in the 3×3 block.
    k = 1 / math.sqrt(3)  # each component of the axis
    cross = torch.tensor([[0.0, -k, k], [k, 0.0, -k], [-k, k, 0.0]], device=device)
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    hue = eye.clone()
    hue[:, :3, :3] = cos * torch.eye(3, device=device) + sin * cross + (1 - cos) * grey[:3, :3]
    c = hue @ c
    s = torch.where(draw.chosen(p), torch.exp2(draw.normal() * SATURATION_STD), ones)
    # I + (s - 1)(I - axis axisᵀ): the chroma scaled by s; exactly I for s = 1.
    c = (eye + (s - 1)[:, None, None] * (torch.eye(4, device=device) - grey)) @ c
    return c


def color(images: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """The colour transforms, each with probability p. [N, C, H, W] → [N, C, H, W], C = 1 or 3.

    Raises:
        ValueError: images with another number of channels.
    """
    n, channels, h, w = images.shape
    if channels not in (1, 3):
        raise ValueError(f"ADA's colour transforms need 1 or 3 channels, not {channels}")
    c = _colour_matrices(n, channels, p, generator, images.device).to(images.dtype)
    flat = images.reshape(n, channels, h * w)
    if channels == 3:
        out = c[:, :3, :3] @ flat + c[:, :3, 3:]
    else:  # grey g is the colour (g, g, g): the mean output channel, a gain and an offset
        rows = c[:, :3, :].mean(dim=1)  # [N, 4]
        out = flat * rows[:, :3].sum(dim=1)[:, None, None] + rows[:, 3, None, None]
    return out.view(n, channels, h, w)


TRANSFORMS = {"b": blit, "g": geom, "c": color}


def ada_augment(images: torch.Tensor, p: float, generator: torch.Generator,
                pipeline: str = "bgc") -> torch.Tensor:  # fmt: skip
    """The pipeline's transforms at strength p; p = 0 returns `images` itself.

    Args:
        images: [N, C, H, W] in [-1, 1]; square for the 'b' and 'g' groups.
        p: the probability of each transform, in [0, 1].
        generator: draws every random parameter (on the images' device).
        pipeline: one of ADA_PIPELINES.

    Returns:
        [N, C, H, W], differentiable with respect to `images`.

    Raises:
        ValueError: non-square images for blit/geom, or not 1 or 3 channels for color.
    """
    if p == 0:
        return images
    groups = GROUPS[pipeline]
    h, w = images.shape[-2:]
    if h != w and ("b" in groups or "g" in groups):
        raise ValueError(f"ADA's geometric transforms need square images, not {h}×{w}")
    for group in groups:
        images = TRANSFORMS[group](images, p, generator)
    return images


# --- The D-input pipeline ----------------------------------------------------------------------


class AdaptiveAugment:
    """ADA as a D-input pipeline: the transforms at strength `p`, and p steered by D's
    verdicts on reals (`observe_real_logits`), updated in `begin_step`.

    Args:
        generator: draws every random parameter.
        pipeline: one of ADA_PIPELINES ('bgc': blit, geom and color).
        p: the initial strength.
        target: the r_t = E[sign(D(real))] that p steers toward.
        kimg: p can move by 1 in this many thousand reals.
        interval: steps between updates of p.
    """

    def __init__(self, generator: torch.Generator, pipeline: str = "bgc", p: float = 0.0,
                 target: float = 0.6, kimg: float = 500.0, interval: int = 4) -> None:  # fmt: skip
        if pipeline not in GROUPS:
            raise ValueError(f"unknown ADA pipeline {pipeline!r}; choose from {list(GROUPS)}")
        self.generator, self.pipeline = generator, pipeline
        self.target, self.kimg, self.interval = target, kimg, interval
        self._p = float(p)
        self.rt = 0.0  # r_t of the last update of p (0 before the first)
        # Since the last update: the sum of sign(D(real)), kept on D's device so that
        # observing costs no synchronization, and how many reals it covers.
        self._signs: torch.Tensor | float = 0.0
        self._observed = 0

    @property
    def p(self) -> float:
        """The current strength: each transform's probability."""
        return self._p

    @p.setter
    def p(self, value: float) -> None:
        if not 0 <= value <= 1:
            raise ValueError(f"ADA's p={value} must lie in [0, 1]")
        self._p = float(value)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] → [N, C, H, W], differentiable; the identity while p = 0."""
        return ada_augment(images, self._p, self.generator, self.pipeline)

    def observe_real_logits(self, logits: torch.Tensor) -> None:
        """Count D's verdicts on a batch of reals. logits: [N], positive = 'real'."""
        signs = torch.sign(logits.detach()).float().sum()
        if isinstance(self._signs, torch.Tensor):
            signs = signs + self._signs.to(signs.device)
        else:
            signs = signs + self._signs
        self._signs = signs
        self._observed += logits.numel()

    def begin_step(self, step: int) -> None:
        """Every `interval` steps: move p by what D said about the reals since the last time."""
        if step % self.interval or not self._observed:
            return
        # Under several ranks every rank counts its own reals: r_t (and so p) is taken over
        # all of them, identical everywhere.
        counts = torch.tensor([float(self._signs), float(self._observed)], dtype=torch.float64,
                              device=self.generator.device)  # fmt: skip
        signs, observed = sum_over_ranks(counts).tolist()  # the one synchronization per update
        self.rt = signs / observed
        direction = (self.rt > self.target) - (self.rt < self.target)
        adjust = direction * observed / (self.kimg * 1000)
        self._p = min(max(self._p + adjust, 0.0), 1.0)
        self._signs, self._observed = 0.0, 0

    def log_values(self) -> dict[str, float]:
        return {"ada_p": round(self._p, 6), "ada_rt": round(self.rt, 6)}

    def state_dict(self) -> dict[str, Any]:
        # Plain floats and ints (torch.load(weights_only=True)); the sum of signs is a whole
        # number well below 2^24, exact in float32 and float64 alike. Under several ranks the
        # counts since the last update are saved summed over the ranks (every rank calls
        # this at a checkpoint), and a resume shares them out again.
        counts = torch.tensor([float(self._signs), float(self._observed)], dtype=torch.float64,
                              device=self.generator.device)  # fmt: skip
        signs, observed = sum_over_ranks(counts).tolist()
        return {"p": self._p, "rt": self.rt, "signs": signs, "observed": int(observed)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._p, self.rt = float(state["p"]), float(state["rt"])
        world = world_size()
        self._signs = float(state["signs"]) / world
        self._observed = int(state["observed"]) // world
