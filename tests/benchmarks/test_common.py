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
