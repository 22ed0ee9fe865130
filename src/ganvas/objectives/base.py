"""What the training loop knows of an objective: phases, and a loss for each.

The loop runs, every step, the phases the objective says are due (stylegan2-ada's split):

    for phase in objective.phases_due(step):
        loss, stats = objective.loss(phase)        # draws its own reals and G inputs
        backward(loss × phase.interval); step phase.player's optimizer
        objective.after_phase(phase)               # e.g. weight clipping

A phase with `interval` N runs on every N-th step only (lazy regularization) and its loss is
scaled by N; the player's Adam learning rate and betas are adjusted by N / (N + 1)
(`lazy_ratio`), so a run with lazy regularization follows the same curve as one without.

Everything an objective needs comes in one `TrainingParts`: both networks, the D-input
pipeline (every image D sees must pass through it, penalties included), the feed of real
batches and G inputs, and the generator for the loss terms' randomness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from ganvas.augment import DInput
from ganvas.models.registry import Batch, Family


@dataclass(frozen=True)
class Phase:
    name: str  # 'D', 'Dreg', 'G', 'Greg', ...: shown in errors and docs
    player: str  # 'D' or 'G': whose optimizer this phase steps
    interval: int = 1  # runs on steps where step % interval == 0; its loss is scaled by it

    def due(self, step: int) -> bool:
        return step % self.interval == 0


def lazy_ratio(phases: list[Phase], player: str) -> float:
    """N / (N + 1) for a player with a phase every N steps (N > 1) besides its main phase,
    else 1: the factor on that player's learning rate (and exponent on Adam's betas)."""
    intervals = {p.interval for p in phases if p.player == player and p.interval > 1}
    if len(intervals) > 1:
        raise ValueError(f"{player} has lazy phases every {sorted(intervals)} steps; one "
                         "interval per player is supported (its optimizer is tuned to it)")  # fmt: skip
    if not intervals:
        return 1.0
    (interval,) = intervals
    return interval / (interval + 1)


class Feed:
    """Real batches at the size (and, for growing families, the resolution) of this step,
    and G's inputs made from them as the family says."""

    def __init__(
        self,
        sampler: Any,
        family: Family,
        model_config: Any,
        generator: torch.Generator,
        view_reals: Any = None,
    ) -> None:
        self.sampler, self.family, self.model_config = sampler, family, model_config
        self.generator = generator
        self.view_reals = view_reals  # image → image, e.g. a growing family's current stage
        self.batch_size = sampler.batch_size  # the global batch (over all ranks)
        self.images_drawn = 0  # real images handed out, across the run (and all ranks)
        self.rank, self.world_size = 0, 1  # this process's share: see `shard`

    def shard(self, batch_size: int) -> slice | None:
        """This rank's slice of a global batch of `batch_size` (None in a single process)."""
        if self.world_size == 1:
            return None
        local = batch_size // self.world_size
        return slice(self.rank * local, (self.rank + 1) * local)

    def reals(self) -> Batch:
        """This rank's share of the step's real batch."""
        shard = self.shard(self.batch_size)
        if shard is None:  # a single process asks as before: any sampler with next(batch_size)
            image, label = self.sampler.next(self.batch_size)
        else:
            image, label = self.sampler.next(self.batch_size, shard)
        if self.view_reals is not None:
            image = self.view_reals(image)
        self.images_drawn += self.batch_size
        batch = {"image": image}
        if self.family.conditional:
            batch["label"] = label
        if self.family.takes_images:  # per-image randomness of G's inputs (crappify)
            batch["seed"] = self.sampler.draw_seeds()
        return batch

    def g_inputs(self, batch: Batch) -> dict[str, torch.Tensor | None]:
        """G's inputs for as many fakes as `batch` has images. Under several ranks they are
        drawn for the global batch and sliced, as the reals are: every rank's generator
        stays in the same state, and the shards together are one process's inputs."""
        if self.world_size == 1:
            return self.family.g_inputs(batch, self.model_config, self.generator)
        image = batch["image"]
        whole = len(image) * self.world_size
        everyone = {**batch, "image": image[:1].expand(whole, *image.shape[1:])}
        if "label" in batch:  # the others' labels are not known here: a stand-in of the size
            everyone["label"] = batch["label"].repeat(self.world_size)
        inputs = self.family.g_inputs(everyone, self.model_config, self.generator)
        shard = self.shard(whole)
        return {k: v[shard] if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


@dataclass
class TrainingParts:
    config: Any  # the run's Config
    G: nn.Module
    D: nn.Module
    d_input: DInput
    feed: Feed
    generator: torch.Generator  # randomness of loss terms (targets, interpolation weights)


class Objective(Protocol):
    def phases_due(self, step: int) -> list[Phase]:
        """The phases to run at `step`, in order."""

    def phases(self) -> list[Phase]:
        """Every phase this objective can run (for optimizer settings and docs)."""

    def loss(self, phase: Phase) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The phase's loss (to back-propagate) and detached statistics to log."""

    def after_phase(self, phase: Phase) -> None:
        """Runs after the phase's optimizer step (weight clipping, buffers, ...)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def discriminator_then_generator(
    step: int, train_config: Any, d_main: Phase, d_reg: Phase | None, g_main: Phase
) -> list[Phase]:
    """The usual order of a step: train.d_steps D phases (as train.d_steps_schedule says at
    `step`), the lazy D phase when it is due, then G's phase."""
    from ganvas.config import scheduled_value

    d_steps = scheduled_value(train_config.d_steps_schedule, step, train_config.d_steps)
    due = [d_main] * d_steps
    if d_reg is not None and d_reg.due(step):
        due.append(d_reg)
    return [*due, g_main]


def reals_and_fakes(
    parts: TrainingParts, keep_graph: bool
) -> tuple[Batch, torch.Tensor, torch.Tensor | None]:
    """The next real batch, as many fakes made from it, and the fakes' labels; the fakes keep
    G's graph only with `keep_graph` (when a G phase will reuse them)."""
    batch = parts.feed.reals()
    inputs = parts.feed.g_inputs(batch)
    with torch.set_grad_enabled(keep_graph):
        fake = parts.G(**inputs)
    return batch, fake, inputs.get("c")


def judge(parts: TrainingParts, images: torch.Tensor, labels: torch.Tensor | None) -> Any:
    """D's output on `images` as D sees them (through the D-input pipeline)."""
    return parts.D(parts.d_input(images), labels)


@dataclass
class DBatch:
    """One D phase's images: the real batch, the fakes made for it, and where the phase falls
    in the step (`first` feeds lazy penalties, `last` keeps G's graph for the G phase)."""

    batch: Batch
    fake: torch.Tensor  # with G's graph only when `last`
    fake_c: torch.Tensor | None
    first: bool
    last: bool

    @property
    def real(self) -> torch.Tensor:
        return self.batch["image"]

    @property
    def real_c(self) -> torch.Tensor | None:
        return self.batch.get("label")


class DiscriminatorsThenGenerator:
    """The bookkeeping of objectives whose step is `train.d_steps` D phases, a lazy 'Dreg'
    phase every `reg_interval` steps (when > 1), then one G phase on the last D phase's fakes
    (G runs once per step, as in the DCGAN reference).

    A subclass writes `discriminator_loss` (drawing its images with `next_d_batch`),
    `generator_loss`, and `lazy_regularization` if it has a Dreg phase; per-step values go in
    `begin_step`, state that outlives a step in `state_dict`."""

    def __init__(self, parts: TrainingParts, reg_interval: int = 0) -> None:
        self.parts, self.train_config = parts, parts.config.train
        self.d_main, self.g_main = Phase("D", "D"), Phase("G", "G")
        self.d_reg = Phase("Dreg", "D", reg_interval) if reg_interval > 1 else None
        self.step = 0
        self._d_steps = self._d_done = 0  # D updates due this step, and done so far

    # --- The loop's interface ----------------------------------------------------------------

    def phases(self) -> list[Phase]:
        return [p for p in (self.d_main, self.d_reg, self.g_main) if p is not None]

    def phases_due(self, step: int) -> list[Phase]:
        self.step = step
        self.begin_step(step)
        due = discriminator_then_generator(step, self.train_config, self.d_main, self.d_reg,
                                           self.g_main)  # fmt: skip
        self._d_steps, self._d_done = due.count(self.d_main), 0
        return due

    def loss(self, phase: Phase) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if phase == self.d_main:
            return self.discriminator_loss()
        if phase == self.d_reg:
            return self.lazy_regularization()
        if phase == self.g_main:
            return self.generator_loss()
        raise ValueError(f"{type(self).__name__} has no phase {phase.name!r}")

    def after_phase(self, phase: Phase) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}  # nothing outlives a step

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    # --- For subclasses ------------------------------------------------------------------------

    def begin_step(self, step: int) -> None:
        """Called before the step's phases are chosen (e.g. a value scheduled by the step)."""

    def next_d_batch(self) -> DBatch:
        """The next D phase's reals and fakes; the last D phase of a step keeps G's graph."""
        first = self._d_done == 0
        self._d_done += 1
        last = self._d_done == self._d_steps
        batch, fake, fake_c = reals_and_fakes(self.parts, keep_graph=last)
        return DBatch(batch, fake, fake_c, first, last)

    def discriminator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def lazy_regularization(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def generator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError
