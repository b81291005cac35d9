"""The segssl folder format (DESIGN.md): ROOT/classes.json + ROOT/{split}/images|labels."""

from __future__ import annotations

import json
from pathlib import Path

from segssl.data.source import SPLITS, ClassInfo, DataSource, Sample, default_palette, list_images
from segssl.errors import DataError


def read_classes_json(path: Path) -> ClassInfo:
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: missing (the folder format needs classes.json)") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
    classes = meta.get("classes") if isinstance(meta, dict) else None
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise DataError(f"{path}: 'classes' must be a non-empty list of names")
    palette = meta.get("palette") or default_palette(len(classes))
    if len(palette) < len(classes) or not all(len(c) == 3 for c in palette):
        raise DataError(f"{path}: 'palette' must hold one [r, g, b] per class")
    ignore = int(meta.get("ignore_index", 255))
    if 0 <= ignore < len(classes):
        raise DataError(f"{path}: ignore_index {ignore} collides with class '{classes[ignore]}'")
    return ClassInfo(tuple(classes), tuple(tuple(int(v) for v in c) for c in palette[: len(classes)]), ignore)


def load_folder(root: Path, *, require_labels: bool = False) -> DataSource:
    """Read the folder format. A folder of images alone (or ROOT/images) is an unlabeled dataset."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder does not exist")
    cj = root / "classes.json"
    info = read_classes_json(cj) if cj.exists() else None
    splits: dict[str, list[Sample]] = {}
    for split in SPLITS:
        img_dir = root / split / "images"
        if not img_dir.is_dir():
            continue
        lab_dir = root / split / "labels"
        samples = []
        for p in list_images(img_dir):
            lab = lab_dir / f"{p.stem}.png"
            samples.append(Sample(p.stem, p, lab if lab_dir.is_dir() else None))
        splits[split] = samples
    if not splits:
        # unlabeled: ROOT/images/* or images directly in ROOT
        img_dir = root / "images" if (root / "images").is_dir() else root
        imgs = list_images(img_dir)
        if not imgs:
            raise DataError(f"{root}: no images found (expected {{train,val,test}}/images/ or image files)")
        splits["train"] = [Sample(p.stem, p, None) for p in imgs]
    if info is None:
        if require_labels or any(s.label is not None for v in splits.values() for s in v):
            raise DataError(f"{cj}: missing (the folder format needs classes.json)")
        info = ClassInfo(("foreground",), default_palette(1), 255)
    return DataSource(root.name, info, splits, None, root)
