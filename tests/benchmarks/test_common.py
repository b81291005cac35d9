"""benchmarks/common.py: a regenerated BENCHMARKS.md table keeps the machine and date of its runs unless a number
changed, and every run records the CPU model and thread cap it ran on."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import common  # noqa: E402
from common import write_section  # noqa: E402

OLD = "Command: `x`  \nMachine: AMD EPYC  \nDate: 2026-12-01\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"


def test_unchanged_table_keeps_its_stamp(tmp_path):
    md = tmp_path / "B.md"
    write_section("t", OLD, md)
    write_section("t", OLD.replace("AMD EPYC", "Intel").replace("2026-12-01", "2026-12-05"), md)
    text = md.read_text()
    assert "Date: 2026-12-01" in text and "Machine: AMD EPYC" in text and "2026-12-05" not in text


def test_changed_number_restamps_and_other_sections_survive(tmp_path):
    md = tmp_path / "B.md"
    write_section("t", OLD, md)
    write_section("u", "other\n", md)
    write_section("t", OLD.replace("| 1 | 2 |", "| 1 | 3 |").replace("2026-12-01", "2026-12-05"), md)
    text = md.read_text()
    assert "Date: 2026-12-05" in text and "| 1 | 3 |" in text and "| 1 | 2 |" not in text
    assert "<!-- u:start -->\nother\n<!-- u:end -->" in text
    assert text.count("<!-- t:start -->") == 1


def test_a_run_records_its_cpu_model_and_thread_cap(tmp_path, monkeypatch):
    """bench.json names the CPU and the SEGSSL_THREADS cap: seeded runs match only on the same model and count."""
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t: fpu\n")
    assert common.cpu_model(info) == "Intel(R) Xeon(R) Processor"
    assert common.cpu_model(tmp_path / "missing") == "unknown CPU"
    monkeypatch.setenv("SEGSSL_THREADS", "1")
    rd = tmp_path / "run"
    done = common.run_segssl(["--version"], rd, tmp_path / "log.txt")
    assert done["threads"] == 1 and done["cpu"] == common.cpu_model() and done["resumed"] is False


def test_seed_metrics_finds_every_replicate_here_or_archived(tmp_path, monkeypatch):
    """Seed 0 is the cell itself, seed N its `-seedN` folder; a fresh checkout has only the archive of some."""
    import json

    runs, results = tmp_path / "runs", tmp_path / "results"
    monkeypatch.setattr(common, "RUNS", runs)
    monkeypatch.setattr(common, "RESULTS", results)
    cells = [(runs, "1-8", 38.7), (results, "1-8-seed2", 40.1), (runs, "1-8-seed12", 41.0)]
    cells += [(runs, "1-8-seedx", 1.0), (results, "1-8-seed3-old", 2.0), (runs, "1-4-seed5", 3.0)]  # not replicates
    for root, name, miou in cells:
        (root / "sup" / name).mkdir(parents=True)
        (root / "sup" / name / "metrics.json").write_text(json.dumps({"miou": miou}))
    (runs / "sup" / "1-8-seed7").mkdir()  # a replicate still running: no metrics.json yet
    assert common.seeded("1-8", 0) == "1-8" and common.seeded("1-8", 3) == "1-8-seed3"
    assert common.seeds_of(runs / "sup", "1-8") == [0, 2, 7, 12]
    found = common.seed_metrics(runs / "sup", "1-8")
    assert {sd: m["miou"] for sd, m in found.items()} == {0: 38.7, 2: 40.1, 12: 41.0}


def test_seeds_cell_is_the_value_or_the_mean_with_its_count():
    assert common.seeds_cell({}) == "—"
    assert common.seeds_cell({0: 38.74}) == "38.7"
    assert common.seeds_cell({0: 38.0, 1: 39.0, 3: 40.5}) == "39.2 (mean of 3)"
