"""Self-training with hard pseudo-labels, in rounds: a frozen snapshot labels the unlabeled crops."""

from __future__ import annotations

import torch

from segssl.errors import SegsslError
from segssl.losses.segmentation import cross_entropy
from segssl.methods.base import StepOutput, register
from segssl.methods.semi.common import SemiMethod, check_range, unlabeled_valid
from segssl.models.checkpoint import read_checkpoint


@register("pseudo_label")
class PseudoLabel(SemiMethod):
    """Pseudo-label self-training (Lee 2013, Sec. 2.4; Zhao et al. ICCV 2021): CE + w CE on confident labels.

    Training is split into `rounds` equal parts of train.max_steps. Round 0 trains on the labeled
    images only, unless `model.init` is already a segmenter trained on these classes (a supervised
    run: the "train on labeled" stage is done): then that model is round 0's labeler
    (`first_labeler: auto`; `labeled` / `init` force either). At each later round boundary the
    current model is snapshotted as a frozen labeler (eval mode: the model as it would be
    deployed); from then on every unlabeled crop gets hard labels argmax p where max p >
    `threshold` (other pixels ignored), and the loss is CE(labeled) + `weight` * CE(pseudo-labeled).
    `reinit: true` restarts the student from its initialisation (`model.init` or random) at every
    boundary, the classic "train a new student".

    Labeling the augmented crop on the fly is the offline recipe (label every unlabeled image
    once per round, then augment image and label map with the same geometry) up to the context
    the labeler sees: the crop instead of the whole image. It needs no label store and follows
    any augmentation. All rounds share one optimiser and learning-rate schedule (the training
    loop owns them); with `reinit` the weights restart but the optimiser's moments carry over.
    """

    defaults = {"rounds": 2, "threshold": 0.9, "weight": 1.0, "reinit": False, "first_labeler": "auto"}

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.rounds = int(self.a["rounds"])
        if self.rounds < 1:
            raise SegsslError(f"method_args.rounds={self.a['rounds']}: must be at least 1")
        self.threshold = check_range("threshold", self.a["threshold"], 0.0, 1.0)
        self.model = self.build_model()
        self.labeler = self.build_model().requires_grad_(False)  # saved in checkpoints: resume keeps it
        self.register_buffer("round", torch.zeros((), dtype=torch.long))
        self.label_round0 = self._init_is_a_labeler(str(self.a["first_labeler"]))

    def _init_is_a_labeler(self, mode: str) -> bool:
        """Whether round 0 already has a labeler: `model.init` is a segmenter with this model's head."""
        if mode not in ("auto", "labeled", "init"):
            raise SegsslError(f"method_args.first_labeler={mode}: expected auto, labeled or init")
        path = (self.cfg.get("model") or {}).get("init")
        if mode == "labeled" or not path:
            if mode == "init":
                raise SegsslError("method_args.first_labeler=init: needs model.init (a trained segmenter)")
            return False
        entry = read_checkpoint(path)
        head = entry["model_state"].get("head.weight")
        fits = entry.get("kind") == "segmenter" and head is not None and head.shape == self.model.head.weight.shape
        if mode == "init" and not fits:
            raise SegsslError(f"{path}: method_args.first_labeler=init needs a segmenter checkpoint of these classes")
        return fits

    def train(self, mode: bool = True):
        super().train(mode)
        self.labeler.eval()  # the labeler always predicts as a deployed model (BN running statistics)
        return self

    def round_of(self, step: int) -> int:
        return min(step * self.rounds // max(self.max_steps, 1), self.rounds - 1)

    @torch.no_grad()
    def start_round(self, r: int) -> None:
        """Snapshot the student as the new labeler (and restart the student with `reinit`)."""
        self.labeler.load_state_dict(self.model.state_dict())
        if self.a["reinit"]:
            # copied in place: the optimiser keeps referencing the same parameter tensors
            self.model.load_state_dict(self.build_model().state_dict())
        self.round.fill_(r)

    def training_step(self, batch, step):
        r = self.round_of(step)
        if r > int(self.round):
            self.start_round(r)
        lb = batch["labeled"]
        if r == 0 and not self.label_round0:
            loss, _ = self.supervised_part(self.model, lb)
            return StepOutput(loss, {"loss_sup": loss.detach(), "round": float(r)})
        xu = batch["unlabeled"]["image"]
        ign = self.info.ignore_index
        with torch.no_grad():
            prob = self.labeler(xu).float().softmax(dim=1)
            conf, target = prob.max(dim=1)
            keep = (conf > self.threshold) & unlabeled_valid(batch["unlabeled"], xu)
            target = torch.where(keep, target, torch.full_like(target, ign))
        nl = lb["image"].shape[0]
        logits = self.model(torch.cat((lb["image"], xu)))
        sup = self.supervised_loss(logits[:nl], lb["label"])
        pl = cross_entropy(logits[nl:], target, ign)
        loss = sup + float(self.a["weight"]) * pl
        return StepOutput(
            loss,
            {
                "loss_sup": sup.detach(),
                "loss_pl": pl.detach(),
                "pl_ratio": keep.float().mean(),
                "round": float(r),
            },
        )
