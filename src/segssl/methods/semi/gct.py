"""Guided Collaborative Training (Ke et al. ECCV 2020) in the one training loop.

Two task models T1, T2 (same architecture, different random initialisations) and a flaw detector F
(image (+) softmax prediction -> flaw map). Every step, on the batch [labeled; unlabeled]:

- supervised CE of T1 and T2 on the labeled crops;
- F is trained (MSE, weight `fd_weight` = 10) towards the flaw target C(|T(x) - onehot(y)|) on
  labeled crops (C = blur, nu x (dilate, blur), min-max normalisation);
- dynamic consistency L_dc (weight `dc_weight` = 100, Gaussian ramp-up over `rampup` of training):
  per pixel, the model whose (handled) flaw value is lower teaches the other (MSE between
  probabilities), flaw values above `dc_threshold` = 0.6 counting as fully flawed;
- flaw correction L_fc (weight `fc_weight` = 1): F, frozen, maps each task model's prediction,
  and the map is pushed to zero where both models are flawed.
Defaults are the reference's VOC settings (PixelSSL, deeplabv2_pascalvoc_1-8_sslgct.py).

The reference alternates optimiser steps (T1, T2, then F). Here one backward pass does the same
thing because the gradient paths are disjoint: F's loss reads predictions that are *detached*,
so it only reaches F's parameters; L_fc runs F through `torch.func.functional_call` with
*detached copies of F's parameters*, so it reaches only the task model whose prediction went in;
L_dc targets are detached. F gets its own parameter group (learning rate `fd_lr`, reference
Adam 1e-4; no weight decay) under the run's optimiser and schedule. T1 is evaluated/exported.
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from segssl.errors import SegsslError
from segssl.losses.gct import (
    dynamic_consistency_targets,
    flaw_correction_loss,
    flaw_detector_loss,
    flaw_target,
    process_flawmap,
)
from segssl.losses.semi import softmax_mse
from segssl.methods.base import StepOutput, register
from segssl.methods.semi.common import SemiMethod, check_range, unlabeled_valid
from segssl.models.heads import FlawDetector


@register("gct")
class GCT(SemiMethod):
    """GCT (Ke et al. ECCV 2020): two task models + flaw detector; L_sup + L_dc + L_fc, F trained on C(.)."""

    defaults = {
        "mode": "gct",  # gct (L_dc + L_fc) | dc (only L_dc) | fc (only L_fc), as the reference's ssl_mode
        "dc_weight": 100.0,  # L_dc coefficient (reference: 100)
        "fc_weight": 1.0,  # L_fc coefficient (reference: 1)
        "fd_weight": 10.0,  # flaw detector loss coefficient (reference: 10)
        "dc_threshold": 0.6,  # flaw value above which a pixel counts as flawed (reference: 0.6)
        "rampup": 0.15,  # L_dc ramp-up, fraction of training (reference: 3 of 20 epochs)
        "mu": 0.5,  # flaw target scale (reference: 0.5)
        "nu": 1,  # dilate + blur repetitions of the flaw target pipeline (reference: 1)
        "flaw_clip": 0.1,  # a predicted flaw map whose maximum stays below this means "no flaw"
        "fd_lr": 1e-4,  # learning rate of the flaw detector (reference: Adam, 1e-4)
        "fd_channels": 64,  # base width of the flaw detector (reference: 64)
    }

    def __init__(self, cfg: dict, info):
        super().__init__(cfg, info)
        a = self.a
        if a["mode"] not in ("gct", "dc", "fc"):
            raise SegsslError(f"method_args.mode={a['mode']}: must be gct, dc or fc")
        check_range("dc_threshold", a["dc_threshold"], 0.0, 1.0)
        check_range("rampup", a["rampup"], 0.0, 1.0)
        if int(a["nu"]) < 0:
            raise SegsslError(f"method_args.nu={a['nu']}: must be >= 0")
        self.model = self.build_model()  # T1 (evaluated)
        self.model2 = self.build_model()  # T2: another random initialisation
        self.flaw = FlawDetector(3 + info.num_classes, int(a["fd_channels"]))

    def param_groups(self) -> list[dict]:
        fd = [p for p in self.flaw.parameters() if p.requires_grad]
        ids = {id(p) for p in fd}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": rest}, {"params": fd, "lr": float(self.a["fd_lr"]), "weight_decay": 0.0}]

    def _frozen_flaw(self, x: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
        """F(x, prob) with F's parameters detached: gradients reach `prob` (the task model) only."""
        params = {k: v.detach() for k, v in self.flaw.named_parameters()}
        return functional_call(self.flaw, params, (x, prob))

    def training_step(self, batch: dict, step: int) -> StepOutput:
        lb, ub = batch["labeled"], batch["unlabeled"]
        ign = self.info.ignore_index
        xl, yl, xu = lb["image"], lb["label"], ub["image"]
        nl = xl.shape[0]
        x = torch.cat((xl, xu))
        valid = torch.cat((yl != ign, unlabeled_valid(ub, xu)))
        logits1, logits2 = self.model(x), self.model2(x)
        p1, p2 = logits1.float().softmax(1), logits2.float().softmax(1)
        sup = self.supervised_loss(logits1[:nl], yl) + self.supervised_loss(logits2[:nl], yl)

        # flaw detector on detached predictions: its loss trains F only
        f1, f2 = self.flaw(x, p1.detach()), self.flaw(x, p2.detach())
        a = self.a
        mu, nu = float(a["mu"]), int(a["nu"])
        gt1 = flaw_target(p1[:nl].detach(), yl, ign, mu, nu)
        gt2 = flaw_target(p2[:nl].detach(), yl, ign, mu, nu)
        vl = (yl != ign).unsqueeze(1)
        loss_fd = (
            float(a["fd_weight"]) * 0.5 * (flaw_detector_loss(f1[:nl], gt1, vl) + flaw_detector_loss(f2[:nl], gt2, vl))
        )

        h1 = process_flawmap(f1.detach(), float(a["flaw_clip"]))
        h2 = process_flawmap(f2.detach(), float(a["flaw_clip"]))
        t1, t2, both_bad = dynamic_consistency_targets(p1, p2, h1, h2, float(a["dc_threshold"]))
        logs = {"loss_sup": sup.detach(), "loss_fd": loss_fd.detach()}
        loss = sup + loss_fd
        if a["mode"] in ("gct", "dc"):
            dc = softmax_mse(logits1, t1, valid=valid) + softmax_mse(logits2, t2, valid=valid)
            dc = float(a["dc_weight"]) * self.ramp(step) * dc
            loss = loss + dc
            logs["loss_dc"] = dc.detach()
        if a["mode"] in ("gct", "fc"):
            mask = both_bad if a["mode"] == "gct" else None
            fc = flaw_correction_loss(self._frozen_flaw(x, p1), mask, valid) + flaw_correction_loss(
                self._frozen_flaw(x, p2), mask, valid
            )
            fc = float(a["fc_weight"]) * fc
            loss = loss + fc
            logs["loss_fc"] = fc.detach()
        logs["flawed_share"] = both_bad.mean()
        return StepOutput(loss, logs)
