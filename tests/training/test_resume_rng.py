"""An interrupted and resumed run ends on the same weights as an uninterrupted one."""

import random

import numpy as np
import pytest
import torch

from conftest import tiny_overrides
from segssl.cli import main
from segssl.models.checkpoint import read_checkpoint
from segssl.training.module import MethodModule
from segssl.training.rng import restore_rng_state, rng_state


def test_rng_state_round_trips_every_generator():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    saved = rng_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(saved)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def _train(out, *extra) -> int:
    sets = tiny_overrides(
        **{"method": "fixmatch", "method_args.threshold": 0.0, "data.val_split": "train", "data.test_split": "train"}
    )
    return main(["train", "--out", str(out), "--labeled", "1/4", *sum((["--set", s] for s in sets), []), *extra])


def test_resumed_run_reproduces_the_uninterrupted_weights(tmp_path, monkeypatch):
    assert _train(tmp_path / "whole") == 0
    original = MethodModule.on_train_batch_start

    def crash_in_second_epoch(self, batch, batch_idx):
        if self.global_step == 3:  # after epoch 1's last.ckpt (step 2), before the run ends
            raise RuntimeError("simulated crash")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(MethodModule, "on_train_batch_start", crash_in_second_epoch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(tmp_path / "cut")
    assert read_checkpoint(tmp_path / "cut" / "checkpoints" / "last.ckpt")["global_step"] == 2
    monkeypatch.setattr(MethodModule, "on_train_batch_start", original)
    assert _train(tmp_path / "cut", "--resume") == 0
    whole = read_checkpoint(tmp_path / "whole" / "checkpoints" / "last.ckpt")
    resumed = read_checkpoint(tmp_path / "cut" / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == whole["global_step"] == 4
    for k, v in whole["model_state"].items():
        assert torch.equal(resumed["model_state"][k], v), k


def test_fold_in_rank_gives_other_ranks_their_own_reproducible_stream():
    from segssl.training.rng import fold_in_rank

    def draws(rank: int, step: int = 0) -> list[float]:
        torch.manual_seed(0), np.random.seed(0), random.seed(0)  # what seed_everything gives every rank
        fold_in_rank(0, rank, step)
        return [float(torch.rand(1)), float(np.random.rand()), random.random()]

    rank0, rank1 = draws(0), draws(1)
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    assert rank0 == [float(torch.rand(1)), float(np.random.rand()), random.random()]  # rank 0 untouched
    assert all(a != b for a, b in zip(rank0, rank1, strict=True))  # rank 1 draws other crops and boxes
    assert draws(1) == rank1 and draws(1, step=200) != rank1  # reproducible, and new after a resume
