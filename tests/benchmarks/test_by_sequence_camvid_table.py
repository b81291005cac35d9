"""The by-sequence table, from archived per-sequence metrics alone (a fresh checkout has no checkpoints)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import by_sequence_camvid  # noqa: E402
import common  # noqa: E402


def _archive(results: Path, rel: str, overall: float, tp: float, vd: float, final: float) -> None:
    d = results / rel
    (d / by_sequence_camvid.EVAL).mkdir(parents=True)
    groups = {"0001TP": {"miou": tp}, "Seq05VD": {"miou": vd}}
    (d / by_sequence_camvid.EVAL / "metrics.json").write_text(json.dumps({"miou": overall, "groups": groups}))
    (d / "metrics.json").write_text(json.dumps({"miou": final}))


def test_means_over_seeds_and_deltas_against_the_budgets_random_row(tmp_path, monkeypatch):
    runs, results = tmp_path / "runs", tmp_path / "results"
    monkeypatch.setattr(common, "RUNS", runs)
    monkeypatch.setattr(common, "RESULTS", results)
    rows = [
        ("800", "random 1x", runs / "sup", "1-8"),
        ("800", "pretrained", runs / "pre", "ft"),
        ("800", "never run", runs / "nothing", "ft"),
        ("3000", "random 1x", runs / "sup3000", "1-8"),
    ]
    monkeypatch.setattr(by_sequence_camvid, "ROWS", rows)
    _archive(results, "sup/1-8-seed1", 38.0, 36.0, 38.0, 38.0)
    _archive(results, "sup/1-8-seed2", 37.0, 35.0, 37.0, 37.1)
    _archive(results, "pre/ft", 39.0, 40.0, 38.0, 39.0)
    _archive(results, "pre/ft-seed1", 38.0, 39.0, 36.0, 38.0)
    _archive(results, "sup3000/1-8", 41.0, 42.0, 40.5, 41.0)
    body = by_sequence_camvid.table(None)  # None: read only, score nothing
    lines = body.splitlines()
    assert "| 800 | random 1x | 1/2 | 37.50 | 35.50 | 37.50 | +0.00 | +0.00 |" in lines
    # pretrained: means 38.5 / 39.5 / 37.0; against random 1x +4.00 on 0001TP and -0.50 on Seq05VD
    assert "| 800 | pretrained | 0/1 | 38.50 | 39.50 | 37.00 | +4.00 | -0.50 |" in lines
    # each budget is measured against its own random-init row, never another budget's
    assert "| 3000 | random 1x | 0 | 41.00 | 42.00 | 40.50 | +0.00 | +0.00 |" in lines
    assert "Not scored (no finished run with a checkpoint here): 800 steps, never run." in body
    assert "to within 0.10 points, over 5 runs" in body  # the largest |re-scored - own final| (sup seed 2)
    assert "| 800 | pretrained | 1 | 38.00 | 39.00 | 36.00 |" in lines
