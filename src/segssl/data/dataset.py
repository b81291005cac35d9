"""Torch datasets over a DataSource, with an in-memory uint8 cache of decoded images.

On CPU, PNG decoding can cost as much as a small model's forward pass; decoding each image
once and keeping the uint8 array (3 bytes/pixel) removes that cost for every later epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from segssl.data.source import DataSource, Sample
from segssl.data.transforms import to_tv
from segssl.data.views import TwoViews

DEFAULT_CACHE_BYTES = 6 * 2**30


class DecodedCache:
    """Decoded (image, label) arrays keyed by (split, stem), shared by every dataset of a source."""

    def __init__(self, source: DataSource, max_bytes: int = DEFAULT_CACHE_BYTES):
        self.source, self.max_bytes = source, max_bytes
        self.bytes = 0
        self._store: dict[tuple[str, str, bool], np.ndarray] = {}

    def get(self, split: str, sample: Sample, label: bool) -> np.ndarray:
        key = (split, sample.stem, label)
        arr = self._store.get(key)
        if arr is None:
            arr = self.source.read_label(sample) if label else self.source.read_image(sample)
            if self.bytes + arr.nbytes <= self.max_bytes:
                self._store[key] = arr
                self.bytes += arr.nbytes
        return arr

    def preload(self, split: str, samples: Sequence[Sample], labels: bool, progress=None) -> None:
        """Decode everything now (in the main process), so DataLoader workers share it copy-on-write."""
        it = samples if progress is None else progress(samples, f"caching {split}")
        for s in it:
            self.get(split, s, False)
            if labels and s.label is not None:
                self.get(split, s, True)


class SegmentationDataset(Dataset):
    """(image, label) pairs after a joint transform; `labels=False` yields images only."""

    def __init__(
        self,
        source: DataSource,
        split: str,
        samples: Sequence[Sample] | None = None,
        transform: Callable | None = None,
        *,
        labels: bool = True,
        cache: DecodedCache | None = None,
        valid_mask: bool = False,
    ):
        self.source, self.split = source, split
        self.samples = list(samples if samples is not None else source.samples(split))
        self.transform, self.labels, self.valid_mask = transform, labels, valid_mask
        self.cache = cache or DecodedCache(source)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        image = self.cache.get(self.split, s, False)
        label = self.cache.get(self.split, s, True) if self.labels else None
        img, mask = to_tv(image, label)
        # a constant "inside" mask travels through the same geometry; padding fills it with ignore
        inside = to_tv(image, np.zeros(image.shape[:2], np.uint8))[1] if self.valid_mask else None
        if self.transform is not None:
            extra = [m for m in (mask, inside) if m is not None]
            res = self.transform(img, *extra) if extra else (self.transform(img),)
            img, res = res[0], list(res[1:])
            mask = res.pop(0) if mask is not None else None
            inside = res.pop(0) if inside is not None else None
        out = {"image": img.as_subclass(torch.Tensor), "stem": s.stem, "index": i}
        if mask is not None:
            out["label"] = mask.as_subclass(torch.Tensor).long()
        if inside is not None:
            out["valid"] = inside.as_subclass(torch.Tensor) != self.source.info.ignore_index
        return out


class TwoViewDataset(Dataset):
    """Two views with crop boxes per image, for dense self-supervised pretraining (labels unread)."""

    def __init__(
        self,
        source: DataSource,
        samples: Sequence[tuple[str, Sample]],
        views: TwoViews,
        *,
        cache: DecodedCache | None = None,
        seed: int = 0,
    ):
        self.source, self.samples, self.views = source, list(samples), views
        self.cache = cache or DecodedCache(source)
        self.seed, self.epoch = seed, 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        split, s = self.samples[i]
        img, _ = to_tv(self.cache.get(split, s, False))
        out = self.views(img.as_subclass(torch.Tensor))
        out["index"] = i
        return out
