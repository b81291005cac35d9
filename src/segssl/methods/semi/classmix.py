"""ClassMix: paste the pixels of half the predicted classes of one crop onto another."""

from __future__ import annotations

import torch

from segssl.data.mixing import class_mix_masks, mix, partner
from segssl.losses.semi import pseudo_label_ce
from segssl.methods.base import StepOutput, register
from segssl.methods.semi.common import StrongAug, TeacherStudent, check_range, unlabeled_valid


@register("classmix")
class ClassMix(TeacherStudent):
    """ClassMix (Olsson et al. WACV 2021, Sec. 3, Alg. 1): CE on mixed crops vs mixed teacher pseudo-labels.

    The EMA teacher (alpha 0.99) predicts on crops A and B (B = the previous crop of the batch);
    M = pixels of half of the classes in argmax f(A); the student sees mix(B, A, M) after colour
    jitter (0.25, p 0.8) and Gaussian blur (sigma U(0.15, 1.15), p 0.5) and is trained with CE
    against the same mix of the teacher's argmax labels. The unlabeled loss is weighted by the
    share of mixed pixels whose teacher confidence is >= `threshold` (0.968, the paper's
    "threshold_uniform" pixel weight). The student is evaluated/exported, as in the official code.
    """

    defaults = {"ema": 0.99, "weight": 1.0, "threshold": 0.968}

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.threshold = check_range("threshold", self.a["threshold"], 0.0, 1.0)
        self.strong = StrongAug(
            jitter=(0.25, 0.25, 0.25, 0.25), jitter_p=0.8, gray_p=0.0, blur_p=0.5, blur_sigma=(0.15, 1.15)
        )

    def segmenter(self):
        return self.model

    def training_step(self, batch, step):
        lb, ub = batch["labeled"], batch["unlabeled"]
        nl, xu = lb["image"].shape[0], ub["image"]
        valid = unlabeled_valid(ub, xu)
        with torch.no_grad():
            p_t = self.teacher(xu).float().softmax(dim=1)
            conf, labels = p_t.max(dim=1)
            m = class_mix_masks(labels)  # True: pixel of A (this crop) pasted onto B (its partner)
            x_mix = self.strong(mix(partner(xu), xu, m))
            y_mix, conf_mix = mix(partner(labels), labels, m), mix(partner(conf), conf, m)
            v_mix = mix(partner(valid), valid, m)
            share = ((conf_mix >= self.threshold) & v_mix).sum() / v_mix.sum().clamp_min(1)
        logits = self.model(torch.cat((lb["image"], x_mix)))
        sup = self.supervised_loss(logits[:nl], lb["label"])
        unsup = pseudo_label_ce(logits[nl:], y_mix, weight=share, valid=v_mix)
        loss = sup + float(self.a["weight"]) * unsup
        return StepOutput(loss, {"loss_sup": sup.detach(), "loss_unsup": unsup.detach(), "conf_ratio": share})
