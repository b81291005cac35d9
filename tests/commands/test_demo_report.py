"""`segssl demo --fast` end to end, `segssl report` on its runs, and user errors (exit 2, path named)."""

import json

import pytest
import yaml

from segssl.cli import main
from segssl.commands import demo
from segssl.errors import SegsslError


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "d"
    assert main(["demo", "--fast", "--out", str(out), "--device", "cpu"]) == 0
    return out


def test_demo_runs_every_stage_and_reports_their_numbers(demo_dir):
    stages = demo.plan_stages(fast=True)
    names = [s.name for s in stages]
    assert names[:2] == ["supervised_all", "supervised_1of8"]
    assert {"pixpro_pretrain", "pixpro_finetune_1of8", "unimatch_1of8"} <= set(names)  # all registered here
    html = (demo_dir / "report" / "index.html").read_text()
    scored = 0
    for s in stages:
        run = demo_dir / s.name
        assert (run / "checkpoints" / "last.ckpt").is_file()
        if s.pretrain:
            assert not (run / "metrics.json").exists()
            continue
        m = json.loads((run / "metrics.json").read_text())
        assert f'title="{m["miou"]}">{m["miou"]:.2f}<' in html  # exact value, shown with 2 decimals
        scored += 1
    assert scored == 4
    # the fine-tuning run really started from the pretraining checkpoint, the semi run from supervised 1/8
    ft = yaml.safe_load((demo_dir / "pixpro_finetune_1of8" / "config.yaml").read_text())
    assert ft["model"]["init"] == str(demo_dir / "pixpro_pretrain" / "checkpoints" / "last.ckpt")
    semi = yaml.safe_load((demo_dir / "unimatch_1of8" / "config.yaml").read_text())
    assert semi["model"]["init"].endswith("supervised_1of8/checkpoints/last.ckpt")
    # same seed and fraction: the 1/8 runs share one labeled split (2 of the 16 generated train images)
    labeled = [
        (demo_dir / n / "splits" / "labeled.txt").read_text()
        for n in ("supervised_1of8", "pixpro_finetune_1of8", "unimatch_1of8")
    ]
    assert labeled[0] == labeled[1] == labeled[2] and len(labeled[0].split()) == 2
    for f in ("pictures.png", "per_class_iou.png", "label_efficiency.png", "confusion_supervised_all.png"):
        assert (demo_dir / "report" / f).stat().st_size > 1000


def test_demo_stages_resume_state_and_refuse_other_configs(demo_dir):
    stages = demo.plan_stages(fast=True)
    for s in stages:  # a second `segssl demo --fast --out` skips everything
        assert demo.stage_state(s, demo.stage_config(s, demo_dir, True), demo_dir / s.name) == "done"
    s = stages[0]
    with pytest.raises(SegsslError, match="another config"):  # the default-size demo into a --fast folder
        demo.stage_state(s, demo.stage_config(s, demo_dir, False), demo_dir / s.name)


def test_report_command_on_a_finished_run(demo_dir, tmp_path):
    run = demo_dir / "supervised_1of8"
    out = tmp_path / "rep"
    assert main(["report", str(run), "--out", str(out), "--num-images", "2"]) == 0
    html = (out / "index.html").read_text()
    m = json.loads((run / "metrics.json").read_text())
    assert f"{m['miou']:.2f}" in html and "supervised_1of8" in html and "1/8 (2)" in html
    assert (out / "pictures.png").is_file() and (out / "confusion_supervised_1of8.png").is_file()


def test_report_user_errors_exit_2(tmp_path, capsys):
    missing = tmp_path / "no_such_run"
    assert main(["report", str(missing), "--out", str(tmp_path / "r")]) == 2
    assert str(missing) in capsys.readouterr().err
    (tmp_path / "not_a_run").mkdir()
    assert main(["report", str(tmp_path / "not_a_run"), "--out", str(tmp_path / "r")]) == 2
    assert "config.yaml" in capsys.readouterr().err


def test_default_demo_plan_configs(tmp_path):
    """The full-size plan (not run here): budgets, PixPro views, and which checkpoint seeds which stage."""
    cfgs = {s.name: demo.stage_config(s, tmp_path, False) for s in demo.plan_stages(fast=False)}
    sup = cfgs["supervised_all"]
    assert sup["data"]["path"] == "generated" and sup["data"]["crop"] == [96, 96]
    assert sup["data"]["batch_size"] == 8
    assert sup["model"]["encoder"] == "resnet18" and sup["model"]["arch"] == "unet"
    assert sup["train"]["max_steps"] == demo.SUPERVISED_STEPS and sup["data"]["labeled"] == "all"
    assert cfgs["supervised_1of8"]["data"]["labeled"] == "1/8"
    pre = cfgs["pixpro_pretrain"]
    assert pre["method"] == "pixpro" and pre["data"]["labeled"] == "none"
    assert pre["views"] == demo.PIXPRO_VIEWS
    ft_init = cfgs["pixpro_finetune_1of8"]["model"]["init"]
    assert ft_init == str(tmp_path / "pixpro_pretrain" / "checkpoints" / "last.ckpt")
    semi = cfgs["unimatch_1of8"]
    assert semi["train"]["max_steps"] == demo.SEMI_STEPS and semi["model"]["init"].startswith(str(tmp_path))
