"""Each configs/semi/ file of this family trains end to end through the CLI on tiny generated data."""

import json
from pathlib import Path

import pytest
import torch

from conftest import tiny_overrides
from segssl.cli import main

NAMES = (
    "supervised",
    "pseudo_label",
    "pi_model",
    "temporal_ensembling",
    "mean_teacher",
    "cutmix",
    "classmix",
    "cps",
    "fixmatch",
    "unimatch",
)
CONFIGS = [Path("configs/semi") / f"{n}.yaml" for n in NAMES]
# validate and test on the 16 train images: the run's logic is the same and it is 7x cheaper
FAST = {"data.val_split": "train", "data.test_split": "train", "train.val_every_steps": 4}


def _sets(**extra) -> list[str]:
    return sum((["--set", o] for o in tiny_overrides(**{**FAST, **extra})), [])


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda p: p.stem)
def test_config_trains_through_the_cli(cfg, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--labeled", "1/4", "--out", str(out), *_sets()]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["miou"] <= 100.0 and metrics["global_step"] == 4
    assert (out / "splits" / "unlabeled.txt").read_text().split()  # 3/4 of the images left unlabeled
    if cfg.stem == "temporal_ensembling":  # the per-image ensemble is in the checkpoint, survives --resume
        state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        assert int(state["method.updates"].sum()) > 0
        assert (
            main(
                [
                    "train",
                    "--config",
                    str(out / "config.yaml"),
                    "--resume",
                    "--out",
                    str(out),
                    "--set",
                    "train.max_steps=6",
                ]
            )
            == 0
        )
        resumed = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        assert int(resumed["method.updates"].sum()) > int(state["method.updates"].sum())
