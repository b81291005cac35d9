"""segssl checkpoints: Lightning's file plus a `segssl` entry (model state, config, version).

Everything stored is tensors and plain Python values, so `torch.load(path, weights_only=True)`
reads it, and a checkpoint can never execute code on load.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from segssl import __version__
from segssl.errors import SegsslError


def payload(model_state: dict, cfg: dict, kind: str, info_dict: dict) -> dict:
    return {"version": __version__, "kind": kind, "config": cfg, "model_state": model_state, **info_dict}


def read_checkpoint(path: str | Path) -> dict:
    """The `segssl` entry of a checkpoint (or of a bare `{model_state, config}` file)."""
    p = Path(path)
    if not p.is_file():
        raise SegsslError(f"{p}: checkpoint does not exist")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise SegsslError(f"{p}: not a loadable checkpoint ({type(e).__name__})") from None
    entry = ck.get("segssl", ck) if isinstance(ck, dict) else None
    if not isinstance(entry, dict) or "model_state" not in entry:
        raise SegsslError(f"{p}: not a segssl checkpoint (no model state)")
    return entry


def load_matching(model: nn.Module, state: dict, source: str) -> list[str]:
    """Load tensors whose name and shape match; returns skipped names (e.g. a head for other classes)."""
    own = model.state_dict()
    keep = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not keep:
        raise SegsslError(f"{source}: no parameter matches this model (different architecture or encoder?)")
    model.load_state_dict(keep, strict=False)
    return sorted(set(own) - set(keep))


INIT_PARTS = {"all": "", "encoder": "encoder."}


def init_from_config(model: nn.Module, cfg: dict, parts: str | None = None) -> None:
    """Start from `model.init` (a segssl pretrained or trained checkpoint), if given.

    `model.init_parts` (or `parts`) = all | encoder: `encoder` transfers only the encoder and keeps
    this model's own random decoder and head: the transfer protocol of image-level pretraining papers
    (PixPro / DenseCL fine-tune the backbone with a fresh head), and a way to give a second network a
    different start from the same checkpoint (CPS).
    """
    mcfg = cfg.get("model") or {}
    path = mcfg.get("init")
    if not path:
        return
    parts = parts or mcfg.get("init_parts") or "all"
    if parts not in INIT_PARTS:
        raise SegsslError(f"model.init_parts={parts}: expected one of {', '.join(INIT_PARTS)}")
    state = read_checkpoint(path)["model_state"]
    state = {k: v for k, v in state.items() if k.startswith(INIT_PARTS[parts])}
    load_matching(model, state, str(path))


def atomic_save(obj: dict, path: Path) -> None:
    """Write to a temp file and rename: a crash mid-write never corrupts the previous file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def segmenter_from_entry(entry: dict, num_classes: int, model_cfg: dict | None = None) -> nn.Module:
    """The trained segmenter a checkpoint entry holds: its architecture from the entry's config (or
    `model_cfg`), no encoder weights or `model.init` re-read (the state dict already has them)."""
    from segssl.models.segmodel import build_model

    cfg = model_cfg if model_cfg is not None else entry["config"]["model"]
    model = build_model({**cfg, "encoder_weights": None, "init": None}, num_classes)
    model.load_state_dict(entry["model_state"])
    return model
