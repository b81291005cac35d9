"""A dataset on disk (or generated in memory) as plain lists of samples per split.

Every reader (folder format, VOC, Cityscapes, ADE20K, CamVid SegNet, ImageNet-S, generated)
produces a `DataSource`; everything downstream (validation, splits, caching, transforms) works
on this one shape, so supporting a new layout means writing one small reader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from segssl.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ClassInfo:
    """Class names, colours and the label value that means "ignore this pixel"."""

    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = 255

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict:
        return {
            "classes": list(self.classes),
            "palette": [list(c) for c in self.palette],
            "ignore_index": self.ignore_index,
        }


def default_palette(n: int) -> tuple[tuple[int, int, int], ...]:
    """Pascal-VOC style bit-interleaved palette: distinct, stable colours for any class count."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return tuple(out)


@dataclass
class Sample:
    """One image (and maybe its mask). `image`/`label` are paths, or callables for generated data."""

    stem: str
    image: Path | Callable[[], np.ndarray]
    label: Path | Callable[[], np.ndarray] | None = None


@dataclass
class DataSource:
    """Samples per split plus class info. `label_lut` maps raw label values to train ids."""

    name: str
    info: ClassInfo
    splits: dict[str, list[Sample]] = field(default_factory=dict)
    label_lut: np.ndarray | None = None  # uint8[256]; raw value -> train id (ignore_index for void)
    root: Path | None = None

    def samples(self, split: str) -> list[Sample]:
        if split not in self.splits or not self.splits[split]:
            where = self.root / split if self.root else self.name
            raise DataError(f"{where}: split '{split}' is missing or empty")
        return self.splits[split]

    def has_labels(self, split: str) -> bool:
        s = self.splits.get(split, [])
        return bool(s) and all(x.label is not None for x in s)

    def read_image(self, sample: Sample) -> np.ndarray:
        """RGB uint8 array HxWx3."""
        if callable(sample.image):
            return sample.image()
        return read_rgb(sample.image)

    def read_label(self, sample: Sample) -> np.ndarray:
        """Train-id uint8 array HxW (ignore_index for void pixels)."""
        if sample.label is None:
            raise DataError(f"{sample.stem}: no label for this image")
        if callable(sample.label):
            return sample.label()
        raw = read_index(sample.label)
        return self.label_lut[raw] if self.label_lut is not None else raw


def read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"), dtype=np.uint8)
    except Exception as e:  # PIL raises many types for broken files
        raise DataError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None


def read_index(path: Path) -> np.ndarray:
    """Read an index (palette or grayscale) PNG as its raw integer values."""
    try:
        with Image.open(path) as im:
            if im.mode in ("P", "L"):
                arr = np.array(im)
            elif im.mode in ("I", "I;16", "I;16B"):
                arr = np.asarray(im).astype(np.int64)
                if arr.max(initial=0) > 255:
                    raise DataError(f"{path}: label values above 255 are not supported")
                arr = arr.astype(np.uint8)
            else:
                raise DataError(f"{path}: label must be an 8-bit index PNG (mode P or L), got mode {im.mode}")
            return np.ascontiguousarray(arr, dtype=np.uint8)
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path}: cannot read label ({type(e).__name__}: {e})") from None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) without decoding pixels."""
    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:
        raise DataError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None


IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
