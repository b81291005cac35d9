"""Test-wide settings: one thread per worker (pytest -n 2 on 2 cores), fixed seeds, quiet Lightning."""

import os

import pytest
import torch

os.environ.setdefault("SEGSSL_THREADS", "1")
torch.set_num_threads(1)
torch.set_flush_denormal(True)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def tiny_overrides(**extra) -> list[str]:
    """Config overrides that make a run take seconds: 32x32 crops, a tiny UNet, a few steps."""
    base = {
        "data.path": "generated:16",
        "data.crop": "[32, 32]",
        "data.batch_size": 4,
        "model.encoder": "resnet18",
        "model.encoder_depth": 3,
        "model.decoder_channels": "[32, 16, 16]",
        "train.max_steps": 4,
        "train.epoch_steps": 2,
        "train.val_every_steps": 2,
        "train.progress": "false",
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]
