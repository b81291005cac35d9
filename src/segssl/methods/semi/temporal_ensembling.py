"""Temporal Ensembling: each unlabeled image's past predictions, averaged, are its training target.

Laine & Aila ensemble one prediction vector per training sample. For segmentation the ensemble
must be per *pixel of the image*, and random crops show a different part of the image at every
visit, so crop coordinates cannot index it. This method therefore reads unlabeled images
through the `views` loader, whose crops carry their box in the original image (normalised
coordinates, flip encoded; see data/views.py), and keeps the ensemble in original-image
coordinates: a (rows x cols) grid over the whole image per unlabeled image, K class
probabilities per cell, stored as uint8 (1/255 steps) plus a per-cell update count, in
registered buffers (so checkpoints and `--resume` keep them). Per visit:

1. target: the bias-corrected ensemble Z / (1 - alpha^t) (t = that cell's update count), sampled
   bilinearly at every crop pixel's image position; pixels whose cells were never predicted
   have no target and are left out of the consistency term;
2. update: the crop's prediction, area-averaged to the grid resolution, is resampled at the
   centres of the cells the crop covers, which get Z <- alpha Z + (1 - alpha) z and t <- t + 1.

This is the paper's per-sample update (Sec. 2.2) done per cell and per visit instead of once per
epoch: the loop has no epochs over the unlabeled set, and a cell's count is its own "epoch"
counter, which keeps the bias correction exact for cells seen a different number of times.
Only `view1` of the views batch is used (the network is evaluated once per input, as in TE).
Memory: N x (K + 1) x rows x cols bytes for N unlabeled images (CamVid at 1/8: 321 x 12 x 48 x 64, 12 MB).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segssl.data.views import pixel_coords
from segssl.errors import SegsslError
from segssl.losses.semi import softmax_mse
from segssl.methods.base import StepOutput, register
from segssl.methods.semi.common import SemiMethod, check_range, noisy_forward


@register("temporal_ensembling")
class TemporalEnsembling(SemiMethod):
    """Temporal Ensembling (Laine & Aila ICLR 2017, Alg. 2): CE + w(t) (1/C) ||z - Z / (1 - alpha^t)||^2.

    The stochastic pass uses Gaussian input noise and dropout on the decoder features (the
    views bring crop, flip and colour augmentation); w(t) ramps up as exp(-5 (1 - t)^2). The
    paper's w_max is 30 M/N (M/N the labeled fraction), 3.75 at 1/8 labeled.
    """

    inputs = ("labeled", "views")
    defaults = {"alpha": 0.6, "weight": 3.75, "rampup": 0.25, "grid": [48, 64], "noise": 0.15, "dropout": 0.5}

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.model = self.build_model()
        self.alpha = check_range("alpha", self.a["alpha"], 0.0, 0.999)
        self.dropout = check_range("dropout", self.a["dropout"], 0.0, 0.95)
        g = self.a["grid"]
        if not (isinstance(g, (list, tuple)) and len(g) == 2 and all(int(v) >= 1 for v in g)):
            raise SegsslError(f"method_args.grid={g}: expected [rows, cols] of positive integers")
        self.grid = (int(g[0]), int(g[1]))
        k = info.num_classes
        self.register_buffer("ensemble", torch.zeros(0, k, *self.grid, dtype=torch.uint8))
        self.register_buffer("updates", torch.zeros(0, *self.grid, dtype=torch.uint8))

    def _grow(self, n: int) -> None:
        """Make room for unlabeled indices < n (the method learns the dataset size from the batches)."""
        cur = self.ensemble.shape[0]
        if n <= cur:
            return
        e = self.ensemble.new_zeros(n, *self.ensemble.shape[1:])
        u = self.updates.new_zeros(n, *self.updates.shape[1:])
        e[:cur], u[:cur] = self.ensemble, self.updates
        self.ensemble, self.updates = e, u

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the buffers grow during training: take the saved size before the strict shape check
        for name in ("ensemble", "updates"):
            saved = state_dict.get(prefix + name)
            if saved is not None and saved.shape != getattr(self, name).shape:
                dev = getattr(self, name).device
                setattr(self, name, torch.zeros(saved.shape, dtype=saved.dtype, device=dev))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def targets(self, index: torch.Tensor, box: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, h, w) bias-corrected ensemble at the crop's pixels and (B, h, w) where one exists."""
        z = self.ensemble[index].float() / 255.0
        t = self.updates[index].float()
        seen = t > 0
        corr = 1.0 - torch.pow(torch.full_like(t, self.alpha), t)
        zhat = torch.where(seen.unsqueeze(1), z / corr.clamp_min(1e-6).unsqueeze(1), torch.zeros_like(z))
        coords = pixel_coords(box.float(), h, w) * 2 - 1  # (B, h, w, 2) in grid_sample's [-1, 1]
        target = F.grid_sample(zhat, coords, mode="bilinear", padding_mode="border", align_corners=False)
        avail = (
            F.grid_sample(
                seen.float().unsqueeze(1), coords, mode="bilinear", padding_mode="border", align_corners=False
            )[:, 0]
            > 0.999
        )
        target = target / target.sum(dim=1, keepdim=True).clamp_min(1e-6)  # undo uint8 rounding drift
        return target, avail

    @torch.no_grad()
    def update(self, index: torch.Tensor, box: torch.Tensor, prob: torch.Tensor) -> None:
        """Z <- alpha Z + (1 - alpha) z on the grid cells whose centres lie inside each crop."""
        gh, gw = self.grid
        dev = prob.device
        xs = (torch.arange(gw, device=dev, dtype=torch.float32) + 0.5) / gw
        ys = (torch.arange(gh, device=dev, dtype=torch.float32) + 0.5) / gh
        a = self.alpha
        for b, (x0, y0, x1, y1) in enumerate(box.float().tolist()):
            u, v = (xs - x0) / (x1 - x0), (ys - y0) / (y1 - y0)  # crop-normalised; flips give x1 < x0
            cols = torch.nonzero((u >= 0) & (u <= 1)).flatten()
            rows = torch.nonzero((v >= 0) & (v <= 1)).flatten()
            if cols.numel() == 0 or rows.numel() == 0:
                continue
            c0, c1 = int(cols.min()), int(cols.max()) + 1
            r0, r1 = int(rows.min()), int(rows.max()) + 1
            small = F.adaptive_avg_pool2d(prob[b : b + 1].float(), (r1 - r0, c1 - c0))  # ~ one pixel per cell
            gx = (2 * u[c0:c1] - 1).view(1, -1).expand(r1 - r0, -1)
            gy = (2 * v[r0:r1] - 1).view(-1, 1).expand(-1, c1 - c0)
            z = F.grid_sample(
                small,
                torch.stack((gx, gy), dim=-1)[None],
                mode="bilinear",
                padding_mode="border",
                align_corners=False,
            )[0]
            i = int(index[b])
            old = self.ensemble[i, :, r0:r1, c0:c1].float() / 255.0
            self.ensemble[i, :, r0:r1, c0:c1] = ((a * old + (1 - a) * z) * 255.0).round().clamp(0, 255).byte()
            self.updates[i, r0:r1, c0:c1] = (self.updates[i, r0:r1, c0:c1].int() + 1).clamp(max=255).byte()

    def training_step(self, batch, step):
        lb, vb = batch["labeled"], batch["views"]
        x, box, index = vb["view1"], vb["box1"], vb["index"].long()
        self._grow(int(index.max()) + 1)
        nl = lb["image"].shape[0]
        z = noisy_forward(
            self.model, torch.cat((lb["image"], x)), noise_std=float(self.a["noise"]), dropout=self.dropout
        )
        sup = self.supervised_loss(z[:nl], lb["label"])
        zu = z[nl:]
        target, avail = self.targets(index, box, *x.shape[-2:])
        cons = softmax_mse(zu, target, valid=avail)
        self.update(index, box, zu.detach().float().softmax(dim=1))
        w = float(self.a["weight"]) * self.ramp(step)
        logs = {
            "loss_sup": sup.detach(),
            "loss_cons": cons.detach(),
            "cons_weight": w,
            "target_coverage": avail.float().mean(),
        }
        return StepOutput(sup + w * cons, logs)
