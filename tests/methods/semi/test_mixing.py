"""Mixing masks and `mix`: hand-built rectangles, box areas, ClassMix class halves, pasting."""

import torch

from segssl.data.mixing import box_masks, class_mix_masks, cutmix_boxes, mix, partner, rectangles_to_mask


def _is_one_rectangle(m: torch.Tensor) -> bool:
    rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
    if rows.numel() == 0:
        return False
    r0, r1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    return bool(m[r0:r1, c0:c1].all()) and int(m.sum()) == (r1 - r0) * (c1 - c0)


def test_overlapping_rectangles_toggle():
    m = rectangles_to_mask(torch.tensor([[[0, 0, 4, 4], [2, 2, 6, 6]]]), 8, 8)[0]
    assert int(m.sum()) == 16 + 16 - 2 * 4  # symmetric difference of two 4x4 boxes sharing 2x2
    assert m[0, 0] and m[5, 5] and not m[3, 3] and not m[7, 7]


def test_square_box_covers_the_rounded_proportion():
    g = torch.Generator().manual_seed(0)
    m = box_masks(5, 8, 8, prop_range=(0.5, 0.5), random_aspect=False, generator=g)
    assert m.shape == (5, 8, 8) and m.dtype == torch.bool
    for mi in m:  # side round(sqrt(0.5) * 8) = round(5.66) = 6
        assert int(mi.sum()) == 36 and _is_one_rectangle(mi)


def test_random_aspect_box_keeps_its_area_and_stays_inside():
    g = torch.Generator().manual_seed(1)
    m = box_masks(20, 64, 64, prop_range=(0.5, 0.5), generator=g)
    for mi in m:
        assert _is_one_rectangle(mi)
        assert abs(int(mi.sum()) / 4096 - 0.5) < 0.03  # only rounding of the two sides
        assert int(mi.any(1).sum()) >= 32  # height fraction prop^u >= prop


def test_zero_proportion_gives_empty_masks_and_generator_reproduces():
    assert not box_masks(3, 16, 16, prop_range=(0.0, 0.0)).any()
    a = box_masks(4, 16, 16, (0.25, 0.5), n_boxes=3, generator=torch.Generator().manual_seed(7))
    b = box_masks(4, 16, 16, (0.25, 0.5), n_boxes=3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert (a.flatten(1).sum(1) <= 0.5 * 256 + 3 * 16).all()  # XOR never adds area beyond the boxes


def test_unimatch_cutmix_box_probability_and_area():
    g = torch.Generator().manual_seed(0)
    assert not cutmix_boxes(6, 32, 32, p=0.0, generator=g).any()
    m = cutmix_boxes(30, 64, 64, p=1.0, generator=g)
    for mi in m:
        assert _is_one_rectangle(mi)
        assert 0 < int(mi.sum()) <= 0.4 * 4096


def test_class_mix_takes_half_of_the_classes_whole():
    pred = torch.zeros(1, 4, 4, dtype=torch.long)
    pred[0, :2, 2:], pred[0, 2:, :2], pred[0, 2:, 2:] = 1, 2, 3  # one class per quadrant
    m = class_mix_masks(pred, generator=torch.Generator().manual_seed(0))[0]
    chosen = torch.unique(pred[0][m])
    assert chosen.numel() == 2 and int(m.sum()) == 8
    assert torch.equal(m, torch.isin(pred[0], chosen))  # whole classes, nothing else
    three = pred.clamp(max=2)  # classes {0, 1, 2}: floor(3 / 2) = 1 class pasted
    m3 = class_mix_masks(three, generator=torch.Generator().manual_seed(0))[0]
    assert torch.unique(three[0][m3]).numel() == 1
    ignored = torch.where(pred > 1, torch.tensor(255), pred)  # classes {0, 1} + ignore: 1 class
    assert torch.unique(ignored[0][class_mix_masks(ignored, ignore_index=255)[0]]).tolist() in ([0], [1])
    assert not class_mix_masks(torch.zeros(2, 3, 3, dtype=torch.long)).any()  # one class: nothing to paste


def test_mix_pastes_where_the_mask_is_true():
    base, paste = torch.zeros(1, 2, 2, 2), torch.arange(8.0).view(1, 2, 2, 2)
    mask = torch.tensor([[[True, False], [False, True]]])
    out = mix(base, paste, mask)
    assert out.tolist() == [[[[0.0, 0.0], [0.0, 3.0]], [[4.0, 0.0], [0.0, 7.0]]]]
    labels = mix(torch.tensor([[[1, 1], [1, 1]]]), torch.tensor([[[5, 6], [7, 8]]]), mask)
    assert labels.tolist() == [[[5, 1], [1, 8]]]
    assert partner(torch.tensor([10, 20, 30])).tolist() == [30, 10, 20]
