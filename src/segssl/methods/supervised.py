"""Supervised training on the labeled images only: the baseline every method must beat."""

from __future__ import annotations

from segssl.methods.base import Method, StepOutput, register
from segssl.models.checkpoint import init_from_config


@register("supervised")
class Supervised(Method):
    """Cross-entropy (optionally + Dice) with ignore index on labeled crops."""

    inputs = ("labeled",)

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.model = self.new_model()
        init_from_config(self.model, cfg)

    def training_step(self, batch, step):
        b = batch["labeled"]
        loss = self.supervised_loss(self.model(b["image"]), b["label"])
        return StepOutput(loss, {"loss_sup": loss.detach()})
