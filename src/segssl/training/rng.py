"""Random-number state carried in checkpoints, so a resumed run continues the same random stream.

Lightning's checkpoint holds weights, optimiser, schedule and loop position, not the generators:
a run resumed from its epoch-end `last.ckpt` re-drew every crop, scale, flip, jitter and CutMix
box from the start-of-run seed, and so ended on different weights than the uninterrupted run
(CamVid 1/8 warm start: 38.5 against 38.7; the data order was off too, see `EpochSampler`). With
the generators restored as well, it ends on the same weights (tests/training/test_resume_rng.py).
Stored as tensors and plain lists, so the checkpoint still loads with weights_only=True (Lightning's
private `_collect_rng_states` keeps NumPy's state as an ndarray tuple, which weights_only refuses).
"""

from __future__ import annotations

import random

import numpy as np
import torch


def rng_state() -> dict:
    """Python, NumPy, torch CPU (and current CUDA device) generator states."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of `rng_state`; a generator missing from `state` (older checkpoint, no CUDA) is left as is."""
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def gather_rng_states(world_size: int) -> list[dict] | None:
    """Every rank's `rng_state()`, in rank order, on every rank; None in a single-process run.

    A collective: Lightning dumps a checkpoint on every rank (rank 0 alone writes it), so each
    rank's states can travel into the one file and a resumed multi-process run puts every rank
    back on its own stream, not only rank 0.
    """
    if world_size <= 1 or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return None
    states: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(states, rng_state())
    return states


def fold_in_rank(seed: int, rank: int, step: int) -> None:
    """Give process `rank` > 0 of a multi-process run its own generators, seeded from (seed, rank, step).

    Every rank starts from the same `seed_everything(seed)`, and with in-process data loading every
    rank would then draw the same crops, flips, jitter and CutMix boxes for its different images.
    Rank 0 keeps its stream, so a single-process run is exactly reproducible. A resumed run restores
    each rank's own saved states instead (`gather_rng_states`); only a checkpoint without them (older,
    or written by another number of processes) folds the rank into rank 0's states, reproducibly
    given the step.
    """
    if rank <= 0:
        return
    s = (seed * 1_000_003 + rank * 7_919 + step) % (2**32)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
