"""Rank-aware samplers, so DDP needs no Lightning sampler replacement.

Training: a stream of seeded permutations cut into fixed-length epochs, sliced per rank, so an
"epoch" is a fixed number of steps whatever the (possibly tiny) labeled set size.
Evaluation: each image exactly once across ranks (a DistributedSampler would pad with
duplicates and bias dataset-level metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """Epoch e is the e-th seeded permutation stream slice.

    `epoch_of` (optional) says which epoch is starting, e.g. global_step // epoch_steps. It takes
    precedence over `set_epoch`, because Lightning 2.6 sets the epoch one too high when a run resumes
    from an epoch-end checkpoint (it replays epoch e + 1's order in epoch e), so a resumed run would
    see other batches than an uninterrupted one.
    """

    def __init__(
        self,
        n: int,
        samples_per_rank: int,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        epoch_of: Callable[[], int] | None = None,
    ):
        self.n, self.samples_per_rank, self.seed, self.rank, self.world = (
            n,
            samples_per_rank,
            seed,
            rank,
            world,
        )
        self.epoch, self.epoch_of = 0, epoch_of

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_rank

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch_of() if self.epoch_of is not None else self.epoch
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
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
