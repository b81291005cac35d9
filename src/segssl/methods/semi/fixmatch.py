"""FixMatch for segmentation, as UniMatch's baseline: weak view labels the strong view."""

from __future__ import annotations

import torch

from segssl.data.mixing import cutmix_boxes, mix, partner
from segssl.losses.semi import pseudo_label_ce
from segssl.methods.base import StepOutput, register
from segssl.methods.semi.common import (
    SemiMethod,
    StrongAug,
    check_range,
    class_balanced_keep,
    confident_pseudo_labels,
    unlabeled_valid,
)


class WeakToStrong(SemiMethod):
    """Shared by FixMatch and UniMatch: confident weak-view labels, strong views with CutMix.

    The CutMix partner of each crop is the previous crop of the batch (UniMatch draws a second
    unlabeled batch and labels it with the model in eval mode; the rolled batch reuses the weak
    predictions already computed, saving a forward pass).

    `class_balanced_portion` p > 0 switches the fixed mask conf >= tau to CBST's class-balanced
    one (`class_balanced_keep`): each predicted class also keeps its top p most confident pixels,
    so tail classes, which a fixed 0.95 drops almost entirely, get pseudo-labels too. 0 = the papers.
    `unlabeled_class_weights` true weights each pseudo-labelled pixel by its pseudo-class's
    `train.class_weights` entry, as the labeled CE weights each labeled pixel; false = the papers.
    `strong_jitter_p`, `strong_gray_p`, `strong_blur_p` are the strong view's photometric
    probabilities (UniMatch's 0.8 / 0.2 / 0.5); all 0 leaves CutMix as the only strong perturbation,
    an ablation for data whose classes differ mainly by colour (road / sidewalk).
    """

    defaults = {
        "threshold": 0.95,
        "cutmix_p": 0.5,
        "class_balanced_portion": 0.0,
        "unlabeled_class_weights": False,
        "strong_jitter_p": StrongAug.jitter_p,  # the strong view's own defaults: UniMatch's
        "strong_gray_p": StrongAug.gray_p,
        "strong_blur_p": StrongAug.blur_p,
    }

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.model = self.build_model()
        self.threshold = check_range("threshold", self.a["threshold"], 0.0, 1.0)
        self.cutmix_p = check_range("cutmix_p", self.a["cutmix_p"], 0.0, 1.0)
        self.cb_portion = check_range("class_balanced_portion", self.a["class_balanced_portion"], 0.0, 1.0)
        self.unlabeled_cw = bool(self.a["unlabeled_class_weights"])
        self.strong = StrongAug(
            jitter_p=check_range("strong_jitter_p", self.a["strong_jitter_p"], 0.0, 1.0),
            gray_p=check_range("strong_gray_p", self.a["strong_gray_p"], 0.0, 1.0),
            blur_p=check_range("strong_blur_p", self.a["strong_blur_p"], 0.0, 1.0),
        )

    def keep_mask(self, labels: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
        """Float (B, H, W) weight of each pseudo-labelled pixel: fixed threshold, or class-balanced."""
        if self.cb_portion > 0:
            return class_balanced_keep(labels, conf, self.info.num_classes, self.cb_portion, self.threshold)
        return (conf >= self.threshold).float()

    def strong_view(self, xu: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor):
        """Strong view with a CutMix box from the partner crop; its mixed labels, keep masks, validity."""
        b, h, w = xu.shape[0], *xu.shape[-2:]
        xs = self.strong(xu)
        box = cutmix_boxes(b, h, w, p=self.cutmix_p).to(xu.device)
        return (
            mix(xs, partner(xs), box),
            mix(labels, partner(labels), box),
            mix(keep, partner(keep), box),
            mix(valid, partner(valid), box),
        )

    def unsup_ce(self, logits: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor):
        """UniMatch's L_u: CE on kept pixels (confidence >= tau), averaged over all valid pixels."""
        if self.unlabeled_cw:
            keep = keep * self.pseudo_class_weight(labels)
        return pseudo_label_ce(logits, labels, weight=keep, valid=valid)


@register("fixmatch")
class FixMatch(WeakToStrong):
    """FixMatch (Sohn et al. NeurIPS 2020) in UniMatch's form (Yang et al. CVPR 2023, Eq. 1-3):
    L = (L_s + `weight` L_u) / 2, L_u = CE(f(strong + CutMix), argmax f(weak)) on pixels with conf >= 0.95.
    """

    defaults = {**WeakToStrong.defaults, "weight": 1.0}

    def training_step(self, batch, step):
        lb, ub = batch["labeled"], batch["unlabeled"]
        nl, xu = lb["image"].shape[0], ub["image"]
        logits = self.model(torch.cat((lb["image"], xu)))
        sup = self.supervised_loss(logits[:nl], lb["label"])
        labels, conf, _ = confident_pseudo_labels(logits[nl:], self.threshold)
        keep = self.keep_mask(labels, conf)
        with torch.no_grad():
            xs, ys, cs, vs = self.strong_view(xu, labels, keep, unlabeled_valid(ub, xu))
        unsup = self.unsup_ce(self.model(xs), ys, cs, vs)
        loss = (sup + float(self.a["weight"]) * unsup) / 2
        return StepOutput(
            loss,
            {
                "loss_sup": sup.detach(),
                "loss_unsup": unsup.detach(),
                "conf_ratio": keep.mean(),
            },
        )
