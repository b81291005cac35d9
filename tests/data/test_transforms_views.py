"""Joint transforms keep masks valid; two-view crop boxes locate every view pixel in the original image."""

import numpy as np
import pytest
import torch

from segssl.data.transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize, to_tv, train_transform
from segssl.data.views import TwoViews, ViewParams, overlap_fraction, pixel_coords

IGN = 255


def _scene(h, w):
    img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    lab = np.zeros((h, w), np.uint8)
    lab[:, w // 2 :] = 2  # only classes 0 and 2: a bilinear resize would invent 1s on the border
    lab[: h // 4] = IGN
    return img, lab


@pytest.mark.parametrize("seed", range(6))
def test_train_transform_keeps_mask_values_and_crop_size(seed):
    torch.manual_seed(seed)
    tf = train_transform((32, 40), ignore_index=IGN, scale=(0.5, 2.0), color_jitter=0.3)
    img, mask = tf(*to_tv(*_scene(37, 53)))
    assert img.shape == (3, 32, 40) and img.dtype == torch.float32
    assert mask.shape == (32, 40) and mask.dtype == torch.int64
    assert set(torch.unique(mask).tolist()) <= {0, 2, IGN}


def test_padding_uses_ignore_index_and_black_image():
    torch.manual_seed(0)
    # scale 0.5 of a 16x16 base: the 16x16 image becomes 8x8 inside a 32x32 crop
    tf = train_transform((32, 32), ignore_index=IGN, base_size=(16, 16), scale=(0.5, 0.5), hflip=False, color_jitter=0)
    img = np.full((16, 16, 3), 200, np.uint8)
    lab = np.ones((16, 16), np.uint8)
    x, m = tf(*to_tv(img, lab))
    assert int((m == 1).sum()) == 64 and int((m == IGN).sum()) == 32 * 32 - 64
    pixels = denormalize(x) * 255  # (3, 32, 32) back in uint8 units
    inside = (m == 1)[None].expand_as(pixels)
    assert torch.allclose(pixels[inside], torch.tensor(200.0), atol=1.0)
    assert torch.allclose(pixels[~inside], torch.tensor(0.0), atol=1.0)


def test_scale_is_relative_to_non_square_base_size():
    # scale 0.5 of a 20x24 (h, w) image with base_size = its own size -> 10x12 = 120 labeled pixels
    tf = train_transform((32, 32), ignore_index=IGN, base_size=(20, 24), scale=(0.5, 0.5), color_jitter=0)
    _, m = tf(*to_tv(np.zeros((20, 24, 3), np.uint8), np.zeros((20, 24), np.uint8)))
    assert int((m == 0).sum()) == 120


def test_normalize_uses_imagenet_statistics():
    tf = train_transform((4, 4), ignore_index=IGN, base_size=(4, 4), scale=(1, 1), hflip=False, color_jitter=0)
    x, _ = tf(*to_tv(np.full((4, 4, 3), 255, np.uint8), np.zeros((4, 4), np.uint8)))
    expected = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    assert torch.allclose(x[:, 0, 0], torch.tensor(expected), atol=1e-5)


def test_pixel_coords_hand_computed():
    box = torch.tensor([[0.25, 0.0, 0.75, 0.5]])
    c = pixel_coords(box, 2, 2)
    assert c.shape == (1, 2, 2, 2)
    # x = 0.25 + (j + 0.5) / 2 * 0.5, y = 0 + (i + 0.5) / 2 * 0.5
    assert torch.allclose(c[0, ..., 0], torch.tensor([[0.375, 0.625], [0.375, 0.625]]))
    assert torch.allclose(c[0, ..., 1], torch.tensor([[0.125, 0.125], [0.375, 0.375]]))
    flipped = pixel_coords(torch.tensor([0.75, 0.0, 0.25, 0.5]), 2, 2)  # x0 > x1: horizontally flipped view
    assert torch.allclose(flipped[0, ..., 0], torch.tensor([[0.625, 0.375], [0.625, 0.375]]))
    assert torch.allclose(flipped[0, ..., 1], c[0, ..., 1])
    # scaled crop: a 4-wide view of the box x in [0, 1] puts centres at 1/8, 3/8, 5/8, 7/8
    full = pixel_coords(torch.tensor([0.0, 0.0, 1.0, 1.0]), 1, 4)
    assert torch.allclose(full[0, 0, :, 0], torch.tensor([0.125, 0.375, 0.625, 0.875]))


def test_view_params_box_and_overlap():
    p = ViewParams(top=10, left=20, height=30, width=40, flip=False)
    assert torch.allclose(p.box(60, 80), torch.tensor([0.25, 1 / 6, 0.75, 40 / 60]))
    q = ViewParams(top=10, left=20, height=30, width=40, flip=True)
    assert torch.allclose(q.box(60, 80), torch.tensor([0.75, 1 / 6, 0.25, 40 / 60]))
    b1, b2 = torch.tensor([0.0, 0.0, 0.5, 0.5]), torch.tensor([0.25, 0.25, 1.0, 1.0])
    # intersection 0.25 x 0.25 over the smaller area 0.25, flips do not change it
    assert overlap_fraction(b1, b2) == pytest.approx(0.25)
    assert overlap_fraction(torch.tensor([0.5, 0.0, 0.0, 0.5]), b2) == pytest.approx(0.25)
    assert overlap_fraction(b1, torch.tensor([0.6, 0.6, 1.0, 1.0])) == 0.0


def test_two_views_boxes_match_the_actual_crop():
    h, w = 120, 200
    # paint each pixel with its own coordinates: R = column, G = row
    xs = torch.arange(w).view(1, w).expand(h, w)
    ys = torch.arange(h).view(h, 1).expand(h, w)
    image = torch.stack([xs, ys, torch.zeros_like(xs)]).to(torch.uint8)
    tv = TwoViews(size=(24, 32), scale=(0.2, 0.6), color_jitter=0, grayscale_p=0, blur_p=0, min_overlap=0.3)
    gen = torch.Generator().manual_seed(0)
    flips = set()
    for _ in range(6):
        out = tv(image, gen)
        assert overlap_fraction(out["box1"], out["box2"]) >= 0.3
        for v, b in ((out["view1"], out["box1"]), (out["view2"], out["box2"])):
            assert v.shape == (3, 24, 32)
            flips.add(bool(b[0] > b[2]))
            pix = denormalize(v) * 255
            coords = pixel_coords(b, 24, 32)[0]
            # pixel k's centre is at (k + 0.5) / size in normalised coordinates
            ex, ey = coords[..., 0] * w - 0.5, coords[..., 1] * h - 0.5
            inner = (slice(2, -2), slice(2, -2))  # antialiasing clamps at the crop border
            assert (pix[0][inner] - ex[inner]).abs().max() < 1.5
            assert (pix[1][inner] - ey[inner]).abs().max() < 1.5
    assert flips == {True, False}  # both flipped and unflipped views were checked


def test_two_views_deterministic_under_a_generator():
    image = torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    tv = TwoViews(size=(16, 16), color_jitter=0, grayscale_p=0, blur_p=0)
    a = tv(image, torch.Generator().manual_seed(4))
    b = tv(image, torch.Generator().manual_seed(4))
    assert all(torch.equal(a[k], b[k]) for k in ("view1", "view2", "box1", "box2"))
