"""The supervised-camvid table at a non-default budget, rebuilt from the committed archive alone."""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import common  # noqa: E402
import supervised_camvid  # noqa: E402


def test_a_steps_table_keeps_fractions_that_only_the_archive_holds(tmp_path, monkeypatch):
    """A `--steps` table lists the fractions run at that budget; on a fresh checkout they live only in
    benchmarks/results/, and must not vanish from a `--table-only` rebuild (the same bug as pretrain_camvid's)."""
    runs, results = tmp_path / "benchmarks" / "runs", tmp_path / "benchmarks" / "results"
    rd = results / "supervised_camvid_2000" / "1-8"
    (rd / "splits").mkdir(parents=True)
    (rd / "splits" / "labeled.txt").write_text("\n".join(f"img{i}" for i in range(46)))
    (rd / "metrics.json").write_text(json.dumps({"miou": 40.25, "pixel_acc": 80.0, "global_step": 2000}))
    (rd / "bench.json").write_text(json.dumps({"wall_s": 600.0, "peak_rss_mb": 1500.0}))
    monkeypatch.setattr(common, "RUNS", runs)
    monkeypatch.setattr(common, "RESULTS", results)
    written = {}
    monkeypatch.setattr(supervised_camvid, "write_section", lambda name, body: written.update({name: body}))
    supervised_camvid.write_table(runs / "supervised_camvid_2000", argparse.Namespace(steps=2000))
    rows = [r for r in written["supervised-camvid-2000"].splitlines() if r.startswith("| ")][1:]
    assert rows == ["| 1/8 (46) | **40.2** | — | 80.0 | 2000 | 10.0 | 1500 |"]


def test_seed_replicates_keep_the_split_and_are_listed_per_fraction(tmp_path):
    """A training-seed replicate reuses the seed-0 cell's split file (`seed=N` would draw other images) and the
    table lists every seed of a fraction with their mean."""
    out = tmp_path / "supervised_camvid"
    assert supervised_camvid.split_of(out, "1/8", 0) == "1/8"
    try:
        supervised_camvid.split_of(out, "1/8", 1)
        raise AssertionError("a replicate without its seed-0 split file must stop")
    except SystemExit as e:
        assert "--seed 1: no split file of 1/8" in str(e)
    for name, miou in {"1-8": 38.7, "1-8-seed1": 39.5, "1-4": 37.6}.items():
        (out / name / "splits").mkdir(parents=True)
        (out / name / "splits" / "labeled.txt").write_text("a\n")
        (out / name / "metrics.json").write_text(json.dumps({"miou": miou}))
    assert supervised_camvid.split_of(out, "1/8", 1) == str(out / "1-8" / "splits" / "labeled.txt")
    line = supervised_camvid.replicates_line(out)
    assert "1/8: 38.7 / 39.5 (seeds 0/1, mean 39.1)" in line and "1/4" not in line
