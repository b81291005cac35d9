"""PixPro methods: the momentum branch is really used, EMA moves, pretrain -> fine-tune works via the CLI."""

import csv
from pathlib import Path

import pytest
import torch

from conftest import tiny_overrides
from segssl.cli import main
from segssl.config import load_config
from segssl.data.source import ClassInfo, default_palette
from segssl.methods.base import build_method

INFO = ClassInfo(tuple(f"c{i}" for i in range(6)), default_palette(6))
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "pretrain"
TINY_MODEL = ["model.encoder_depth=3", "model.decoder_channels=[16, 16, 16]", "data.batch_size=2"]


def _method(name: str, **args):
    cfg = load_config(None, [f"method={name}", *TINY_MODEL])
    cfg["method_args"] = dict(args)
    return build_method(cfg, INFO)


def _views(b: int = 2, size: int = 32) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "view1": torch.randn(b, 3, size, size, generator=g),
        "view2": torch.randn(b, 3, size, size, generator=g),
        "box1": torch.tensor([[0.0, 0.1, 0.7, 0.9]]).repeat(b, 1),
        "box2": torch.tensor([[0.9, 0.0, 0.2, 0.8]]).repeat(b, 1),  # flipped, large overlap
        "index": torch.arange(b),
    }


def _loss(method, views) -> float:
    torch.manual_seed(123)  # same pair sample every call
    with torch.no_grad():
        return float(method.ssl_step(views, 0).loss)


CASES = [
    ("pixpro", {}),
    ("pixpro", {"pixpro_weight": 0.0, "pixcontrast_weight": 1.0}),
    ("pixpro", {"instance_weight": 1.0, "pixcontrast_weight": 0.5}),
    ("pixpro_allpairs", {"feature_stride": 4}),
    ("pixpro_allpairs", {"feature_stride": 4, "pixpro_weight": 0.0, "pixcontrast_weight": 1.0}),
]


@pytest.mark.parametrize("name,args", CASES[:2] + CASES[3:])
def test_perturbing_the_momentum_encoder_changes_the_loss(name, args):
    m = _method(name, **args)
    views = _views()
    before = _loss(m, views)
    assert _loss(m, views) == before  # deterministic given the seed
    with torch.no_grad():
        for p in m.momentum.module["projector"].parameters():
            p.add_(torch.randn_like(p))
    assert abs(_loss(m, views) - before) > 1e-4


def test_instance_branch_uses_the_momentum_instance_projector():
    m = _method("pixpro", pixpro_weight=1.0, instance_weight=1.0)
    views = _views()
    torch.manual_seed(123)
    with torch.no_grad():
        before = m.ssl_step(views, 0).logs["loss_instance"]
        for p in m.momentum.module["inst_projector"].parameters():
            p.add_(torch.randn_like(p))
        torch.manual_seed(123)
        after = m.ssl_step(views, 0).logs["loss_instance"]
    assert abs(float(after) - float(before)) > 1e-4


def test_gradients_reach_online_modules_only_and_ema_follows():
    m = _method("pixpro")
    out = m.ssl_step(_views(), 0)
    out.loss.backward()
    assert m.model.encoder.conv1.weight.grad is not None and m.model.encoder.conv1.weight.grad.abs().sum() > 0
    assert m.projector[0].weight.grad is not None and m.ppm_value.weight.grad is not None
    assert all(not p.requires_grad for p in m.momentum.parameters())
    online = m.model.encoder.conv1.weight
    target = m.momentum.module["backbone"].encoder.conv1.weight
    assert torch.equal(online, target)  # starts as a copy
    old = target.clone()
    with torch.no_grad():
        online.add_(1.0)
    m.after_step(0, 10)  # cosine schedule at step 0: momentum 0.99
    assert m.m == pytest.approx(0.99)
    assert torch.allclose(target, 0.99 * old + 0.01 * online)
    m.after_step(10, 10)
    assert m.m == pytest.approx(1.0)


@pytest.mark.parametrize("name,args", CASES)
def test_no_overlap_batch_gives_zero_valid_pairs_and_finite_grads(name, args):
    m = _method(name, **args)
    views = _views()
    views["box2"] = torch.tensor([[0.8, 0.95, 0.95, 1.0], [0.0, 0.1, 0.7, 0.9]])  # image 0: no overlap
    out = m.ssl_step(views, 0)
    out.loss.backward()
    assert float(out.logs["pairs_valid"]) == pytest.approx(0.5)
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_unknown_method_arg_is_a_user_error():
    from segssl.errors import SegsslError

    with pytest.raises(SegsslError, match="num_anchor"):
        _method("pixpro", num_anchor=3)


@pytest.mark.parametrize("config", ["pixpro_unet.yaml", "pixpro_unet_region.yaml", "pixpro_allpairs.yaml"])
def test_pretrain_then_finetune_end_to_end(tmp_path, config):
    sets = lambda over: sum((["--set", o] for o in over), [])  # noqa: E731
    extra = {"train.log_every_steps": 1}
    if "allpairs" in config:
        extra["method_args.feature_stride"] = 4  # 32x32 tiny crops -> 8x8 all-pairs map
    rc = main(
        [
            "pretrain",
            "--config",
            str(CONFIGS / config),
            "--out",
            str(tmp_path / "pre"),
            *sets(tiny_overrides(**extra)),
        ]
    )
    assert rc == 0
    ckpt = tmp_path / "pre" / "checkpoints" / "last.ckpt"
    entry = torch.load(ckpt, map_location="cpu", weights_only=True)["segssl"]
    assert entry["kind"] == "pretrained"
    assert entry["config"]["data"]["unlabeled_extra"] == ["val"]
    assert any(k.startswith("encoder.") for k in entry["model_state"])
    assert not any(k.startswith(("momentum", "projector")) for k in entry["model_state"])
    with open(tmp_path / "pre" / "logs" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    valid = [float(r["train/pairs_valid"]) for r in rows if r.get("train/pairs_valid")]
    assert valid and all(0.0 <= v <= 1.0 for v in valid) and max(valid) > 0
    rc = main(
        [
            "train",
            "--out",
            str(tmp_path / "ft"),
            "--labeled",
            "1/4",
            *sets(tiny_overrides(**{"model.init": str(ckpt)})),
        ]
    )
    assert rc == 0
    assert (tmp_path / "ft" / "metrics.json").is_file()
