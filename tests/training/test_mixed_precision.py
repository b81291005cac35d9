"""The CUDA path's numerics on the CPU: bf16 autocast + channels_last, as `precision: auto` picks on a GPU.

CI has no GPU, so dtype mistakes of that path (a bf16 tensor meeting an fp32 one in a loss, an index op
on half logits, a mask mixed in the wrong dtype) would first show on a lent GPU. Lightning's
`bf16-mixed` autocasts on the CPU too, so every method family with its own loss arithmetic runs a few
steps here under it: the loss must stay finite and the saved weights fp32 (autocast never casts them).
"""

import csv
import math
from pathlib import Path

import pytest
import torch

from conftest import tiny_overrides
from segssl.cli import main
from segssl.models.checkpoint import read_checkpoint

ROOT = Path(__file__).resolve().parents[2]
# one method per loss family: weak-to-strong + feature perturbation, adaptive sampling/mixing, auxiliary
# decoders, flaw detector, dense SSL (sampled pairs + PPM, grid_sample alignment)
CASES = [
    ("train", "semi/unimatch"),
    ("train", "semi/ael"),
    ("train", "semi/cct"),
    ("train", "semi/gct"),
    ("pretrain", "pretrain/pixpro_unet"),
    ("pretrain", "pretrain/pass_align"),
]


@pytest.mark.parametrize("command,config", CASES, ids=[c for _, c in CASES])
def test_method_trains_under_bf16_autocast_and_channels_last(tmp_path, command, config):
    out = tmp_path / "run"
    sets = tiny_overrides(
        **{
            "train.max_steps": 3,
            "train.epoch_steps": 3,
            "train.val_every_steps": 0,
            "train.log_every_steps": 1,
            "train.precision": "bf16-mixed",
            "train.channels_last": "true",
            "data.val_split": "train",
            "data.test_split": "train",
        }
    )
    args = [command, "--config", str(ROOT / "configs" / f"{config}.yaml"), "--out", str(out)]
    args += ["--labeled", "1/4"] if command == "train" else []
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    entry = read_checkpoint(out / "checkpoints" / "last.ckpt")
    assert entry["config"]["train"]["precision"] == "bf16-mixed"
    assert entry["global_step"] == 3
    floats = [v for v in entry["model_state"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in floats)
    rows = list(csv.DictReader((out / "logs" / "csv" / "metrics.csv").open()))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert losses and all(math.isfinite(x) for x in losses)
