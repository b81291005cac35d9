"""Mean Teacher: an EMA of the student's weights provides the consistency targets."""

from __future__ import annotations

import torch

from segssl.losses.semi import softmax_mse
from segssl.methods.base import StepOutput, register
from segssl.methods.semi.common import StrongAug, TeacherStudent, unlabeled_valid


@register("mean_teacher")
class MeanTeacher(TeacherStudent):
    """Mean Teacher (Tarvainen & Valpola NeurIPS 2017, Sec. 2): CE + w(t) (1/C) ||f(x_s; θ) - f(x; θ')||^2.

    theta' <- a theta' + (1 - a) theta after each step (a = min(1 - 1/(t + 1), `ema`)); the
    student sees a strong photometric version of the unlabeled crop (StrongAug), the teacher
    the crop as loaded. w(t) ramps up as exp(-5 (1 - t)^2). The teacher is the evaluated and
    exported model (the paper reports it as the better of the two).
    """

    defaults = {"ema": 0.99, "weight": 10.0, "rampup": 0.25}

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.strong = StrongAug()

    def segmenter(self):
        return self.teacher.module

    def training_step(self, batch, step):
        lb, ub = batch["labeled"], batch["unlabeled"]
        nl, xu = lb["image"].shape[0], ub["image"]
        with torch.no_grad():
            target = self.teacher(xu).float().softmax(dim=1)
        logits = self.model(torch.cat((lb["image"], self.strong(xu))))
        sup = self.supervised_loss(logits[:nl], lb["label"])
        cons = softmax_mse(logits[nl:], target, valid=unlabeled_valid(ub, xu))
        w = float(self.a["weight"]) * self.ramp(step)
        logs = {"loss_sup": sup.detach(), "loss_cons": cons.detach(), "cons_weight": w}
        return StepOutput(sup + w * cons, logs)
