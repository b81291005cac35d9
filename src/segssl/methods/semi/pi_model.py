"""Pi-model: two stochastic passes over each unlabeled crop must agree."""

from __future__ import annotations

import torch

from segssl.losses.semi import softmax_mse
from segssl.methods.base import StepOutput, register
from segssl.methods.semi.common import SemiMethod, check_range, noisy_forward, unlabeled_valid


@register("pi_model")
class PiModel(SemiMethod):
    """Pi-model (Laine & Aila ICLR 2017, Alg. 1): CE + w(t) (1/C) ||z - z~||^2 between two noisy passes.

    Each pass draws its own horizontal flip (undone on the output), Gaussian input noise and
    dropout on the decoder features, so z and z~ differ only by the network's stochasticity.
    Gradients flow through both passes (Alg. 1 treats both as network outputs). w(t) ramps up
    as exp(-5 (1 - t)^2) over `rampup` x max_steps; the paper's w_max is 100 M/N (M/N the
    labeled fraction), 12.5 at 1/8 labeled.
    """

    defaults = {"weight": 12.5, "rampup": 0.25, "noise": 0.15, "dropout": 0.5, "flip": True}

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.model = self.build_model()
        self.dropout = check_range("dropout", self.a["dropout"], 0.0, 0.95)

    def _pass(self, x: torch.Tensor) -> torch.Tensor:
        return noisy_forward(
            self.model, x, noise_std=float(self.a["noise"]), dropout=self.dropout, flip=bool(self.a["flip"])
        )

    def training_step(self, batch, step):
        lb, ub = batch["labeled"], batch["unlabeled"]
        nl, xu = lb["image"].shape[0], ub["image"]
        z = self._pass(torch.cat((lb["image"], xu)))
        z_tilde = self._pass(xu)
        sup = self.supervised_loss(z[:nl], lb["label"])
        cons = softmax_mse(z[nl:], z_tilde.float().softmax(dim=1), valid=unlabeled_valid(ub, xu))
        w = float(self.a["weight"]) * self.ramp(step)
        logs = {"loss_sup": sup.detach(), "loss_cons": cons.detach(), "cons_weight": w}
        return StepOutput(sup + w * cons, logs)
