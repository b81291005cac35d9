"""Frozen-feature probes and pixel retrieval on hand-checkable toys."""

import math

import pytest
import torch
from torch import nn

from segssl.data.generated import generated_source
from segssl.evaluation.metrics import confusion_matrix, scores
from segssl.evaluation.probes import (
    KNNSegmenter,
    LinearProbeSegmenter,
    fit_linear_probe,
    knn_topk,
    knn_vote,
    load_backbone,
    pixel_embeddings,
    probe_scores,
    region_embeddings,
    select_linear_probe,
)
from segssl.evaluation.retrieval import build_pixel_bank, draw_retrieval, normalized_image, retrieve
from segssl.models.checkpoint import atomic_save
from segssl.models.segmodel import build_model

TINY = {"arch": "unet", "encoder": "resnet18", "encoder_depth": 3, "decoder_channels": [32, 16, 16]}

# 2-D bank: sims to the query (1, 0) are 1, 0.8, 0.6, 0
BANK = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
BANK_Y = torch.tensor([0, 1, 1, 0])


def test_knn_vote_hand_computed():
    q = torch.tensor([[1.0, 0.0]])
    # k = 3 neighbours: (class 0, cos 1), (class 1, cos 0.8), (class 1, cos 0.6)
    sharp = knn_vote(q, BANK, BANK_Y, num_classes=2, k=3, temperature=0.1)
    w0, w1 = math.exp(1 / 0.1), math.exp(0.8 / 0.1) + math.exp(0.6 / 0.1)
    assert sharp[0].tolist() == pytest.approx([w0 / (w0 + w1), w1 / (w0 + w1)], rel=1e-5)
    assert int(sharp.argmax(1)) == 0  # the single very close neighbour outweighs two farther ones
    soft = knn_vote(q, BANK, BANK_Y, num_classes=2, k=3, temperature=1.0)
    w0, w1 = math.exp(1.0), math.exp(0.8) + math.exp(0.6)
    assert soft[0].tolist() == pytest.approx([w0 / (w0 + w1), w1 / (w0 + w1)], rel=1e-5)
    assert int(soft.argmax(1)) == 1  # at T = 1 the vote is nearly a majority vote
    # k = 1: nearest only
    assert knn_vote(q, BANK, BANK_Y, 2, k=1)[0].tolist() == pytest.approx([1.0, 0.0])


def test_knn_topk_chunked_equals_full():
    g = torch.Generator().manual_seed(0)
    q, bank = torch.randn(7, 4, generator=g), torch.randn(50, 4, generator=g)
    s, i = knn_topk(q, bank, 5, q_chunk=3, b_chunk=8)
    ref_s, ref_i = (q @ bank.t()).topk(5, dim=1)
    assert torch.allclose(s, ref_s) and torch.equal(i, ref_i)


def test_pixel_and_region_embeddings():
    feats = torch.tensor([[[1.0, 0.0], [0.0, 0.6]], [[0.0, 1.0], [1.0, 0.8]]])  # (C=2, 2, 2)
    label = torch.tensor([[0, 0], [1, 255]])
    f, y = region_embeddings(feats, label, 255)
    assert y.tolist() == [0, 1]
    s = 1 / math.sqrt(2)  # class 0: mean of (1,0) and (0,1), renormalised
    assert f.flatten().tolist() == pytest.approx([s, s, 0.0, 1.0])
    f, y = pixel_embeddings(feats, label, 255, pixels=0, gen=torch.Generator())
    assert sorted(y.tolist()) == [0, 0, 1]  # the ignore pixel is never in the bank
    f, y = pixel_embeddings(feats, label, 255, pixels=2, gen=torch.Generator().manual_seed(0))
    assert len(y) == 2 and 255 not in y.tolist()


class ChannelsAsFeatures(nn.Module):
    """A 'backbone' whose pixel features are the first two input channels."""

    feature_dim = 2

    def features(self, x):
        return x[:, :2]


def toy_batch(n: int, g: torch.Generator) -> dict:
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = (torch.rand(n, 8, 8, generator=g) < 0.5).long()
    # separable per pixel with a margin: x0 + 0.5 x1 is >= 0.5 for class 1, <= -0.5 for class 0
    x[:, 0] = (2 * y - 1) * (0.5 + torch.rand(n, 8, 8, generator=g)) - 0.5 * x[:, 1]
    y[:, 0, 0] = 255  # an ignore pixel
    return {"image": x, "label": y}


def test_linear_probe_separable_toy_reaches_100():
    g = torch.Generator().manual_seed(0)
    batches = [toy_batch(4, g) for _ in range(5)]
    x = torch.cat([b["image"][:, :2].permute(0, 2, 3, 1).reshape(-1, 2) for b in batches])
    y = torch.cat([b["label"].reshape(-1) for b in batches])
    keep = y != 255
    head = fit_linear_probe(x[keep], y[keep], num_classes=2, l2=1e-6)
    assert not any(p.requires_grad for p in head.parameters())
    seg = LinearProbeSegmenter(ChannelsAsFeatures(), head)
    test = toy_batch(8, g)
    cm = confusion_matrix(seg(test["image"]).argmax(1), test["label"], 2, 255)
    res = scores(cm, ["a", "b"])
    assert res["pixel_acc"] == 100.0 and res["miou"] == 100.0


def test_linear_probe_is_the_solved_weighted_logistic_regression():
    """Same optimum as scikit-learn's multinomial LogisticRegression with the same class weights and penalty."""
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(1)
    n, c, k = 600, 4, 3
    y = torch.cat([torch.zeros(400), torch.ones(150), torch.full((50,), 2.0)]).long()  # imbalanced
    centers = torch.randn(k, c, generator=g)
    x = centers[y] + 0.9 * torch.randn(n, c, generator=g)
    x = x * torch.tensor([1.0, 3.0, 0.5, 2.0]) + torch.tensor([0.5, -1.0, 2.0, 0.0])  # unequal scales
    cw = torch.tensor([0.5, 1.0, 4.0])
    l2 = 1e-2
    head = fit_linear_probe(x, y, k, class_weight=cw, l2=l2, max_iter=500, tol=1e-10)
    ours = head(x[:, :, None, None])[:, :, 0, 0]
    mean, std = x.mean(0), x.std(0)
    z = ((x - mean) / std).double().numpy()
    # ours: sum w_i ce_i / sum w_i + l2/2 |W|^2  ==  sklearn's C sum w_i ce_i + 1/2 |W|^2 with C = 1 / (l2 sum w_i)
    sk = LogisticRegression(
        C=1.0 / (l2 * float(cw[y].sum())),
        class_weight={i: float(w) for i, w in enumerate(cw)},
        tol=1e-12,
        max_iter=5000,
    )
    sk.fit(z, y.numpy())
    ref = torch.from_numpy(sk.decision_function(z)).float()
    # logits agree up to a per-sample constant (softmax invariance): compare centred logits
    assert torch.allclose(ours - ours.mean(1, keepdim=True), ref - ref.mean(1, keepdim=True), atol=2e-3)
    # the class weights matter: the rare class is predicted more often than without them
    plain = fit_linear_probe(x, y, k, l2=l2)
    rare = lambda h: int((h(x[:, :, None, None]).argmax(1) == 2).sum())  # noqa: E731
    assert rare(head) > rare(plain)


def test_linear_probe_grid_keeps_the_best_candidate_on_val():
    g = torch.Generator().manual_seed(2)
    y = (torch.rand(400, generator=g) < 0.5).long()
    x = torch.stack([(2 * y - 1) * (0.5 + torch.rand(400, generator=g)), torch.randn(400, generator=g)], 1)
    vy = (torch.rand(300, generator=g) < 0.5).long()
    vx = torch.stack([(2 * vy - 1) * (0.5 + torch.rand(300, generator=g)), torch.randn(300, generator=g)], 1)
    # l2 = 1e4 shrinks the weights to ~0 while the unpenalised bias follows the 100x class weight:
    # class 1 everywhere
    heavy = torch.tensor([1.0, 100.0])
    cands = [{"name": "huge", "l2": 1e4, "class_weight": heavy}, {"name": "small", "l2": 1e-4, "class_weight": None}]
    head, table = select_linear_probe(x, y, vx, vy, ["a", "b"], cands)
    assert [r["name"] for r in table] == ["huge", "small"]
    assert table[1]["val_miou"] == 100.0 and table[0]["val_miou"] < 50.0
    assert probe_scores(head, vx, vy, ["a", "b"])["miou"] == 100.0  # the small-l2 head was kept


def test_knn_segmenter_matches_vote():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).t().reshape(1, 2, 1, 2)  # pixel (0,0) = (1,0), (0,1) = (0,1)
    x = torch.cat([x, torch.zeros(1, 1, 1, 2)], 1)
    seg = KNNSegmenter(ChannelsAsFeatures(), BANK, BANK_Y, num_classes=2, k=3, temperature=0.1)
    out = seg(x)
    assert out.shape == (1, 2, 1, 2)
    ref = knn_vote(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), BANK, BANK_Y, 2, k=3, temperature=0.1)
    assert torch.allclose(out.exp()[0].permute(1, 2, 0).reshape(2, 2), ref, atol=1e-6)


def test_load_backbone_from_checkpoint_and_random(tmp_path):
    torch.manual_seed(3)
    model = build_model(TINY, 4)
    ck = tmp_path / "m.ckpt"
    atomic_save({"model_state": model.state_dict(), "config": {"model": TINY}}, ck)
    loaded, cfg = load_backbone(str(ck), 6, {"encoder_depth": 5})  # 6 classes: the head is skipped
    assert cfg["encoder_depth"] == 3  # the checkpoint's architecture wins
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(loaded.encoder.state_dict()[k], v)
    r1, _ = load_backbone("random", 6, TINY, seed=1)
    r2, _ = load_backbone("random", 6, TINY, seed=1)
    w1, w2 = next(r1.encoder.parameters()), next(r2.encoder.parameters())
    assert torch.equal(w1, w2) and not torch.equal(w1, next(loaded.encoder.parameters()))


def test_retrieval_finds_itself_and_draws(tmp_path):
    source = generated_source(num_train=3, num_val=0, num_test=0, size=(24, 24))
    torch.manual_seed(0)
    model, _ = load_backbone("random", 6, TINY)
    samples = source.samples("train")
    bank = build_pixel_bank(model, source, samples, pixels_per_image=0)
    assert bank.feats.shape[0] == 3 * 24 * 24
    from segssl.evaluation.probes import image_features

    qs = [(samples[1], 5, 17), (samples[2], 20, 3)]
    q = torch.stack([image_features(model, normalized_image(source, s))[:, y, x] for s, x, y in qs])
    hits = retrieve(q, bank, k=2)  # own images included
    for (s, x, y), row in zip(qs, hits, strict=True):
        top, sim = row[0]
        assert bank.locate(top) == (s, x, y) and sim == pytest.approx(1.0, abs=1e-5)
        assert bank.locate(row[1][0])[0].stem != s.stem  # one pixel per image
    excl = retrieve(q, bank, k=5, exclude_image=[1, 2])
    for (s, _, _), row in zip(qs, excl, strict=True):
        assert all(bank.locate(j)[0].stem != s.stem for j, _ in row)
    assert [len(r) for r in excl] == [2, 2]  # only two other images exist
    out = tmp_path / "r.png"
    draw_retrieval(out, source, qs, [[(*bank.locate(j), v) for j, v in row] for row in excl])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
