"""Bounding boxes derived from masks, for box-supervised ("weak set") training.

Self-correcting networks (Ibrahim et al. CVPR 2020) need, for the weak images, only object boxes.
Datasets here ship masks, not boxes, so a box is derived per connected component of each class
(`scipy.ndimage.label` + `find_objects`): the box an annotator would draw around that blob. The
boxes are rasterised into a (K, H, W) box-prior map, the ancillary model's extra input (Sec. 3.1):
channel k is 1 inside any box of class k and the background channel is 1 outside every box.

Derived from a training crop's mask, a box is the visible part of the object, which is what
clipping a box annotation to the crop gives (a non-convex object cut in two by the crop gives two
boxes instead of one clipped box, and touching objects of one class merge into one box).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

Box = tuple[int, int, int, int, int]  # (class, x0, y0, x1, y1); x1, y1 exclusive (slice ends)


def boxes_from_mask(
    mask: np.ndarray | torch.Tensor, ignore_index: int, background: int | None = 0, min_area: int = 1
) -> list[Box]:
    """One box per connected component (8-connectivity) of every non-background class in `mask`.

    `background` is not boxed (as in VOC, where boxes mark objects); None boxes every class
    (datasets without a background class, e.g. CamVid). Components smaller than `min_area` pixels
    are dropped (annotators do not box specks). Ignored pixels belong to no component.
    """
    m = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"boxes_from_mask expects an (H, W) mask, got shape {m.shape}")
    out: list[Box] = []
    structure = np.ones((3, 3), dtype=bool)
    for c in np.unique(m):
        c = int(c)
        if c == ignore_index or (background is not None and c == background):
            continue
        for ys, xs in component_slices(m == c, min_area, structure):
            out.append((c, int(xs.start), int(ys.start), int(xs.stop), int(ys.stop)))
    return out


def component_slices(binary: np.ndarray, min_area: int = 0, structure: np.ndarray | None = None) -> list[tuple]:
    """Bounding slices (rows, cols) of the connected components of `binary` with >= `min_area` pixels
    (8-connected by default): the shared step of box derivation and CCT's object-guided cutout."""
    structure = np.ones((3, 3), dtype=bool) if structure is None else structure
    comp, n = ndimage.label(binary, structure=structure)
    if n == 0:
        return []
    areas = np.bincount(comp.ravel(), minlength=n + 1)
    return [sl for i, sl in enumerate(ndimage.find_objects(comp), start=1) if sl is not None and areas[i] >= min_area]


def box_prior_map(
    boxes: list[Box], num_classes: int, height: int, width: int, background: int | None = 0
) -> torch.Tensor:
    """(K, H, W) float map: 1 inside boxes of class k; the background channel is 1 outside all boxes.

    With `background=None` no channel is reserved: pixels outside every box are all-zero.
    """
    prior = torch.zeros(num_classes, height, width)
    for c, x0, y0, x1, y1 in boxes:
        if not 0 <= c < num_classes:
            raise ValueError(f"box class {c} is outside [0, {num_classes})")
        prior[c, max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = 1.0
    if background is not None:
        others = [k for k in range(num_classes) if k != background]
        covered = prior[others].amax(0) if others else torch.zeros(height, width)
        prior[background] = 1.0 - covered
    return prior


def boxes_map_from_mask(
    mask: np.ndarray | torch.Tensor,
    num_classes: int,
    ignore_index: int,
    background: int | None = 0,
    min_area: int = 1,
) -> torch.Tensor:
    """Mask (H, W) -> box-prior map (K, H, W): what a box annotation of this mask would give."""
    h, w = (int(s) for s in mask.shape[-2:])
    boxes = boxes_from_mask(mask, ignore_index, background, min_area)
    return box_prior_map(boxes, num_classes, h, w, background)


def batch_boxes_map(
    labels: torch.Tensor, num_classes: int, ignore_index: int, background: int | None = 0, min_area: int = 1
) -> torch.Tensor:
    """(B, H, W) label batch -> (B, K, H, W) box-prior maps on the labels' device."""
    maps = [boxes_map_from_mask(lab, num_classes, ignore_index, background, min_area) for lab in labels]
    return torch.stack(maps).to(labels.device)
