"""The pretrain-camvid table, rebuilt from the committed archive alone (a fresh checkout has no runs folder)."""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import common  # noqa: E402
import pretrain_camvid  # noqa: E402


def _args(argv: str = "--steps 1500") -> argparse.Namespace:
    """The benchmark's own parsed command line (so every option it adds has its default here too)."""
    return pretrain_camvid.parser().parse_args(argv.split())


def _table(tmp_path: Path, monkeypatch, argv: str = "--steps 1500") -> str:
    """The section `write_table` writes for a pretraining budget, pool and seed (its run folder and section name
    follow from them, as in the benchmark), with every benchmark path under tmp_path."""
    args = _args(argv)
    name = "pretrain-camvid" + pretrain_camvid.variant(args, "-")
    runs = tmp_path / "benchmarks" / "runs"
    monkeypatch.setattr(common, "RUNS", runs)
    monkeypatch.setattr(common, "RESULTS", tmp_path / "benchmarks" / "results")
    monkeypatch.setattr(pretrain_camvid, "ROOT", tmp_path)
    monkeypatch.setattr(pretrain_camvid, "RUNS", runs / "pretrain_camvid")
    monkeypatch.setattr(pretrain_camvid, "SUPERVISED", runs / "supervised_camvid")
    written = {}
    monkeypatch.setattr(pretrain_camvid, "write_section", lambda n, body: written.update({n: body}))
    pretrain_camvid.write_table(pretrain_camvid.run_folder(args), args)  # the benchmark's own folder, under tmp
    return written[name]


def test_a_longer_budget_table_keeps_the_shared_random_row_from_the_archive(tmp_path, monkeypatch):
    """Random init has no pretraining budget, so a 1500-step table shares the 300-step row; it must not vanish
    when only benchmarks/results/ holds it (found live in session 17: the row was silently dropped)."""
    results = tmp_path / "benchmarks" / "results"
    cells = {"pretrain_camvid/random/linear": 14.9, "pretrain_camvid_1500/pixpro_unet_region/linear": 20.5}
    for rel, miou in cells.items():
        (results / rel).mkdir(parents=True)
        (results / rel / "metrics.json").write_text(json.dumps({"miou": miou}))
    body = _table(tmp_path, monkeypatch)
    rows = [r for r in body.splitlines() if r.startswith("| ")][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| random", "| pixpro_unet_region"]
    assert "| 14.9 |" in rows[0] and "| 20.5 |" in rows[1]


def _metrics(folder: Path, miou: float) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"miou": miou}))


def test_fine_tune_replicates_are_averaged_against_the_baselines_replicates(tmp_path, monkeypatch):
    """Cells with several training seeds show their mean, for the pretrained fine-tunes and for the supervised
    baseline alike (one seed each way was how a +0.4 margin got read as a gain), and list every seed below."""
    runs = tmp_path / "benchmarks" / "runs"
    sup = runs / "supervised_camvid"  # where _table points the baseline
    for name, miou in {"1-8": 38.0, "1-8-seed1": 39.0, "1-8-seed2": 40.0}.items():
        _metrics(sup / name, miou)
    region = runs / "pretrain_camvid_1500" / "pixpro_unet_region"
    for name, miou in {"finetune_lr0.1_1-8": 41.0, "finetune_lr0.1_1-8-seed1": 42.0, "finetune_1-8": 37.0}.items():
        _metrics(region / name, miou)
    _metrics(runs / "pretrain_camvid" / "random" / "linear", 14.9)
    body = _table(tmp_path, monkeypatch)
    rows = [r.split(" | ") for r in body.splitlines() if r.startswith("| ")]
    by_init = {r[0]: r for r in rows[1:3]}
    assert by_init["| random"][6:10] == ["39.0 (mean of 3) (supervised 1/8 baseline)", "—", "39.0 (mean of 3)", "— |"]
    assert by_init["| pixpro_unet_region"][6:10] == ["37.0", "41.5 (mean of 2)", "—", "— |"]
    replicates = [r for r in rows[3:] if r[0] != "| init"]
    assert replicates == [
        ["| random", "fine-tuned 1/8 mIoU (final)", "38.0 / 39.0 / 40.0", "0/1/2 |"],
        ["| pixpro_unet_region", "fine-tuned 1/8 at 0.1x encoder lr (final)", "41.0 / 42.0", "0/1 |"],
    ]


def test_a_fine_tune_replicate_keeps_the_baselines_split_file(tmp_path, monkeypatch):
    """`seed=N` would draw another 1/8, so a replicate reads the supervised baseline's seed-0 split file."""
    monkeypatch.setattr(pretrain_camvid, "SUPERVISED", tmp_path / "supervised_camvid")
    assert pretrain_camvid.split_of(0) == "1/8"
    try:
        pretrain_camvid.split_of(1)
        raise AssertionError("a replicate without the baseline's split file must stop")
    except SystemExit as e:
        assert "no 1/8 split file under" in str(e) and "supervised_camvid" in str(e)
    split = tmp_path / "supervised_camvid" / "1-8" / "splits" / "labeled.txt"
    split.parent.mkdir(parents=True)
    split.write_text("a\nb\n")
    assert pretrain_camvid.split_of(2) == str(split)
    assert pretrain_camvid.finetune_dir("all@0.1", 2) == "finetune_lr0.1_1-8-seed2"
    assert pretrain_camvid.finetune_dir("encoder") == "finetune_encoder_1-8"


def test_a_train_pool_pretraining_holds_val_out_and_gets_its_own_table(tmp_path, monkeypatch):
    """`--pool train` pretrains on train alone (val held out like test): its runs, section and command are its
    own, and the later `--set` empties the pool's extra splits, so val images are never read."""
    from segssl.config import load_config

    args = _args("--pool train")
    assert pretrain_camvid.variant(args, "_") == "_train"
    assert pretrain_camvid.variant(_args("--steps 1500"), "-") == "-1500"
    cmd = pretrain_camvid.pretrain_command("pixpro_unet_region", "DATA", 300, pretrain_camvid.POOLS["train"])
    overrides = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"]
    assert load_config(None, overrides)["data"]["unlabeled_extra"] == []
    default = pretrain_camvid.pretrain_command("pixpro_unet_region", "DATA", 300)
    assert load_config(None, [default[i + 1] for i, a in enumerate(default) if a == "--set"])["data"][
        "unlabeled_extra"
    ] == ["val"]
    runs = tmp_path / "benchmarks" / "runs"
    _metrics(runs / "pretrain_camvid_train" / "pixpro_unet_region" / "finetune_lr0.1_1-8", 38.0)
    body = _table(tmp_path, monkeypatch, "--pool train")
    assert "`python benchmarks/pretrain_camvid.py --pool train`" in body
    assert "367 CamVid train images, val held out" in body and "pretrained on train only" in body
    assert [r.split(" | ")[0] for r in body.splitlines() if r.startswith("| ")][1:] == ["| pixpro_unet_region"]


def test_random_init_fine_tunes_only_as_the_slow_encoder_control(tmp_path, monkeypatch):
    """A pretrained `all@0.1` row needs its control: the same slower encoder from random weights. It transfers
    nothing (no model.init), and fills the random row's 0.1x column, which no other column does."""
    assert pretrain_camvid.finetune_sets("random", "all@0.1") == ["train.encoder_lr_mult=0.1"]
    assert pretrain_camvid.finetune_sets("ck.pt", "encoder@0.1") == [
        "model.init=ck.pt",
        "model.init_parts=encoder",
        "train.encoder_lr_mult=0.1",
    ]
    runs = tmp_path / "benchmarks" / "runs"
    _metrics(runs / "pretrain_camvid" / "random" / "finetune_lr0.1_1-8", 36.0)
    _metrics(runs / "pretrain_camvid" / "random" / "finetune_lr0.1_1-8-seed1", 37.0)
    _metrics(runs / "pretrain_camvid" / "random" / "finetune_encoder_lr0.1_1-8", 99.0)  # not a control: unread
    _metrics(runs / "supervised_camvid" / "1-8", 38.0)
    body = _table(tmp_path, monkeypatch, "--steps 300")
    rows = [r.split(" | ") for r in body.splitlines() if r.startswith("| random")]
    assert rows[0][6:10] == ["38.0 (supervised 1/8 baseline)", "36.5 (mean of 2)", "38.0", "— |"]
    assert rows[1] == ["| random", "fine-tuned 1/8 at 0.1x encoder lr (final)", "36.0 / 37.0", "0/1 |"]


def test_a_pretraining_seed_replicate_gets_its_own_runs_table_and_seed(tmp_path, monkeypatch):
    """`--pretrain-seed N` repeats the pretraining itself: the run goes to its own folder and section (never
    mixing with seed 0's), the pretraining command sets `seed=N`, and the section names the seed and command."""
    from segssl.config import load_config

    args = _args("--steps 1500 --pool train --pretrain-seed 1")
    assert pretrain_camvid.variant(args, "_") == "_1500_train_pseed1"
    assert pretrain_camvid.run_folder(args).name == "pretrain_camvid_1500_train_pseed1"
    cmd = pretrain_camvid.pretrain_command("pixpro_unet_region", "DATA", 1500, pretrain_camvid.pretrain_extra(args))
    cfg = load_config(None, [cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"])
    assert cfg["seed"] == 1 and cfg["data"]["unlabeled_extra"] == []
    assert "seed=0" not in pretrain_camvid.pretrain_extra(_args("--steps 1500 --pool train"))
    runs = tmp_path / "benchmarks" / "runs"
    _metrics(runs / "pretrain_camvid_1500_train_pseed1" / "pixpro_unet_region" / "finetune_lr0.1_1-8", 39.5)
    body = _table(tmp_path, monkeypatch, "--steps 1500 --pool train --pretrain-seed 1")
    assert "`python benchmarks/pretrain_camvid.py --steps 1500 --pool train --pretrain-seed 1`" in body
    assert "pretrained on train only, pretraining seed 1 (test split)" in body
    assert "| pixpro_unet_region |" in body and "39.5" in body


def test_a_pretraining_rerun_for_a_lost_checkpoint_keeps_the_earlier_measurement(tmp_path, monkeypatch):
    """A fresh checkout re-pretrains when a fine-tune still needs the checkpoint; the archived bench.json then
    describes the new run but must not lose the first run's minutes and memory (session 22 lost one that way)."""
    runs, results = tmp_path / "runs", tmp_path / "results"
    monkeypatch.setattr(common, "RUNS", runs)
    monkeypatch.setattr(common, "RESULTS", results)
    rd = runs / "pretrain_camvid" / "m" / "pretrain"
    (results / "pretrain_camvid" / "m" / "pretrain").mkdir(parents=True)
    (results / "pretrain_camvid" / "m" / "pretrain" / "bench.json").write_text(json.dumps({"wall_s": 764.0}))
    calls = []

    def fake_run(args, run_dir, log):
        calls.append(args)
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir / "checkpoints" / "last.ckpt").write_text("weights")
        return {"wall_s": 1401.0}

    monkeypatch.setattr(pretrain_camvid, "run_segssl", fake_run)
    log = tmp_path / "log.txt"
    assert pretrain_camvid.stage(rd, ["pretrain"], log) == {"wall_s": 764.0}  # no checkpoint needed: not rerun
    assert calls == []
    info = pretrain_camvid.stage(rd, ["pretrain"], log, need_checkpoint=True)
    assert calls == [["pretrain"]] and info == {"wall_s": 1401.0, "earlier_runs": [{"wall_s": 764.0}]}
    archived = json.loads((results / "pretrain_camvid" / "m" / "pretrain" / "bench.json").read_text())
    assert archived == info
    assert pretrain_camvid.stage(rd, ["pretrain"], log, need_checkpoint=True) == info  # checkpoint here now
    assert len(calls) == 1
