"""Build a report folder (index.html + PNGs + results.csv) from run directories.

Shared by `segssl report` and `segssl demo`, so the demo's report is exactly what users get for
their own runs.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

from segssl.errors import DataError, SegsslError
from segssl.reporting.runs import RunInfo, load_run, predict_pictures, slug, unique_names


def _train_counter() -> Callable[[str], int | None]:
    cache: dict[str, int | None] = {}

    def count(spec: str) -> int | None:
        if spec not in cache:
            from segssl.data.registry import load_source

            try:
                cache[spec] = len(load_source(spec).splits.get("train", []))
            except SegsslError:
                cache[spec] = None
        return cache[spec]

    return count


def collect_runs(run_dirs: Sequence[str | Path]) -> list[RunInfo]:
    if not run_dirs:
        raise SegsslError("no run directories given")
    counter = _train_counter()
    runs = [load_run(p, counter) for p in run_dirs]
    unique_names(runs)
    return runs


def label_efficiency_points(runs: list[RunInfo]) -> list[dict]:
    """(method, fraction, miou) of every evaluated run: the input of `plots.label_efficiency_plot`."""
    return [
        {"method": r.label, "fraction": r.labeled_fraction, "miou": r.metrics["miou"], "run": r.name}
        for r in runs
        if r.metrics and r.labeled_fraction
    ]


def write_results_csv(runs: list[RunInfo], path: Path) -> Path:
    """One row per run: the numbers behind the report, for spreadsheets and scripts."""
    classes: list[str] = next((list(r.metrics["per_class_iou"]) for r in runs if r.metrics), [])
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "run",
                "method",
                "init",
                "labeled_fraction",
                "labeled_count",
                "steps",
                "miou_last",
                "miou_best_val",
                "pixel_acc",
                *[f"iou_{c}" for c in classes],
                "train_time_s",
                "path",
            ]
        )
        for r in runs:
            m, mb = r.metrics or {}, r.metrics_best or {}
            pc = m.get("per_class_iou", {})
            w.writerow(
                [
                    r.name,
                    r.method,
                    r.init or "",
                    r.labeled_fraction or "",
                    r.labeled_count or "",
                    r.steps or "",
                    m.get("miou", ""),
                    mb.get("miou", ""),
                    m.get("pixel_acc", ""),
                    *["" if pc.get(c) is None else pc[c] for c in classes],
                    "" if r.train_time_s is None else round(r.train_time_s, 1),
                    str(r.path),
                ]
            )
    return path


def _picture_split(source, preferred: str) -> str | None:
    for split in (preferred, "test", "val"):
        if source.splits.get(split) and source.has_labels(split):
            return split
    for split in (preferred, "test", "val", "train"):
        if source.splits.get(split):
            return split
    return None


def write_report(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    data: str | None = None,
    num_images: int = 6,
    device: str | None = None,
    title: str = "segssl report",
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write OUT/index.html (self-contained) plus the PNGs and results.csv; returns the HTML path."""
    from segssl.reporting.html import render_report
    from segssl.reporting.plots import confusion_matrix_plot, label_efficiency_plot, per_class_iou_plot

    say = log or (lambda s: None)
    if num_images < 0:
        raise SegsslError(f"--num-images {num_images}: must be 0 or more")
    runs = collect_runs(run_dirs)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SegsslError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    figures: dict = {"confusion": []}
    notes: list[str] = []
    scored = [r for r in runs if r.metrics]
    classes = list(scored[0].metrics.get("classes") or scored[0].metrics["per_class_iou"]) if scored else []
    for r in scored:
        if list(r.metrics["per_class_iou"]) != classes:
            notes.append(f"{r.name}: classes differ from {scored[0].name}'s; left out of the per-class plot")
    if scored:
        say("plotting per-class IoU")
        same = {r.name: r.metrics["per_class_iou"] for r in scored if list(r.metrics["per_class_iou"]) == classes}
        figures["per_class"] = per_class_iou_plot(same, classes, out / "per_class_iou.png")
    points = label_efficiency_points(runs)
    if points:
        figures["label_efficiency"] = label_efficiency_plot(points, out / "label_efficiency.png")
    for r in scored:
        cm = r.metrics.get("confusion_matrix")
        if cm is None:
            continue
        names = list(r.metrics.get("classes") or r.metrics["per_class_iou"])
        figures["confusion"].append(
            (
                r.name,
                confusion_matrix_plot(
                    cm,
                    names,
                    out / f"confusion_{slug(r.name)}.png",
                    title=f"{r.name} — mIoU {r.metrics['miou']:.2f}",
                ),
            )
        )
    drawable = [r for r in runs if r.kind == "segmenter" and r.checkpoint.is_file()]
    if num_images and drawable:
        figures.update(_pictures(drawable, out, data, num_images, device, notes, say))
    for r in runs:
        if r.kind == "pretrained":
            r.notes.append("pretraining run: no segmentation metrics (fine-tune with --set model.init=...)")
        elif r.kind == "unfinished":
            r.notes.append("no metrics.json and no checkpoint: unfinished or failed run")
    write_results_csv(runs, out / "results.csv")
    page = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(render_report(runs, figures, notes, title), encoding="utf-8")
    tmp.replace(page)
    return page


def _pictures(
    runs: list[RunInfo],
    out: Path,
    data: str | None,
    num_images: int,
    device: str | None,
    notes: list[str],
    say: Callable[[str], None],
) -> dict:
    import torch

    from segssl.data.registry import load_source
    from segssl.reporting.pictures import picture_grid

    spec = data or str((runs[0].cfg.get("data") or {}).get("path"))
    gseed = int((runs[0].cfg.get("data") or {}).get("generated_seed", 0))
    try:
        source = load_source(spec, generated_seed=gseed)
    except DataError as e:
        if data:  # the user named it: a wrong path is an error, not a footnote
            raise
        notes.append(f"no prediction pictures: the runs' dataset cannot be read ({e}); pass --data")
        return {}
    split = _picture_split(source, str((runs[0].cfg.get("data") or {}).get("test_split", "test")))
    if split is None:
        notes.append(f"no prediction pictures: {spec} has no images")
        return {}
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    say(f"predicting {num_images} {split} images with {len(runs)} run(s)")
    images, labels, stems, preds, pnotes = predict_pictures(runs, source, split, num_images, dev)
    notes.extend(pnotes)
    info = source.info
    path = picture_grid(
        out / "pictures.png",
        images,
        labels,
        preds,
        list(info.classes),
        list(info.palette),
        info.ignore_index,
        titles=stems,
    )
    return {
        "pictures": path,
        "pictures_caption": f"first {len(images)} {split} images of {spec}; predictions of each run's last checkpoint",
    }
