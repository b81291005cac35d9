"""One LightningModule for every method: optimiser, schedule, validation mIoU, checkpoint payload."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from segssl.evaluation.inference import predict_logits
from segssl.evaluation.metrics import scores
from segssl.methods.base import Method
from segssl.models.checkpoint import payload
from segssl.training.rng import fold_in_rank, gather_rng_states, restore_rng_state, rng_state


def lr_factor(step: int, total: int, schedule: str, warmup: int = 0, power: float = 0.9) -> float:
    """Linear warm-up, then poly (DeepLab: (1 - t)^0.9), cosine (SGDR without restarts) or constant."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    t = min(max(step - warmup, 0) / max(total - warmup, 1), 1.0)
    if schedule == "poly":
        return (1 - t) ** power
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "constant":
        return 1.0
    raise ValueError(f"train.schedule must be poly, cosine or constant, got {schedule}")


def encoder_groups(module: torch.nn.Module, lr: float, encoder_lr_mult: float) -> list[dict]:
    """Parameter groups with every encoder parameter at lr x `encoder_lr_mult` (`train.encoder_lr_mult`).

    Fine-tuning a pretrained backbone slower than its fresh decoder and head is the field's default
    (DeepLab / CPS / UniMatch code: head lr = 10 x backbone lr): a full-rate first step can wash out
    what pretraining put in the encoder.
    """
    enc, rest = [], []
    for name, p in module.named_parameters():
        if p.requires_grad:
            (enc if name.startswith("encoder.") or ".encoder." in name else rest).append(p)
    return [g for g in ({"params": enc, "lr": lr * encoder_lr_mult}, {"params": rest, "lr": lr}) if g["params"]]


class MethodModule(pl.LightningModule):
    def __init__(self, method: Method, cfg: dict, channels_last: bool = False):
        super().__init__()
        self.method, self.cfg, self.channels_last = method, cfg, channels_last
        info = method.info
        self.val_cm = MulticlassConfusionMatrix(info.num_classes, ignore_index=info.ignore_index)
        self.last_val: dict = {}
        self._resume_rng: dict | None = None  # generator states of the checkpoint a run resumes from
        self._resume_rng_is_own = False  # ... saved by this very rank (not rank 0's, to be folded)

    def training_step(self, batch, batch_idx):
        if isinstance(batch, (tuple, list)):  # CombinedLoader yields (batch, idx, dataloader_idx)
            batch = batch[0]
        if self.channels_last:
            batch = _channels_last(batch)
        out = self.method.training_step(batch, self.global_step)
        bs = _batch_size(batch)
        self.log("train/loss", out.loss.detach(), prog_bar=True, batch_size=bs)
        for k, v in out.logs.items():
            self.log(f"train/{k}", v, batch_size=bs)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=bs)
        return out.loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.method.after_step(self.global_step, int(self.cfg["train"]["max_steps"]))

    def validation_step(self, batch, batch_idx):
        e = self.cfg["eval"]
        x = batch["image"]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = predict_logits(self.method.segmenter(), x, e["mode"], e["window"], e["stride"])
        self.val_cm.update(logits.argmax(1), batch["label"])

    def on_validation_epoch_end(self):
        cm = self.val_cm.compute()  # summed over all processes by torchmetrics
        self.val_cm.reset()
        res = scores(cm, list(self.method.info.classes))
        self.last_val = res
        self.log("val/miou", res["miou"], prog_bar=True, sync_dist=False)
        self.log("val/pixel_acc", res["pixel_acc"], sync_dist=False)

    def configure_optimizers(self):
        t = self.cfg["train"]
        groups = self.method.param_groups() if hasattr(self.method, "param_groups") else None
        lr, wd = float(t["lr"]), float(t["weight_decay"])
        mult = float(t.get("encoder_lr_mult", 1.0))
        if groups is None and mult != 1.0:
            groups = encoder_groups(self.method, lr, mult)
        params = groups or [p for p in self.method.parameters() if p.requires_grad]
        name = t["optimizer"].lower()
        if name == "sgd":
            opt = torch.optim.SGD(params, lr=lr, momentum=float(t["momentum"]), weight_decay=wd, nesterov=False)
        elif name == "adamw":
            opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
        else:
            raise ValueError(f"train.optimizer must be sgd or adamw, got {name}")
        total, warm = int(t["max_steps"]), int(t.get("warmup_steps", 0))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_factor(s, total, t["schedule"], warm, float(t.get("poly_power", 0.9)))
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        info = self.method.info
        checkpoint["segssl"] = payload(self.method.export_state(), self.cfg, self.method.kind, info.to_dict())
        checkpoint["segssl"]["global_step"] = int(self.global_step)
        checkpoint["segssl"]["val"] = self.last_val
        # a resumed run draws the same augmentations as an uninterrupted one, on every rank
        checkpoint["rng"], ranks = rng_state(), gather_rng_states(self.trainer.world_size)
        if ranks is not None:
            checkpoint["rng_ranks"] = ranks

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # applied when training starts, not now: Lightning still creates a data-loader iterator
        # between loading and the first epoch (one draw from the torch generator)
        self._resume_rng = checkpoint.get("rng")
        ranks = checkpoint.get("rng_ranks")
        if ranks is not None and len(ranks) == self.trainer.world_size:
            self._resume_rng = ranks[self.global_rank]
            self._resume_rng_is_own = True

    def _start_generators(self) -> None:
        """The checkpoint's generator states (when resuming), then this rank's own stream (DDP).

        A checkpoint written by as many ranks as this run has holds each rank's states: every rank
        then continues its own uninterrupted stream. Otherwise (an older checkpoint, or another
        number of processes) ranks > 0 fold their rank into rank 0's states.
        """
        if self._resume_rng is not None:
            restore_rng_state(self._resume_rng)
        if not self._resume_rng_is_own:
            fold_in_rank(int(self.cfg["seed"]), self.global_rank, self.global_step)

    def on_train_start(self) -> None:
        self._start_generators()

    def on_train_epoch_start(self) -> None:
        # again at the first epoch after a resume, so it starts where the checkpointed run's next
        # epoch started (nothing may draw in between); later epochs continue the stream
        if self._resume_rng is not None:
            self._start_generators()
            self._resume_rng, self._resume_rng_is_own = None, False


def _channels_last(batch):
    if isinstance(batch, dict):
        return {k: _channels_last(v) for k, v in batch.items()}
    if isinstance(batch, torch.Tensor) and batch.dim() == 4:
        return batch.contiguous(memory_format=torch.channels_last)
    return batch


def _batch_size(batch) -> int:
    for v in batch.values():
        if isinstance(v, dict):
            return _batch_size(v)
        if isinstance(v, torch.Tensor):
            return int(v.shape[0])
    return 1
