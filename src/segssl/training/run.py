"""A whole training run: config -> data -> method -> Lightning fit -> final evaluation -> metrics.json."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch

from segssl.config import save_config
from segssl.data.registry import load_source
from segssl.data.validate import ensure_valid
from segssl.errors import DataError, SegsslError
from segssl.evaluation.evaluate import evaluate_model, write_metrics
from segssl.methods.base import build_method
from segssl.models.checkpoint import read_checkpoint
from segssl.models.segmodel import build_model
from segssl.runtime import configure_cpu
from segssl.training.callbacks import AtomicCheckpoint, step_progress_bar
from segssl.training.class_weights import class_frequencies, class_weights
from segssl.training.data import SegDataModule, plan_data
from segssl.training.module import MethodModule


def resolve_device(cfg: dict) -> tuple[str, str]:
    """(accelerator, precision) from config 'auto' values: AMP and channels_last only on CUDA."""
    t = cfg["train"]
    acc = t.get("accelerator", "auto")
    if acc == "auto":
        acc = "gpu" if torch.cuda.is_available() else "cpu"
    prec = t.get("precision", "auto")
    if prec == "auto":
        if acc == "gpu":
            prec = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        else:
            prec = "32-true"
    return acc, str(prec)


def quiet_lightning() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*Checkpoint directory.*exists.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*_pytree.*")


def build_trainer(cfg: dict, run_dir: Path, callbacks: list, has_val: bool, resume: bool = False) -> pl.Trainer:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    t = cfg["train"]
    acc, prec = resolve_device(cfg)
    # a resumed run logs into a new CSV folder: Lightning's CSVLogger would overwrite the old file
    csv_version = "csv"
    if resume:
        n = 1
        while (run_dir / "logs" / f"csv-resume{n}").exists():
            n += 1
        csv_version = f"csv-resume{n}"
    loggers = [CSVLogger(run_dir / "logs", name="", version=csv_version)]
    try:
        loggers.append(TensorBoardLogger(run_dir / "logs", name="", version="tensorboard"))
    except ModuleNotFoundError:
        pass
    progress = bool(t.get("progress", True))
    if progress:
        callbacks = [*callbacks, step_progress_bar()]
    strategy = t.get("strategy", "auto")
    devices = t.get("devices", 1)
    multi = (
        devices == -1
        or (isinstance(devices, int) and devices > 1)
        or (isinstance(devices, (list, str)) and len(str(devices).split(",")) > 1)
    )
    # recipes may leave parts without gradient in a step (a probe head without labels, a stage-2
    # head during stage 1, encoder stages beyond encoder_depth): DDP must be told, or it errors out
    if multi and strategy in ("auto", "ddp", "ddp_spawn", "ddp_fork"):
        strategy = {"auto": "ddp", "ddp": "ddp"}.get(strategy, strategy) + "_find_unused_parameters_true"
    val_every = int(t.get("val_every_steps") or 0)
    max_steps = int(t["max_steps"])
    return pl.Trainer(
        accelerator=acc,
        devices=devices,
        strategy=strategy,
        precision=prec,
        max_steps=max_steps,
        max_epochs=-1,
        val_check_interval=min(val_every, max_steps) if (has_val and val_every) else None,
        check_val_every_n_epoch=None if (has_val and val_every) else 1,
        limit_val_batches=1.0 if has_val else 0,
        num_sanity_val_steps=0,
        logger=loggers,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        use_distributed_sampler=False,
        log_every_n_steps=max(1, min(int(t.get("log_every_steps", 10)), int(t.get("epoch_steps", 100)))),
        default_root_dir=str(run_dir),
    )


def prepare_run_dir(run_dir: Path, resume: bool) -> Path | None:
    """Refuse to overwrite a run's checkpoints unless resuming; returns the checkpoint to resume."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume:
        if not last.is_file():
            raise SegsslError(f"{last}: nothing to resume (no last checkpoint in this run directory)")
        read_checkpoint(last)  # fail early, with the file named, on a corrupt checkpoint
        return last
    if last.exists():
        raise SegsslError(f"{run_dir}: already holds a run (checkpoints/last.ckpt); use --resume or another --out")
    return None


def run_training(cfg: dict, run_dir: Path, *, resume: bool = False, evaluate: bool = True) -> dict:
    """Train the configured method; returns the final test metrics (empty when the split has no labels)."""
    quiet_lightning()
    run_dir = Path(run_dir)
    ckpt_path = prepare_run_dir(run_dir, resume)
    pl.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    configure_cpu()
    source = load_source(cfg["data"]["path"], generated_seed=int(cfg.get("data", {}).get("generated_seed", 0)))
    method = build_method(cfg, source.info)
    rd = plan_data(source, cfg, method.inputs, run_dir)
    used = {"train"} | ({cfg["data"]["val_split"]} if rd.val else set())
    need_labels = used if rd.labeled else set()
    weak_boxes = method.weak_box_spec() if getattr(method, "needs_weak_boxes", False) else None
    if weak_boxes is not None:  # box-supervised methods derive the weak set's boxes from its masks
        weak_splits = {sp for sp, _ in rd.unlabeled}
        for sp in sorted(weak_splits):
            if not source.has_labels(sp):
                raise DataError(
                    f"{source.root or source.name}/{sp}: method {cfg['method']} derives the weak "
                    "set's boxes from masks, but the split has none"
                )
        used, need_labels = used | weak_splits, set(need_labels) | weak_splits
    ensure_valid(source, sorted(used), need_labels=need_labels)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    dm = SegDataModule(rd, cfg, method.inputs, weak_boxes=weak_boxes)
    if rd.labeled and cfg["train"].get("class_weights", "none") != "none":
        counts = class_frequencies(dm.cache, "train", rd.labeled, source.info.num_classes, source.info.ignore_index)
        method.set_class_weights(class_weights(counts, cfg["train"]["class_weights"]))
    acc, _ = resolve_device(cfg)
    cl = cfg["train"].get("channels_last", "auto")
    channels_last = (acc == "gpu") if cl == "auto" else bool(cl)
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
    module = MethodModule(method, cfg, channels_last=channels_last)
    ckpt_cb = AtomicCheckpoint(run_dir / "checkpoints")
    trainer = build_trainer(cfg, run_dir, [ckpt_cb], has_val=dm.val_ds is not None, resume=ckpt_path is not None)
    t0 = time.time()
    trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None)
    train_time = time.time() - t0
    if not (evaluate and trainer.is_global_zero):
        return {}
    return final_evaluation(run_dir, source, cfg, train_time_s=train_time, resumed=ckpt_path is not None)


def final_evaluation(
    run_dir: Path, source, cfg: dict, train_time_s: float | None = None, resumed: bool = False
) -> dict:
    """Evaluate last.ckpt (metrics.json, the honest headline) and best.ckpt (metrics_best.json)."""
    split = cfg["data"].get("test_split", "test")
    if not source.has_labels(split):
        return {}
    device = "cuda" if torch.cuda.is_available() and cfg["train"].get("accelerator", "auto") != "cpu" else "cpu"
    out: dict = {}
    for name, fname in (("last", "metrics.json"), ("best", "metrics_best.json")):
        ck = run_dir / "checkpoints" / f"{name}.ckpt"
        if not ck.is_file():
            continue
        entry = read_checkpoint(ck)
        if entry.get("kind") != "segmenter":
            return {}
        if name == "best" and "last" in out and entry.get("global_step") == out["last"]["global_step"]:
            m = {**out["last"], "checkpoint": name}  # the best checkpoint is the last one: same weights
        else:
            model = build_model({**cfg["model"], "encoder_weights": None}, source.info.num_classes)
            model.load_state_dict(entry["model_state"])
            m = evaluate_model(model, source, split, cfg["eval"], device=device, checkpoint=name)
        m["global_step"] = entry.get("global_step")
        if train_time_s is not None:  # wall-clock of this invocation's fit (of the last part if resumed)
            m["train_time_s"] = round(train_time_s, 1)
            m["resumed"] = resumed
        write_metrics(m, run_dir / fname)
        out[name] = m
    return out.get("last", {})
