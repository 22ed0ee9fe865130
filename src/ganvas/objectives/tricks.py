"""Stabilisation tricks the reports tried (seeds/001, 003), as parts of an objective: label
smoothing and flipping, and experience replay of old fakes. All randomness comes from the
generator passed in, so a resumed run draws exactly the same numbers."""

from __future__ import annotations

from typing import Any

import torch

from ganvas.training.distributed import per_sample


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
        return low + (high - low) * per_sample(torch.rand, (n,), generator=generator,
                                               device=device)  # fmt: skip

    real_t, fake_t = uniform(real_range), uniform(fake_range)
    if flip_prob > 0:
        flip_real = per_sample(torch.rand, (n,), generator=generator, device=device) < flip_prob
        flip_fake = per_sample(torch.rand, (n,), generator=generator, device=device) < flip_prob
        real_t = torch.where(flip_real, uniform(fake_range), real_t)
        fake_t = torch.where(flip_fake, uniform(real_range), fake_t)
    return real_t, fake_t


class ReplayBuffer:
    """A ring buffer of past fakes (and their labels). Shrivastava et al. 2017 showed D old
    fakes so G cannot win by revisiting modes D has forgotten; seeds/001 tried it.

    When the fakes change size (a growing GAN reached its next stage) the buffer starts
    over: D cannot judge old fakes of another resolution."""

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
        if self.images is None or self.images.shape[1:] != images.shape[1:]:
            self.images = images.new_zeros((self.capacity, *images.shape[1:]))
            self.labels = None if labels is None else labels.new_zeros(self.capacity)
            self.count = self.next = 0
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

    def mix(
        self, fake: torch.Tensor, labels: torch.Tensor | None, fraction: float,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """`fake` with its first `fraction` replaced by stored fakes of the same size."""
        if not self.count or self.images.shape[1:] != fake.shape[1:]:
            return fake, labels
        k = max(1, round(fraction * len(fake)))
        old, old_labels = self.sample(k, generator)
        mixed_labels = None if labels is None else torch.cat([old_labels, labels[k:]])
        return torch.cat([old, fake[k:]]), mixed_labels

    def to(self, device: torch.device) -> None:
        """Keep the stored fakes on `device` (where the fakes and the generator are)."""
        if self.images is not None:
            self.images = self.images.to(device)
        if self.labels is not None:
            self.labels = self.labels.to(device)

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.images, "labels": self.labels, "count": self.count,
                "next": self.next}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.images, self.labels = state["images"], state["labels"]
        self.count, self.next = int(state["count"]), int(state["next"])
