"""Cross-Consistency Training (Ouali et al. CVPR 2020, Eq. 1-3) on a SegModel.

Shared encoder h, main decoder g (here: the SegModel's own decoder + head, skips included) and K
auxiliary decoders g_a^k, each reading a differently perturbed copy of the encoder output z:
  L = L_s + w_u L_u,   L_s = CE(g(h(x_l)), y)   (Eq. 1),
  L_u = 1/K sum_k MSE(softmax g_a^k(p_k(z)), softmax g(z))  on unlabeled images, target detached (Eq. 2),
  w_u ramped up from 0 to `unsup_weight` (30 in the paper) by exp(-5(1 - t)^2) over the first
  `rampup` fraction of training (Eq. 3; the reference config ramps over 10%).

Perturbations: feature-based F-Noise, F-Drop, spatial dropout; prediction-based
object / context masking and guided cutout (from the main decoder's argmax) and VAT (one power
iteration, xi = 1e-6, eps = 2.0). Paper counts: 2 VAT, 6 dropout, 6 cutout, 2 context masking,
2 object masking, 6 F-Drop, 6 F-Noise.

Adaptation to a UNet-style SegModel: z is the deepest encoder feature map (`aux_level: -1`, stride
32 at encoder depth 5), the perturbation target in CCT. The auxiliary decoders are CCT's own
lightweight pixel-shuffle upsamplers from z (they cannot use the UNet skips: a skip would carry
unperturbed features around the perturbation), so they are weaker than the main decoder; the
consistency loss still shapes the shared encoder, which is what CCT relies on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segssl.errors import SegsslError
from segssl.losses.cct import cct_unsupervised_loss
from segssl.methods.base import StepOutput, register
from segssl.methods.semi.common import SemiMethod, check_range, unlabeled_valid
from segssl.models.heads import CCT_PERTURBATIONS, CCTAuxDecoder


@register("cct")
class CCT(SemiMethod):
    """Cross-consistency training (Ouali et al. CVPR 2020, Eq. 1-3): main + K perturbed auxiliary decoders."""

    defaults = {
        "unsup_weight": 30.0,  # final w_u (paper: 30)
        "rampup": 0.1,  # fraction of max_steps over which w_u ramps up (reference config: 0.1)
        "confidence": None,  # null, or only target pixels with max prob > this count (paper's suppl.)
        "aux_level": -1,  # index into the encoder pyramid of the perturbed features z (-1 = deepest)
        # number of auxiliary decoders per perturbation (paper's counts; K = 30)
        "vat": 2,
        "dropout": 6,
        "cutout": 6,
        "context_masking": 2,
        "object_masking": 2,
        "feature_drop": 6,
        "feature_noise": 6,
        "drop_rate": 0.5,  # spatial dropout rate (paper: 0.5)
        "uniform_range": 0.3,  # F-Noise N ~ U(-0.3, 0.3)
        "erase": 0.4,  # guided cutout: erased box side = 0.4 x the object's box side
        "cutout_min_area": 50,  # guided cutout skips predicted objects under this many pixels
        "xi": 1e-6,  # VAT finite-difference step (paper config: 1e-6)
        "eps": 2.0,  # VAT perturbation norm (paper config: 2.0)
        "background": 0,  # class treated as context by the masking perturbations; null = each image's mode
    }

    def __init__(self, cfg: dict, info):
        super().__init__(cfg, info)
        a = self.a
        check_range("rampup", a["rampup"], 0.0, 1.0)
        if a["confidence"] is not None:
            check_range("confidence", a["confidence"], 0.0, 1.0)
        self.model = self.build_model()
        self.level = int(a["aux_level"])
        with torch.no_grad():
            was = self.model.training
            self.model.eval()
            size = self.model.stride * 2
            feats = self.model.encoder(torch.zeros(1, 3, size, size))
            self.model.train(was)
        if not -len(feats) < self.level < len(feats) or self.level % len(feats) == 0:
            raise SegsslError(f"method_args.aux_level={self.level}: must index an encoder level 1..{len(feats) - 1}")
        z = feats[self.level]
        channels, upscale = int(z.shape[1]), size // int(z.shape[-1])
        decoders = []
        for kind in CCT_PERTURBATIONS:
            n = int(a[kind])
            if n < 0:
                raise SegsslError(f"method_args.{kind}={n}: the number of auxiliary decoders must be >= 0")
            opts = {
                "drop_rate": float(a["drop_rate"]),
                "uniform_range": float(a["uniform_range"]),
                "erase": float(a["erase"]),
                "xi": float(a["xi"]),
                "eps": float(a["eps"]),
                "background": a["background"],
                "cutout_min_area": int(a["cutout_min_area"]),
            }
            decoders += [CCTAuxDecoder(kind, channels, info.num_classes, upscale, **opts) for _ in range(n)]
        if not decoders:
            raise SegsslError("method_args: cct needs at least one auxiliary decoder (all counts are 0)")
        self.aux = nn.ModuleList(decoders)

    def _padded_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Main-decoder logits at the *padded* input size, and the encoder pyramid."""
        d, feats = self.model.decode(x)
        h, w = x.shape[-2:]
        s = self.model.stride
        size = (h + (-h) % s, w + (-w) % s)
        logits = self.model.head(d)
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits, feats

    def training_step(self, batch: dict, step: int) -> StepOutput:
        loss_sup, _ = self.supervised_part(self.model, batch["labeled"])

        unl = batch["unlabeled"]
        x = unl["image"]
        h, w = x.shape[-2:]
        main, feats = self._padded_logits(x)
        target = main.detach().float().softmax(1)[..., :h, :w]
        pred = main.detach().argmax(1)  # padded size: aligned with the encoder features
        z = feats[self.level]
        aux = [dec(z, pred)[..., :h, :w] for dec in self.aux]
        conf = self.a["confidence"]
        loss_unsup = cct_unsupervised_loss(
            aux, target, None if conf is None else float(conf), valid=unlabeled_valid(unl, x)
        )
        w_u = float(self.a["unsup_weight"]) * self.ramp(step)
        loss = loss_sup + w_u * loss_unsup
        return StepOutput(loss, {"loss_sup": loss_sup.detach(), "loss_unsup": loss_unsup.detach(), "w_unsup": w_u})
