"""Shared shape of dense pretraining methods: an online SegModel + an online dense probe.

The online probe (as lightly/solo-learn do for classification, here per pixel) is the model's
1x1 head trained with CE on *detached* features of labeled crops, when `--labeled` gives some:
it never shapes the representation, but its val mIoU is logged every validation, so users watch
representation quality while pretraining runs.
"""

from __future__ import annotations

import torch

from segssl.losses.segmentation import cross_entropy
from segssl.methods.base import Method, StepOutput
from segssl.models.checkpoint import init_from_config
from segssl.models.segmodel import SegModel


class DensePretrainMethod(Method):
    """Subclasses implement `ssl_step(views_batch, step) -> StepOutput`; the probe is added here."""

    kind = "pretrained"
    inputs: tuple[str, ...] = ("views", "probe")

    def __init__(self, cfg: dict, info):
        super().__init__(cfg, info)
        self.model: SegModel = self.new_model()  # online backbone; its head is the online probe
        init_from_config(self.model, cfg)

    def ssl_step(self, views: dict, step: int) -> StepOutput:
        """Self-supervised loss of one batch of two-view samples (view1, view2, box1, box2)."""
        raise TypeError(f"{type(self).__name__} must implement ssl_step")

    def probe_loss(self, batch: dict) -> torch.Tensor:
        with torch.no_grad():
            feats = self.model.features(batch["image"])
        logits = self.model.head(feats.detach())
        return cross_entropy(logits, batch["label"], self.info.ignore_index)

    def training_step(self, batch: dict, step: int) -> StepOutput:
        out = self.ssl_step(batch["views"], step)
        if "probe" in batch:
            p = self.probe_loss(batch["probe"])
            out.logs["loss_probe"] = p.detach()
            out.loss = out.loss + p
        return out

    def param_groups(self):
        return None  # all trainable parameters, one group (methods may override)
