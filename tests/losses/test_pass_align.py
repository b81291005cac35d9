"""PASS alignment geometry and SimSiam loss against hand-computed values."""

import pytest
import torch

from segssl.data.views import pixel_coords
from segssl.losses.pass_align import (
    intersection_points,
    negative_cosine,
    sample_at,
    simsiam_pixel_loss,
    to_view_fraction,
)

BOX1 = torch.tensor([[0.1, 0.2, 0.6, 0.8]])
BOX2_FLIPPED = torch.tensor([[0.9, 0.0, 0.3, 0.5]])  # x0 > x1: horizontally flipped view of x in [0.3, 0.9]


def test_intersection_points_hand_computed():
    pts, valid = intersection_points(BOX1, BOX2_FLIPPED, 2)
    # intersection x [0.3, 0.6], y [0.2, 0.5]; 2x2 cell centres
    assert valid.tolist() == [True]
    assert pts.shape == (1, 2, 2, 2)
    assert pts[0, 0, 0].tolist() == pytest.approx([0.375, 0.275])
    assert pts[0, 0, 1].tolist() == pytest.approx([0.525, 0.275])
    assert pts[0, 1, 0].tolist() == pytest.approx([0.375, 0.425])


def test_intersection_empty_is_invalid():
    a, b = torch.tensor([[0.0, 0.0, 0.3, 0.3]]), torch.tensor([[0.5, 0.5, 1.0, 1.0]])
    _, valid = intersection_points(a, b, 3)
    assert valid.tolist() == [False]


def test_to_view_fraction_flip_hand_computed():
    pts = torch.tensor([[[[0.375, 0.275]]]])
    frac = to_view_fraction(pts, BOX2_FLIPPED)
    # flipped view: u = (0.375 - 0.9) / (0.3 - 0.9) = 0.875 (near the view's right edge); v = 0.275 / 0.5
    assert frac[0, 0, 0].tolist() == pytest.approx([0.875, 0.55])


def test_to_view_fraction_inverts_pixel_coords():
    coords = pixel_coords(BOX2_FLIPPED, 4, 8)  # (1, 4, 8, 2) original-image coordinates of pixel centres
    frac = to_view_fraction(coords, BOX2_FLIPPED)
    assert frac[0, 0, :, 0].tolist() == pytest.approx([(j + 0.5) / 8 for j in range(8)], abs=1e-6)
    assert frac[0, :, 0, 1].tolist() == pytest.approx([(i + 0.5) / 4 for i in range(4)], abs=1e-6)


def coordinate_map(box: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """A 2-channel 'feature map' whose value at each view pixel is that pixel's original-image (x, y)."""
    return pixel_coords(box, h, w).permute(0, 3, 1, 2).contiguous()


def test_both_views_sample_the_same_original_points():
    # Each view's map holds original coordinates, so correct sampling returns the common points
    # themselves from both views — including the flipped one (bilinear is exact on a linear map).
    pts, _ = intersection_points(BOX1, BOX2_FLIPPED, 4)
    for box in (BOX1, BOX2_FLIPPED):
        got = sample_at(coordinate_map(box, 32, 32), to_view_fraction(pts, box))
        assert torch.allclose(got.permute(0, 2, 3, 1), pts, atol=1e-5)


def test_sampling_a_padded_map_uses_the_extent():
    # a 30x30 view run through a stride-8 model gives a map of the padded 32x32 input; only the
    # top-left 30x30 of it is the view
    pts, _ = intersection_points(BOX1, BOX2_FLIPPED, 4)
    padded = torch.zeros(1, 2, 32, 32)
    padded[..., :30, :30] = coordinate_map(BOX1, 30, 30)
    got = sample_at(padded, to_view_fraction(pts, BOX1), extent=(30 / 32, 30 / 32))
    assert torch.allclose(got.permute(0, 2, 3, 1), pts, atol=1e-5)
    naive = sample_at(padded, to_view_fraction(pts, BOX1))
    assert not torch.allclose(naive.permute(0, 2, 3, 1), pts, atol=1e-3)


def test_negative_cosine_hand_computed_and_masked():
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]]).view(2, 2, 1, 1)
    z = torch.tensor([[0.6, 0.8], [1.0, 0.0]]).view(2, 2, 1, 1)
    # image 0: -cos = -0.6; image 1: -cos = 0
    assert float(negative_cosine(p, z)) == pytest.approx(-0.3)
    assert float(negative_cosine(p, z, torch.tensor([True, False]))) == pytest.approx(-0.6)
    assert float(negative_cosine(p, z, torch.tensor([False, False]))) == 0.0


def test_simsiam_symmetric_with_stop_gradient():
    p1 = torch.tensor([[1.0, 0.0]]).view(1, 2, 1, 1).requires_grad_()
    p2 = torch.tensor([[0.0, 1.0]]).view(1, 2, 1, 1).requires_grad_()
    z1 = torch.tensor([[0.6, 0.8]]).view(1, 2, 1, 1).requires_grad_()
    z2 = torch.tensor([[0.8, 0.6]]).view(1, 2, 1, 1).requires_grad_()
    loss = simsiam_pixel_loss(p1, z1, p2, z2)
    # D(p1, z2) = -0.8, D(p2, z1) = -0.8
    assert float(loss) == pytest.approx(-0.8)
    loss.backward()
    assert p1.grad is not None and p2.grad is not None
    assert z1.grad is None and z2.grad is None  # targets are stop-gradient
