"""Two DDP processes on CPU (gloo): validation metrics must be reduced over both processes.

Runs the real CLI in a subprocess with Lightning's `ddp` launcher (it re-executes the command per
rank), as a user would; ddp_spawn is not used because spawned CPU processes share tensor memory.
"""

import os
import subprocess
import sys

import torch

from conftest import tiny_overrides
from segssl.config import load_config
from segssl.data.registry import load_source
from segssl.evaluation.evaluate import evaluate_model
from segssl.models.checkpoint import read_checkpoint
from segssl.models.segmodel import build_model


def test_ddp_two_processes_reduce_validation_metrics(tmp_path):
    over = tiny_overrides(
        **{
            "train.devices": 2,
            "train.strategy": "ddp",
            "train.accelerator": "cpu",
            "train.max_steps": 3,
            "train.val_every_steps": 3,
            "data.labeled": "1/2",
        }
    )
    cmd = [sys.executable, "-m", "segssl.cli", "train", "--out", str(tmp_path / "run")]
    for o in over:
        cmd += ["--set", o]
    env = {**os.environ, "SEGSSL_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("run directory:") == 2  # the launcher really ran two ranks
    entry = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert entry["global_step"] == 3
    ddp_val = entry["val"]  # computed inside the 2-process run (torchmetrics sums both shards)

    # the same weights evaluated by one process on the whole val split
    cfg = load_config(None, over)
    source = load_source(cfg["data"]["path"])
    model = build_model(cfg["model"], source.info.num_classes)
    model.load_state_dict(entry["model_state"])
    single = evaluate_model(model, source, "val", cfg["eval"])
    expected_pixels = sum(int((source.read_label(s) != source.info.ignore_index).sum()) for s in source.samples("val"))
    assert ddp_val["num_pixels"] == expected_pixels  # both halves of the val split, each counted once
    assert torch.tensor(single["confusion_matrix"]).sum().item() == expected_pixels
    assert abs(ddp_val["miou"] - single["miou"]) < 1e-6
    assert abs(ddp_val["pixel_acc"] - single["pixel_acc"]) < 1e-6
