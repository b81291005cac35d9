"""Label-based pixel contrastive pretraining, then CE fine-tuning (Zhao et al. ICCV 2021), in one run.

Stage 1 (the first `pretrain_fraction` of train.max_steps): the whole network plus a projection
head (1x1 conv, ReLU, 1x1 conv, unit norm) is trained with the within-image pixel-wise
label-based contrastive loss only (Eq. 1, see losses/pixel_contrast.py): every labeled crop is
paired with a photometrically distorted copy (colour jitter + Gaussian blur; no geometry, so
pixel p of one is pixel p of the other), `pixels_per_class` pixels per class and crop are
sampled, temperature tau = 0.07. Stage 2: the classifier is replaced by a fresh one and the whole
network is fine-tuned with the supervised loss; the projection head is dropped.

Semi mode (`semi: true`, the paper's semi-supervised variant): unlabeled crops join the contrastive loss with
pseudo-labels, the model's confident predictions (max prob > `threshold`); other pixels are
ignored. Those predictions come from an online classifier trained during stage 1 with CE on
*detached* features of the labeled crops, so it never shapes the representation (stage 1 stays
purely contrastive, as in the paper); it also gives a meaningful validation mIoU during stage 1
(it is copied into the SegModel's head after every step until stage 2 replaces that head).

Deviations: the two stages share one optimiser and one learning-rate schedule (the loop owns
them; the paper trains them separately); the paper's semi-supervised variant labels the unlabeled
images with a model trained beforehand, here the labeler is the online stage-1 classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from segssl.errors import SegsslError
from segssl.losses.pixel_contrast import within_image_contrast
from segssl.losses.segmentation import cross_entropy
from segssl.methods.base import StepOutput, register
from segssl.methods.semi.common import SemiMethod, StrongAug, check_range, unlabeled_valid
from segssl.models.heads import ProjectionHead


@register("zhao_contrastive")
class ZhaoContrastive(SemiMethod):
    """Zhao et al. (ICCV 2021, Eq. 1): label-based pixel contrastive pretraining, then CE fine-tuning."""

    defaults = {
        "pretrain_fraction": 0.5,  # share of max_steps spent on contrastive pretraining (stage 1)
        "tau": 0.07,  # temperature (paper: 0.07)
        "pixels_per_class": 50,  # sampled pixels per class and crop in the contrastive loss
        "proj_dim": 128,  # projection head output size
        "proj_hidden": None,  # projection head hidden width (null: max(feature_dim, proj_dim))
        "semi": False,  # pseudo-labeled unlabeled crops join the contrastive loss
        "threshold": 0.9,  # pseudo-label confidence threshold in semi mode
        "unlabeled_weight": 1.0,  # weight of the unlabeled contrastive term in semi mode
        "jitter": [0.4, 0.4, 0.4, 0.1],  # distortion: brightness, contrast, saturation, hue
        "blur_p": 0.5,  # distortion: Gaussian blur probability
    }

    def __init__(self, cfg: dict, info):
        super().__init__(cfg, info)
        a = self.a
        self.semi = bool(a["semi"])
        # the data module reads `inputs` after construction: the unlabeled loader only in semi mode
        self.inputs = ("labeled", "unlabeled") if self.semi else ("labeled",)
        check_range("pretrain_fraction", a["pretrain_fraction"], 0.0, 1.0)
        check_range("threshold", a["threshold"], 0.0, 1.0)
        if float(a["tau"]) <= 0:
            raise SegsslError(f"method_args.tau={a['tau']}: must be > 0")
        if int(a["pixels_per_class"]) < 1:
            raise SegsslError(f"method_args.pixels_per_class={a['pixels_per_class']}: must be >= 1")
        jit = a["jitter"]
        if not (isinstance(jit, (list, tuple)) and len(jit) == 4):
            raise SegsslError(f"method_args.jitter={jit}: expected [brightness, contrast, saturation, hue]")
        self.distort = StrongAug(
            jitter=tuple(float(v) for v in jit), jitter_p=1.0, gray_p=0.0, blur_p=float(a["blur_p"])
        )
        self.model = self.build_model()
        self.proj = ProjectionHead(self.model.feature_dim, int(a["proj_dim"]), a["proj_hidden"])
        self.probe = nn.Conv2d(self.model.feature_dim, info.num_classes, kernel_size=1)  # stage-1 classifier
        self.pretrain_steps = int(round(float(a["pretrain_fraction"]) * self.max_steps))
        self.register_buffer("stage", torch.zeros((), dtype=torch.long))  # 1 once fine-tuning began
        if self.pretrain_steps > 0:
            self._copy_probe()

    @torch.no_grad()
    def _copy_probe(self) -> None:
        self.model.head.load_state_dict(self.probe.state_dict())

    @torch.no_grad()
    def start_finetuning(self) -> None:
        """Stage 2: a fresh classifier (re-initialised head, never stepped by the optimiser)."""
        self.model.head.reset_parameters()
        self.stage.fill_(1)

    def after_step(self, step: int, max_steps: int) -> None:
        if int(self.stage) == 0:
            self._copy_probe()  # validation / export during stage 1 use the online classifier

    def _pretrain_step(self, batch: dict) -> StepOutput:
        lb = batch["labeled"]
        ign = self.info.ignore_index
        xs = [lb["image"]]
        nl = lb["image"].shape[0]
        if self.semi:
            ub = batch["unlabeled"]
            xs.append(ub["image"])
        x = torch.cat(xs)
        feats = self.model.features(torch.cat((x, self.distort(x))))
        n = x.shape[0]
        f, f_d = feats[:n], feats[n:]
        probe_logits = self.probe(f.detach())
        probe_loss = cross_entropy(probe_logits[:nl], lb["label"], ign)
        emb, emb_d = self.proj(f), self.proj(f_d)
        per_class, tau = int(self.a["pixels_per_class"]), float(self.a["tau"])
        loss_l = within_image_contrast(emb[:nl], emb_d[:nl], lb["label"], ign, per_class, tau)
        logs = {"loss_contrast": loss_l.detach(), "loss_probe": probe_loss.detach()}
        loss = loss_l + probe_loss
        if self.semi:
            with torch.no_grad():
                prob = probe_logits[nl:].float().softmax(1)
                conf, pseudo = prob.max(1)
                keep = (conf > float(self.a["threshold"])) & unlabeled_valid(batch["unlabeled"], x[nl:])
                pseudo = torch.where(keep, pseudo, torch.full_like(pseudo, ign))
            loss_u = within_image_contrast(emb[nl:], emb_d[nl:], pseudo, ign, per_class, tau)
            loss = loss + float(self.a["unlabeled_weight"]) * loss_u
            logs.update(loss_contrast_unlabeled=loss_u.detach(), pseudo_ratio=keep.float().mean())
        return StepOutput(loss, logs)

    def training_step(self, batch: dict, step: int) -> StepOutput:
        if step < self.pretrain_steps and int(self.stage) == 0:
            out = self._pretrain_step(batch)
            out.logs["stage"] = 1.0
            return out
        if int(self.stage) == 0:
            self.start_finetuning()
        loss, _ = self.supervised_part(self.model, batch["labeled"])
        return StepOutput(loss, {"loss_sup": loss.detach(), "stage": 2.0})
