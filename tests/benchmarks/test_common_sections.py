"""BENCHMARKS.md sections: a regenerated table keeps the machine and date of its runs unless a number changed."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
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
