"""Losses of CCT, GCT, Zhao et al. pixel contrast, AEL and self-correcting networks against values
computed by hand (small tensors; the expected numbers are derived in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from segssl.losses.ael import (
    category_confidence,
    class_sampling_probs,
    component_box,
    copy_paste,
    equalization_mask,
    equalization_rates,
    reweighted_ce,
    update_confidence,
)
from segssl.losses.cct import cct_unsupervised_loss
from segssl.losses.gct import (
    dilate,
    dynamic_consistency_targets,
    flaw_correction_loss,
    flaw_detector_loss,
    flaw_target,
    gaussian_blur,
    gaussian_kernel,
    odd_kernel,
    process_flawmap,
)
from segssl.losses.pixel_contrast import (
    label_contrastive_loss,
    sample_pixels_per_class,
    within_image_contrast,
)
from segssl.losses.self_correcting import alpha_schedule, linear_self_correction, soft_cross_entropy

LN3 = math.log(3.0)


def pix(*columns: list[float]) -> torch.Tensor:
    """(1, K, 1, N) tensor from N per-pixel class vectors."""
    return torch.tensor(columns, dtype=torch.float32).t().reshape(1, len(columns[0]), 1, len(columns))


# ------------------------------------------------------------------------------------------ CCT


def test_cct_unsupervised_loss_hand_values():
    target = pix([1.0, 0.0])
    a1 = pix([0.0, 0.0])  # softmax (.5, .5): squared errors .25, .25 -> mean .25
    a2 = pix([LN3, 0.0])  # softmax (.75, .25): .0625, .0625 -> mean .0625
    assert float(cct_unsupervised_loss([a1, a2], target)) == pytest.approx((0.25 + 0.0625) / 2)


def test_cct_confidence_masking_and_valid():
    target = pix([1.0, 0.0], [0.6, 0.4])  # pixel 0 confident, pixel 1 not
    aux = pix([0.0, 0.0], [0.0, 0.0])  # both (.5, .5): pixel errors .25 and .01
    assert float(cct_unsupervised_loss([aux], target)) == pytest.approx((0.25 + 0.01) / 2)
    assert float(cct_unsupervised_loss([aux], target, confidence=0.7)) == pytest.approx(0.25)
    valid = torch.tensor([[[False, True]]])
    assert float(cct_unsupervised_loss([aux], target, valid=valid)) == pytest.approx(0.01)
    assert float(cct_unsupervised_loss([aux], target, confidence=0.7, valid=valid)) == 0.0


# ------------------------------------------------------------------------------------------ GCT


def test_gct_kernel_sizes_and_gaussian():
    assert [odd_kernel(321, 8), odd_kernel(321, 4), odd_kernel(321, 16)] == [41, 81, 21]  # reference sizes
    assert [odd_kernel(32, 16), odd_kernel(8, 16)] == [3, 1]
    k = gaussian_kernel(3)  # sigma = 0.3 (0.5 (3 - 1) - 1) + 0.8 = 0.8
    g = torch.tensor([math.exp(-1 / (2 * 0.64)), 1.0, math.exp(-1 / (2 * 0.64))])
    g = g / g.sum()  # (.2390, .5220, .2390)
    assert torch.allclose(k, torch.outer(g, g), atol=1e-6)
    assert float(k.sum()) == pytest.approx(1.0)


def test_gct_blur_and_dilate():
    x = torch.full((1, 1, 5, 5), 3.0)
    assert torch.allclose(gaussian_blur(x, 3), x)  # reflection padding keeps constants
    d = torch.zeros(1, 1, 5, 5)
    d[0, 0, 2, 2] = 1.0
    assert torch.allclose(gaussian_blur(d, 3)[0, 0, 1:4, 1:4], gaussian_kernel(3), atol=1e-6)
    want = torch.zeros(5, 5)
    want[1:4, 1:4] = 1.0
    assert torch.equal(dilate(d)[0, 0], want)


def test_gct_flaw_target_hand_values():
    label = torch.zeros(1, 8, 8, dtype=torch.long)
    prob = torch.zeros(1, 2, 8, 8)
    prob[:, 0] = 1.0  # right everywhere ...
    prob[0, :, 4, 4] = torch.tensor([0.0, 1.0])  # ... but at (4, 4): sum |onehot - p| = 2
    prob[0, :, 0, 7] = torch.tensor([0.0, 1.0])  # wrong at an ignored pixel: no known flaw
    label[0, 0, 7] = 255
    # size 8: first blur size int(8/8) = 1 (none); nu = 0 -> the normalised diff itself
    t0 = flaw_target(prob, label, 255, mu=0.5, nu=0)
    want = torch.zeros(8, 8)
    want[4, 4] = 1.0
    assert torch.allclose(t0[0, 0], want)
    # nu = 1: 3x3 dilation, then blur with kernel int(8/4) = 2 -> 3: g = (a, b, a) = (.2390, .5220, .2390)
    t1 = flaw_target(prob, label, 255, mu=0.5, nu=1)[0, 0]
    g = gaussian_kernel(3)[1] / gaussian_kernel(3)[1].sum()
    a, b = float(g[0]), float(g[1])
    assert float(t1[4, 4]) == pytest.approx(1.0)  # every neighbour is in the dilated block
    assert float(t1[3, 3]) == pytest.approx((a + b) ** 2, abs=1e-5)  # 2x2 of the block under the kernel
    assert float(t1[2, 4]) == pytest.approx(a, abs=1e-5)  # one kernel row reaches the block
    assert float(t1[0, 0]) == pytest.approx(0.0, abs=1e-6)


def test_gct_process_flawmap():
    f = torch.tensor([[[[-1.0, 0.5], [0.2, 1.0]]]])  # 2x2: blur size 1 (none)
    assert torch.allclose(process_flawmap(f), torch.tensor([[[[0.0, 0.5], [0.2, 1.0]]]]), atol=1e-6)
    g = torch.tensor([[[[0.0, 0.2], [0.4, 0.6]]]])  # min-max normalised: 0, 1/3, 2/3, 1
    assert torch.allclose(process_flawmap(g), g / 0.6, atol=1e-6)
    assert torch.equal(process_flawmap(torch.full((1, 1, 2, 2), 0.05)), torch.zeros(1, 1, 2, 2))  # flawless


def test_gct_dynamic_consistency_targets():
    p1 = pix([0.9, 0.1], [0.8, 0.2], [0.7, 0.3])
    p2 = pix([0.2, 0.8], [0.3, 0.7], [0.4, 0.6])
    f1 = torch.tensor([0.1, 0.5, 0.7]).view(1, 1, 1, 3)
    f2 = torch.tensor([0.3, 0.2, 0.9]).view(1, 1, 1, 3)
    # threshold .6: g1 = (.1, .5, 1), g2 = (.3, .2, 1); T1 keeps its own where g2 >= g1: (yes, no, yes);
    # T2 keeps its own where g1 >= g2: (no, yes, yes); both flawed only at pixel 3
    t1, t2, both = dynamic_consistency_targets(p1, p2, f1, f2, threshold=0.6)
    assert torch.equal(t1[..., 0], p1[..., 0]) and torch.equal(t1[..., 1], p2[..., 1])
    assert torch.equal(t1[..., 2], p1[..., 2])
    assert torch.equal(t2[..., 0], p1[..., 0]) and torch.equal(t2[..., 1], p2[..., 1])
    assert torch.equal(t2[..., 2], p2[..., 2])
    assert both.flatten().tolist() == [0.0, 0.0, 1.0]


def test_gct_flaw_losses():
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    assert float(flaw_correction_loss(f)) == pytest.approx((1 + 4 + 9 + 16) / 4)
    assert float(flaw_correction_loss(f, mask)) == pytest.approx((1 + 16) / 4)
    valid = torch.tensor([[[True, True], [False, False]]])
    assert float(flaw_correction_loss(f, mask, valid)) == pytest.approx(1 / 2)
    pred, target = torch.tensor([[[[1.0, 0.0]]]]), torch.tensor([[[[0.0, 0.0]]]])
    assert float(flaw_detector_loss(pred, target)) == pytest.approx(0.5)
    assert float(flaw_detector_loss(pred, target, torch.tensor([[[[True, False]]]]))) == pytest.approx(1.0)
    assert float(flaw_detector_loss(pred, target, torch.tensor([[[[False, False]]]]))) == 0.0


# ------------------------------------------------------------------------- Zhao pixel contrast


def _zhao_reference(anchor, contrast, labels, tau):
    """The formula written out with loops and math.exp."""
    total = 0.0
    n = len(labels)
    for p in range(n):
        s = [sum(x * y for x, y in zip(anchor[p], contrast[q], strict=True)) / tau for q in range(n)]
        neg = sum(math.exp(s[q]) for q in range(n) if labels[q] != labels[p])
        pos = [q for q in range(n) if labels[q] == labels[p]]
        total += sum(-math.log(math.exp(s[q]) / (math.exp(s[q]) + neg)) for q in pos) / len(pos)
    return total / n


def test_label_contrastive_loss_hand_values():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    y = torch.tensor([0, 1, 0])
    # tau 1: anchors 0, 2: -log(e / (e + 1)) = log(1 + 1/e) = .31326; anchor 1: log(1 + 2/e) = .55144
    want = (2 * math.log(1 + math.exp(-1)) + math.log(1 + 2 * math.exp(-1))) / 3
    assert float(label_contrastive_loss(a, a, y, tau=1.0)) == pytest.approx(want, rel=1e-6)
    assert want == pytest.approx(0.39265, abs=1e-5)
    g = torch.Generator().manual_seed(0)
    e1 = torch.nn.functional.normalize(torch.randn(7, 3, generator=g), dim=1)
    e2 = torch.nn.functional.normalize(torch.randn(7, 3, generator=g), dim=1)
    y = torch.tensor([0, 1, 1, 2, 0, 2, 2])
    got = float(label_contrastive_loss(e1, e2, y, tau=0.1))
    assert got == pytest.approx(_zhao_reference(e1.tolist(), e2.tolist(), y.tolist(), 0.1), rel=1e-5)


def test_label_contrastive_loss_without_negatives_is_zero():
    a = torch.nn.functional.normalize(torch.randn(4, 3), dim=1)
    same = torch.zeros(4, dtype=torch.long)
    assert float(label_contrastive_loss(a, a, same)) == pytest.approx(0.0, abs=1e-6)


def test_sample_pixels_per_class():
    labels = torch.tensor([[0, 0, 0, 1], [255, 2, 0, 1]])
    idx = sample_pixels_per_class(labels, 2, 255, torch.Generator().manual_seed(0))
    picked = labels.flatten()[idx]
    assert sorted(picked.tolist()) == [0, 0, 1, 1, 2]  # at most 2 per class, never the ignored pixel
    assert len(set(idx.tolist())) == 5
    assert sample_pixels_per_class(torch.full((2, 2), 255), 3, 255).numel() == 0


def test_within_image_contrast_symmetric_and_empty():
    torch.manual_seed(0)
    f1 = torch.nn.functional.normalize(torch.randn(1, 4, 2, 3), dim=1)
    f2 = torch.nn.functional.normalize(torch.randn(1, 4, 2, 3), dim=1)
    y = torch.tensor([[[0, 1, 1], [2, 0, 255]]])
    got = within_image_contrast(f1, f2, y, 255, per_class=10, tau=0.5)  # every labeled pixel sampled
    idx = torch.tensor([0, 1, 2, 3, 4])
    a, c = f1[0].flatten(1)[:, idx].t(), f2[0].flatten(1)[:, idx].t()
    lab = y.flatten()[idx]
    want = 0.5 * (
        _zhao_reference(a.tolist(), c.tolist(), lab.tolist(), 0.5)
        + _zhao_reference(c.tolist(), a.tolist(), lab.tolist(), 0.5)
    )
    assert float(got) == pytest.approx(want, rel=1e-5)
    f1.requires_grad_(True)
    empty = within_image_contrast(f1, f2, torch.full((1, 2, 3), 255), 255)
    assert float(empty) == 0.0 and empty.requires_grad


# ------------------------------------------------------------------------------------------ AEL


def test_ael_category_confidence():
    prob = pix([0.8, 0.2, 0.0], [0.6, 0.4, 0.0], [0.7, 0.3, 0.0], [0.1, 0.1, 0.8])
    label = torch.tensor([[[0, 0, 1, 255]]])
    conf, present = category_confidence(prob, label, 255)
    # class 0: mean(.8, .6) = .7; class 1: .3; class 2: absent
    assert torch.allclose(conf, torch.tensor([0.7, 0.3, 0.0]))
    assert present.tolist() == [True, True, False]


def test_ael_update_confidence():
    bank, seen = torch.tensor([0.5, 0.5, 0.5]), torch.tensor([True, False, True])
    conf, present = torch.tensor([0.7, 0.3, 0.9]), torch.tensor([True, True, False])
    new, seen2 = update_confidence(bank, seen, conf, present, momentum=0.9)
    # seen + present: .9 * .5 + .1 * .7 = .52; first sighting: .3; absent: unchanged .5
    assert torch.allclose(new, torch.tensor([0.52, 0.3, 0.5]))
    assert seen2.tolist() == [True, True, True]


def test_ael_sampling_probs_and_rates():
    e = math.e
    want = torch.tensor([e / (e + 1), 1 / (e + 1)])
    assert torch.allclose(class_sampling_probs(torch.tensor([0.0, 1.0])), want)
    # power .5: (1 - .75)^.5 = .5 and 0 -> softmax(.5, 0)
    want = torch.tensor([math.exp(0.5), 1.0]) / (math.exp(0.5) + 1)
    assert torch.allclose(class_sampling_probs(torch.tensor([0.75, 1.0]), power=0.5), want)
    # 1 - Conf = (.8, .4, 0), divided by its max .8: (1, .5, 0); beta 2 squares it
    assert torch.allclose(equalization_rates(torch.tensor([0.2, 0.6, 1.0])), torch.tensor([1.0, 0.5, 0.0]))
    squared = equalization_rates(torch.tensor([0.2, 0.6, 1.0]), beta=2.0)
    assert torch.allclose(squared, torch.tensor([1.0, 0.25, 0.0]))


def test_ael_equalization_mask():
    pseudo = torch.tensor([[0, 1, 255, 0]])
    keep = equalization_mask(pseudo, torch.tensor([1.0, 0.0]), 255)
    assert keep.tolist() == [[True, False, False, True]]
    big = torch.zeros(1, 100, 100, dtype=torch.long)
    share = equalization_mask(big, torch.tensor([0.5]), 255, torch.Generator().manual_seed(0)).float().mean()
    assert 0.47 < float(share) < 0.53  # 10,000 Bernoulli(.5): 6 standard deviations


def test_ael_reweighted_ce_hand_values():
    logits = pix([0.0, 0.0], [0.0, LN3], [5.0, 0.0])
    pseudo = torch.tensor([[[0, 1, 255]]])
    conf = torch.tensor([[[0.5, 1.0, 0.9]]])
    # weights conf^2 = (.25, 1, ignored); CE = (log 2, -log .75)
    want = (0.25 * math.log(2) - math.log(0.75)) / 1.25
    assert float(reweighted_ce(logits, pseudo, conf, 2.0, None, 255)) == pytest.approx(want, rel=1e-6)
    keep = torch.tensor([[[True, False, True]]])
    assert float(reweighted_ce(logits, pseudo, conf, 2.0, keep, 255)) == pytest.approx(math.log(2), rel=1e-6)
    none = torch.zeros(1, 1, 3, dtype=torch.bool)
    assert float(reweighted_ce(logits, pseudo, conf, 2.0, none, 255)) == 0.0


def test_ael_copy_paste_and_component_box():
    img, lab = torch.zeros(3, 2, 2), torch.tensor([[0, 0], [0, 0]])
    src, src_lab = torch.ones(3, 2, 2), torch.tensor([[4, 1], [4, 2]])
    out_i, out_l = copy_paste(img, lab, src, src_lab, torch.tensor([4, 2]))
    assert out_l.tolist() == [[4, 0], [4, 2]]
    assert out_i[:, 0, 1].tolist() == [0, 0, 0] and out_i[:, 1, 1].tolist() == [1, 1, 1]
    mask = torch.zeros(6, 6, dtype=torch.bool)
    mask[1:3, 2:4] = True  # 4 pixels
    mask[5, 0] = True  # 1 pixel
    assert component_box(mask, min_area=2) == (1, 2, 3, 4)
    assert component_box(mask, min_area=5) is None
    assert component_box(torch.zeros(3, 3, dtype=torch.bool)) is None


# ----------------------------------------------------------------------------- self-correcting


def test_linear_self_correction_hand_values():
    p = pix([0.0, 0.0])  # primary (.5, .5)
    anc = pix([math.log(9.0), 0.0])  # ancillary (.9, .1)
    # alpha 1: q ∝ sqrt(.5 * .9), sqrt(.5 * .1) -> ratio 3 -> (.75, .25)
    assert torch.allclose(linear_self_correction(p, anc, 1.0).flatten(), torch.tensor([0.75, 0.25]))
    # alpha 3: q ∝ .5^(1/4) .9^(3/4), .5^(1/4) .1^(3/4) -> ratio 9^(3/4)
    r = 9**0.75
    want = torch.tensor([r / (r + 1), 1 / (r + 1)])
    assert torch.allclose(linear_self_correction(p, anc, 3.0).flatten(), want)
    assert torch.allclose(linear_self_correction(p, anc, 0.0).flatten(), torch.tensor([0.5, 0.5]))
    assert torch.allclose(linear_self_correction(p, anc, 1e6).flatten(), torch.tensor([0.9, 0.1]), atol=1e-5)
    with pytest.raises(ValueError):
        linear_self_correction(p, anc, -1.0)


def test_soft_cross_entropy_and_alpha_schedule():
    logits = pix([0.0, LN3], [0.0, 0.0])  # log-probs (log .25, log .75) and (log .5, log .5)
    q = pix([0.5, 0.5], [1.0, 0.0])
    per = [-(0.5 * math.log(0.25) + 0.5 * math.log(0.75)), math.log(2)]
    assert float(soft_cross_entropy(logits, q)) == pytest.approx(sum(per) / 2, rel=1e-6)
    valid = torch.tensor([[[True, False]]])
    assert float(soft_cross_entropy(logits, q, valid)) == pytest.approx(per[0], rel=1e-6)
    assert alpha_schedule(5, 10, 20, 30.0, 0.5) == 30.0
    assert alpha_schedule(15, 10, 20, 30.0, 0.5) == pytest.approx(15.25)
    assert alpha_schedule(25, 10, 20, 30.0, 0.5) == 0.5
    assert alpha_schedule(3, 10, 10, 30.0, 0.5) == 0.5
