"""The benchmark's protocol options: a non-default crop / scale / warm-up must reach the runs and name them apart."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import semi_camvid  # noqa: E402


def _args(**kw) -> argparse.Namespace:
    base = dict(
        steps=semi_camvid.DEFAULT_STEPS,
        warmstart="0",
        lr=semi_camvid.DEFAULT_LR,
        tag="",
        crop=semi_camvid.DEFAULT_CROP,
        scale=semi_camvid.DEFAULT_SCALE,
        warmup=semi_camvid.DEFAULT_WARMUP,
        pretrain_seed=0,
        pretrain_steps=semi_camvid.PRETRAIN_STEPS,
    )
    return argparse.Namespace(**{**base, **kw})


def test_default_protocol_keeps_its_names():
    """The CPU table's folder, section and command are what they were before the options existed."""
    args = _args()
    assert semi_camvid.variant(args, "_") == ""
    assert semi_camvid.command(args) == "python benchmarks/semi_camvid.py"
    assert "data.crop=[96,128]" in semi_camvid.budget_of(args)
    assert "train.warmup_steps=20" in semi_camvid.budget_of(args)


def test_gpu_crop_reaches_the_run_and_names_it_apart():
    args = _args(steps=3000, crop="160,224", scale="0.5,2.0", warmup=100)
    assert semi_camvid.variant(args, "_") == "_3000_crop160x224_scale0.5-2.0_wu100"
    assert semi_camvid.command(args) == (
        "python benchmarks/semi_camvid.py --steps 3000 --crop 160,224 --scale 0.5,2.0 --warmup 100"
    )
    sets = semi_camvid.budget_of(args)
    assert {"data.crop=[160,224]", "data.scale=[0.5,2.0]", "train.warmup_steps=100", "train.max_steps=3000"} <= set(
        sets
    )


def test_self_supervised_warm_start_names_method_and_part():
    """`--warmstart METHOD[:encoder]` starts every row from a pretrain_camvid method, named apart by its part."""
    assert semi_camvid.pretrained("pixpro_unet") == ("pixpro_unet", "all")
    assert semi_camvid.pretrained("densecl:encoder") == ("densecl", "encoder")
    assert semi_camvid.pretrained("pixpro_unet:decoder") is None
    assert semi_camvid.pretrained("300") is None
    full, enc = _args(steps=3000, warmstart="pixpro_unet"), _args(steps=3000, warmstart="pixpro_unet:encoder")
    assert semi_camvid.variant(full, "_") == "_3000_wspixpro_unet"
    assert semi_camvid.variant(enc, "-") == "-3000-wspixpro_unet-encoder"
    assert semi_camvid.variant(_args(warmstart="supervised_camvid"), "_") == "_wssup"
    assert not semi_camvid.supervised_start(full)  # no oracle row: the "all" row already is one
    assert semi_camvid.supervised_start(_args(warmstart="300"))
    assert "--warmstart pixpro_unet:encoder" in semi_camvid.command(enc)
    again = _args(steps=3000, warmstart="pixpro_unet", pretrain_seed=1)  # a replicate of the pretraining
    assert semi_camvid.variant(again, "_") == "_3000_wspixpro_unet-pseed1"
    assert semi_camvid.command(again).endswith("--warmstart pixpro_unet --pretrain-seed 1")
    longer = _args(steps=3000, warmstart="pixpro_unet", pretrain_steps=1500, pretrain_seed=1)
    assert semi_camvid.variant(longer, "_") == "_3000_wspixpro_unet-p1500-pseed1"
    assert "--pretrain-steps 1500 --pretrain-seed 1" in semi_camvid.command(longer)
    assert semi_camvid.variant(_args(steps=3000, pretrain_steps=1500), "_") == "_3000"  # no warm start, no name


def test_every_variant_row_loads_its_config_with_its_overrides():
    """A variant row (`--methods NAME`) is a config plus overrides; a misspelt key must fail here, not after a
    35-minute run. method_args keys are checked by the method itself, so only config sections are checked."""
    from segssl.config import load_config

    root = Path(semi_camvid.__file__).resolve().parents[1]
    for name, (base, extra) in semi_camvid.VARIANTS.items():
        cfg = load_config(root / "configs" / "semi" / f"{base}.yaml", extra)
        assert cfg["method"] == base, name
    cfg = load_config(root / "configs" / "semi" / "supervised.yaml", semi_camvid.VARIANTS["supervised_enclr0.1"][1])
    assert cfg["train"]["encoder_lr_mult"] == 0.1


def test_random_init_line_lists_the_baseline_and_a_supervised_variant_control(tmp_path, monkeypatch):
    """A pretrained table quotes the random-init cells it must beat, and the same variant from random init
    (the control that tells a pretraining's gain from the variant's own)."""
    import json

    runs = tmp_path / "benchmarks" / "runs" / "semi_camvid_3000"
    for row, cell, miou in [
        ("supervised", "1-8", 41.01),
        ("supervised", "1-8-seed1", 41.12),
        ("supervised", "all", 43.4),
        ("supervised_enclr0.1", "1-8", 39.04),
        ("ael", "1-8", 50.0),  # not a supervised variant: never a control
    ]:
        (runs / row / cell).mkdir(parents=True)
        (runs / row / cell / "metrics.json").write_text(json.dumps({"miou": miou}))
    monkeypatch.setattr(semi_camvid, "ROOT", tmp_path)
    line = semi_camvid.random_init_line(_args(steps=3000, warmstart="pixpro_unet"))
    assert "section `semi-camvid-3000`" in line
    assert "1/8 41.0 / 41.1; all 43.4 — `supervised_enclr0.1` 1/8 39.0." in line
    assert "50.0" not in line


def test_random_init_line_finds_a_control_only_in_the_archive(tmp_path, monkeypatch):
    """On a fresh checkout only benchmarks/results/ holds the runs; the control must still be quoted."""
    import json

    import common

    results = tmp_path / "benchmarks" / "results"
    for row, miou in [("supervised", 41.01), ("supervised_enclr0.1", 39.04)]:
        (results / "semi_camvid_3000" / row / "1-8").mkdir(parents=True)
        (results / "semi_camvid_3000" / row / "1-8" / "metrics.json").write_text(json.dumps({"miou": miou}))
    monkeypatch.setattr(semi_camvid, "ROOT", tmp_path)
    monkeypatch.setattr(common, "RUNS", tmp_path / "benchmarks" / "runs")
    monkeypatch.setattr(common, "RESULTS", results)
    line = semi_camvid.random_init_line(_args(steps=3000, warmstart="pixpro_unet"))
    assert "1/8 41.0 — `supervised_enclr0.1` 1/8 39.0." in line


def test_a_re_trained_warm_start_must_match_the_archived_one(tmp_path):
    """Seeded runs differ across CPU models (41.01 on AMD, 41.30 on Intel): the table must refuse to mix them."""
    import pytest

    semi_camvid.check_same_warm_start(None, {"miou": 41.3}, tmp_path)  # nothing archived: a first run
    semi_camvid.check_same_warm_start({"miou": 41.0134}, {"miou": 41.0134}, tmp_path)  # the same weights
    with pytest.raises(SystemExit, match=r"re-trained warm start scores 41.3018 mIoU, the archived one 41.0134"):
        semi_camvid.check_same_warm_start({"miou": 41.0134}, {"miou": 41.3018}, tmp_path)


def test_a_replicate_takes_the_seed0_split_of_the_supervised_row_else_its_own_row(tmp_path):
    """A variant row run without a supervised row (e.g. only `supervised_enclr0.1` from a new pretraining) must
    still get replicates on the seed-0 split file; nothing to copy it from is a one-line error."""
    import pytest

    out = tmp_path / "table"
    assert semi_camvid.split_file(out, "1/8", 0, "supervised_enclr0.1") == "1/8"  # seed 0 draws the split
    with pytest.raises(SystemExit, match=r"no seed-0 split file of 1/8 .* supervised or supervised_enclr0.1 first"):
        semi_camvid.split_file(out, "1/8", 1, "supervised_enclr0.1")
    own = out / "supervised_enclr0.1" / "1-8" / "splits" / "labeled.txt"
    own.parent.mkdir(parents=True)
    own.write_text("a\nb\n")
    assert semi_camvid.split_file(out, "1/8", 1, "supervised_enclr0.1") == str(own)
    sup = out / "supervised" / "1-8" / "splits" / "labeled.txt"
    sup.parent.mkdir(parents=True)
    sup.write_text("a\nb\n")
    assert semi_camvid.split_file(out, "1/8", 2, "supervised_enclr0.1") == str(sup)  # the supervised row's first
