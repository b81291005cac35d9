"""Confident pseudo-label counts against a hand-worked 1x4 example."""

import math

import pytest
import torch

from segssl.evaluation.pseudo_labels import PseudoLabelStats


def _logits(probs: list[list[float]]) -> torch.Tensor:
    """(1, K, 1, W) logits whose softmax is `probs` (one row of K probabilities per pixel)."""
    return torch.tensor(probs).log().T[None, :, None, :]


def test_coverage_accuracy_and_per_class_counts_by_hand():
    # pixels: conf 0.9 -> class 0 (true 0), 0.6 -> 1 (true 0), 0.8 -> 1 (true 1), ignored pixel
    logits = _logits([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.99, 0.01]])
    target = torch.tensor([[[0, 0, 1, 255]]])
    s = PseudoLabelStats(2, [0.5, 0.7, 0.95], ignore_index=255)
    s.update(logits, target)
    lo, mid, hi = s.summary(["a", "b"])
    assert lo["coverage"] == pytest.approx(100.0) and lo["accuracy"] == pytest.approx(200 / 3)
    assert lo["classes"]["b"] == pytest.approx({"share": 200 / 3, "precision": 50.0, "recall": 100.0})
    assert lo["classes"]["a"] == pytest.approx({"share": 100 / 3, "precision": 100.0, "recall": 50.0})
    # > 0.7 keeps the 0.9 and 0.8 pixels, both right
    assert mid["coverage"] == pytest.approx(200 / 3) and mid["accuracy"] == pytest.approx(100.0)
    assert mid["classes"]["a"]["recall"] == pytest.approx(50.0)
    # > 0.95: only the ignored pixel would pass, so nothing is kept
    assert hi["coverage"] == 0.0 and hi["accuracy"] is None and hi["classes"]["a"]["share"] is None
    assert hi["classes"]["a"]["recall"] == 0.0


def test_counts_accumulate_over_batches_like_one_pass():
    torch.manual_seed(0)
    logits, target = torch.randn(4, 3, 5, 6), torch.randint(0, 3, (4, 5, 6))
    one, two = PseudoLabelStats(3, [0.4, 0.6]), PseudoLabelStats(3, [0.4, 0.6])
    one.update(logits, target)
    two.update(logits[:1], target[:1])
    two.update(logits[1:], target[1:])
    assert torch.equal(one.kept, two.kept) and torch.equal(one.correct, two.correct)
    assert int(one.gt.sum()) == 4 * 5 * 6
    assert not math.isnan(one.summary(["x", "y", "z"])[0]["accuracy"])


def test_class_balanced_rule_ranks_within_the_batch_void_pixels_included():
    # class 0 ranks 0.99 (void) above 0.9: its top half is the void pixel, capped at 0.95 -> 0.9 dropped;
    # class 1 ranks 0.8 above 0.6: its top half keeps 0.8, which is right
    logits = _logits([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.99, 0.01]])
    s = PseudoLabelStats(2, [(0.5, 0.95), 0.5], ignore_index=255)
    s.update(logits, torch.tensor([[[0, 0, 1, 255]]]))
    cb, fixed = s.summary(["a", "b"])
    assert cb["rule"] == "cbst p=0.5 cap=0.95" and cb["threshold"] is None and fixed["rule"] == "0.5"
    assert cb["coverage"] == pytest.approx(100 / 3) and cb["accuracy"] == pytest.approx(100.0)
    assert cb["classes"]["b"]["recall"] == pytest.approx(100.0) and cb["classes"]["a"]["recall"] == 0.0
