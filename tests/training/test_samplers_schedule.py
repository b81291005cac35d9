"""Rank-aware samplers, learning-rate schedules and class weights, checked by hand."""

import math

import numpy as np
import pytest
import torch

from segssl.data.dataset import DecodedCache
from segssl.data.source import ClassInfo, DataSource, Sample
from segssl.training.class_weights import class_frequencies, class_weights
from segssl.training.module import lr_factor
from segssl.training.samplers import EpochSampler, ShardSampler


def _ranks(n, per_rank, world, seed=0, epoch=0):
    out = []
    for r in range(world):
        s = EpochSampler(n, per_rank, seed=seed, rank=r, world=world)
        s.set_epoch(epoch)
        out.append(list(s))
        assert len(s) == per_rank and len(out[-1]) == per_rank
    return out


def test_epoch_sampler_ranks_are_disjoint_and_cover_a_permutation():
    shards = _ranks(12, 4, 3, seed=5)
    assert sorted(sum(shards, [])) == list(range(12))
    for a in range(3):
        for b in range(a + 1, 3):
            assert not set(shards[a]) & set(shards[b])


def test_epoch_sampler_longer_than_the_dataset_cycles_whole_permutations():
    shards = _ranks(5, 6, 2, seed=1)  # 12 samples from 5 images
    stream = [shards[i % 2][i // 2] for i in range(12)]  # rank r holds positions r, r + world, ...
    assert sorted(stream[:5]) == list(range(5)) and sorted(stream[5:10]) == list(range(5))
    assert set(stream[10:]) <= set(range(5)) and len(set(stream[10:])) == 2


def test_epoch_sampler_deterministic_per_seed_and_epoch():
    assert _ranks(20, 5, 2, seed=3, epoch=1) == _ranks(20, 5, 2, seed=3, epoch=1)
    assert _ranks(20, 5, 2, seed=3, epoch=1) != _ranks(20, 5, 2, seed=3, epoch=2)
    assert _ranks(20, 5, 2, seed=3, epoch=1) != _ranks(20, 5, 2, seed=4, epoch=1)


@pytest.mark.parametrize(("n", "world"), [(10, 3), (7, 1), (2, 4)])
def test_shard_sampler_each_index_exactly_once(n, world):
    shards = [list(ShardSampler(n, r, world)) for r in range(world)]
    assert sorted(sum(shards, [])) == list(range(n))
    assert [len(ShardSampler(n, r, world)) for r in range(world)] == [len(s) for s in shards]
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_lr_factor_poly_cosine_constant():
    assert lr_factor(0, 10, "poly") == 1.0
    assert lr_factor(5, 10, "poly") == pytest.approx(0.5**0.9)
    assert lr_factor(5, 10, "poly", power=1.0) == pytest.approx(0.5)
    assert lr_factor(10, 10, "poly") == 0.0
    assert lr_factor(20, 10, "poly") == 0.0  # past the end: clamped, not negative or complex
    assert lr_factor(5, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(0, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(10, 10, "cosine") == pytest.approx(0.0)
    assert lr_factor(3, 12, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(7, 10, "constant") == 1.0
    with pytest.raises(ValueError, match="poly, cosine or constant"):
        lr_factor(1, 10, "step")


def test_lr_factor_warmup():
    # linear warm-up over 4 steps: (step + 1) / 4, then the schedule over the remaining 6 steps
    assert [lr_factor(s, 10, "poly", warmup=4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 10, "poly", warmup=4) == 1.0
    assert lr_factor(7, 10, "poly", warmup=4) == pytest.approx(0.5**0.9)
    assert lr_factor(7, 10, "cosine", warmup=4) == pytest.approx(0.5)
    assert lr_factor(10, 10, "cosine", warmup=4) == pytest.approx(0.0)


def test_median_frequency_weights_hand_computed():
    counts = np.array([10, 30, 60, 0])
    # f = [0.1, 0.3, 0.6, 0]; median of the seen = 0.3; w = 0.3 / f; unseen -> the largest weight
    w = class_weights(counts, "median_freq")
    assert torch.allclose(w, torch.tensor([3.0, 1.0, 0.5, 3.0]))
    assert w.dtype == torch.float32
    s = class_weights(counts, "sqrt_median_freq")
    assert torch.allclose(s, torch.tensor([math.sqrt(3), 1.0, math.sqrt(0.5), math.sqrt(3)]))
    assert class_weights(counts, "none") is None
    with pytest.raises(ValueError, match="median_freq"):
        class_weights(counts, "inverse")


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")
def test_no_labeled_pixels_gives_unit_weights():
    assert torch.equal(class_weights(np.zeros(3, np.int64), "median_freq"), torch.ones(3))


def test_class_frequencies_skip_ignore():
    labels = [np.array([[0, 0, 1], [255, 2, 2]], np.uint8), np.array([[2, 2, 255]], np.uint8)]
    samples = [Sample(f"s{i}", lambda: np.zeros((1, 1, 3), np.uint8), lambda a=a: a) for i, a in enumerate(labels)]
    src = DataSource("mem", ClassInfo(("a", "b", "c"), ((0, 0, 0),) * 3, 255), {"train": samples})
    counts = class_frequencies(DecodedCache(src), "train", samples, 3, 255)
    assert counts.tolist() == [2, 1, 4]


def test_encoder_lr_mult_puts_every_encoder_parameter_in_its_own_group():
    from segssl.config import load_config
    from segssl.methods.base import build_method
    from segssl.training.module import MethodModule, encoder_groups

    info = ClassInfo(("a", "b"), ((0, 0, 0), (255, 255, 255)))
    over = ["model.encoder_depth=3", "model.decoder_channels=[8,8,8]", "train.lr=0.01"]
    method = build_method(load_config(None, ["method=supervised", *over, "train.encoder_lr_mult=0.1"]), info)
    enc, rest = encoder_groups(method, 0.01, 0.1)
    names = {id(p): n for n, p in method.named_parameters()}
    assert enc["lr"] == pytest.approx(0.001) and rest["lr"] == 0.01
    assert all(names[id(p)].startswith("model.encoder.") for p in enc["params"])
    assert not any(".encoder." in names[id(p)] for p in rest["params"])
    assert len(enc["params"]) + len(rest["params"]) == len(list(method.parameters()))
    opt = MethodModule(method, method.cfg).configure_optimizers()["optimizer"]
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.001, 0.01])
    plain = build_method(load_config(None, ["method=supervised", *over]), info)
    assert len(MethodModule(plain, plain.cfg).configure_optimizers()["optimizer"].param_groups) == 1


def test_epoch_sampler_epoch_of_overrides_set_epoch():
    from segssl.training.samplers import EpochSampler

    plain = EpochSampler(10, 6, seed=3)
    plain.set_epoch(2)
    step = {"now": 2 * 6}
    follows = EpochSampler(10, 6, seed=3, epoch_of=lambda: step["now"] // 6)
    follows.set_epoch(3)  # what Lightning 2.6 sets after a resume from the end of epoch 1: ignored
    assert list(follows) == list(plain)
    plain.set_epoch(3)
    assert list(follows) != list(plain)
