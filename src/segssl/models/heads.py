"""Extra networks that semi-supervised recipes bolt onto a SegModel.

- CCT (Ouali et al. CVPR 2020): perturbation functions on encoder features and the lightweight
  pixel-shuffle auxiliary decoders that read the perturbed features.
- GCT (Ke et al. ECCV 2020): the flaw detector (image + prediction -> flaw map).
- Self-correcting networks (Ibrahim et al. CVPR 2020): the box-conditioned ancillary model and
  the convolutional self-correction net.
- Zhao et al. ICCV 2021: the pixel projection head of the label-based contrastive loss.

Everything works on padded inputs of any size (SegModel pads to its stride itself).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segssl.data.boxes import component_slices
from segssl.models.segmodel import SegModel, _to_size

# ----------------------------------------------------------------------------------------------
# CCT: perturbations and auxiliary decoders
# ----------------------------------------------------------------------------------------------

CCT_PERTURBATIONS = (
    "vat",
    "dropout",
    "cutout",
    "context_masking",
    "object_masking",
    "feature_drop",
    "feature_noise",
)


def _icnr_(weight: torch.Tensor, scale: int = 2) -> None:
    """ICNR init (Aitken et al. 2017): the sub-pixel conv starts as nearest upsampling (no checkerboard)."""
    out_ch, in_ch, kh, kw = weight.shape
    sub = torch.empty(out_ch // scale**2, in_ch, kh, kw)
    nn.init.kaiming_normal_(sub, nonlinearity="relu")
    with torch.no_grad():
        weight.copy_(sub.repeat_interleave(scale**2, dim=0))


class PixelShuffleUpsample(nn.Module):
    """CCT's decoder: 1x1 conv to K classes, then log2(upscale) x [1x1 conv, ReLU, shuffle x2].

    Lightweight on purpose: CCT's auxiliary decoders are many (K = 30 in the paper) and only have
    to map the shared encoder representation to class scores.
    """

    def __init__(self, in_channels: int, num_classes: int, upscale: int):
        super().__init__()
        if upscale < 1 or upscale & (upscale - 1):
            raise ValueError(f"upscale must be a power of two, got {upscale}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, num_classes, kernel_size=1, bias=False)]
        nn.init.kaiming_normal_(layers[0].weight, nonlinearity="relu")
        for _ in range(int(math.log2(upscale))):
            conv = nn.Conv2d(num_classes, num_classes * 4, kernel_size=1)
            _icnr_(conv.weight)
            layers += [conv, nn.ReLU(inplace=True), nn.PixelShuffle(2)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def feature_noise(z: torch.Tensor, uniform_range: float = 0.3) -> torch.Tensor:
    """F-Noise (CCT perturbations): z + z * N, N ~ U(-r, r) of shape (C, H, W), shared across the batch."""
    n = torch.empty(z.shape[1:], device=z.device, dtype=z.dtype).uniform_(-uniform_range, uniform_range)
    return z + z * n.unsqueeze(0)


def feature_drop(z: torch.Tensor, low: float = 0.6, high: float = 0.9) -> torch.Tensor:
    """F-Drop (CCT perturbations): drop the most active regions, where the channel mean exceeds gamma * max.

    gamma ~ U(low, high) once per call (as the reference code), one max per sample.
    """
    att = z.mean(1, keepdim=True)
    gamma = float(torch.empty(()).uniform_(low, high))
    thr = att.flatten(1).amax(1).view(-1, 1, 1, 1) * gamma
    return z * (att < thr).to(z.dtype)


def object_mask(pred: torch.Tensor, background: int | None) -> torch.Tensor:
    """(B, H, W) predicted labels -> (B, 1, H, W) float mask of "object" pixels.

    CCT treats every non-background prediction as object. With `background=None` (datasets with no
    background class) each image's most frequent predicted class plays the background.
    """
    if background is not None:
        return (pred != background).unsqueeze(1).float()
    flat = pred.flatten(1)
    mode = torch.stack([torch.bincount(f).argmax() for f in flat]).view(-1, 1, 1)
    return (pred != mode).unsqueeze(1).float()


def guided_cutout_mask(
    pred: torch.Tensor, erase: float = 0.4, background: int | None = 0, min_area: int = 50
) -> torch.Tensor:
    """G-Cutout (CCT perturbations): per predicted object (connected component), zero a random box of
    `erase` x its bounding-box size placed inside that bounding box; returns a (B, 1, H, W) keep-mask.

    Components under `min_area` pixels are skipped (the reference skips contours of <= 50 points).
    """
    objs = object_mask(pred, background)[:, 0].cpu().numpy().astype(bool)
    keep = np.ones(objs.shape, dtype=np.float32)
    for b, m in enumerate(objs):
        for ys, xs in component_slices(m, min_area):
            bh, bw = ys.stop - ys.start, xs.stop - xs.start
            eh, ew = int(bh * erase), int(bw * erase)
            oy = int(torch.randint(0, bh - eh + 1, ()))
            ox = int(torch.randint(0, bw - ew + 1, ()))
            keep[b, ys.start + oy : ys.start + oy + eh, xs.start + ox : xs.start + ox + ew] = 0.0
    return torch.from_numpy(keep).unsqueeze(1).to(pred.device)


def _l2_normalize(d: torch.Tensor) -> torch.Tensor:
    return d / (d.flatten(1).norm(dim=1).view(-1, *([1] * (d.dim() - 1))) + 1e-8)


def vat_perturbation(
    z: torch.Tensor, decoder: nn.Module, xi: float = 1e-6, eps: float = 2.0, iterations: int = 1
) -> torch.Tensor:
    """VAT (Miyato et al. 2018, Eq. 12-13) on features: eps * normalised grad of KL(p(z) || p(z + xi d)).

    One power iteration from a random unit direction d, per-sample L2 norms. Computed in float32
    with autocast off, because a xi = 1e-6 step vanishes in half precision. The gradient is taken
    with `autograd.grad` w.r.t. d only, so the decoder's parameters receive nothing from it.
    """
    dev = z.device.type
    with torch.autocast(device_type=dev, enabled=False):
        z0 = z.detach().float()
        with torch.no_grad():
            p = F.softmax(decoder(z0), dim=1)
        d = _l2_normalize(torch.rand_like(z0) - 0.5)
        for _ in range(iterations):
            d.requires_grad_(True)
            logp_hat = F.log_softmax(decoder(z0 + xi * d), dim=1)
            dist = F.kl_div(logp_hat, p, reduction="batchmean")
            (grad,) = torch.autograd.grad(dist, d)
            # rescale before normalising: at xi = 1e-6 the gradient is ~1e-12, and the reference's
            # ||g|| + 1e-8 would shrink the step to almost nothing instead of giving norm eps
            g = grad.detach()
            scale = g.flatten(1).abs().amax(1).clamp_min(1e-30).view(-1, *([1] * (g.dim() - 1)))
            d = _l2_normalize(g / scale)
    return (eps * d).to(z.dtype)


class CCTAuxDecoder(nn.Module):
    """One auxiliary decoder g_a^k of CCT (Eq. 2): a perturbation of z followed by its own upsampler."""

    def __init__(
        self,
        kind: str,
        in_channels: int,
        num_classes: int,
        upscale: int,
        *,
        drop_rate: float = 0.5,
        uniform_range: float = 0.3,
        erase: float = 0.4,
        xi: float = 1e-6,
        eps: float = 2.0,
        background: int | None = 0,
        cutout_min_area: int = 50,
    ):
        super().__init__()
        if kind not in CCT_PERTURBATIONS:
            raise ValueError(f"unknown CCT perturbation {kind} (known: {', '.join(CCT_PERTURBATIONS)})")
        self.kind = kind
        self.upsample = PixelShuffleUpsample(in_channels, num_classes, upscale)
        self.dropout = nn.Dropout2d(drop_rate) if kind == "dropout" else None
        self.uniform_range, self.erase, self.xi, self.eps = uniform_range, erase, xi, eps
        self.background, self.cutout_min_area = background, cutout_min_area

    def perturb(self, z: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Perturbed features; `pred` is the main decoder's (B, H, W) argmax at input resolution."""
        size = z.shape[-2:]
        if self.kind == "vat":
            return z + vat_perturbation(z, self.upsample, self.xi, self.eps)
        if self.kind == "dropout":
            return self.dropout(z)
        if self.kind == "feature_drop":
            return feature_drop(z)
        if self.kind == "feature_noise":
            return feature_noise(z, self.uniform_range)
        if self.kind == "cutout":
            keep = guided_cutout_mask(pred, self.erase, self.background, self.cutout_min_area)
            return z * F.interpolate(keep, size=size, mode="nearest").to(z.dtype)
        obj = F.interpolate(object_mask(pred, self.background), size=size, mode="nearest").to(z.dtype)
        # context masking keeps only the objects (masks the context); object masking the reverse
        return z * obj if self.kind == "context_masking" else z * (1 - obj)

    def forward(self, z: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.perturb(z, pred))


# ----------------------------------------------------------------------------------------------
# GCT: flaw detector
# ----------------------------------------------------------------------------------------------


class IBNorm(nn.Module):
    """Half the channels batch-normalised, half instance-normalised (GCT's flaw detector norm)."""

    def __init__(self, channels: int):
        super().__init__()
        self.n_bn = (channels + 1) // 2
        self.bn = nn.BatchNorm2d(self.n_bn)
        self.inorm = nn.InstanceNorm2d(channels - self.n_bn, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.bn(x[:, : self.n_bn]), self.inorm(x[:, self.n_bn :])], 1)


class FlawDetector(nn.Module):
    """GCT's flaw detector F: image (+) prediction -> one-channel flaw map at input size.

    The reference's fully-convolutional discriminator (4x4 stride-2 convs, IBNorm, LeakyReLU,
    output stride 32), except that its stride-1 convs are 3x3 with padding 1 instead of 4x4, so
    every map size stays exact on small crops. Inputs are padded to a multiple of 32.
    """

    def __init__(self, in_channels: int, ndf: int = 64):
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
            k = 4 if stride == 2 else 3
            return [nn.Conv2d(cin, cout, k, stride=stride, padding=1), IBNorm(cout), nn.LeakyReLU(0.2, True)]

        self.body = nn.Sequential(
            *block(in_channels, ndf, 2),
            *block(ndf, ndf * 2, 2),
            *block(ndf * 2, ndf * 2, 1),
            *block(ndf * 2, ndf * 4, 2),
            *block(ndf * 4, ndf * 4, 1),
            *block(ndf * 4, ndf * 8, 2),
            *block(ndf * 8, ndf * 8, 1),
        )
        self.classifier = nn.Conv2d(ndf * 8, 1, 4, stride=2, padding=1)

    def forward(self, image: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        x = torch.cat([image, prob.to(image.dtype)], 1)
        ph, pw = (-h) % 32, (-w) % 32
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        out = self.classifier(self.body(x))
        return _to_size(out, h, w, 32)


# ----------------------------------------------------------------------------------------------
# Self-correcting networks: ancillary (box-conditioned) model and convolutional self-correction
# ----------------------------------------------------------------------------------------------


class BoxAttentionSegModel(nn.Module):
    """The ancillary model p_anc(y | x, b) (Ibrahim et al. CVPR 2020): a SegModel whose encoder
    features are multiplied, at every scale, by attention maps computed from the box-prior map.

    The box encoder is one 3x3 conv + sigmoid per encoder level on the (K, H, W) box map resized
    to that level, as in the paper; the image stem (level 0, the raw input) is left alone.
    """

    def __init__(self, model: SegModel, num_classes: int):
        super().__init__()
        self.model = model
        with torch.no_grad():
            was = model.training
            model.eval()
            feats = model.encoder(torch.zeros(1, 3, model.stride * 2, model.stride * 2))
            model.train(was)
        self.box_encoders = nn.ModuleList(
            nn.Conv2d(num_classes, int(f.shape[1]), kernel_size=3, padding=1) for f in feats[1:]
        )

    def forward(self, image: torch.Tensor, boxes_map: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        x, _, _ = self.model._pad(torch.cat([image, boxes_map.to(image.dtype)], 1))
        img, box = x[:, :3], x[:, 3:]
        feats = list(self.model.encoder(img))
        for i, enc in enumerate(self.box_encoders, start=1):
            b = F.interpolate(box, size=feats[i].shape[-2:], mode="bilinear", align_corners=False)
            feats[i] = feats[i] * torch.sigmoid(enc(b))
        d = self.model.decoder(feats)
        return _to_size(self.model.head(d), h, w, self.model.stride)


class ConvSelfCorrection(nn.Module):
    """Convolutional self-correction (Ibrahim et al. CVPR 2020): two 3x3 conv layers (ReLU between)
    mapping the stacked primary and ancillary logits (2K channels) to corrected logits (K)."""

    def __init__(self, num_classes: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2 * num_classes, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_classes, 3, padding=1),
        )

    def forward(self, primary_logits: torch.Tensor, ancillary_logits: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([primary_logits, ancillary_logits], 1))


# ----------------------------------------------------------------------------------------------
# Zhao et al.: projection head
# ----------------------------------------------------------------------------------------------


class ProjectionHead(nn.Module):
    """Pixel projection head (Zhao et al. ICCV 2021): 1x1 conv, ReLU, 1x1 conv; unit-norm embeddings."""

    def __init__(self, in_channels: int, dim: int = 128, hidden: int | None = None):
        super().__init__()
        hidden = hidden or max(in_channels, dim)
        self.net = nn.Sequential(nn.Conv2d(in_channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=1)
