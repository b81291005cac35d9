"""Configuration: defaults <- YAML file <- `--set key=value` overrides, as one plain nested dict.

A plain dict (not a class tree) is what ends up in config.yaml and inside checkpoints, so a run
can always be reproduced from its run directory, and checkpoints stay `weights_only` loadable.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from segssl.errors import SegsslError

DEFAULTS: dict[str, Any] = {
    "method": "supervised",
    "seed": 0,
    "data": {
        "path": "generated",
        "labeled": "all",
        "crop": [96, 96],
        "base_size": None,  # (h, w) the scale range is relative to; None = crop size
        "scale": [0.5, 2.0],
        "color_jitter": 0.2,
        "batch_size": 8,
        "num_workers": 0,
        "val_split": "val",
        "test_split": "test",
        "cache_gb": 6.0,
        "unlabeled_extra": [],  # extra splits whose images join the unlabeled pool (e.g. [val])
    },
    # two-view sampling for dense self-supervised pretraining (data/views.py)
    "views": {"scale": [0.3, 1.0], "color_jitter": 0.4, "min_overlap": 0.3},
    "model": {
        "arch": "unet",
        "encoder": "resnet18",
        "encoder_depth": 5,
        "decoder_channels": [128, 64, 32, 32, 32],
        "encoder_weights": None,  # local path to encoder weights (never downloaded)
        "init": None,  # segssl checkpoint (pretrained or trained) to start from
        "init_parts": "all",  # all | encoder: what model.init transfers (encoder: fresh decoder + head)
    },
    "train": {
        "max_steps": 600,
        "optimizer": "adamw",
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "momentum": 0.9,
        "schedule": "poly",  # poly | cosine | constant
        "poly_power": 0.9,
        "warmup_steps": 0,
        "encoder_lr_mult": 1.0,  # encoder lr = lr x this (e.g. 0.1 to fine-tune a pretrained encoder gently)
        "loss": "ce",  # ce | ce+dice
        "class_weights": "none",  # none | median_freq | sqrt_median_freq (from the labeled masks)
        "dice_weight": 0.5,
        "val_every_steps": 200,
        "precision": "auto",  # auto: bf16/16-mixed on CUDA, 32 on CPU
        "channels_last": "auto",
        "devices": 1,
        "strategy": "auto",
        "accelerator": "auto",
        "log_every_steps": 10,
        "epoch_steps": 100,  # optimiser steps per epoch (checkpoint + log granularity), any dataset size
        "progress": True,
    },
    "eval": {"mode": "whole", "window": [512, 512], "stride": [341, 341], "batch_size": 1},
    "method_args": {},
}


def deep_merge(base: dict, over: dict, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "method_args":
            out[k] = deep_merge(out[k], v, f"{path}{k}.")
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **copy.deepcopy(v)}
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise SegsslError(f"--set {item}: expected key=value (e.g. train.max_steps=100)")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_override(cfg: dict, keys: list[str], value: Any) -> None:
    if (
        len(keys) == 1
        and isinstance(cfg.get(keys[0]), dict)
        and not isinstance(value, dict)
        and keys[0] != "method_args"
    ):
        raise SegsslError(f"--set {keys[0]}=...: '{keys[0]}' is a section; set one of its keys")
    node = cfg
    for i, k in enumerate(keys[:-1]):
        if not isinstance(node.get(k), dict):
            if k not in node or node[k] is None:
                node[k] = {}
            else:
                raise SegsslError(f"--set {'.'.join(keys)}: '{'.'.join(keys[: i + 1])}' is not a section")
        node = node[k]
    node[keys[-1]] = value


def check_known(cfg: dict, defaults: dict, where: str, prefix: str = "") -> None:
    """Typos in config keys fail loudly instead of silently using a default."""
    for k, v in cfg.items():
        if prefix == "" and k in ("method_args", "pretrain", "name", "description"):
            continue
        if k not in defaults:
            raise SegsslError(f"{where}: unknown config key '{prefix}{k}'")
        if isinstance(v, dict) and isinstance(defaults[k], dict):
            check_known(v, defaults[k], where, f"{prefix}{k}.")


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, defaults: dict | None = None
) -> dict:
    base = copy.deepcopy(defaults or DEFAULTS)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise SegsslError(f"{p}: config file does not exist")
        try:
            user = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f" at line {mark.line + 1}" if mark else ""
            raise SegsslError(f"{p}: invalid YAML{line}") from None
        if not isinstance(user, dict):
            raise SegsslError(f"{p}: config must be a mapping of sections")
        check_known(user, base, str(p))
        base = deep_merge(base, user)
    for item in overrides or []:
        keys, value = parse_override(item)
        if keys[0] not in base and keys[0] not in ("method_args",):
            raise SegsslError(f"--set {item}: unknown config section '{keys[0]}'")
        if keys[0] != "method_args" and len(keys) > 1 and isinstance(base.get(keys[0]), dict):
            if keys[1] not in base[keys[0]]:
                raise SegsslError(f"--set {item}: unknown config key '{keys[0]}.{keys[1]}'")
        apply_override(base, keys, value)
    return base


def save_config(cfg: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
    tmp.replace(path)
