"""Small torch.distributed helpers for methods with queues and momentum encoders (MoCo, DenseCL).

Each is the identity in a single process, so methods call them unconditionally and the same code
runs on a laptop and under DDP.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@torch.no_grad()
def gather_tensors(x: torch.Tensor) -> torch.Tensor:
    """All processes' `x` concatenated along dim 0 in rank order, without gradient (MoCo's concat_all_gather).

    Used for keys entering a queue: every process must enqueue the same keys, or the queues (and
    so the negatives) drift apart between processes. Shapes must agree across ranks (drop_last).
    """
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


@torch.no_grad()
def batch_shuffle(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """MoCo's shuffling BN (He et al. 2020, Sec. 3.3): a random slice of the *global* key batch per process.

    Without it, per-process BatchNorm statistics of the key batch come from the same images as the
    queries', a shortcut the contrastive task can exploit. Returns (local shuffled batch, permutation).
    """
    if not is_distributed():
        return x, None
    x_all = gather_tensors(x)
    perm = torch.randperm(x_all.shape[0], device=x.device)
    dist.broadcast(perm, src=0)  # every process uses rank 0's permutation
    return x_all[perm.view(dist.get_world_size(), -1)[dist.get_rank()]], perm


@torch.no_grad()
def batch_unshuffle(y: torch.Tensor, perm: torch.Tensor | None) -> torch.Tensor:
    """Undo `batch_shuffle` on an output: this process gets back the rows of its own original samples."""
    if perm is None:
        return y
    y_all = gather_tensors(y)
    inverse = torch.argsort(perm)
    return y_all[inverse.view(dist.get_world_size(), -1)[dist.get_rank()]]
