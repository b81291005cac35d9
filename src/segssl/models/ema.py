"""Exponential moving average of a model (Mean Teacher, BYOL/PixPro momentum encoders)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def cosine_momentum(step: int, total: int, base: float = 0.99, final: float = 1.0) -> float:
    """BYOL's schedule (Grill et al. 2020, Sec. 3.2): m = 1 - (1 - m0)(cos(pi k / K) + 1) / 2."""
    k = min(step, total) / max(total, 1)
    return final - (final - base) * (math.cos(math.pi * k) + 1) / 2


class EMA(nn.Module):
    """A frozen copy whose weights track the online model: theta' <- m theta' + (1 - m) theta."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.module = copy.deepcopy(model)
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, momentum: float) -> None:
        for e, o in zip(self.module.parameters(), model.parameters(), strict=True):
            e.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
        for e, o in zip(self.module.buffers(), model.buffers(), strict=True):
            e.copy_(o)  # BN statistics follow the online model, as in the reference implementations

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
