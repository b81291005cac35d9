"""Deterministic labeled/unlabeled splits, saved as split files so every method sees the same images."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

from segssl.errors import SegsslError


def parse_fraction(spec: str | float | int, total: int) -> int:
    """'1/8' | '0.125' | '30' -> number of labeled images out of `total` (at least 1)."""
    s = str(spec).strip()
    try:
        if "/" in s:
            frac = Fraction(s)
            n = max(1, round(total * frac))
        elif "." in s:
            frac = float(s)
            if not 0 < frac <= 1:
                raise ValueError
            n = max(1, round(total * frac))
        else:
            n = int(s)
    except (ValueError, ZeroDivisionError):
        raise SegsslError(f"--labeled {spec}: expected a fraction (1/8, 0.125), a count, or a split file") from None
    if n < 1 or n > total:
        raise SegsslError(f"--labeled {spec}: gives {n} labeled images, but the split has {total}")
    return n


def _rank(stem: str, seed: int) -> str:
    # Hash ranks make the chosen set stable per (seed, stem): adding images to the folder does not
    # reshuffle which of the old ones are labeled, unlike a seeded permutation of a list.
    return hashlib.sha1(f"{seed}:{stem}".encode()).hexdigest()


def split_labeled(stems: list[str], spec: str | float | int, seed: int = 0) -> tuple[list[str], list[str]]:
    """(labeled, unlabeled) stems, each sorted. Same seed and fraction always give the same files."""
    path = Path(str(spec))
    if path.suffix == ".txt" or path.is_file():
        labeled = read_split_file(path)
        known = set(stems)
        missing = [s for s in labeled if s not in known]
        if missing:
            raise SegsslError(f"{path}: {len(missing)} stems not in the training split, e.g. '{missing[0]}'")
        chosen = set(labeled)
    else:
        n = parse_fraction(spec, len(stems))
        chosen = set(sorted(stems, key=lambda s: _rank(s, seed))[:n])
    return sorted(chosen), sorted(s for s in stems if s not in chosen)


def read_split_file(path: Path) -> list[str]:
    if not path.is_file():
        raise SegsslError(f"{path}: split file does not exist")
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        raise SegsslError(f"{path}: split file is empty")
    return lines


def write_split_files(run_dir: Path, labeled: list[str], unlabeled: list[str]) -> None:
    d = Path(run_dir) / "splits"
    d.mkdir(parents=True, exist_ok=True)
    for name, stems in (("labeled.txt", labeled), ("unlabeled.txt", unlabeled)):
        tmp = d / f".{name}.tmp"
        tmp.write_text("".join(f"{s}\n" for s in sorted(stems)))
        tmp.replace(d / name)
