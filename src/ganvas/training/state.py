"""State that saves itself: a checkpoint's training_state.pt is `{name: part.state_dict()}`
over the trainer's stateful parts, and a resume hands each part its own entry back.

A part is anything with `state_dict()` / `load_state_dict(state)` whose state is made of
tensors, numbers, strings, lists and dicts (what `torch.load(weights_only=True)` reads).
A new part needs no change here or in the checkpoint code: name it in the trainer's
`stateful` mapping.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class RandomState:
    """Every random stream of a run: torch's global generator (weight init, dropout), the
    CUDA generator when training on a GPU, and the run's own noise generator (latents,
    label targets, penalties, augmentations)."""

    def __init__(self, noise: torch.Generator, device: torch.device) -> None:
        self.noise, self.device = noise, device

    def state_dict(self) -> dict[str, Any]:
        state = {"torch": torch.get_rng_state(), "noise": self.noise.get_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        self.noise.set_state(state["noise"])
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)


def collect_state(parts: dict[str, Stateful]) -> dict[str, Any]:
    return {name: part.state_dict() for name, part in parts.items()}


def restore_state(parts: dict[str, Stateful], saved: dict[str, Any]) -> list[str]:
    """Load each part's saved entry; returns the names of parts that have state but no entry
    in the checkpoint (added since it was written: they keep their fresh state)."""
    saved = migrate_training_state(saved)
    missing = []
    for name, part in parts.items():
        if name in saved:
            part.load_state_dict(saved[name])
        elif part.state_dict():
            missing.append(name)
    return missing


def migrate_training_state(saved: dict[str, Any]) -> dict[str, Any]:
    """Checkpoints of ganvas 0.1.0 kept the random streams and the replay buffer under their
    own keys; today they belong to the 'rng' and 'objective' parts."""
    saved = dict(saved)
    if "torch_rng" in saved:
        rng = {"torch": saved.pop("torch_rng"), "noise": saved.pop("noise_rng")}
        if "cuda_rng" in saved:
            rng["cuda"] = saved.pop("cuda_rng")
        saved["rng"] = rng
    if "replay" in saved:
        saved["objective"] = {"replay": saved.pop("replay")}
    return saved


class Rollbacks:
    """How often a diverging run was rolled back, and the factor its learning rates carry
    since (`train.on_diverge=rollback`). State: a resume keeps the lowered rates."""

    def __init__(self) -> None:
        self.count, self.lr_scale = 0, 1.0

    def state_dict(self) -> dict[str, Any]:
        # Nothing to save until the first rollback: checkpoints stay as they were.
        return {} if self.count == 0 else {"count": self.count, "lr_scale": self.lr_scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state.get("count", 0))
        self.lr_scale = float(state.get("lr_scale", 1.0))
