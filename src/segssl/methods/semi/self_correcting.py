"""Self-correcting networks (Ibrahim et al. CVPR 2020): a few masks plus boxes for the rest.

Mixed supervision: the labeled crops are the fully supervised set F (masks, and boxes derived
from them), the unlabeled crops the weak set W, of which only boxes are known: the loader gives
`boxes_map` (B, K, H, W), derived from the hidden masks by `segssl.data.boxes` (the method sets
`needs_weak_boxes`, the data module honours it). Three models:

- ancillary p_anc(y | x, b): a SegModel whose encoder features are gated by box attention,
  trained with CE on F during the first `ancillary_fraction` of training, then frozen (eval mode);
- primary p(y | x): CE on F all along; from the end of the ancillary phase also the soft CE
  -sum_y q(y) log p(y | x) on W, with q from the self-correction module;
- self-correction: `linear`: q ∝ p^{1/(1+alpha)} p_anc^{alpha/(1+alpha)}, the minimiser of
  KL(q || p) + alpha KL(q || p_anc), alpha annealed from `alpha_start` (trust the ancillary model)
  to `alpha_end` (trust the primary model); or `conv`: a two-layer conv net on the stacked
  primary and ancillary logits, trained with CE on F (inputs detached) and giving q = its softmax
  on W (no gradient from W into it). For `conv`, as in the paper, the ancillary model sees only
  half of F (crops with an even dataset index) so that it is not perfect on F; the correction net
  is trained on the other half, where the ancillary model's errors are those it makes on W.

The primary model is evaluated and exported. Boxes of F come from the batch's `boxes_map` when the
loader gives one, else they are derived from the labels on the fly (the same derivation).
The alpha values are this implementation's choice (the paper only says alpha starts large and is
decreased during training).
"""

from __future__ import annotations

import torch

from segssl.data.boxes import batch_boxes_map
from segssl.errors import SegsslError
from segssl.losses.segmentation import cross_entropy
from segssl.losses.self_correcting import alpha_schedule, linear_self_correction, soft_cross_entropy
from segssl.methods.base import StepOutput, register
from segssl.methods.semi.common import SemiMethod, check_range, unlabeled_valid
from segssl.models.heads import BoxAttentionSegModel, ConvSelfCorrection


@register("self_correcting")
class SelfCorrecting(SemiMethod):
    """Self-correcting networks (Ibrahim et al. CVPR 2020): primary, box-conditioned ancillary, correction."""

    needs_weak_boxes = True  # the unlabeled loader must also return `boxes_map` (see data/boxes.py)
    defaults = {
        "correction": "linear",  # linear | conv
        "ancillary_fraction": 0.3,  # share of max_steps training the ancillary model (then frozen)
        "alpha_start": 30.0,  # linear correction: alpha when the weak set enters (large: q ~ p_anc)
        "alpha_end": 0.5,  # linear correction: alpha at the end of training (small: q ~ p)
        "weak_weight": 1.0,  # weight of the weak-set soft CE
        "background": 0,  # class that gets no boxes and fills the box map outside boxes; null = none
        "box_min_area": 1,  # derived boxes: ignore connected components smaller than this (pixels)
        "conv_hidden": 128,  # conv correction: hidden channels
        "half_split": True,  # conv correction: ancillary on even-index labeled crops, corrector on odd
    }

    def __init__(self, cfg: dict, info):
        super().__init__(cfg, info)
        a = self.a
        if a["correction"] not in ("linear", "conv"):
            raise SegsslError(f"method_args.correction={a['correction']}: must be linear or conv")
        check_range("ancillary_fraction", a["ancillary_fraction"], 0.0, 1.0)
        for k in ("alpha_start", "alpha_end"):
            if float(a[k]) < 0:
                raise SegsslError(f"method_args.{k}={a[k]}: must be >= 0")
        bg = a["background"]
        if bg is not None and not 0 <= int(bg) < info.num_classes:
            raise SegsslError(f"method_args.background={bg}: not a class index (0..{info.num_classes - 1}) or null")
        self.model = self.build_model()  # primary
        self.ancillary = BoxAttentionSegModel(self.build_model(), info.num_classes)
        self.corrector = (
            ConvSelfCorrection(info.num_classes, int(a["conv_hidden"])) if a["correction"] == "conv" else None
        )
        self.ancillary_steps = int(round(float(a["ancillary_fraction"]) * self.max_steps))

    def weak_box_spec(self) -> dict:
        """How the data module derives the weak set's `boxes_map` (kwargs of boxes_map_from_mask)."""
        return {
            "num_classes": self.info.num_classes,
            "ignore_index": self.info.ignore_index,
            "background": self.a["background"],
            "min_area": int(self.a["box_min_area"]),
        }

    def _labeled_boxes(self, lb: dict) -> torch.Tensor:
        if "boxes_map" in lb:
            return lb["boxes_map"]
        s = self.weak_box_spec()
        return batch_boxes_map(lb["label"], s["num_classes"], s["ignore_index"], s["background"], s["min_area"])

    def _halves(self, lb: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(ancillary rows, corrector rows) of the labeled batch."""
        n = lb["image"].shape[0]
        every = torch.ones(n, dtype=torch.bool, device=lb["image"].device)
        if self.corrector is None or not self.a["half_split"]:
            return every, every
        even = (torch.as_tensor(lb["index"], device=every.device) % 2) == 0
        return even, ~even

    def training_step(self, batch: dict, step: int) -> StepOutput:
        lb, ub = batch["labeled"], batch["unlabeled"]
        ign = self.info.ignore_index
        xl, yl = lb["image"], lb["label"]
        logits_l = self.model(xl)
        sup = self.supervised_loss(logits_l, yl)
        logs = {"loss_sup": sup.detach()}
        anc_rows, corr_rows = self._halves(lb)

        if step < self.ancillary_steps:  # phase 1: ancillary model on F
            box_l = self._labeled_boxes(lb)
            if anc_rows.any():
                anc = cross_entropy(self.ancillary(xl[anc_rows], box_l[anc_rows]), yl[anc_rows], ign)
            else:
                anc = sup * 0.0
            logs["loss_ancillary"] = anc.detach()
            return StepOutput(sup + anc, logs)

        if "boxes_map" not in ub:
            raise SegsslError(
                "method self_correcting: the unlabeled batch has no 'boxes_map' (the data "
                "module must derive weak-set boxes for methods with needs_weak_boxes)"
            )
        self.ancillary.eval()  # frozen: deployed behaviour, BN running statistics
        xu = ub["image"]
        with torch.no_grad():
            anc_u = self.ancillary(xu, ub["boxes_map"]).float()
        logits_u = self.model(xu)
        loss = sup
        if self.corrector is None:
            alpha = alpha_schedule(
                step,
                self.ancillary_steps,
                self.max_steps,
                float(self.a["alpha_start"]),
                float(self.a["alpha_end"]),
            )
            q = linear_self_correction(logits_u, anc_u, alpha)
            logs["alpha"] = alpha
        else:
            if corr_rows.any():
                with torch.no_grad():
                    anc_l = self.ancillary(xl[corr_rows], self._labeled_boxes(lb)[corr_rows]).float()
                corrected = self.corrector(logits_l[corr_rows].detach().float(), anc_l)
                corr = cross_entropy(corrected, yl[corr_rows], ign)
                loss = loss + corr
                logs["loss_corrector"] = corr.detach()
            with torch.no_grad():
                q = self.corrector(logits_u.detach().float(), anc_u).softmax(1)
        weak = soft_cross_entropy(logits_u, q, unlabeled_valid(ub, xu))
        logs["loss_weak"] = weak.detach()
        return StepOutput(loss + float(self.a["weak_weight"]) * weak, logs)
