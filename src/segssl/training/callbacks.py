"""Checkpointing that never leaves a half-written file: last.ckpt every epoch and at the end,
best.ckpt on the best validation mIoU."""

from __future__ import annotations

import math
import os
from pathlib import Path

import lightning.pytorch as pl


class AtomicCheckpoint(pl.Callback):
    def __init__(self, dirpath: Path, monitor: str = "val/miou"):
        self.dirpath, self.monitor = Path(dirpath), monitor
        self.best = -math.inf

    def save(self, trainer: pl.Trainer, name: str) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        tmp = self.dirpath / f".{name}.tmp"
        trainer.save_checkpoint(tmp)  # rank 0 writes, then all ranks meet at a barrier
        if trainer.is_global_zero:
            os.replace(tmp, self.dirpath / name)
        trainer.strategy.barrier("atomic_checkpoint")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.save(trainer, "last.ckpt")

    def on_train_end(self, trainer, pl_module) -> None:
        self.save(trainer, "last.ckpt")

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        score = float(trainer.callback_metrics[self.monitor])
        if score > self.best:
            self.best = score
            self.save(trainer, "best.ckpt")

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best = float(state_dict.get("best", -math.inf))


def step_progress_bar():
    """Rich progress bar that says "epoch 3 · steps 300/800": runs are budgeted in steps, and
    Lightning's own "Epoch 3/-2" (from max_epochs=-1) means nothing to a user."""
    from lightning.pytorch.callbacks import RichProgressBar

    class StepProgressBar(RichProgressBar):
        def _get_train_description(self, current_epoch: int) -> str:
            t = self.trainer
            return f"epoch {current_epoch} · steps {t.global_step}/{t.max_steps}"

        def get_metrics(self, trainer, pl_module):
            items = super().get_metrics(trainer, pl_module)
            items.pop("v_num", None)  # the logger version name, noise for a user
            return items

    return StepProgressBar(leave=True)
