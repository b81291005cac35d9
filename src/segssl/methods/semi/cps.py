"""Cross pseudo supervision: two differently initialised networks label each other."""

from __future__ import annotations

import torch

from segssl.data.mixing import box_masks, mix, partner
from segssl.losses.semi import cps_loss
from segssl.methods.base import StepOutput, register
from segssl.methods.semi.common import SemiMethod, as_pair, unlabeled_valid


@register("cps")
class CPS(SemiMethod):
    """CPS (Chen et al. CVPR 2021, Eq. 2-4): L_s(f1) + L_s(f2) + λ (CE(p1, argmax p2) + CE(p2, argmax p1)).

    f1 and f2 share the architecture but their random initialisation differs (f2 is built under
    seed + 1). With `model.init`, f2 takes only its encoder by default (`init2_parts: encoder`), as
    in the paper (one ImageNet backbone, two differently initialised heads): two networks loaded
    with the same full checkpoint get identical gradients and stay identical, and their cross
    supervision degenerates into plain hard-label self-training.
    Without CutMix the CPS term covers labeled and unlabeled crops (Eq. 4: L_cps = L_cps^l + L_cps^u);
    with `cutmix: true` it covers mixed unlabeled crops, whose hard labels are the same mix of
    each network's argmax on the two unmixed crops
    (3 boxes of total area U(0.25, 0.5), the official CutMix settings). lambda (`weight`) is
    1.5 on VOC and 6 on Cityscapes in the paper. The first network is the one evaluated and
    exported (the paper evaluates one branch; both perform alike).

    `rampup` (share of max_steps, 0 = the paper) ramps lambda up as exp(-5 (1 - t)^2): the paper's
    networks start from ImageNet weights, so their argmaxes mean something at step 0; from random
    init they are noise, and a full-weight hard-label term locks both networks into it (measured:
    14.0 mIoU at CamVid 1/8 without ramp-up, see BENCHMARKS.md).
    """

    defaults = {
        "weight": 1.5,
        "cutmix": False,
        "prop_range": [0.25, 0.5],
        "n_boxes": 3,
        "rampup": 0.0,
        "init2_parts": "encoder",
    }

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.model = self.build_model()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(cfg.get("seed", 0)) + 1)
            self.model2 = self.build_model(str(self.a["init2_parts"]))
        self.prop = as_pair("prop_range", self.a["prop_range"])

    def segmenter(self):
        return self.model

    def training_step(self, batch, step):
        lb, ub = batch["labeled"], batch["unlabeled"]
        nl, xu = lb["image"].shape[0], ub["image"]
        valid_u = unlabeled_valid(ub, xu)
        targets: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)
        if self.a["cutmix"]:
            b, h, w = xu.shape[0], *xu.shape[-2:]
            m = box_masks(b, h, w, self.prop, int(self.a["n_boxes"])).to(xu.device)
            with torch.no_grad():
                y1, y2 = self.model(xu).argmax(dim=1), self.model2(xu).argmax(dim=1)
                targets = (mix(y1, partner(y1), m), mix(y2, partner(y2), m))
            xu, valid_u = mix(xu, partner(xu), m), mix(valid_u, partner(valid_u), m)
        x = torch.cat((lb["image"], xu))
        l1, l2 = self.model(x), self.model2(x)
        sup = self.supervised_loss(l1[:nl], lb["label"]) + self.supervised_loss(l2[:nl], lb["label"])
        if self.a["cutmix"]:
            cps = cps_loss(l1[nl:], l2[nl:], valid=valid_u, target_a=targets[0], target_b=targets[1])
        else:
            valid = torch.cat((lb["label"] != self.info.ignore_index, valid_u))
            cps = cps_loss(l1, l2, valid=valid)
        w = float(self.a["weight"]) * self.ramp(step)
        loss = sup + w * cps
        return StepOutput(loss, {"loss_sup": sup.detach(), "loss_cps": cps.detach(), "cps_weight": w})
