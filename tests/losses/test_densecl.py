"""DenseCL losses against hand-computed values on tiny vectors."""

import math

import pytest
import torch

from segssl.losses.densecl import dense_info_nce, densecl_loss, info_nce, match_by_similarity


def nce(pos: float, negs: list[float], tau: float) -> float:
    """-log e^{pos/t} / (e^{pos/t} + sum e^{neg/t}), written out."""
    num = math.exp(pos / tau)
    return -math.log(num / (num + sum(math.exp(n / tau) for n in negs)))


def test_info_nce_hand_computed():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    # query 0: pos 0.6, negs (0, -1); query 1: pos 1, negs (1, 0)
    expected = (nce(0.6, [0.0, -1.0], 0.5) + nce(1.0, [1.0, 0.0], 0.5)) / 2
    assert float(info_nce(q, k, queue, 0.5)) == pytest.approx(expected, rel=1e-6)


def test_info_nce_normalises_inputs():
    q = torch.tensor([[3.0, 0.0]])
    k = torch.tensor([[1.2, 1.6]])  # norm 2, direction (0.6, 0.8)
    queue = torch.tensor([[0.0, 5.0]])
    assert float(info_nce(q, k, queue, 0.2)) == pytest.approx(nce(0.6, [0.0], 0.2), rel=1e-6)


def test_match_by_similarity_is_cosine_argmax():
    q_feat = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    k_feat = torch.tensor([[[0.0, 2.0], [3.0, 0.1], [-1.0, 0.0]]])
    # q0 = (1,0): cosines (0, ~1, -1) -> 1;  q1 = (0,1): cosines (1, ~0.03, 0) -> 0
    assert match_by_similarity(q_feat, k_feat).tolist() == [[1, 0]]


def test_dense_info_nce_uses_feature_correspondence():
    q_feat = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    k_feat = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])  # matches swap the locations: q0 -> k1, q1 -> k0
    q_grid = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    k_grid = torch.tensor([[[0.0, 1.0], [0.6, 0.8]]])
    queue = torch.tensor([[-1.0, 0.0]])
    # q0 . k_grid[1] = 0.6, q0 . neg = -1;  q1 . k_grid[0] = 1, q1 . neg = 0
    expected = (nce(0.6, [-1.0], 1.0) + nce(1.0, [0.0], 1.0)) / 2
    got = float(dense_info_nce(q_grid, k_grid, q_feat, k_feat, queue, 1.0))
    assert got == pytest.approx(expected, rel=1e-6)
    # same-index (geometric) pairing would give positives 0 and 0.8: a different value
    wrong = (nce(0.0, [-1.0], 1.0) + nce(0.8, [0.0], 1.0)) / 2
    assert abs(got - wrong) > 0.05


def test_dense_info_nce_batches_are_independent():
    g = torch.Generator().manual_seed(0)
    q_grid, k_grid = torch.randn(2, 4, 3, generator=g), torch.randn(2, 4, 3, generator=g)
    q_feat, k_feat = torch.randn(2, 4, 5, generator=g), torch.randn(2, 4, 5, generator=g)
    queue = torch.randn(6, 3, generator=g)
    both = dense_info_nce(q_grid, k_grid, q_feat, k_feat, queue, 0.2)
    parts = [
        dense_info_nce(q_grid[i : i + 1], k_grid[i : i + 1], q_feat[i : i + 1], k_feat[i : i + 1], queue, 0.2)
        for i in range(2)
    ]
    assert float(both) == pytest.approx(float(sum(parts) / 2), rel=1e-6)


def test_densecl_loss_mixture():
    assert float(densecl_loss(torch.tensor(2.0), torch.tensor(4.0), 0.5)) == pytest.approx(3.0)
    assert float(densecl_loss(torch.tensor(2.0), torch.tensor(4.0), 0.25)) == pytest.approx(2.5)


def test_gradient_reaches_queries_only():
    q = torch.tensor([[1.0, 0.5]], requires_grad=True)
    k = torch.tensor([[0.2, 1.0]], requires_grad=True)
    queue = torch.tensor([[1.0, -1.0]])
    info_nce(q, k.detach(), queue, 0.2).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None
