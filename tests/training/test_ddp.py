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


# The CLI with an optional crash before step CRASH_AT (the ddp launcher re-runs this file per rank).
CRASHING_CLI = """
import os, sys
from segssl.cli import main
from segssl.training.module import MethodModule
if os.environ.get("CRASH_AT"):
    def crash(self, batch, batch_idx):
        if self.global_step == int(os.environ["CRASH_AT"]):
            raise RuntimeError("simulated crash")
    MethodModule.on_train_batch_start = crash
sys.exit(main(sys.argv[1:]))
"""


def test_ddp_resume_puts_every_rank_back_on_its_own_stream(tmp_path):
    """Each rank's generator states travel in the checkpoint: a 2-process run crashed after epoch 1 and
    resumed ends on the uninterrupted run's weights (with rank 0's states folded, it would not: rank 1
    draws other crops and CutMix boxes than it did uninterrupted)."""
    script = tmp_path / "cli.py"
    script.write_text(CRASHING_CLI)
    over = tiny_overrides(
        **{
            "method": "fixmatch",
            "method_args.threshold": 0.0,
            "train.devices": 2,
            "train.strategy": "ddp",
            "train.accelerator": "cpu",
            "data.labeled": "1/2",
            "data.val_split": "train",
            "data.test_split": "train",
        }
    )
    env = {**os.environ, "SEGSSL_THREADS": "1", "PYTHONWARNINGS": "ignore"}

    def run(out, *extra, crash_at=None):
        cmd = [sys.executable, str(script), "train", "--out", str(out), *sum((["--set", o] for o in over), []), *extra]
        run_env = {**env, **({"CRASH_AT": str(crash_at)} if crash_at else {})}
        return subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=600)

    whole = run(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert run(tmp_path / "cut", crash_at=3).returncode != 0  # after epoch 1's last.ckpt (step 2)
    cut = read_checkpoint(tmp_path / "cut" / "checkpoints" / "last.ckpt")
    assert cut["global_step"] == 2
    raw = torch.load(tmp_path / "cut" / "checkpoints" / "last.ckpt", weights_only=True)
    assert len(raw["rng_ranks"]) == 2
    assert not torch.equal(raw["rng_ranks"][0]["torch"], raw["rng_ranks"][1]["torch"])  # two streams
    resumed = run(tmp_path / "cut", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = read_checkpoint(tmp_path / "whole" / "checkpoints" / "last.ckpt")
    b = read_checkpoint(tmp_path / "cut" / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"] == 4
    for k, v in a["model_state"].items():
        assert torch.equal(b["model_state"][k], v), k
