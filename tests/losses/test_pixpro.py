"""PixPro geometry, propagation and losses against hand-computed values and independent brute force."""

import math

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from segssl.data.views import ViewParams, pixel_coords
from segssl.losses.pixpro import (
    box_intersection,
    cell_diagonal,
    global_ppm,
    instance_loss,
    local_ppm,
    pixcontrast_loss,
    pixpro_loss,
    pixpro_loss_dense,
    positive_mask,
    sample_positive_pairs,
)

# ---------------------------------------------------------------- coordinate mapping


def test_pixel_coords_flipped_crop_hand_values():
    # right-top quarter of the image, flipped, seen as a 4x4 view: x runs from 1 down to 0.5
    c = pixel_coords(torch.tensor([1.0, 0.0, 0.5, 0.5]), 4, 4)[0]
    assert c.shape == (4, 4, 2)
    assert torch.allclose(c[0, :, 0], torch.tensor([0.9375, 0.8125, 0.6875, 0.5625]))
    assert torch.allclose(c[:, 0, 1], torch.tensor([0.0625, 0.1875, 0.3125, 0.4375]))


def test_pixel_coords_crop_and_anisotropic_scale_hand_values():
    c = pixel_coords(torch.tensor([0.25, 0.5, 0.75, 1.0]), 2, 2)[0]
    assert torch.allclose(c[..., 0], torch.tensor([[0.375, 0.625], [0.375, 0.625]]))
    assert torch.allclose(c[..., 1], torch.tensor([[0.625, 0.625], [0.875, 0.875]]))
    c = pixel_coords(torch.tensor([0.0, 0.0, 1.0, 1.0]), 2, 4)[0]  # 2 rows, 4 columns
    assert torch.allclose(c[0, :, 0], torch.tensor([0.125, 0.375, 0.625, 0.875]))
    assert torch.allclose(c[:, 0, 1], torch.tensor([0.25, 0.75]))


def test_pixel_coords_match_an_actual_resized_flipped_crop():
    """A ramp image whose value is the pixel's normalised x (resp. y): a crop's interior pixels
    must read back exactly the original coordinates pixel_coords gives them (flip included)."""
    hh, ww = 48, 64
    xs = ((torch.arange(ww) + 0.5) / ww).expand(hh, ww)
    ys = ((torch.arange(hh) + 0.5) / hh)[:, None].expand(hh, ww)
    img = torch.stack([xs, ys])[None]  # (1, 2, H, W)
    p = ViewParams(top=8, left=16, height=32, width=40, flip=True)
    view = TF.resized_crop(img, p.top, p.left, p.height, p.width, [8, 10], antialias=False)
    view = TF.horizontal_flip(view)
    c = pixel_coords(p.box(hh, ww), 8, 10)[0]  # (8, 10, 2)
    inner = (slice(1, -1), slice(1, -1))  # bilinear resampling clamps at the crop border
    assert torch.allclose(view[0, 0][inner], c[..., 0][inner], atol=1e-5)
    assert torch.allclose(view[0, 1][inner], c[..., 1][inner], atol=1e-5)
    assert c[0, 0, 0] > c[0, -1, 0]  # flipped: x decreases along the row


def test_cell_diagonal_and_intersection_hand_values():
    # 4 rows x 2 cols view of a 0.5 x 0.25 box: cell = 0.25 wide, 0.0625 high
    d = cell_diagonal(torch.tensor([[0.5, 0.0, 0.0, 0.25]]), 4, 2)
    assert torch.allclose(d, torch.tensor([math.sqrt(0.25**2 + 0.0625**2)]))
    inter = box_intersection(torch.tensor([[0.6, 0.1, 0.2, 0.5]]), torch.tensor([[0.4, 0.3, 0.9, 0.8]]))
    assert torch.allclose(inter, torch.tensor([[0.4, 0.3, 0.6, 0.5]]))


def test_positive_mask_identical_views_hand_cases():
    """Same box, same size, square cells: neighbours are spacing = diag / sqrt(2) ~ 0.707 diag apart,
    so threshold 0.7 keeps only the pixel itself and 0.75 adds the 4-neighbourhood."""
    box = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    assert torch.equal(positive_mask(box, box, (3, 3), (3, 3), 0.7)[0], torch.eye(9, dtype=torch.bool))
    m = positive_mask(box, box, (3, 3), (3, 3), 0.75)[0]
    assert m[4].view(3, 3).tolist() == [[False, True, False], [True, True, True], [False, True, False]]
    flipped = torch.tensor([[1.0, 0.0, 0.0, 1.0]])  # mirrored view: pixel j matches pixel W-1-j
    m = positive_mask(box, flipped, (3, 3), (3, 3), 0.7)[0]
    expect = torch.zeros(9, 9, dtype=torch.bool)
    for i in range(3):
        for j in range(3):
            expect[i * 3 + j, i * 3 + (2 - j)] = True
    assert torch.equal(m, expect)


# ---------------------------------------------------------------- sampled positive pairs


def _random_boxes(n: int, gen: torch.Generator) -> torch.Tensor:
    out = []
    for _ in range(n):
        w, h = 0.3 + 0.7 * torch.rand(2, generator=gen)
        x0, y0 = (1 - w) * torch.rand(1, generator=gen), (1 - h) * torch.rand(1, generator=gen)
        b = [float(x0), float(y0), float(x0 + w), float(y0 + h)]
        if torch.rand(1, generator=gen) < 0.5:
            b[0], b[2] = b[2], b[0]
        out.append(b)
    return torch.tensor(out)


def _orig_xy(box: torch.Tensor, idx: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Independent re-derivation of the original-image position of flat pixel idx of an HxW view."""
    i, j = (idx // w).float(), (idx % w).float()
    x = box[0] + (j + 0.5) / w * (box[2] - box[0])
    y = box[1] + (i + 0.5) / h * (box[3] - box[1])
    return torch.stack([x, y], -1)


@pytest.mark.parametrize("size1,size2", [((16, 16), (16, 16)), ((12, 20), (17, 9))])
def test_sampled_pairs_are_within_threshold_and_inside_the_overlap(size1, size2):
    gen = torch.Generator().manual_seed(3)
    b = 6
    box1, box2 = _random_boxes(b, gen), _random_boxes(b, gen)
    thr = 0.7
    pairs = sample_positive_pairs(
        box1, box2, size1, size2, num_anchors=20, pairs_per_image=50, threshold=thr, generator=gen
    )
    assert pairs.idx1.shape == pairs.idx2.shape == pairs.weight.shape == (b, 50)
    for k in range(b):
        if pairs.found[k] == 0:
            assert (pairs.weight[k] == 0).all()
            continue
        assert (pairs.weight[k] == 1).all()
        p1 = _orig_xy(box1[k], pairs.idx1[k], *size1)
        p2 = _orig_xy(box2[k], pairs.idx2[k], *size2)
        (h1, w1), (h2, w2) = size1, size2
        diag1 = math.hypot(float(box1[k, 2] - box1[k, 0]) / w1, float(box1[k, 3] - box1[k, 1]) / h1)
        diag2 = math.hypot(float(box2[k, 2] - box2[k, 0]) / w2, float(box2[k, 3] - box2[k, 1]) / h2)
        dist = (p1 - p2).norm(dim=-1)
        assert (dist < thr * max(diag1, diag2)).all()
        lo_x = max(min(box1[k, 0], box1[k, 2]), min(box2[k, 0], box2[k, 2]))
        hi_x = min(max(box1[k, 0], box1[k, 2]), max(box2[k, 0], box2[k, 2]))
        for p in (p1, p2):
            assert (p[:, 0] >= lo_x - 1e-6).all() and (p[:, 0] <= hi_x + 1e-6).all()
            assert (p[:, 1] >= max(box1[k, 1], box2[k, 1]) - 1e-6).all()
            assert (p[:, 1] <= min(box1[k, 3], box2[k, 3]) + 1e-6).all()
    assert pairs.valid.sum() >= 4  # the random boxes mostly overlap: the test checks real pairs


def test_sampled_pairs_find_every_positive_of_their_anchors():
    """The windowed search finds exactly the brute-force all-pairs positives of each anchor."""
    gen = torch.Generator().manual_seed(5)
    box1, box2 = _random_boxes(4, gen), _random_boxes(4, gen)
    size1, size2 = (10, 14), (15, 11)
    pairs = sample_positive_pairs(
        box1, box2, size1, size2, num_anchors=30, pairs_per_image=8, threshold=0.7, generator=gen
    )
    full = positive_mask(box1, box2, size1, size2, 0.7)  # (B, N1, N2)
    inter = box_intersection(box1, box2)
    c2 = pixel_coords(box2, *size2).flatten(1, 2)
    for k in range(4):
        in2 = (
            (c2[k, :, 0] >= inter[k, 0])
            & (c2[k, :, 0] <= inter[k, 2])
            & (c2[k, :, 1] >= inter[k, 1])
            & (c2[k, :, 1] <= inter[k, 3])
        )
        anchors = pairs.anchors[k][pairs.anchor_valid[k]]
        assert int(pairs.found[k]) == int((full[k][anchors] & in2).sum())


def test_sampling_with_replacement_and_empty_images():
    box1 = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]])
    box2 = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 1.0, 1.0]])  # image 1: no overlap at all
    pairs = sample_positive_pairs(
        box1,
        box2,
        (4, 4),
        (4, 4),
        num_anchors=3,
        pairs_per_image=10,
        generator=torch.Generator().manual_seed(0),
    )
    # identical views, threshold 0.7: each anchor's only positive is itself -> 3 pairs, resampled to 10
    assert pairs.found.tolist() == [3, 0]
    assert torch.equal(pairs.idx1[0], pairs.idx2[0])
    assert set(pairs.idx1[0].tolist()) == set(pairs.anchors[0].tolist())
    assert pairs.weight[0].eq(1).all() and pairs.weight[1].eq(0).all()
    again = sample_positive_pairs(
        box1,
        box2,
        (4, 4),
        (4, 4),
        num_anchors=3,
        pairs_per_image=10,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(again.idx1, pairs.idx1) and torch.equal(again.idx2, pairs.idx2)


# ---------------------------------------------------------------- pixel propagation


def _loop_ppm(x, v, idx, kh, kw, gamma):
    """Eq. 3 written pixel by pixel, the obvious way."""
    b, _, h, w = x.shape
    out = torch.zeros(b, v.shape[1], idx.shape[1], dtype=x.dtype)
    for n in range(b):
        for p in range(idx.shape[1]):
            i, j = divmod(int(idx[n, p]), w)
            for di in range(-(kh // 2), kh - kh // 2):
                for dj in range(-(kw // 2), kw - kw // 2):
                    a, c = i + di, j + dj
                    if 0 <= a < h and 0 <= c < w:
                        s = torch.cosine_similarity(x[n, :, i, j], x[n, :, a, c], dim=0).clamp_min(0) ** gamma
                        out[n, :, p] += s * v[n, :, a, c]
    return out


def test_local_ppm_equals_global_ppm_when_the_window_covers_the_image():
    torch.manual_seed(0)
    x, v = torch.randn(2, 5, 5, 7, dtype=torch.float64), torch.randn(2, 3, 5, 7, dtype=torch.float64)
    idx = torch.arange(35).expand(2, 35)
    g = global_ppm(x, v, gamma=2.0).flatten(2)
    for window in [(9, 13), (11, 16)]:  # >= 2H-1 x 2W-1: every pixel sees the whole map
        assert torch.allclose(local_ppm(x, v, idx, window, gamma=2.0), g, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("window", [3, (5, 9), (4, 2)])
def test_local_ppm_matches_a_pixel_loop_with_borders_masked(window):
    torch.manual_seed(1)
    x, v = torch.randn(2, 4, 6, 5, dtype=torch.float64), torch.randn(2, 3, 6, 5, dtype=torch.float64)
    idx = torch.tensor([[0, 4, 29, 12, 12], [25, 7, 3, 18, 29]])  # corners, borders, a repeat
    kh, kw = (window, window) if isinstance(window, int) else window
    got = local_ppm(x, v, idx, window, gamma=2.0)
    assert torch.allclose(got, _loop_ppm(x, v, idx, kh, kw, 2.0), rtol=1e-10, atol=1e-12)


def test_global_ppm_hand_values():
    # two pixels: x = (1, 0) and (1, 1)/sqrt2-ish -> cos = 1/sqrt2, s = 0.5 with gamma 2
    x = torch.tensor([[1.0, 1.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    v = torch.tensor([[10.0, 100.0]]).view(1, 1, 1, 2)
    y = global_ppm(x, v, gamma=2.0).flatten()
    assert torch.allclose(y, torch.tensor([10 + 0.5 * 100, 0.5 * 10 + 100]))


# ---------------------------------------------------------------- losses


def test_pixpro_loss_hand_values():
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    col = lambda *vs: torch.stack(vs, -1)[None]  # (1, C, P)  # noqa: E731
    assert torch.allclose(pixpro_loss(col(e0), col(e0), col(e1), col(e1)), torch.tensor(-2.0))
    assert torch.allclose(pixpro_loss(col(e0), col(e1), col(e1), col(e0)), torch.tensor(0.0))
    # opposite then identical: -(-1 + 1) = 0
    assert torch.allclose(pixpro_loss(col(e0), col(-3 * e0), col(e0), col(e0)), torch.tensor(0.0))
    # two pairs: (cos 1 + cos 1) and (cos 0 + cos 1/sqrt2) -> mean of -(2) and -(0.7071)
    d = torch.tensor([1.0, 1.0])
    loss = pixpro_loss(col(e0, e0), col(e0, e1), col(e1, d), col(e1, e0))
    assert torch.allclose(loss, torch.tensor(-(2 + 1 / math.sqrt(2)) / 2))


def test_pixpro_loss_ignores_images_without_pairs_and_never_nans():
    p = torch.randn(2, 4, 3, requires_grad=True)
    k = torch.randn(2, 4, 3)
    w = torch.tensor([[1.0] * 3, [0.0] * 3])
    loss = pixpro_loss(p, k, p, k, w)
    only_first = pixpro_loss(p[:1], k[:1], p[:1], k[:1])
    assert torch.allclose(loss, only_first)
    none = pixpro_loss(p, k, p, k, torch.zeros(2, 3))
    none.backward()
    assert none.item() == 0.0 and torch.isfinite(p.grad).all()


def test_pixpro_loss_dense_hand_values():
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    p1 = torch.stack([e0, e1], -1)[None]  # view-1 pixels: e0, e1
    k2 = torch.stack([e0, e0, e1], -1)[None]  # view-2 pixels: e0, e0, e1
    pos = torch.tensor([[[True, False, False], [False, False, True]]])
    # pairs (0, 0): cos 1 and (1, 2): cos 1, both directions -> -2
    assert torch.allclose(pixpro_loss_dense(p1, k2, k2, p1, pos), torch.tensor(-2.0))
    pos = torch.tensor([[[True, True, True], [False, False, False]]])
    # pairs (0, j) for all j: cos(e0, k2_j) = 1, 1, 0 in each direction -> -(2 + 2 + 0) / 3
    assert torch.allclose(pixpro_loss_dense(p1, k2, k2, p1, pos), torch.tensor(-4.0 / 3))
    # a second image without positives does not change the mean
    two = pixpro_loss_dense(
        p1.repeat(2, 1, 1),
        k2.repeat(2, 1, 1),
        k2.repeat(2, 1, 1),
        p1.repeat(2, 1, 1),
        torch.cat([pos, torch.zeros_like(pos)]),
    )
    assert torch.allclose(two, torch.tensor(-4.0 / 3))


def test_pixcontrast_loss_hand_infonce():
    tau = 0.3
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    pos = torch.tensor([[True, False, False], [True, True, False], [False, False, False]])
    e = math.exp
    l0 = -math.log(e(1 / tau) / (e(1 / tau) + e(0) + e(-1 / tau)))
    l1 = -math.log((e(0) + e(1 / tau)) / (e(0) + e(1 / tau) + e(0)))
    # query 2 has no positive: left out of the mean
    assert torch.allclose(pixcontrast_loss(q, k, pos, tau), torch.tensor((l0 + l1) / 2))
    qg = q.clone().requires_grad_(True)
    pixcontrast_loss(qg, k, torch.zeros_like(pos), tau).backward()
    assert torch.isfinite(qg.grad).all()


def test_instance_loss_hand_values():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]])
    assert torch.allclose(instance_loss(a, b, a, b), torch.tensor(-2.0))
    assert torch.allclose(instance_loss(a, torch.tensor([[0.0, 1.0]]), a, -b), torch.tensor(1.0))
