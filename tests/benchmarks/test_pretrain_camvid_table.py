"""The pretrain-camvid table, rebuilt from the committed archive alone (a fresh checkout has no runs folder)."""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import common  # noqa: E402
import pretrain_camvid  # noqa: E402


def test_a_longer_budget_table_keeps_the_shared_random_row_from_the_archive(tmp_path, monkeypatch):
    """Random init has no pretraining budget, so a 1500-step table shares the 300-step row; it must not vanish
    when only benchmarks/results/ holds it (found live in session 17: the row was silently dropped)."""
    runs, results = tmp_path / "benchmarks" / "runs", tmp_path / "benchmarks" / "results"
    cells = {"pretrain_camvid/random/linear": 14.9, "pretrain_camvid_1500/pixpro_unet_region/linear": 20.5}
    for rel, miou in cells.items():
        (results / rel).mkdir(parents=True)
        (results / rel / "metrics.json").write_text(json.dumps({"miou": miou}))
    monkeypatch.setattr(common, "RUNS", runs)
    monkeypatch.setattr(common, "RESULTS", results)
    monkeypatch.setattr(pretrain_camvid, "ROOT", tmp_path)
    monkeypatch.setattr(pretrain_camvid, "RUNS", runs / "pretrain_camvid")
    written = {}
    monkeypatch.setattr(pretrain_camvid, "write_section", lambda name, body: written.update({name: body}))
    pretrain_camvid.write_table(runs / "pretrain_camvid_1500", argparse.Namespace(steps=1500))
    rows = [r for r in written["pretrain-camvid-1500"].splitlines() if r.startswith("| ")][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| random", "| pixpro_unet_region"]
    assert "| 14.9 |" in rows[0] and "| 20.5 |" in rows[1]
