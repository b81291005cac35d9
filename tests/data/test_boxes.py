"""Boxes derived from masks (self-correcting networks' weak set) and their box-prior maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segssl.data.boxes import batch_boxes_map, box_prior_map, boxes_from_mask, boxes_map_from_mask

MASK = np.array(
    [
        [0, 1, 1, 0, 0, 0],
        [0, 1, 0, 0, 2, 2],
        [0, 0, 1, 0, 2, 2],  # (2, 2) touches (1, 1) diagonally: same component with 8-connectivity
        [0, 0, 0, 0, 0, 0],
        [1, 0, 0, 255, 255, 0],
        [1, 0, 0, 0, 0, 0],
    ],
    dtype=np.uint8,
)


def test_boxes_from_mask_per_component():
    boxes = sorted(boxes_from_mask(MASK, ignore_index=255))
    # (class, x0, y0, x1, y1), ends exclusive; background 0 and ignore 255 get no box
    assert boxes == [(1, 0, 4, 1, 6), (1, 1, 0, 3, 3), (2, 4, 1, 6, 3)]
    assert sorted(boxes_from_mask(MASK, 255, min_area=3)) == [(1, 1, 0, 3, 3), (2, 4, 1, 6, 3)]
    with_bg = boxes_from_mask(torch.from_numpy(MASK), 255, background=None)
    assert (0, 0, 0, 6, 6) in with_bg  # class 0 is one component spanning the crop
    with pytest.raises(ValueError):
        boxes_from_mask(MASK[None], 255)


def test_box_prior_map_channels():
    prior = box_prior_map([(1, 1, 0, 3, 2), (2, 2, 1, 4, 3)], num_classes=3, height=3, width=4)
    want1 = torch.tensor([[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.float32)
    want2 = torch.tensor([[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.float32)
    assert torch.equal(prior[1], want1) and torch.equal(prior[2], want2)
    assert torch.equal(prior[0], 1 - torch.maximum(want1, want2))  # background: outside every box
    no_bg = box_prior_map([(1, 1, 0, 3, 2)], 3, 3, 4, background=None)
    assert torch.equal(no_bg[0], torch.zeros(3, 4)) and torch.equal(no_bg[1], want1)
    with pytest.raises(ValueError):
        box_prior_map([(3, 0, 0, 1, 1)], 3, 2, 2)


def test_boxes_map_from_mask_and_batch():
    m = boxes_map_from_mask(MASK, 3, 255)
    assert m.shape == (3, 6, 6)
    assert float(m[1, 0:3, 1:3].min()) == 1.0 and float(m[1, 4:6, 0].min()) == 1.0
    assert float(m[1].sum()) == 6 + 2 and float(m[2].sum()) == 4
    assert float(m[0, 3, 5]) == 1.0 and float(m[0, 1, 4]) == 0.0
    b = batch_boxes_map(torch.from_numpy(MASK).long().repeat(2, 1, 1), 3, 255)
    assert b.shape == (2, 3, 6, 6) and torch.equal(b[0], m) and torch.equal(b[1], m)
