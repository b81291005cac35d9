"""Building blocks shared by the semi-supervised methods (all run in the one training loop).

A semi-supervised step receives `batch["labeled"]` (image, label, ...) and `batch["unlabeled"]`
(image, index, ...), both already weakly augmented (scale/crop/flip, light colour jitter) and
normalised. What differs between methods is how the unlabeled images are perturbed and which
target they are pulled towards; this module holds the pieces they share:

* `StrongAug`: strong photometric augmentation of normalised batches (colour jitter, grayscale,
  blur), applied in [0, 1] colour space and renormalised, per sample.
* `sigmoid_rampup`, `ema_momentum`: the consistency-weight ramp-up of Laine & Aila and the
  Mean-Teacher EMA schedule.
* `confident_pseudo_labels`, `class_balanced_keep`, `unlabeled_valid`: hard targets and masks.
* `noisy_forward` (input noise, flips, dropout on decoder features: the Pi-model's stochastic
  network) and `feature_perturbed_forward` (UniMatch's dropout on encoder features).
* `SemiMethod`: method base with declared `method_args` defaults (typos fail loudly), the
  supervised term and the ramp-up; `TeacherStudent` adds an EMA teacher.

Consistency terms are computed on the unlabeled batch only: labeled images contribute through
their labels (the papers' "all inputs" would cost another forward of the labeled batch).
If the unlabeled batch carries `valid` (B, H, W; False on crop padding), pixels outside the
image are excluded from every unlabeled loss; without it all pixels count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from segssl.data.transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize
from segssl.errors import SegsslError
from segssl.methods.base import Method
from segssl.models.checkpoint import init_from_config
from segssl.models.ema import EMA
from segssl.models.segmodel import SegModel, _to_size


def renormalize(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] colours -> the ImageNet-normalised space the models take (inverse of `denormalize`)."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(-1, 1, 1)
    return (x - mean) / std


def _u(gen: torch.Generator | None, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand(1, generator=gen))


@dataclass(frozen=True)
class StrongAug:
    """Per-sample strong photometric augmentation of a normalised (B, 3, H, W) batch.

    Defaults are UniMatch's strong view (Yang et al. CVPR 2023, code `dataset/semi.py`):
    ColorJitter(0.5, 0.5, 0.5, 0.25) with p = 0.8, grayscale p = 0.2, Gaussian blur p = 0.5 with
    sigma ~ U(0.1, 2.0) px. Jitter factors are drawn as torchvision's ColorJitter does
    (brightness/contrast/saturation ~ U(1 - s, 1 + s), hue ~ U(-h, h), random order).
    Geometry is untouched, so pixel targets computed on the weak view stay aligned.
    """

    jitter: tuple[float, float, float, float] = (0.5, 0.5, 0.5, 0.25)
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)

    def _jitter(self, im: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        b, c, s, h = self.jitter
        for op in torch.randperm(4, generator=gen).tolist():
            if op == 0 and b > 0:
                im = TF.adjust_brightness(im, _u(gen, max(0.0, 1 - b), 1 + b))
            elif op == 1 and c > 0:
                im = TF.adjust_contrast(im, _u(gen, max(0.0, 1 - c), 1 + c))
            elif op == 2 and s > 0:
                im = TF.adjust_saturation(im, _u(gen, max(0.0, 1 - s), 1 + s))
            elif op == 3 and h > 0:
                im = TF.adjust_hue(im, _u(gen, -h, h))
        return im

    def _blur(self, im: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        sigma = _u(gen, *self.blur_sigma)
        k = 2 * math.ceil(3 * sigma) + 1  # +-3 sigma support
        limit = min(im.shape[-2:])
        limit = limit if limit % 2 else limit - 1
        k = max(1, min(k, limit))
        return TF.gaussian_blur(im, [k, k], [sigma, sigma]) if k > 1 else im

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        img = denormalize(x.float())
        out = []
        for im in img:
            if _u(generator) < self.jitter_p:
                im = self._jitter(im, generator)
            if _u(generator) < self.gray_p:
                im = TF.rgb_to_grayscale(im, num_output_channels=3)
            if _u(generator) < self.blur_p:
                im = self._blur(im, generator)
            out.append(im)
        return renormalize(torch.stack(out)).to(x.dtype)


def sigmoid_rampup(step: int, length: float) -> float:
    """Laine & Aila (ICLR 2017, Sec. 2.1, App. A) ramp-up exp(-5 (1 - t)^2), t = min(step / length, 1)."""
    if length <= 0:
        return 1.0
    t = min(max(step / length, 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def ema_momentum(step: int, base: float) -> float:
    """Mean Teacher's EMA decay min(1 - 1 / (t + 1), alpha): early teachers follow the student closely."""
    return min(1.0 - 1.0 / (step + 1), base)


def confident_pseudo_labels(logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, ...]:
    """(labels, confidence, mask) from teacher logits: argmax, max softmax, confidence >= threshold."""
    prob = logits.detach().float().softmax(dim=1)
    conf, labels = prob.max(dim=1)
    return labels, conf, conf >= threshold


def class_balanced_keep(
    labels: torch.Tensor, conf: torch.Tensor, num_classes: int, portion: float, cap: float
) -> torch.Tensor:
    """CBST's class-balanced selection (Zou et al. ECCV 2018, Eq. 9-10, Alg. 1): keep, per class c,
    the ceil(portion * N_c) most confident of the N_c pixels predicted c.

    The class threshold k_c is the confidence of the last pixel kept, capped at `cap` (the fixed
    tau): a frequent class keeps at least everything above tau, a tail class (poles, signs), whose
    pixels rarely reach tau, still keeps its top `portion`. Ties at k_c are all kept. Computed on
    the batch (CBST ranks the whole target set once per round; one batch is what a step sees).
    Returns a float (B, H, W) mask.
    """
    thr = torch.full((num_classes,), float(cap), device=conf.device)
    flat_l, flat_c = labels.reshape(-1), conf.reshape(-1).float()
    for c in flat_l.unique().tolist():
        cc = flat_c[flat_l == c].sort(descending=True).values
        k = cc[max(math.ceil(portion * cc.numel()), 1) - 1]
        thr[c] = torch.minimum(k, thr[c])
    return (conf.float() >= thr[labels]).float()


def unlabeled_valid(batch: dict, like: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool of real image pixels: the batch's `valid` if the loader gives one, else all True."""
    v = batch.get("valid")
    if v is None:
        return torch.ones(like.shape[0], *like.shape[-2:], dtype=torch.bool, device=like.device)
    return v.to(device=like.device, dtype=torch.bool)


def noisy_forward(
    model: SegModel, x: torch.Tensor, *, noise_std: float = 0.0, dropout: float = 0.0, flip: bool = False
) -> torch.Tensor:
    """Logits of one stochastic pass: the Pi-model's augmentation + noise + dropout (Laine & Aila Sec. 2.1).

    A random per-sample horizontal flip (undone on the output, so pixels stay aligned),
    Gaussian input noise of std `noise_std` (the paper's 0.15) and dropout on the decoder
    features before the 1x1 head (the SegModel has no dropout of its own).
    """
    h, w = x.shape[-2:]
    flipped = None
    if flip:
        flipped = (torch.rand(x.shape[0], device=x.device) < 0.5).view(-1, 1, 1, 1)
        x = torch.where(flipped, x.flip(-1), x)
    if noise_std > 0:
        x = x + noise_std * torch.randn_like(x)
    d, _ = model.decode(x)
    if dropout > 0:
        d = F.dropout(d, p=dropout, training=True)
    logits = _to_size(model.head(d), h, w, model.stride)
    if flipped is not None:
        logits = torch.where(flipped, logits.flip(-1), logits)
    return logits


def feature_perturbed_forward(
    model: SegModel, x: torch.Tensor, start: int, p: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """UniMatch's feature perturbation (Yang et al. CVPR 2023, stream L_fp): logits of x and of x[start:]
    decoded from encoder features under channel dropout (Dropout2d(p) on every encoder level).

    Both streams run through the decoder as one batch, as in the official DeepLabV3+ code.
    Level 0 of the smp encoder pyramid is the input itself (unused by the decoders), left as is.
    """
    h, w = x.shape[-2:]
    xp, _, _ = model._pad(x)
    feats = model.encoder(xp)
    perturbed = [f[start:] if i == 0 else F.dropout2d(f[start:], p=p, training=True) for i, f in enumerate(feats)]
    d = model.decoder([torch.cat((f, g)) for f, g in zip(feats, perturbed, strict=True)])
    logits = _to_size(model.head(d), h, w, model.stride)
    n = x.shape[0]
    return logits[:n], logits[n:]


class SemiMethod(Method):
    """Base of the semi-supervised recipes: labeled + unlabeled loaders, declared `method_args`."""

    inputs = ("labeled", "unlabeled")
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, cfg: dict, info):
        super().__init__(cfg, info)
        unknown = sorted(set(self.args) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise SegsslError(f"method_args.{unknown[0]}: unknown for method {self.name} (known: {known})")
        self.a: dict[str, Any] = {**self.defaults, **self.args}
        self.max_steps = int(cfg["train"]["max_steps"])

    def build_model(self, init_parts: str | None = None) -> SegModel:
        """A SegModel from cfg['model'], started from `model.init` when given (`init_parts` overrides
        `model.init_parts`: which part of that checkpoint is transferred)."""
        m = self.new_model()
        init_from_config(m, self.cfg, init_parts)
        return m

    def supervised_part(self, model: SegModel, labeled: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(supervised loss, logits) of `model` on the labeled batch (CE [+ Dice] with the ignore index)."""
        logits = model(labeled["image"])
        return self.supervised_loss(logits, labeled["label"]), logits

    def pseudo_class_weight(self, labels: torch.Tensor) -> torch.Tensor | float:
        """Per-pixel weight of hard pseudo-labels (B, H, W): the labeled loss's class weight of each pixel's
        pseudo-class (`train.class_weights`), or 1 when there are none. Without it the unlabeled CE, which is
        mostly road and sky, undoes the balance the weighted labeled CE was given."""
        w = getattr(self, "class_weights", None)
        return 1.0 if w is None else w[labels.long()]

    def ramp(self, step: int) -> float:
        """Consistency-weight ramp-up over `method_args.rampup` x max_steps steps (0 = no ramp-up)."""
        return sigmoid_rampup(step, float(self.a.get("rampup", 0.0)) * self.max_steps)


class TeacherStudent(SemiMethod):
    """A student trained by gradient and an EMA teacher (Tarvainen & Valpola 2017) giving the targets."""

    def __init__(self, cfg: dict, info):
        super().__init__(cfg, info)
        self.model = self.build_model()
        self.teacher = EMA(self.model)

    def after_step(self, step: int, max_steps: int) -> None:
        self.teacher.update(self.model, ema_momentum(step, float(self.a["ema"])))


def check_range(name: str, value: Any, lo: float, hi: float) -> float:
    """A float method_arg within [lo, hi], or a one-line user error naming it."""
    v = float(value)
    if not lo <= v <= hi:
        raise SegsslError(f"method_args.{name}={value}: must be within [{lo}, {hi}]")
    return v


def as_pair(name: str, value: Any) -> tuple[float, float]:
    """A [lo, hi] method_arg (a scalar means [v, v])."""
    if isinstance(value, (int, float)):
        return float(value), float(value)
    if isinstance(value, Sequence) and len(value) == 2:
        lo, hi = float(value[0]), float(value[1])
        if lo <= hi:
            return lo, hi
    raise SegsslError(f"method_args.{name}={value}: expected a number or [low, high]")
