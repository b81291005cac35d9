"""CutMix / CutOut consistency with a mean teacher (French et al.)."""

from __future__ import annotations

import torch

from segssl.data.mixing import box_masks, mix, partner
from segssl.errors import SegsslError
from segssl.losses.semi import softmax_mse
from segssl.methods.base import StepOutput, register
from segssl.methods.semi.common import StrongAug, TeacherStudent, as_pair, check_range, unlabeled_valid


@register("cutmix")
class CutMixConsistency(TeacherStudent):
    """French et al. (BMVC 2020): CutMix/CutOut mask-based consistency against a mean teacher (official code).

    cutmix: M is a box covering `prop_range` of the crop (paper: 0.5); the student predicts on
    mix(x_a, x_b, M) and is pulled to mix(f_teacher(x_a), f_teacher(x_b), M) (x_b = the previous
    crop of the batch). cutout: only a box of area U(0, 1) is kept, the rest set to 0 (the mean
    colour in normalised space), and the loss counts kept pixels only. The loss is the squared
    distance between probabilities summed over classes, times the share of pixels whose teacher
    confidence is >= `threshold` (0.97; per pixel instead with `conf_per_pixel`), times `weight`.
    With `color`, the student's crops get the paper's colour augmentation (jitter 0.4/0.4/0.4/0.1
    p 0.8, grayscale p 0.2) and the teacher sees them as loaded. The teacher is evaluated/exported.
    """

    defaults = {
        "mask": "cutmix",
        "prop_range": None,
        "n_boxes": 1,
        "ema": 0.99,
        "weight": 1.0,
        "threshold": 0.97,
        "conf_per_pixel": False,
        "color": True,
    }

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.mask = str(self.a["mask"])
        if self.mask not in ("cutmix", "cutout"):
            raise SegsslError(f"method_args.mask={self.mask}: must be cutmix or cutout")
        default_prop = (0.5, 0.5) if self.mask == "cutmix" else (0.0, 1.0)
        given = self.a["prop_range"]
        self.prop = as_pair("prop_range", given) if given is not None else default_prop
        check_range("prop_range", self.prop[0], 0.0, 1.0)
        check_range("prop_range", self.prop[1], 0.0, 1.0)
        self.threshold = check_range("threshold", self.a["threshold"], 0.0, 1.0)
        self.color = StrongAug(jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8, gray_p=0.2, blur_p=0.0)

    def segmenter(self):
        return self.teacher.module

    def training_step(self, batch, step):
        lb, ub = batch["labeled"], batch["unlabeled"]
        nl, xu = lb["image"].shape[0], ub["image"]
        b, h, w = xu.shape[0], *xu.shape[-2:]
        valid = unlabeled_valid(ub, xu)
        xs = self.color(xu) if self.a["color"] else xu
        with torch.no_grad():
            p_t = self.teacher(xu).float().softmax(dim=1)
        m = box_masks(b, h, w, self.prop, int(self.a["n_boxes"])).to(xu.device)
        if self.mask == "cutmix":
            x_student = mix(xs, partner(xs), m)
            target, valid = mix(p_t, partner(p_t), m), mix(valid, partner(valid), m)
            region = None
        else:  # cutout: keep the box, zero the rest; the loss only where the student saw the image
            x_student = xs * m.unsqueeze(1).to(xs.dtype)
            target, region = p_t, m.float()
        logits = self.model(torch.cat((lb["image"], x_student)))
        sup = self.supervised_loss(logits[:nl], lb["label"])
        confident = (target.max(dim=1).values >= self.threshold).float()
        if self.a["conf_per_pixel"]:
            conf_weight = confident
        else:  # one weight for the batch: the share of confident (valid) pixels
            conf_weight = (confident * valid).sum() / valid.sum().clamp_min(1)
        weight = conf_weight if region is None else conf_weight * region
        cons = softmax_mse(logits[nl:], target, weight=weight, valid=valid, class_reduction="sum")
        loss = sup + float(self.a["weight"]) * cons
        return StepOutput(loss, {"loss_sup": sup.detach(), "loss_cons": cons.detach(), "conf_ratio": confident.mean()})
