"""PixPro (Xie et al., CVPR 2021, "Propagate Yourself") for a full-resolution segmentation backbone.

Two registered methods share one recipe (projector, pixel-propagation value transform, momentum
encoder, optional PixContrast and instance branches) and differ in how pairs and propagation scale:

- "pixpro": the UNet's full-resolution features; positive pairs are *sampled* around a few anchors
  and propagation runs over a local window at those anchors only, so memory grows linearly with
  the number of pixels (the paper's all-pairs matrix at 256x256 would be 16 GiB per image).
- "pixpro_allpairs": the original formulation, on the features average-pooled to 1/`feature_stride`
  (the paper uses a 7x7 stride-32 map): all-pairs positive mask and global propagation. With
  `feature_stride: 1` it is the full-resolution all-pairs variant, the quadratic reference that
  benchmarks/pixpro_memory.py measures.

The online backbone is `self.model` (exported as the pretrained checkpoint); the momentum encoder
is an EMA of backbone + projectors (BYOL's cosine schedule 0.99 -> 1), used for the targets only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segssl.data.views import pixel_coords
from segssl.errors import SegsslError
from segssl.losses.pixpro import (
    cell_diagonal,
    gather_pixels,
    global_ppm,
    instance_loss,
    local_ppm,
    pixcontrast_loss,
    pixpro_loss,
    pixpro_loss_dense,
    positive_mask,
    sample_positive_pairs,
)
from segssl.methods.base import StepOutput, register
from segssl.methods.ssl.base import DensePretrainMethod
from segssl.models.ema import EMA, cosine_momentum

# method_args shared by both variants (override under `method_args:` in the config)
COMMON_ARGS: dict = {
    "proj_dim": 64,  # output size of the per-pixel projector (paper: 256)
    "proj_hidden": 128,  # hidden size of the projector conv-BN-ReLU-conv (paper: 2048)
    "momentum": 0.99,  # base EMA momentum, raised to 1 by BYOL's cosine schedule
    "threshold": 0.7,  # positive if distance / max cell diagonal < threshold (paper: 0.7)
    "gamma": 2.0,  # sharpness of the propagation similarity (paper: 2)
    "ppm_layers": 1,  # value transform g: 0 = identity, 1 = 1x1 conv (paper), 2 = conv-BN-ReLU-conv
    "pixpro_weight": 1.0,  # weight of the PixPro loss (0 turns it off, e.g. for PixContrast alone)
    "pixcontrast_weight": 0.0,  # weight of the PixContrast InfoNCE (0 = off)
    "tau": 0.3,  # PixContrast temperature (paper: 0.3)
    "instance_weight": 0.0,  # weight of the BYOL-style instance branch (0 = off; paper: 1 for PixPro+ins)
    "instance_hidden": 128,  # hidden size of the instance projector / predictor MLPs
}
SAMPLED_ARGS: dict = {
    "num_anchors": 64,  # view-1 anchors sampled per image inside the views' overlap
    "pairs_per_image": 256,  # positive pairs drawn per image (with replacement if fewer exist)
    "window": [7, 7],  # local propagation window (kh, kw); any size, borders masked
    "max_radius": 8,  # cap (in view-2 pixels) on the positive search window around each anchor
}
ALLPAIRS_ARGS: dict = {
    "feature_stride": 8,  # features average-pooled by this factor before the all-pairs loss (1 = full res)
}


def _mlp2d(c_in: int, hidden: int, c_out: int) -> nn.Sequential:
    """Per-pixel MLP as 1x1 convs (PixPro's projector): conv-BN-ReLU-conv."""
    return nn.Sequential(
        nn.Conv2d(c_in, hidden, 1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, c_out, 1),
    )


def _mlp1d(c_in: int, hidden: int, c_out: int) -> nn.Sequential:
    """BYOL's projector/predictor MLP: linear-BN-ReLU-linear."""
    return nn.Sequential(
        nn.Linear(c_in, hidden, bias=False),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, c_out),
    )


def value_transform(dim: int, layers: int) -> nn.Module:
    """PPM's g (Eq. 3): identity, one 1x1 conv (the paper's default), or conv-BN-ReLU-conv."""
    if layers == 0:
        return nn.Identity()
    if layers == 1:
        return nn.Conv2d(dim, dim, 1)
    if layers == 2:
        return _mlp2d(dim, dim, dim)
    raise SegsslError(f"method_args.ppm_layers={layers}: must be 0, 1 or 2")


class _PixProBase(DensePretrainMethod):
    """Modules and momentum encoder common to both PixPro variants; subclasses define `ssl_step`."""

    defaults: dict = COMMON_ARGS

    def __init__(self, cfg: dict, info):
        super().__init__(cfg, info)
        unknown = set(self.args) - set(self.defaults)
        if unknown:
            raise SegsslError(
                f"method_args: unknown key(s) {', '.join(sorted(unknown))} for method "
                f"{cfg.get('method')} (known: {', '.join(sorted(self.defaults))})"
            )
        self.args = {**self.defaults, **self.args}
        a = self.args
        c, d = self.model.feature_dim, int(a["proj_dim"])
        self.projector = _mlp2d(c, int(a["proj_hidden"]), d)
        self.w_pixpro, self.w_contrast = float(a["pixpro_weight"]), float(a["pixcontrast_weight"])
        self.w_instance = float(a["instance_weight"])
        if self.w_pixpro <= 0 and self.w_contrast <= 0:
            raise SegsslError("method_args: pixpro_weight and pixcontrast_weight are both 0 (nothing to learn)")
        # modules only exist when used, so no parameter is left without a gradient (DDP-safe)
        self.ppm_value = value_transform(d, int(a["ppm_layers"])) if self.w_pixpro > 0 else None
        if self.w_instance > 0:
            if int(cfg["data"]["batch_size"]) < 2:
                raise SegsslError("method_args.instance_weight > 0 needs data.batch_size >= 2 (BatchNorm in its MLPs)")
            hid = int(a["instance_hidden"])
            self.inst_projector = _mlp1d(c, hid, d)
            self.inst_predictor = _mlp1d(d, hid, d)
        self.momentum = EMA(self._online())
        self.m = float(a["momentum"])  # current EMA momentum (logged)

    def _online(self) -> nn.ModuleDict:
        """The online modules the momentum encoder mirrors (same order as its copy)."""
        parts = {"backbone": self.model, "projector": self.projector}
        if self.w_instance > 0:
            parts["inst_projector"] = self.inst_projector
        return nn.ModuleDict(parts)

    def after_step(self, step: int, max_steps: int) -> None:
        self.m = cosine_momentum(step, max_steps, base=float(self.args["momentum"]))
        self.momentum.update(self._online(), self.m)

    def _instance_terms(self, f1: torch.Tensor, f2: torch.Tensor, mf1: torch.Tensor, mf2: torch.Tensor) -> torch.Tensor:
        """Instance branch: predictor(projector(pool(online))) vs momentum projector(pool(momentum))."""
        q1 = self.inst_predictor(self.inst_projector(f1.mean((2, 3))))
        q2 = self.inst_predictor(self.inst_projector(f2.mean((2, 3))))
        with torch.no_grad():
            proj = self.momentum.module["inst_projector"]
            z1, z2 = proj(mf1.mean((2, 3))), proj(mf2.mean((2, 3)))
        return instance_loss(q1, z2, q2, z1)

    def _momentum_features(self, v1: torch.Tensor, v2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            bb = self.momentum.module["backbone"]
            return bb.features(v1), bb.features(v2)

    def _finish(self, terms: dict[str, torch.Tensor], logs: dict) -> StepOutput:
        loss = sum(terms.values())
        for k, v in terms.items():
            logs[f"loss_{k}"] = v.detach()
        logs["momentum"] = self.m
        return StepOutput(loss, logs)  # type: ignore[arg-type]


@register("pixpro")
class PixPro(_PixProBase):
    """PixPro (Xie et al. 2021, Eqs. 3-4) on full-resolution features: sampled pairs + local PPM."""

    defaults = {**COMMON_ARGS, **SAMPLED_ARGS}

    def __init__(self, cfg: dict, info):
        super().__init__(cfg, info)
        w = self.args["window"]
        self.window = (int(w), int(w)) if isinstance(w, int) else (int(w[0]), int(w[1]))

    def ssl_step(self, views: dict, step: int) -> StepOutput:
        a = self.args
        v1, v2 = views["view1"], views["view2"]
        f1, f2 = self.model.features(v1), self.model.features(v2)
        z1, z2 = self.projector(f1), self.projector(f2)  # (B, D, H, W) on every pixel
        pairs = sample_positive_pairs(
            views["box1"],
            views["box2"],
            z1.shape[-2:],
            z2.shape[-2:],
            int(a["num_anchors"]),
            int(a["pairs_per_image"]),
            float(a["threshold"]),
            int(a["max_radius"]),
        )
        mf1, mf2 = self._momentum_features(v1, v2)
        with torch.no_grad():
            proj = self.momentum.module["projector"]
            k1 = gather_pixels(proj(mf1), pairs.idx1)  # (B, D, P) momentum targets
            k2 = gather_pixels(proj(mf2), pairs.idx2)
        terms: dict[str, torch.Tensor] = {}
        if self.ppm_value is not None:
            gamma = float(a["gamma"])
            y1 = local_ppm(z1, self.ppm_value(z1), pairs.idx1, self.window, gamma)
            y2 = local_ppm(z2, self.ppm_value(z2), pairs.idx2, self.window, gamma)
            terms["pixpro"] = self.w_pixpro * pixpro_loss(y1, k2, y2, k1, pairs.weight)
        if self.w_contrast > 0:
            terms["pixcontrast"] = self.w_contrast * self._contrast(views, z1, z2, k1, k2, pairs)
        if self.w_instance > 0:
            terms["instance"] = self.w_instance * self._instance_terms(f1, f2, mf1, mf2)
        logs = {"pairs_valid": pairs.weight.mean().detach(), "pairs_found": pairs.found.float().mean()}
        return self._finish(terms, logs)

    def _contrast(
        self, views: dict, z1: torch.Tensor, z2: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor, pairs
    ) -> torch.Tensor:
        """PixContrast over the sampled pixels: each query's keys are the other view's sampled pixels
        of the same image, positives those within the threshold (recomputed, not just its partner)."""
        (h1, w1), (h2, w2) = z1.shape[-2:], z2.shape[-2:]
        box1, box2 = views["box1"].float(), views["box2"].float()
        c1 = pixel_coords(box1, h1, w1).flatten(1, 2)
        c2 = pixel_coords(box2, h2, w2).flatten(1, 2)
        xy1 = c1.gather(1, pairs.idx1[..., None].expand(-1, -1, 2))  # (B, P, 2)
        xy2 = c2.gather(1, pairs.idx2[..., None].expand(-1, -1, 2))
        d = torch.maximum(cell_diagonal(box1, h1, w1), cell_diagonal(box2, h2, w2))
        dist = torch.sqrt(((xy1[:, :, None, :] - xy2[:, None, :, :]) ** 2).sum(-1))  # (B, P, P)
        own = torch.eye(dist.shape[1], dtype=torch.bool, device=dist.device)  # its partner, by construction
        near = dist < float(self.args["threshold"]) * d[:, None, None]
        pos = (near | own) & (pairs.weight > 0)[..., None]
        q1 = gather_pixels(z1, pairs.idx1).transpose(1, 2)  # (B, P, D)
        q2 = gather_pixels(z2, pairs.idx2).transpose(1, 2)
        tau = float(self.args["tau"])
        return pixcontrast_loss(q1, k2.transpose(1, 2), pos, tau) + pixcontrast_loss(
            q2, k1.transpose(1, 2), pos.transpose(1, 2), tau
        )


@register("pixpro_allpairs")
class PixProAllPairs(_PixProBase):
    """PixPro as published (Xie et al. 2021, Eqs. 3-4): strided map, all-pairs positives, global PPM."""

    defaults = {**COMMON_ARGS, **ALLPAIRS_ARGS}

    def _pool(self, f: torch.Tensor) -> torch.Tensor:
        s = int(self.args["feature_stride"])
        if s <= 1:
            return f
        h, w = f.shape[-2:]
        # average over stride x stride cells: cell centres are exactly the pixel centres of a
        # (h / s) x (w / s) view of the same box when s divides the size
        return F.adaptive_avg_pool2d(f, (max(1, h // s), max(1, w // s)))

    def ssl_step(self, views: dict, step: int) -> StepOutput:
        a = self.args
        v1, v2 = views["view1"], views["view2"]
        f1, f2 = self.model.features(v1), self.model.features(v2)
        z1, z2 = self.projector(self._pool(f1)), self.projector(self._pool(f2))
        pos = positive_mask(views["box1"], views["box2"], z1.shape[-2:], z2.shape[-2:], float(a["threshold"]))
        mf1, mf2 = self._momentum_features(v1, v2)
        with torch.no_grad():
            proj = self.momentum.module["projector"]
            k1, k2 = proj(self._pool(mf1)).flatten(2), proj(self._pool(mf2)).flatten(2)  # (B, D, N)
        terms: dict[str, torch.Tensor] = {}
        if self.ppm_value is not None:
            gamma = float(a["gamma"])
            y1 = global_ppm(z1, self.ppm_value(z1), gamma).flatten(2)
            y2 = global_ppm(z2, self.ppm_value(z2), gamma).flatten(2)
            terms["pixpro"] = self.w_pixpro * pixpro_loss_dense(y1, k2, y2, k1, pos)
        if self.w_contrast > 0:
            tau = float(a["tau"])
            q1, q2 = z1.flatten(2).transpose(1, 2), z2.flatten(2).transpose(1, 2)
            terms["pixcontrast"] = self.w_contrast * (
                pixcontrast_loss(q1, k2.transpose(1, 2), pos, tau)
                + pixcontrast_loss(q2, k1.transpose(1, 2), pos.transpose(1, 2), tau)
            )
        if self.w_instance > 0:
            terms["instance"] = self.w_instance * self._instance_terms(f1, f2, mf1, mf2)
        n = pos.sum((1, 2))
        logs = {"pairs_valid": (n > 0).float().mean(), "pairs_found": n.float().mean()}
        return self._finish(terms, logs)
