"""Read run directories (DESIGN.md layout) into plain records for tables, plots and pictures."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from segssl.errors import SegsslError

ALL_LABELS = (None, "all", "1", 1, 1.0, "1/1")


@dataclass
class RunInfo:
    """What a report shows about one run; numbers are None where the run has none (e.g. pretraining)."""

    path: Path
    name: str
    cfg: dict
    kind: str  # "segmenter" | "pretrained" | "unfinished"
    metrics: dict | None = None  # metrics.json: last checkpoint, the headline
    metrics_best: dict | None = None  # metrics_best.json: best-validation checkpoint
    labeled_count: int | None = None
    labeled_fraction: float | None = None
    train_images: int | None = None
    init: str | None = None  # what model.init pointed at, in words
    init_method: str | None = None
    steps: int | None = None
    train_time_s: float | None = None
    train_time_exact: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def method(self) -> str:
        return str(self.cfg.get("method", "?"))

    @property
    def label(self) -> str:
        """Method as a reader compares it: a fine-tuned run is named by its pretraining too."""
        return f"{self.method} (init: {self.init_method})" if self.init_method else self.method

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.ckpt"


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SegsslError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or "miou" not in data:
        raise SegsslError(f"{path}: not a segssl metrics file (no 'miou')")
    return data


def _read_lines(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    return [s for s in (line.strip() for line in path.read_text().splitlines()) if s]


def read_config(run_dir: Path) -> dict:
    p = run_dir / "config.yaml"
    if not run_dir.exists():
        raise SegsslError(f"{run_dir}: run directory does not exist")
    if not run_dir.is_dir():
        raise SegsslError(f"{run_dir}: not a directory")
    if not p.is_file():
        raise SegsslError(f"{p}: missing (not a segssl run directory)")
    try:
        cfg = yaml.safe_load(p.read_text())
    except yaml.YAMLError:
        raise SegsslError(f"{p}: invalid YAML") from None
    if not isinstance(cfg, dict):
        raise SegsslError(f"{p}: not a run config (expected a mapping)")
    return cfg


def load_run(run_dir: str | Path, train_counter=None) -> RunInfo:
    """One run directory -> RunInfo. `train_counter(data_spec) -> int | None` counts train images when
    no split files say how many images were labeled (labeled=all)."""
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    metrics = _read_json(run_dir / "metrics.json")
    best = _read_json(run_dir / "metrics_best.json")
    kind = "segmenter" if metrics else "unfinished"
    info = RunInfo(run_dir, run_dir.resolve().name or str(run_dir), cfg, kind, metrics, best)
    if metrics is None and info.checkpoint.is_file():
        from segssl.models.checkpoint import read_checkpoint

        entry = read_checkpoint(info.checkpoint)
        info.kind = str(entry.get("kind", "segmenter"))
        info.steps = entry.get("global_step")
        if info.kind == "segmenter":
            info.notes.append("no metrics.json (test split without labels, or evaluation not run)")
    if metrics is not None:
        info.steps = metrics.get("global_step")
    if info.steps is None and info.kind != "unfinished":
        info.steps = (cfg.get("train") or {}).get("max_steps")

    data = cfg.get("data") or {}
    labeled, unlabeled = (
        _read_lines(run_dir / "splits" / "labeled.txt"),
        _read_lines(run_dir / "splits" / "unlabeled.txt"),
    )
    spec = data.get("labeled", "all")
    if labeled is not None:
        info.labeled_count = len(labeled)
        info.train_images = len(labeled) + len(unlabeled or [])
    elif spec in ALL_LABELS and info.kind != "pretrained":
        info.train_images = train_counter(str(data.get("path"))) if train_counter else None
        info.labeled_count = info.train_images
        info.labeled_fraction = 1.0
    if info.labeled_count is not None and info.train_images:
        info.labeled_fraction = info.labeled_count / info.train_images

    init = (cfg.get("model") or {}).get("init")
    if init:
        ip = Path(str(init))
        src_cfg = ip.parent.parent / "config.yaml"
        if ip.parent.name == "checkpoints" and src_cfg.is_file():
            try:
                src = yaml.safe_load(src_cfg.read_text()) or {}
                info.init_method = str(src.get("method", "pretrained"))
                info.init = f"{info.init_method} ({ip.parent.parent.name}/{ip.name})"
            except yaml.YAMLError:
                info.init = str(ip)
        else:
            info.init = str(ip)
            info.init_method = "init"
    info.train_time_s, info.train_time_exact = _train_time(run_dir, metrics)
    return info


def _train_time(run_dir: Path, metrics: dict | None) -> tuple[float | None, bool]:
    """Seconds of training: `train_time_s` in metrics.json when logged; otherwise estimated from file times
    (config.yaml is written just before fitting starts, last.ckpt when it ends), except for resumed
    runs, whose config.yaml was rewritten at the resume."""
    if metrics and isinstance(metrics.get("train_time_s"), int | float):
        return float(metrics["train_time_s"]), True
    cfg, last = run_dir / "config.yaml", run_dir / "checkpoints" / "last.ckpt"
    if not (cfg.is_file() and last.is_file()) or any((run_dir / "logs").glob("csv-resume*")):
        return None, False
    dt = last.stat().st_mtime - cfg.stat().st_mtime
    return (dt, False) if dt > 0 else (None, False)


def unique_names(runs: list[RunInfo]) -> None:
    """Directory names, made unique (parent/name) where two runs share one."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.name] = counts.get(r.name, 0) + 1
    seen: dict[str, int] = {}
    for r in runs:
        if counts[r.name] > 1:
            base = f"{r.path.resolve().parent.name}/{r.name}"
            seen[base] = seen.get(base, 0) + 1
            r.name = base if seen[base] == 1 else f"{base}#{seen[base]}"


def slug(name: str) -> str:
    """A file-name-safe version of a run name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "run"


def predict_pictures(
    runs: list[RunInfo], source, split: str, num_images: int, device: str = "cpu", progress=None
) -> tuple[list[np.ndarray], list[np.ndarray | None], list[str], dict[str, list[np.ndarray]], list[str]]:
    """Predictions of every segmenter run's last checkpoint on the first `num_images` of `split`.

    Returns (images, labels, stems, {run name: masks}, notes). A run whose classes do not match the
    dataset is left out with a note rather than drawn with wrong colours.
    """
    import torch

    from segssl.data.dataset import SegmentationDataset
    from segssl.data.transforms import eval_transform
    from segssl.evaluation.inference import predict_logits
    from segssl.models.checkpoint import read_checkpoint, segmenter_from_entry
    from segssl.runtime import configure_cpu

    configure_cpu()  # same thread cap as training (shared machines, tests), denormals flushed
    samples = source.samples(split)[:num_images]
    has_labels = source.has_labels(split)
    ds = SegmentationDataset(source, split, samples, eval_transform(), labels=False)
    images = [source.read_image(s) for s in samples]
    labels = [source.read_label(s) if has_labels else None for s in samples]
    stems = [s.stem for s in samples]
    preds: dict[str, list[np.ndarray]] = {}
    notes: list[str] = []
    k = source.info.num_classes
    for run in runs:
        if run.kind != "segmenter" or not run.checkpoint.is_file():
            continue
        entry = read_checkpoint(run.checkpoint)
        if entry.get("kind", "segmenter") != "segmenter":
            continue
        n_cls = len(entry.get("classes") or []) or k
        if n_cls != k:
            notes.append(f"{run.name}: trained for {n_cls} classes, the picture dataset has {k}; not drawn")
            continue
        rcfg = entry.get("config") or run.cfg
        model = segmenter_from_entry(entry, n_cls, rcfg["model"])
        model.eval().to(device)
        ev = rcfg.get("eval") or {}
        masks = []
        with torch.no_grad():
            for i in range(len(ds)):
                x = ds[i]["image"][None].to(device)
                logits = predict_logits(
                    model,
                    x,
                    ev.get("mode", "whole"),
                    ev.get("window", (512, 512)),
                    ev.get("stride", (341, 341)),
                )
                masks.append(logits.argmax(1)[0].to("cpu", torch.uint8).numpy())
        preds[run.name] = masks
        if progress:
            progress(run.name)
    return images, labels, stems, preds, notes
