"""PASS representation learning (Gao et al., "Large-scale Unsupervised Semantic Segmentation", TPAMI 2022,
Sec. 4.2): non-contrastive pixel-to-pixel alignment with deep-to-shallow supervision.

Pixel-to-pixel alignment (the paper's p2p loss): both views go through the online SegModel; a
G x G grid of points inside the two crops' intersection (original-image coordinates, from the
views' crop boxes, flips included) is read from each view's *deep* map — the decoder output, the
features every downstream probe and head uses — with bilinear `grid_sample`. A projector
(1x1-conv MLP with BN, PASS's pixel projection head) and a predictor (PASS/SimSiam predictor) map
the sampled features; the loss is SimSiam's symmetric negative cosine between the predictor output
at a point in one view and the stop-gradient projector output at the same point in the other
view (Chen & He 2021, Eqs. 1-2). No negatives, no momentum encoder.

Deep-to-shallow supervision (the paper's d2s loss): in PASS, shallower backbone stages, through
their own heads, predict the *deepest* stage's targets of the other view. Here the shallower
levels are intermediate blocks of the decoder (`shallow`: indices into `model.decoder.blocks`,
default (auto) [-2] = the block before the last; read with forward hooks, so any smp decoder with
a block list works; FPN / DeepLabV3+ have none and train p2p only). Each such level has its own
small projector + predictor, its features are sampled at the same points, and its prediction for
view 1 (view 2) is aligned to the deep level's stop-gradient projection of view 2 (view 1) — the
deep level supervises the shallow one, never the reverse.
Total: L = L_p2p + d2s_weight * (mean over shallow levels of L_d2s).

Features are sampled *before* the heads (PASS projects the whole 7x7 map, then samples): at
full decoder resolution projecting every pixel costs far more, and a 1x1 MLP on sampled
features differs only in which points feed BatchNorm's statistics.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from segssl.errors import SegsslError
from segssl.losses.pass_align import intersection_points, sample_at, simsiam_pixel_loss, to_view_fraction
from segssl.methods.base import StepOutput, register
from segssl.methods.ssl.base import DensePretrainMethod
from segssl.methods.ssl.dense_utils import padded_extent, resolve_args

DEFAULTS = {
    "grid": 14,  # G: points per side of the common sampling grid
    "dim": 128,  # projection size (PASS: 128)
    "hidden": 512,  # projector hidden width of the deep level (PASS: hidden_mlp)
    "pred_hidden": 128,  # predictor hidden width (PASS: output_dim)
    "shallow": "auto",  # decoder blocks supervised deep-to-shallow: list of indices, [] = off,
    # auto = [-2] where the decoder has a block list (UNet), else [] (FPN, DeepLabV3+ have none)
    "shallow_hidden": 256,  # hidden width of each shallow level's projector and predictor
    "d2s_weight": 1.0,
}


def pixel_projector(c_in: int, hidden: int, dim: int, layers: int = 3) -> nn.Module:
    """PASS's pixel projection head: (1x1 conv-BN-ReLU) x (layers - 1), 1x1 conv, BN without affine."""
    mods: list[nn.Module] = []
    c = c_in
    for _ in range(layers - 1):
        mods += [nn.Conv2d(c, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)]
        c = hidden
    mods += [nn.Conv2d(c, dim, 1, bias=False), nn.BatchNorm2d(dim, affine=False)]
    return nn.Sequential(*mods)


def pixel_predictor(dim: int, hidden: int) -> nn.Module:
    """SimSiam/PASS predictor: 1x1 conv-BN-ReLU-1x1 conv."""
    return nn.Sequential(
        nn.Conv2d(dim, hidden, 1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, dim, 1),
    )


@register("pass_align")
class PassAlign(DensePretrainMethod):
    """SimSiam-style pixel alignment of the decoder output + deep-to-shallow alignment of decoder blocks."""

    def __init__(self, cfg: dict, info):
        super().__init__(cfg, info)
        a = resolve_args(DEFAULTS, self.args, "pass_align")
        self.a = a
        shallow = a["shallow"]
        if shallow == "auto":
            shallow = [-2] if self._blocks() is not None and len(self._blocks()) > 1 else []
        self.shallow_idx = self._resolve_shallow(list(shallow or []))
        dim = int(a["dim"])
        self.projector = pixel_projector(self.model.feature_dim, int(a["hidden"]), dim)
        self.predictor = pixel_predictor(dim, int(a["pred_hidden"]))
        chans = self._shallow_channels()
        sh = int(a["shallow_hidden"])
        self.shallow_projectors = nn.ModuleList(pixel_projector(c, sh, dim, layers=2) for c in chans)
        self.shallow_predictors = nn.ModuleList(pixel_predictor(dim, sh) for _ in chans)

    def _blocks(self) -> nn.ModuleList | None:
        blocks = getattr(self.model.decoder, "blocks", None)
        return blocks if isinstance(blocks, nn.ModuleList) else None

    def _resolve_shallow(self, shallow: list) -> list[int]:
        if not shallow:
            return []
        blocks = self._blocks()
        if blocks is None:
            arch = self.cfg["model"].get("arch")
            raise SegsslError(
                f"method_args.shallow={shallow}: model.arch={arch} has no decoder block list "
                "to supervise; set method_args.shallow=[]"
            )
        n = len(blocks)
        out = []
        for i in shallow:
            j = int(i) % n if -n <= int(i) < n else None
            if j is None or j == n - 1:
                raise SegsslError(
                    f"method_args.shallow: {i} is not an intermediate decoder block "
                    f"(the decoder has {n}; the last one is the deep level)"
                )
            out.append(j)
        return sorted(set(out))

    @contextlib.contextmanager
    def _capture(self, store: dict):
        blocks = self._blocks()
        handles = (
            [
                blocks[i].register_forward_hook(lambda _m, _in, out, i=i: store.__setitem__(i, out))
                for i in self.shallow_idx
            ]
            if blocks is not None
            else []
        )
        try:
            yield store
        finally:
            for h in handles:
                h.remove()

    def levels(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Deep map (decoder output) and the chosen shallow decoder-block outputs, of the padded input."""
        with self._capture({}) as store:
            deep, _ = self.model.decode(x)
        return deep, [store[i] for i in self.shallow_idx]

    @torch.no_grad()
    def _shallow_channels(self) -> list[int]:
        if not self.shallow_idx:
            return []
        was = self.model.training
        self.model.eval()
        s = self.model.stride * 2
        _, maps = self.levels(torch.zeros(1, 3, s, s))
        self.model.train(was)
        return [int(m.shape[1]) for m in maps]

    def ssl_step(self, views: dict, step: int) -> StepOutput:
        v1, v2 = views["view1"], views["view2"]
        h, w = v1.shape[-2:]
        deep, shallow = self.levels(torch.cat([v1, v2]))  # one pass: BN statistics over both views, as PASS
        pts, valid = intersection_points(views["box1"], views["box2"], int(self.a["grid"]))
        frac = torch.cat([to_view_fraction(pts, views["box1"]), to_view_fraction(pts, views["box2"])])
        ext = padded_extent(h, w, self.model.stride)
        z = self.projector(sample_at(deep, frac, ext))
        p = self.predictor(z)
        z1, z2 = z.chunk(2)
        p1, p2 = p.chunk(2)
        loss_p2p = simsiam_pixel_loss(p1, z1, p2, z2, valid)
        logs = {"loss_p2p": loss_p2p.detach()}
        loss = loss_p2p
        if shallow:
            d2s = []
            heads = zip(self.shallow_projectors, self.shallow_predictors, shallow, strict=True)
            for proj, pred, feat in heads:
                q1, q2 = pred(proj(sample_at(feat, frac, ext))).chunk(2)
                d2s.append(simsiam_pixel_loss(q1, z1, q2, z2, valid))  # targets: the deep level's projections
            loss_d2s = torch.stack(d2s).mean()
            logs["loss_d2s"] = loss_d2s.detach()
            loss = loss + float(self.a["d2s_weight"]) * loss_d2s
        logs["overlap_valid"] = valid.float().mean()
        return StepOutput(loss, logs)
