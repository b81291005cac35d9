"""Adaptive Equalization Learning (Hu et al. NeurIPS 2021) in the one training loop.

Mean-teacher framework (EMA teacher, decay 0.99 with Mean Teacher's warm-up; the teacher is the
evaluated/exported model, as the reference saves it). Per step:

1. Adaptive Copy-Paste (labeled crops, as the reference code): classes are sampled from
   softmax((1 - Conf)^0.5) (3 draws, deduplicated); each labeled crop, with probability 0.5,
   receives the pixels of those classes (image and label) from its partner crop in the batch.
2. Supervised CE on the (pasted) labeled crops; the confidence bank is updated from the
   student's probabilities of the true class on them (per-class EMA, momentum 0.999).
3. Adaptive CutMix (unlabeled crops): for each crop a class c ~ softmax(1 - Conf); the partner
   is a crop of the batch whose teacher prediction contains a c-component of at least
   `cutmix_area` of the crop; the cut region is that component's bounding box. Without such a
   partner, the previous crop and a random box of half the area (French et al.) are used.
   The teacher's logits are mixed the same way; pseudo-label = argmax, confidence = max prob.
4. Unsupervised loss: CE of the student on the mixed crops against the pseudo-labels, each pixel
   weighted by confidence^gamma (dynamic re-weighting, gamma = 2) and kept with probability
   s_c of its pseudo-class (adaptive equalization sampling), normalised by the summed weights.
   The reference adds the same loss on the labeled crops against the teacher's pseudo-labels
   (`labeled_consistency`).

Deviations (the loop gives batches, not the dataset): the CutMix partner is searched in the
current unlabeled batch, not in a dataset-wide "cutmix bank" of which images contain which class;
the reference mixes one pair per step, here every crop of the batch is mixed. The confidence
bank starts from each class's first observation (the reference starts from random values and
pulls absent classes towards 0); equalization sampling draws by the pseudo-label (the reference
uses the student's argmax). The supervised loss is the run's `train.loss` (the reference: OHEM CE).
`copy_paste_target: unlabeled` instead pastes labeled pixels onto the mixed unlabeled crops,
with their true labels as targets (confidence 1). `rampup` > 0 ramps the unsupervised weight up (Laine &
Aila's exp(-5(1-t)^2), as CPS here): from random init the teacher's argmax is a biased guess, and with no
threshold and weights normalised by their sum, the pseudo-label terms count in full from step 0.
"""

from __future__ import annotations

import torch

from segssl.data.mixing import box_masks, mix, partner
from segssl.errors import SegsslError
from segssl.losses.ael import (
    category_confidence,
    class_sampling_probs,
    component_box,
    copy_paste,
    equalization_mask,
    equalization_rates,
    reweighted_ce,
    update_confidence,
)
from segssl.methods.base import StepOutput, register
from segssl.methods.semi.common import TeacherStudent, check_range, unlabeled_valid


@register("ael")
class AEL(TeacherStudent):
    """AEL (Hu et al. NeurIPS 2021): confidence bank + adaptive CutMix, Copy-Paste, sampling, re-weighting."""

    defaults = {
        "ema": 0.99,  # teacher EMA decay (reference: 0.99)
        "unsup_weight": 1.0,  # weight of the unsupervised terms (reference: consist_weight 1)
        "threshold": 0.0,  # pseudo-labels with confidence below are ignored (reference: 0)
        "bank_momentum": 0.999,  # confidence bank EMA momentum (reference: 0.999)
        "gamma": 2.0,  # dynamic re-weighting exponent (reference: 2)
        "sampling": True,  # adaptive equalization sampling
        "beta": 1.0,  # equalization sampling exponent (reference: 1)
        "labeled_consistency": True,  # also the pseudo-label loss on labeled crops (reference: yes)
        "cutmix": True,  # adaptive CutMix on unlabeled crops
        "cutmix_power": 1.0,  # class sampling softmax((1 - Conf)^power) for CutMix (reference: 1)
        "cutmix_area": 0.005,  # min component area (fraction of the crop) of the sampled class
        "copy_paste": True,  # adaptive Copy-Paste
        "copy_paste_target": "labeled",  # labeled (reference) | unlabeled
        "copy_paste_classes": 3,  # class draws per step (reference: 3)
        "copy_paste_power": 0.5,  # class sampling softmax((1 - Conf)^power) for Copy-Paste (reference: 0.5)
        "copy_paste_prob": 0.5,  # probability that a crop receives a paste (reference: 0.5)
        "rampup": 0.0,  # share of max_steps over which unsup_weight ramps up exp(-5(1-t)^2) (reference: 0)
    }

    def __init__(self, cfg: dict, info):
        super().__init__(cfg, info)
        a = self.a
        for k in ("threshold", "bank_momentum", "cutmix_area", "copy_paste_prob", "rampup"):
            check_range(k, a[k], 0.0, 1.0)
        if a["copy_paste_target"] not in ("labeled", "unlabeled"):
            raise SegsslError(f"method_args.copy_paste_target={a['copy_paste_target']}: must be labeled or unlabeled")
        k = info.num_classes
        self.register_buffer("bank", torch.zeros(k))
        self.register_buffer("seen", torch.zeros(k, dtype=torch.bool))

    def segmenter(self):
        return self.teacher.module

    # -- adaptive augmentations ---------------------------------------------------------------

    def _paste_classes(self) -> torch.Tensor:
        p = class_sampling_probs(self.bank, float(self.a["copy_paste_power"])).cpu()
        n = int(self.a["copy_paste_classes"])
        if n <= 0:
            return torch.zeros(0, dtype=torch.long)
        return torch.unique(torch.multinomial(p, n, replacement=True))

    def _copy_paste(
        self,
        img: torch.Tensor,
        lab: torch.Tensor,
        src_img: torch.Tensor,
        src_lab: torch.Tensor,
        classes: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Paste `classes` pixels of src onto each image with probability copy_paste_prob; also returns
        the (B, H, W) mask of pasted pixels."""
        p = float(self.a["copy_paste_prob"])
        out_i, out_l, pasted = [], [], []
        cls = classes.to(src_lab.device)
        for i in range(img.shape[0]):
            if classes.numel() and float(torch.rand(())) < p:
                ci, cl = copy_paste(img[i], lab[i], src_img[i], src_lab[i], cls)
                pasted.append(torch.isin(src_lab[i], cls))
            else:
                ci, cl = img[i], lab[i]
                pasted.append(torch.zeros_like(lab[i], dtype=torch.bool))
            out_i.append(ci)
            out_l.append(cl)
        return torch.stack(out_i), torch.stack(out_l), torch.stack(pasted)

    def _adaptive_cutmix_masks(self, teacher_pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(partner index per crop, (B, H, W) region taken from the partner) from the teacher's argmax."""
        b, h, w = teacher_pred.shape
        probs = class_sampling_probs(self.bank, float(self.a["cutmix_power"])).cpu()
        min_area = max(1, int(float(self.a["cutmix_area"]) * h * w))
        pred = teacher_pred.cpu()
        idx = torch.arange(b).roll(1)  # default partner: the previous crop, as data.mixing.partner
        masks = torch.zeros(b, h, w, dtype=torch.bool)
        for i in range(b):
            c = int(torch.multinomial(probs, 1))
            cands = [j for j in range(b) if j != i and int((pred[j] == c).sum()) >= min_area]
            box = None
            if cands:
                j = cands[int(torch.randint(0, len(cands), ()))]
                box = component_box(pred[j] == c, min_area)
            if box is None:
                masks[i] = box_masks(1, h, w, (0.5, 0.5))[0]
            else:
                idx[i] = j
                y0, x0, y1, x1 = box
                masks[i, y0:y1, x0:x1] = True
        return idx.to(teacher_pred.device), masks.to(teacher_pred.device)

    # -- step ---------------------------------------------------------------------------------

    def _consistency(self, logits: torch.Tensor, pseudo: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
        keep = None
        if self.a["sampling"]:
            keep = equalization_mask(
                pseudo, equalization_rates(self.bank, float(self.a["beta"])), self.info.ignore_index
            )
        return reweighted_ce(logits, pseudo, conf, float(self.a["gamma"]), keep, self.info.ignore_index)

    def _pseudo(self, teacher_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        prob = teacher_logits.detach().float().softmax(1)
        conf, pseudo = prob.max(1)
        thr = float(self.a["threshold"])
        if thr > 0:
            pseudo = torch.where(conf < thr, torch.full_like(pseudo, self.info.ignore_index), pseudo)
        return pseudo, conf

    def training_step(self, batch: dict, step: int) -> StepOutput:
        lb, ub = batch["labeled"], batch["unlabeled"]
        ign = self.info.ignore_index
        xl, yl = lb["image"], lb["label"]
        paste_target = self.a["copy_paste_target"] if self.a["copy_paste"] else None
        classes = self._paste_classes() if paste_target else torch.zeros(0, dtype=torch.long)
        if paste_target == "labeled":
            xl, yl, _ = self._copy_paste(xl, yl, partner(xl), partner(yl), classes)

        logits_l = self.model(xl)
        loss_sup = self.supervised_loss(logits_l, yl)
        conf_c, present = category_confidence(logits_l.detach().float().softmax(1), yl, ign)
        bank, seen = update_confidence(self.bank, self.seen, conf_c, present, float(self.a["bank_momentum"]))
        self.bank.copy_(bank)
        self.seen.copy_(seen)

        xu = ub["image"]
        valid = unlabeled_valid(ub, xu)
        with torch.no_grad():
            t_u = self.teacher(xu).float()
            t_l = self.teacher(xl).float() if self.a["labeled_consistency"] else None
        if self.a["cutmix"]:
            j, region = self._adaptive_cutmix_masks(t_u.argmax(1))
            xu, t_u, valid = mix(xu, xu[j], region), mix(t_u, t_u[j], region), mix(valid, valid[j], region)
        pseudo, conf = self._pseudo(t_u)
        if paste_target == "unlabeled":
            nl = xl.shape[0]
            src = torch.arange(xu.shape[0], device=xu.device) % nl
            xu, pseudo, pasted = self._copy_paste(xu, pseudo, xl[src], yl[src], classes)
            conf = torch.where(pasted, torch.ones_like(conf), conf)
        pseudo = torch.where(valid, pseudo, torch.full_like(pseudo, ign))
        loss_u = self._consistency(self.model(xu), pseudo, conf)
        logs = {
            "loss_sup": loss_sup.detach(),
            "loss_unsup": loss_u.detach(),
            "conf_bank_mean": self.bank[self.seen].mean() if self.seen.any() else torch.zeros(()),
        }
        if t_l is not None:
            pl, cl = self._pseudo(t_l)
            pl = torch.where(yl == ign, torch.full_like(pl, ign), pl)  # not on crop padding / void
            loss_cl = self._consistency(logits_l, pl, cl)
            loss_u = loss_u + loss_cl
            logs["loss_cons_labeled"] = loss_cl.detach()
        loss = loss_sup + float(self.a["unsup_weight"]) * self.ramp(step) * loss_u
        return StepOutput(loss, logs)
