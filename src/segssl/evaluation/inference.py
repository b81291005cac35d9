"""Whole-image and sliding-window inference (class probabilities at the input's resolution)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    image: torch.Tensor,
    mode: str = "whole",
    window: Sequence[int] = (512, 512),
    stride: Sequence[int] = (341, 341),
) -> torch.Tensor:
    """(B, K, H, W) logits. `slide` averages overlapping windows' softmax (as mmseg's slide mode)."""
    if mode == "whole":
        return model(image)
    if mode != "slide":
        raise ValueError(f"eval.mode must be 'whole' or 'slide', got {mode}")
    b, _, h, w = image.shape
    wh, ww = min(window[0], h), min(window[1], w)
    sh, sw = stride
    rows = list(range(0, max(h - wh, 0) + 1, sh))
    cols = list(range(0, max(w - ww, 0) + 1, sw))
    if rows[-1] + wh < h:
        rows.append(h - wh)
    if cols[-1] + ww < w:
        cols.append(w - ww)
    acc = None
    count = torch.zeros(1, 1, h, w, device=image.device)
    for y in rows:
        for x in cols:
            prob = F.softmax(model(image[..., y : y + wh, x : x + ww]).float(), dim=1)
            if acc is None:
                acc = torch.zeros(b, prob.shape[1], h, w, device=image.device)
            acc[..., y : y + wh, x : x + ww] += prob
            count[..., y : y + wh, x : x + ww] += 1
    return (acc / count).log()
