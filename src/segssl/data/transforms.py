"""Joint image+mask transforms (torchvision transforms v2 with `tv_tensors.Mask`).

Masks are resized with nearest neighbour and padded with the ignore index by torchvision itself,
so geometric augmentations can never invent class values or leak padding into the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_tv(image: np.ndarray, label: np.ndarray | None = None):
    """HxWx3 uint8 (+ HxW uint8) numpy -> tv_tensors (CHW uint8 image, HW int64 mask)."""
    img = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
    if label is None:
        return img, None
    return img, tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(label)).long())


def normalize() -> v2.Transform:
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def train_transform(
    crop: Sequence[int],
    *,
    ignore_index: int,
    base_size: Sequence[int] | None = None,
    scale: Sequence[float] = (0.5, 2.0),
    hflip: bool = True,
    color_jitter: float = 0.2,
) -> v2.Transform:
    """Random scale -> random crop (padding masks with ignore) -> flip -> colour jitter -> normalise.

    `base_size` (h, w) is the size the scale range is relative to (the dataset's native size);
    without it the crop size is used.
    """
    h, w = int(crop[0]), int(crop[1])
    base = (int(base_size[0]), int(base_size[1])) if base_size else (h, w)
    ops: list[v2.Transform] = [
        # ScaleJitter's target_size is (w, h), unlike the rest of torchvision
        v2.ScaleJitter(target_size=(base[1], base[0]), scale_range=(float(scale[0]), float(scale[1])), antialias=True),
        v2.RandomCrop((h, w), pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}),
    ]
    if hflip:
        ops.append(v2.RandomHorizontalFlip())
    if color_jitter > 0:
        cj = color_jitter
        ops.append(v2.RandomApply([v2.ColorJitter(cj, cj, cj, min(cj / 2, 0.1))], p=0.8))
    ops.append(normalize())
    return v2.Compose(ops)


def eval_transform() -> v2.Transform:
    """Evaluation sees whole images at native size; the model pads to its stride itself."""
    return normalize()


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Normalised CHW (or NCHW) float -> [0, 1] for pictures."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(-1, 1, 1)
    return (x * std + mean).clamp(0, 1)
