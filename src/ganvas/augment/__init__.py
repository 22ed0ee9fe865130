"""The D-input pipeline: one callable that every image the discriminator sees passes through.

Reals, fakes, the fakes of G's phase, gradient-penalty interpolates and R1 inputs all go
through `d_input(images)`, so an augmentation (DiffAugment, ADA, instance noise) is applied the
same way everywhere, and gradients flow through it back to G and to the penalties' inputs.

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

from ganvas.training.distributed import per_sample


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
        noise = per_sample(torch.randn, images.shape, generator=self.generator,
                           device=images.device)  # fmt: skip
        return images + self.std * noise

    def begin_step(self, step: int) -> None:
        self.std = instance_noise_std(self.initial_std, self.anneal_steps, step)

    def log_values(self) -> dict[str, float]:
        return {"instance_noise_std": round(self.std, 6)}

    def state_dict(self) -> dict[str, Any]:
        return {"std": self.std}  # a function of the step; kept to show where the run was

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.std = float(state.get("std", self.initial_std))


class Chain:
    """Named pipelines applied one after the other; their logs merged, their states saved
    under their names."""

    def __init__(self, parts: dict[str, DInput]) -> None:
        self.parts = parts

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        for part in self.parts.values():
            images = part(images)
        return images

    def begin_step(self, step: int) -> None:
        for part in self.parts.values():
            part.begin_step(step)

    def observe_real_logits(self, logits: torch.Tensor) -> None:
        for part in self.parts.values():
            part.observe_real_logits(logits)

    def log_values(self) -> dict[str, float]:
        return {k: v for part in self.parts.values() for k, v in part.log_values().items()}

    def state_dict(self) -> dict[str, Any]:
        return {name: part.state_dict() for name, part in self.parts.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, part in self.parts.items():
            part.load_state_dict(state.get(name, {}))


def build_d_input(
    train_config: Any, generator: torch.Generator, family_default: str = "none"
) -> DInput:
    """The pipeline the train settings ask for: `train.augment` (DiffAugment or ADA; 'auto'
    is the family's `default_augment`), then instance noise when `train.instance_noise` > 0
    (noise on the augmented images, as if the augmentation were part of the data).

    Args:
        train_config: the run's `TrainConfig`.
        generator: the run's noise generator; every pipeline draws from it alone.
        family_default: what `train.augment: auto` means for the run's family.
    """
    t = train_config
    augment = family_default if t.augment == "auto" else t.augment
    parts: dict[str, DInput] = {}
    if augment == "diffaugment":
        from ganvas.augment.diffaugment import DiffAugment

        parts["augment"] = DiffAugment(t.diffaugment_policy, generator)
    elif augment == "ada":
        from ganvas.augment.ada import AdaptiveAugment

        parts["augment"] = AdaptiveAugment(generator, t.ada_pipeline, t.ada_p, t.ada_target,
                                           t.ada_kimg, t.ada_interval)  # fmt: skip
    if t.instance_noise > 0:
        parts["instance_noise"] = InstanceNoise(t.instance_noise, t.instance_noise_anneal,
                                                generator)  # fmt: skip
    if not parts:
        return Identity()
    if len(parts) == 1:  # saved as the part's own state, as runs before Chain saved it
        return next(iter(parts.values()))
    return Chain(parts)
