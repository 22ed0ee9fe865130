"""The D-input pipeline: one callable that every image the discriminator sees passes through.

Reals, fakes, the fakes of G's phase, gradient-penalty interpolates and R1 inputs all go
through `d_input(images)`, so an augmentation (instance noise today; DiffAugment and ADA next)
is applied the same way everywhere, and gradients flow through it back to G and to the
penalties' inputs.

A pipeline is any object with:

    __call__(images [N, C, H, W]) -> images             differentiable
    begin_step(step)                                   called once before each training step
    observe_real_logits(logits [N])                    D's verdict on reals (ADA adapts to it)
    log_values() -> dict[str, float]                   written with each metrics line
    state_dict() / load_state_dict(state)              saved with every checkpoint

Randomness comes from the generator handed in at construction, which the trainer saves and
restores, so a resumed run draws the same noise.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class DInput(Protocol):
    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...

    def begin_step(self, step: int) -> None: ...

    def observe_real_logits(self, logits: torch.Tensor) -> None: ...

    def log_values(self) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Identity:
    """D sees the images as they are."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def begin_step(self, step: int) -> None:
        pass

    def observe_real_logits(self, logits: torch.Tensor) -> None:
        pass

    def log_values(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def instance_noise_std(initial: float, anneal_steps: int, step: int) -> float:
    """Std of the Gaussian noise added to D's inputs: `initial`, decaying linearly to 0 over
    `anneal_steps` steps (0 = constant)."""
    if anneal_steps <= 0:
        return initial
    return initial * max(0.0, 1.0 - step / anneal_steps)


class InstanceNoise(Identity):
    """images + N(0, std²) (Sønderby et al. 2017), std annealed over the run."""

    def __init__(self, initial_std: float, anneal_steps: int, generator: torch.Generator) -> None:
        self.initial_std, self.anneal_steps = initial_std, anneal_steps
        self.generator = generator
        self.std = initial_std

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.std == 0:
            return images
        noise = torch.randn(images.shape, generator=self.generator, device=images.device)
        return images + self.std * noise

    def begin_step(self, step: int) -> None:
        self.std = instance_noise_std(self.initial_std, self.anneal_steps, step)

    def log_values(self) -> dict[str, float]:
        return {"instance_noise_std": round(self.std, 6)}

    def state_dict(self) -> dict[str, Any]:
        return {"std": self.std}  # a function of the step; kept to show where the run was

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.std = float(state.get("std", self.initial_std))


def build_d_input(train_config: Any, generator: torch.Generator) -> DInput:
    """The pipeline the train settings ask for."""
    if train_config.instance_noise > 0:
        return InstanceNoise(
            train_config.instance_noise, train_config.instance_noise_anneal, generator
        )
    return Identity()
