"""One rank of a distributed run: who it is, where it computes, and the few collectives the
trainer needs. The same code runs alone and under `torchrun`:

    dist = Distributed.from_env("cpu")   # torchrun's RANK/WORLD_SIZE/LOCAL_RANK, or one process
    dist.broadcast_module(G)             # rank 0's weights everywhere
    dist.average_gradients(G.parameters())   # between backward and optimizer.step
    if dist.any(stop_here): ...          # every rank takes the same decision

At world size 1 every collective returns at once, so a single-process run pays nothing.

Gradients are averaged by one flat all-reduce per phase (stylegan2-ada's way) rather than by
wrapping G and D in DistributedDataParallel: the objectives call D's parts (`D.logits`),
read G's attributes, freeze D during G's phase and take double-backward penalties (R1, GP,
path length), all of which the DDP wrapper either hides or trips over (unused parameters,
"marked ready twice"). docs/scaling.md says more.
"""

from __future__ import annotations

import atexit
import datetime
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch import nn

from ganvas.errors import ConfigError

# How long a rank waits at a collective for the others (a dead peer ends the wait).
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def restart_store(rank: int, world: int) -> torch_dist.Store:
    """torchrun's key-value store (env://), with keys of their own for each restart round.

    A round restarted by `--max-restarts` can read the addresses the previous round's ranks
    published there and fail to connect ("Gloo connectFullMesh ... Connection refused"); the
    round's number (TORCHELASTIC_RESTART_COUNT) in every key keeps the rounds apart."""
    store, _, _ = next(torch_dist.rendezvous("env://", rank=rank, world_size=world,
                                             timeout=COLLECTIVE_TIMEOUT))  # fmt: skip
    round_ = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return torch_dist.PrefixStore(f"ganvas/round_{round_}", store)


@dataclass
class Distributed:
    """The context of this process: rank `rank` of `world_size`, computing on `device`."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the run's files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, device: torch.device | str) -> Distributed:
        """This process's context: from torchrun's environment (joining the process group,
        NCCL on CUDA, gloo on the CPU), or a single process on `device` when not launched
        by torchrun. On CUDA rank r computes on cuda:LOCAL_RANK.

        Raises:
            ConfigError: torchrun asked for more processes per node than there are GPUs.
        """
        device = torch.device(device)
        if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
            return cls(device=device)
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if device.type == "cuda":
            if local_rank >= torch.cuda.device_count():
                raise ConfigError(
                    f"rank {rank} has LOCAL_RANK {local_rank} but this node has "
                    f"{torch.cuda.device_count()} GPU(s): start at most that many processes "
                    "per node (--nproc_per_node / --gpus)"
                )
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not torch_dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            torch_dist.init_process_group(backend, store=restart_store(rank, world), rank=rank,
                                          world_size=world, timeout=COLLECTIVE_TIMEOUT)  # fmt: skip
            atexit.register(_leave_process_group)  # NCCL warns at exit otherwise
        return cls(rank, world, local_rank, device)

    # --- Collectives (no-ops alone) -----------------------------------------------------------

    def barrier(self) -> None:
        if self.active:
            torch_dist.barrier()

    def broadcast_module(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers in `module` on every rank."""
        if not self.active:
            return
        for tensor in [*module.parameters(), *module.buffers()]:
            torch_dist.broadcast(tensor.data, src=0)

    def broadcast_buffers(self, module: nn.Module) -> None:
        """Rank 0's buffers (BatchNorm statistics, a tracked w average) on every rank, as
        DistributedDataParallel does before each forward: the ranks' copies stay identical."""
        if not self.active:  # one process: nothing to gather, every step
            return
        buffers = [b for b in module.buffers() if b.numel()]
        if not buffers:
            return
        flat = torch.cat([b.detach().reshape(-1).double() for b in buffers])
        torch_dist.broadcast(flat, src=0)
        offset = 0
        for b in buffers:
            b.copy_(flat[offset : offset + b.numel()].view_as(b))
            offset += b.numel()

    def average_gradients(self, params: Iterable[nn.Parameter]) -> None:
        """Replace each gradient by its mean over the ranks: one flat all-reduce.

        Parameters without a gradient (unused, or frozen in this phase) are left out; which
        ones those are is the same on every rank, since every rank runs the same phases."""
        if not self.active:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch_dist.all_reduce(flat)
        flat.div_(self.world_size)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """The sum over the ranks of `values` (detached)."""
        return sum_over_ranks(values) if self.active else values.detach()

    def mean_values(self, values: dict[str, float]) -> dict[str, float]:
        """Each value's mean over the ranks (the keys must be the same on every rank)."""
        if not self.active or not values:
            return values
        keys = sorted(values)
        total = self.all_sum(torch.tensor([values[k] for k in keys], dtype=torch.float64,
                                          device=self._collective_device))  # fmt: skip
        means = {k: float(v) / self.world_size for k, v in zip(keys, total.tolist())}
        return {k: means[k] for k in values}  # in the order they came

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is True on any: a stop all ranks agree on."""
        if not self.active:
            return flag
        total = self.all_sum(torch.tensor([float(flag)], device=self._collective_device))
        return bool(total.item() > 0)

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's `flag` on every rank (a decision only rank 0 can take)."""
        if not self.active:
            return flag
        value = torch.tensor([float(flag)], device=self._collective_device)
        torch_dist.broadcast(value, src=0)
        return bool(value.item() > 0)

    @property
    def _collective_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def _leave_process_group() -> None:
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def world_size() -> int:
    """Ranks in this run (1 outside torchrun)."""
    return torch_dist.get_world_size() if torch_dist.is_initialized() else 1


def per_sample(draw: Callable[..., torch.Tensor], shape: tuple[int, ...] | torch.Size,
               **kwargs: object) -> torch.Tensor:  # fmt: skip
    """`draw(shape, **kwargs)` (torch.rand, torch.randn, a partial of torch.randint) where
    shape[0] counts this rank's share of the batch: under several ranks the numbers are drawn
    for the whole global batch and this rank's rows returned. The ranks' rows together are
    what one process draws for the batch, and every rank's generator moves alike.

        eps = per_sample(torch.rand, (len(real), 1, 1, 1), generator=g, device=real.device)
    """
    world = world_size()
    if world == 1:
        return draw(tuple(shape), **kwargs)
    n = shape[0]
    rank = torch_dist.get_rank()
    return draw((n * world, *shape[1:]), **kwargs)[rank * n : (rank + 1) * n]


def sum_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The sum of `value` over the ranks of this run (a detached copy; `value` alone in a
    single process). For statistics that steer training and must agree everywhere (ADA's
    r_t): every rank must call it at the same point."""
    if world_size() == 1:
        return value.detach()
    total = value.detach().clone()
    torch_dist.all_reduce(total)
    return total


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """`value`'s mean over the ranks, differentiable through this rank's own `value` (the
    others' are constants): running means that must stay identical everywhere (path length)."""
    world = world_size()
    if world == 1:
        return value
    return value + (sum_over_ranks(value) / world - value.detach())


def check_batch_divides(batch_sizes: Iterable[int], world_size: int) -> None:
    """Raises ConfigError unless every (global) batch size splits evenly over the ranks."""
    bad = sorted({b for b in batch_sizes if b % world_size})
    if bad:
        raise ConfigError(
            f"train.batch_size is the global batch, split over {world_size} ranks: "
            f"{', '.join(map(str, bad))} does not divide by {world_size}. Choose a batch size "
            f"that is a multiple of {world_size}, or run on a number of ranks that divides it"
        )


def convert_sync_batchnorm(module: nn.Module, dist: Distributed) -> nn.Module:
    """`module` with its BatchNorm layers as SyncBatchNorm (statistics over the global batch);
    unchanged in a single process, where the shard is the batch.

    Raises:
        ConfigError: several ranks on the CPU: torch's SyncBatchNorm runs on CUDA only.
    """
    if not dist.active:
        return module
    if dist.device.type != "cuda":
        raise ConfigError(
            "train.sync_bn=true needs CUDA: torch's SyncBatchNorm has no CPU (gloo) "
            "implementation. On the CPU each rank normalises its own shard of the batch; "
            "set train.sync_bn=false"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


def check_gpus(count: int, device: str) -> None:
    """Whether `ganvas train --gpus count` can start: `count` CUDA devices when the run's
    device is 'auto' or 'cuda...'; any count on 'cpu' (gloo processes, as the tests run).

    Raises:
        ConfigError: a count below 1, no GPU on this machine, or fewer GPUs than asked for.
    """
    if count < 1:
        raise ConfigError(f"--gpus {count}: give the number of processes to start, 1 or more")
    if device == "cpu":
        return
    available = torch.cuda.device_count()
    if available == 0:
        raise ConfigError(
            f"--gpus {count}: this machine has no CUDA GPU. To run {count} processes on the "
            "CPU (gloo) add --device cpu; otherwise drop --gpus"
        )
    if count > available:
        raise ConfigError(f"--gpus {count}: this machine has {available} GPU(s); ask for at "
                          "most that many (or use torchrun across nodes, docs/scaling.md)")  # fmt: skip


def launch(count: int, train_args: list[str]) -> int:
    """Run `ganvas train train_args` as `count` processes on this machine through torchrun
    (`python -m torch.distributed.run --standalone`); returns its exit code."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={count}", "-m", "ganvas", "train", *train_args]  # fmt: skip
    return subprocess.call(command)
