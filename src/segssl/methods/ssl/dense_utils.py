"""Helpers shared by the dense pretraining methods of this package (DenseCL, PASS alignment)."""

from __future__ import annotations

import math

import torch
from torch import nn

from segssl.errors import SegsslError


def resolve_args(defaults: dict, given: dict, method: str) -> dict:
    """`method_args` over the method's defaults; a misspelt key fails loudly instead of being ignored."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise SegsslError(
            f"method_args.{unknown[0]}: unknown for method {method} (known: {', '.join(sorted(defaults))})"
        )
    return {**defaults, **given}


def padded_extent(h: int, w: int, stride: int) -> tuple[float, float]:
    """Fraction (fy, fx) of a padded-input feature map that the unpadded h x w input covers."""
    return h / (h + (-h) % stride), w / (w + (-w) % stride)


def crop_to_input(t: torch.Tensor, h: int, w: int, stride: int) -> torch.Tensor:
    """Drop the rows/columns of a padded-input map that only see padding (SegModel pads to its stride)."""
    fy, fx = padded_extent(h, w, stride)
    if fy == 1.0 and fx == 1.0:
        return t
    return t[..., : max(1, math.ceil(t.shape[-2] * fy)), : max(1, math.ceil(t.shape[-1] * fx))]


@torch.no_grad()
def encoder_channels(model: nn.Module) -> int:
    """Channels of the encoder's deepest map, by a dry run (timm/smp encoders name it differently)."""
    was_training = model.training
    model.eval()
    s = model.stride * 2
    c = int(model.encoder(torch.zeros(1, 3, s, s))[-1].shape[1])
    model.train(was_training)
    return c
