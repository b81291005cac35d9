"""Rank-aware samplers, so DDP needs no Lightning sampler replacement.

Training: a stream of seeded permutations cut into fixed-length epochs, sliced per rank, so an
"epoch" is a fixed number of steps whatever the (possibly tiny) labeled set size.
Evaluation: each image exactly once across ranks (a DistributedSampler would pad with
duplicates and bias dataset-level metrics).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    def __init__(self, n: int, samples_per_rank: int, seed: int = 0, rank: int = 0, world: int = 1):
        self.n, self.samples_per_rank, self.seed, self.rank, self.world = (
            n,
            samples_per_rank,
            seed,
            rank,
            world,
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_rank

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        need = self.samples_per_rank * self.world
        chunks, total = [], 0
        while total < need:
            chunks.append(torch.randperm(self.n, generator=g))
            total += self.n
        idx = torch.cat(chunks)[:need]
        return iter(idx[self.rank :: self.world].tolist())


class ShardSampler(Sampler[int]):
    def __init__(self, n: int, rank: int = 0, world: int = 1):
        self.indices = list(range(rank, n, world))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)
