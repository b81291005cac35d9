"""UniMatch: FixMatch with two strong views and a feature-perturbation stream."""

from __future__ import annotations

import torch

from segssl.methods.base import StepOutput, register
from segssl.methods.semi.common import (
    check_range,
    confident_pseudo_labels,
    feature_perturbed_forward,
    unlabeled_valid,
)
from segssl.methods.semi.fixmatch import WeakToStrong


@register("unimatch")
class UniMatch(WeakToStrong):
    """UniMatch (Yang et al. CVPR 2023, Eq. 5-7): (L_s + L_u) / 2, L_u = lambda L_fp + mu (L_s1 + L_s2) / 2.

    The weak crop's confident labels (>= 0.95) supervise two independently drawn strong views
    (each with its own CutMix box, p 0.5) and the weak crop decoded from encoder features under
    Dropout2d(0.5) (`fp_dropout`). lambda = `fp_weight` = 0.5 and mu = `strong_weight` = 0.5 as
    in the paper and code: loss = (L_s + 0.25 L_s1 + 0.25 L_s2 + 0.5 L_fp) / 2.
    """

    defaults = {**WeakToStrong.defaults, "fp_dropout": 0.5, "fp_weight": 0.5, "strong_weight": 0.5}

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.fp_dropout = check_range("fp_dropout", self.a["fp_dropout"], 0.0, 0.95)

    def training_step(self, batch, step):
        lb, ub = batch["labeled"], batch["unlabeled"]
        nl, xu = lb["image"].shape[0], ub["image"]
        logits, logits_fp = feature_perturbed_forward(
            self.model, torch.cat((lb["image"], xu)), start=nl, p=self.fp_dropout
        )
        sup = self.supervised_loss(logits[:nl], lb["label"])
        labels, conf, _ = confident_pseudo_labels(logits[nl:], self.threshold)
        keep = self.keep_mask(labels, conf)
        valid = unlabeled_valid(ub, xu)
        with torch.no_grad():
            x1, y1, c1, v1 = self.strong_view(xu, labels, keep, valid)
            x2, y2, c2, v2 = self.strong_view(xu, labels, keep, valid)
        s1, s2 = self.model(torch.cat((x1, x2))).chunk(2)
        l_s1, l_s2 = self.unsup_ce(s1, y1, c1, v1), self.unsup_ce(s2, y2, c2, v2)
        l_fp = self.unsup_ce(logits_fp, labels, keep, valid)
        mu, lam = float(self.a["strong_weight"]), float(self.a["fp_weight"])
        loss = (sup + mu * (l_s1 + l_s2) / 2 + lam * l_fp) / 2
        logs = {
            "loss_sup": sup.detach(),
            "loss_s1": l_s1.detach(),
            "loss_s2": l_s2.detach(),
            "loss_fp": l_fp.detach(),
            "conf_ratio": keep.mean(),
        }
        return StepOutput(loss, logs)
