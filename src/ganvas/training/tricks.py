"""The stabilisation tricks the reports tried (seeds/001, 003): label smoothing and flipping,
instance noise, experience replay of old fakes, and learning-rate schedules.

Each is a small pure function or class that the trainer calls; all randomness comes from
the generator passed in, so a resumed run draws exactly the same numbers.
"""

from __future__ import annotations

import math

import torch

from ganvas.config import OptimConfig, scheduled_value


def d_targets(
    n: int,
    real_range: tuple[float, float],
    fake_range: tuple[float, float],
    flip_prob: float,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets for D's real and fake halves: uniform in their ranges (label smoothing), then
    each swapped with the other kind with probability `flip_prob` (label flipping)."""

    def uniform(bounds: tuple[float, float]) -> torch.Tensor:
        low, high = bounds
        return low + (high - low) * torch.rand(n, generator=generator, device=device)

    real_t, fake_t = uniform(real_range), uniform(fake_range)
    if flip_prob > 0:
        flip_real = torch.rand(n, generator=generator, device=device) < flip_prob
        flip_fake = torch.rand(n, generator=generator, device=device) < flip_prob
        real_t = torch.where(flip_real, uniform(fake_range), real_t)
        fake_t = torch.where(flip_fake, uniform(real_range), fake_t)
    return real_t, fake_t


def instance_noise_std(initial: float, anneal_steps: int, step: int) -> float:
    """Std of the Gaussian noise added to D's inputs: `initial`, decaying linearly to 0 over
    `anneal_steps` steps (0 = constant)."""
    if anneal_steps <= 0:
        return initial
    return initial * max(0.0, 1.0 - step / anneal_steps)


def lr_factor(optim: OptimConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Multiplier of the base learning rates at `step` (0-based): the scheduler's factor times
    the piecewise `lr_schedule` factor.

    - step:   gamma ** (elapsed // step_size)          (PyTorch's StepLR)
    - cosine: from 1 down to min_factor over the run    (CosineAnnealingLR)
    - linear: 1 until decay_start, then down to min_factor at the last step
    `step_size` and `decay_start` count steps, or epochs when schedule_unit is 'epochs'.
    """
    unit = steps_per_epoch if optim.schedule_unit == "epochs" else 1
    factor = 1.0
    if optim.scheduler == "step":
        factor = optim.gamma ** (step // max(1, round(optim.step_size * unit)))
    elif optim.scheduler == "cosine":
        progress = min(step / max(1, total_steps - 1), 1.0)
        factor = optim.min_factor + (1 - optim.min_factor) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )
    elif optim.scheduler == "linear":
        start = round(optim.decay_start * unit)
        if step >= start:
            progress = min((step - start) / max(1, total_steps - 1 - start), 1.0)
            factor = 1.0 - (1.0 - optim.min_factor) * progress
    return factor * scheduled_value(optim.lr_schedule, step, 1.0)


class ReplayBuffer:
    """A ring buffer of past fakes (and their labels). Shrivastava et al. 2017 showed D old
    fakes so G cannot win by revisiting modes D has forgotten; seeds/001 tried it."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.images: torch.Tensor | None = None  # [capacity, C, H, W]
        self.labels: torch.Tensor | None = None  # [capacity] or None
        self.count = 0  # filled slots
        self.next = 0  # slot the next image goes to

    def __len__(self) -> int:
        return self.count

    @torch.no_grad()
    def push(self, images: torch.Tensor, labels: torch.Tensor | None) -> None:
        if self.images is None:
            self.images = images.new_zeros((self.capacity, *images.shape[1:]))
            if labels is not None:
                self.labels = labels.new_zeros(self.capacity)
        start = max(0, len(images) - self.capacity)  # a batch larger than the buffer: its last ones
        for i in range(start, len(images)):
            self.images[self.next] = images[i]
            if self.labels is not None:
                self.labels[self.next] = labels[i]
            self.next = (self.next + 1) % self.capacity
            self.count = min(self.count + 1, self.capacity)

    def sample(
        self, n: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """n stored fakes chosen uniformly (with replacement)."""
        device = self.images.device
        index = torch.randint(self.count, (n,), generator=generator, device=device)
        return self.images[index], None if self.labels is None else self.labels[index]

    def state_dict(self) -> dict:
        return {
            "images": self.images,
            "labels": self.labels,
            "count": self.count,
            "next": self.next,
        }

    def load_state_dict(self, state: dict) -> None:
        self.images, self.labels = state["images"], state["labels"]
        self.count, self.next = int(state["count"]), int(state["next"])
