"""Semi-supervised losses against values computed by hand on one- and two-pixel inputs."""

import math

import pytest
import torch

from segssl.losses.semi import cps_loss, pseudo_label_ce, softmax_mse

LN3 = math.log(3.0)


def _px(*values) -> torch.Tensor:
    """(1, K, 1, N) logits: one column per pixel."""
    return torch.tensor(values, dtype=torch.float32).T.reshape(1, len(values[0]), 1, len(values))


def test_softmax_mse_mean_and_sum_over_classes():
    logits = _px([0.0, LN3])  # softmax = [0.25, 0.75]
    target = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    assert softmax_mse(logits, target).item() == pytest.approx((0.75**2 + 0.75**2) / 2)
    assert softmax_mse(logits, target, class_reduction="sum").item() == pytest.approx(1.125)
    assert softmax_mse(logits, target, weight=0.5).item() == pytest.approx(0.28125)


def test_softmax_mse_averages_over_valid_pixels_only_and_weights_do_not_renormalise():
    logits = _px([0.0, LN3], [0.0, 0.0])  # pixel 2: softmax [0.5, 0.5]
    target = torch.tensor([[1.0, 0.5], [0.0, 0.5]]).view(1, 2, 1, 2)  # pixel 2 matches exactly
    valid = torch.tensor([[[True, True]]])
    assert softmax_mse(logits, target, valid=valid).item() == pytest.approx(0.5625 / 2)
    assert softmax_mse(logits, target, valid=torch.tensor([[[True, False]]])).item() == pytest.approx(0.5625)
    w = torch.tensor([[[0.0, 1.0]]])  # weight zero on the only non-zero pixel, denominator stays 2
    assert softmax_mse(logits, target, weight=w, valid=valid).item() == pytest.approx(0.0)


def test_no_valid_pixel_gives_zero_with_a_graph():
    logits = _px([0.0, LN3]).requires_grad_()
    loss = softmax_mse(logits, torch.zeros(1, 2, 1, 1), valid=torch.zeros(1, 1, 1, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_pseudo_label_ce_values_and_weights():
    logits = _px([0.0, LN3], [0.0, LN3])
    target = torch.tensor([[[0, 1]]])
    ce0, ce1 = math.log(4.0), -math.log(0.75)
    assert pseudo_label_ce(logits, target).item() == pytest.approx((ce0 + ce1) / 2)
    w = torch.tensor([[[1.0, 0.0]]])
    assert pseudo_label_ce(logits, target, weight=w).item() == pytest.approx(ce0 / 2)
    assert pseudo_label_ce(logits, target, weight=0.25).item() == pytest.approx(0.25 * (ce0 + ce1) / 2)


def test_cps_loss_uses_the_other_networks_hard_labels_without_gradient():
    la = _px([0.0, LN3]).requires_grad_()  # argmax 1, softmax [0.25, 0.75]
    lb = _px([LN3, 0.0]).requires_grad_()  # argmax 0, softmax [0.75, 0.25]
    loss = cps_loss(la, lb)
    assert loss.item() == pytest.approx(2 * math.log(4.0))  # CE(la, 0) + CE(lb, 1)
    loss.backward()
    # d CE(la, y=0) / d la = softmax - onehot(0): the argmax of la (supervising lb) adds nothing
    assert la.grad.flatten().tolist() == pytest.approx([-0.75, 0.75])
    assert lb.grad.flatten().tolist() == pytest.approx([0.75, -0.75])
    fixed = cps_loss(la.detach(), lb.detach(), target_a=torch.tensor([[[0]]]), target_b=torch.tensor([[[1]]]))
    assert fixed.item() == pytest.approx(-math.log(0.75) + -math.log(0.75))  # CE(la, 1) + CE(lb, 0)
