"""Random batches from a dataset held in memory as uint8, with no per-step decoding.

The order of epoch e is a permutation drawn from (seed, e), so the loader's whole state is
two integers (epoch, position) and resuming reproduces the exact same batches.
"""

from __future__ import annotations

import numpy as np
import torch


class BatchSampler:
    """Serves shuffled batches of `images` ([N, H, W, C] uint8) as float [-1, 1] NCHW.

    The images are held on `device` as uint8 (a quarter of float32's memory; on a GPU no
    host-to-device copy per step) and become float only batch by batch.

    The incomplete batch at the end of each epoch is skipped (every step sees `batch_size`
    images), and the next epoch starts with a fresh permutation.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray | None,
        batch_size: int,
        seed: int,
        device: torch.device | str = "cpu",
        hflip: bool = False,
        channels_last: bool = False,
    ) -> None:
        if len(images) < batch_size:
            raise ValueError(
                f"train.batch_size={batch_size} is larger than the dataset ({len(images)} images)"
            )
        self.device = torch.device(device)
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)  # uint8
        self.labels = None if labels is None else torch.from_numpy(labels).long().to(self.device)
        self.batch_size = batch_size
        self.seed = seed
        self.hflip = hflip
        # The uint8 batch is NHWC already: in channels_last the float batch keeps that layout.
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.epoch = 0
        self.position = 0
        self._order = self._permutation(0)
        self._last_draw: tuple[int, torch.Tensor] = (0, torch.zeros(0, dtype=torch.long))

    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self.images) // self.batch_size

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.images), generator=g).to(self.device)

    def next(
        self, batch_size: int | None = None, shard: slice | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return (img [B, C, H, W] float in [-1, 1], labels [B] or None); B is `batch_size`
        (at most the one given at construction) or that one.

        With `shard`, only that slice of the batch (one rank's share of a global batch):
        the order and the flips are drawn for the whole batch, so the ranks' shards put
        together are the batch one process would get."""
        batch_size = batch_size or self.batch_size
        if self.position + batch_size > len(self.images):
            self.epoch += 1
            self.position = 0
            self._order = self._permutation(self.epoch)
        index = self._order[self.position : self.position + batch_size]
        flip = None
        if self.hflip:
            flip_seed = (self.seed * 1_000_003 + self.epoch) * 1_000_003 + self.position
            g = torch.Generator().manual_seed(flip_seed % 2**63)
            flip = (torch.rand(batch_size, generator=g) < 0.5).to(self.device)
        if shard is not None:
            index = index[shard]
            flip = None if flip is None else flip[shard]
        self._last_draw = (self.epoch, index)
        batch = self.images[index]  # [B, H, W, C] uint8
        if flip is not None:
            batch = torch.where(flip[:, None, None, None], batch.flip(2), batch)
        self.position += batch_size
        img = batch.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        img = img.contiguous(memory_format=self.memory_format)
        labels = None if self.labels is None else self.labels[index]
        return img, labels

    def draw_seeds(self) -> torch.Tensor:
        """One seed per image of the last batch, from (seed, epoch, image): int64 [B] on the
        CPU. Per-image randomness drawn from these (crappify) is the same on every run, batch
        size and resume."""
        epoch, index = self._last_draw
        return torch.tensor([draw_seed(self.seed, int(i), epoch) for i in index.tolist()])

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._order = self._permutation(self.epoch)


def draw_seed(seed: int, index: int, epoch: int) -> int:
    """The seed of image `index` drawn in epoch `epoch` of a run seeded `seed` (epoch -1: a
    fixed draw outside training, e.g. evaluation)."""
    return ((seed * 1_000_003 + epoch + 1) * 1_000_003 + index) % 2**63


def uint8_to_float(images: np.ndarray) -> torch.Tensor:
    """[N, H, W, C] uint8 → [N, C, H, W] float in [-1, 1]."""
    return torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
