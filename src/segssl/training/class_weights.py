"""Class weights from the labeled masks, for long-tailed datasets (CamVid poles, signs, cyclists)."""

from __future__ import annotations

import numpy as np
import torch

from segssl.data.dataset import DecodedCache
from segssl.data.source import Sample


def class_frequencies(cache: DecodedCache, split: str, samples: list[Sample], k: int, ignore: int) -> np.ndarray:
    counts = np.zeros(k, dtype=np.int64)
    for s in samples:
        lab = cache.get(split, s, True)
        counts += np.bincount(lab[lab != ignore].ravel(), minlength=256)[:k]
    return counts


def class_weights(counts: np.ndarray, kind: str) -> torch.Tensor | None:
    """'median_freq' (Eigen & Fergus 2015: w_c = median(f) / f_c, as SegNet on CamVid), its square
    root 'sqrt_median_freq' (milder), or None for 'none'. Unseen classes get the largest weight."""
    if kind in (None, "none"):
        return None
    freq = counts / max(counts.sum(), 1)
    seen = freq > 0
    w = np.ones_like(freq, dtype=np.float64)
    if not seen.any():
        return torch.ones(len(counts), dtype=torch.float32)
    w[seen] = np.median(freq[seen]) / freq[seen]
    w[~seen] = w[seen].max() if seen.any() else 1.0
    if kind == "sqrt_median_freq":
        w = np.sqrt(w)
    elif kind != "median_freq":
        raise ValueError(f"train.class_weights must be none, median_freq or sqrt_median_freq, got {kind}")
    return torch.tensor(w, dtype=torch.float32)
