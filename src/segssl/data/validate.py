"""Up-front dataset validation (`segssl check-data`, and before every training run).

Checking everything before the first step means a broken mask surfaces in seconds with its file
name, not as a CUDA assert an hour into training.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from segssl.data.source import DataSource, Sample, image_size, read_index
from segssl.errors import DataError


@dataclass
class Problem:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def _check_sample(src: DataSource, s: Sample, need_label: bool) -> list[Problem]:
    probs: list[Problem] = []
    if callable(s.image):
        return probs  # generated in memory: valid by construction
    if not s.image.exists():
        return [Problem(str(s.image), "image file is missing")]
    try:
        size = image_size(s.image)
    except DataError as e:
        return [Problem(str(s.image), str(e).split(": ", 1)[-1])]
    if s.label is None:
        if need_label:
            probs.append(Problem(str(s.image), "has no label"))
        return probs
    if callable(s.label):
        return probs
    if not s.label.exists():
        return [Problem(str(s.image), f"no matching label (expected {s.label})")]
    try:
        raw = read_index(s.label)
    except DataError as e:
        return [Problem(str(s.label), str(e).split(": ", 1)[-1])]
    if (raw.shape[1], raw.shape[0]) != size:
        probs.append(
            Problem(str(s.label), f"size {raw.shape[1]}x{raw.shape[0]} differs from image {size[0]}x{size[1]}")
        )
    lab = src.label_lut[raw] if src.label_lut is not None else raw
    values = np.unique(lab)
    bad = [int(v) for v in values if v >= src.info.num_classes and v != src.info.ignore_index]
    if bad:
        probs.append(
            Problem(
                str(s.label),
                f"label values {bad[:8]} outside classes 0..{src.info.num_classes - 1} "
                f"(ignore_index {src.info.ignore_index})",
            )
        )
    return probs


def _orphan_labels(src: DataSource, split: str) -> list[Problem]:
    """Label files with no image: usually a renamed or deleted image."""
    if src.root is None:
        return []
    lab_dir = src.root / split / "labels"
    if not lab_dir.is_dir():
        return []
    stems = {s.stem for s in src.splits.get(split, [])}
    return [
        Problem(str(p), "label has no matching image") for p in sorted(lab_dir.glob("*.png")) if p.stem not in stems
    ]


def validate_source(
    src: DataSource, splits: Iterable[str] | None = None, *, need_labels: Iterable[str] = (), progress=None
) -> list[Problem]:
    """Every problem found (empty list = valid). `need_labels` lists splits whose images must have masks."""
    need = set(need_labels)
    problems: list[Problem] = []
    wanted = list(splits) if splits is not None else list(src.splits)
    for split in wanted:
        samples = src.splits.get(split, [])
        if not samples:
            where = src.root / split if src.root else f"{src.name}/{split}"
            problems.append(Problem(str(where), "split is missing or empty"))
            continue
        for s in samples if progress is None else progress(samples, f"checking {split}"):
            problems.extend(_check_sample(src, s, split in need))
        problems.extend(_orphan_labels(src, split))
    return problems


def ensure_valid(src: DataSource, splits: Iterable[str], *, need_labels: Iterable[str] = ()) -> None:
    """Raise a DataError with the first problem (and a count) if the dataset is not usable."""
    problems = validate_source(src, splits, need_labels=need_labels)
    if problems:
        more = f" (and {len(problems) - 1} more problems; run `segssl check-data`)" if len(problems) > 1 else ""
        raise DataError(f"{problems[0]}{more}")
