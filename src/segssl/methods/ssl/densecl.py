"""DenseCL (Wang et al., "Dense Contrastive Learning for Self-Supervised Visual Pre-Training", CVPR 2021).

MoCo-v2 with a second, dense head. The SegModel is the backbone:

* global branch: the encoder's deepest map, average-pooled -> MLP projector -> InfoNCE against a
  queue of global keys (DenseCL Eq. 1);
* dense branch: a dense map (the decoder output by default, so the decoder is pretrained too;
  `dense_source: encoder` uses the encoder's deepest map as the paper's ResNet C5) average-pooled
  to an S x S grid -> 1x1-conv MLP projector -> per-location InfoNCE (Eq. 2). The positive key of
  a query location is the key-view location whose *backbone* grid feature is most similar (cosine
  argmax, Sec. 3.3) — no geometry is used, as in the paper. Negatives come from a dense queue
  holding, per key image, the average of its dense key vectors (as the official code enqueues);
* loss = (1 - lambda) L_global + lambda L_dense (Eq. 3).

Keys always come from the momentum (EMA) encoder. Both queues are registered buffers, so they are
saved in (and resumed from) checkpoints, and under DDP every process enqueues the keys of all
processes (`gather_tensors`) and the key batch is shuffled across processes (MoCo's shuffling BN).
In a single process, BatchNorm of the key encoder sees the whole key batch, as in MoCo's
single-GPU variants.

Queue size: the paper's 65536 suits ImageNet (1.28M images); a queue much larger than the dataset
holds several stale keys of every image, i.e. false negatives, so configs for small datasets use
a smaller one (configs/pretrain/densecl.yaml: 4096).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segssl.distributed import batch_shuffle, batch_unshuffle, gather_tensors
from segssl.errors import SegsslError
from segssl.losses.densecl import dense_info_nce, densecl_loss, info_nce
from segssl.methods.base import StepOutput, register
from segssl.methods.ssl.base import DensePretrainMethod
from segssl.methods.ssl.dense_utils import crop_to_input, encoder_channels, resolve_args
from segssl.models.ema import EMA, cosine_momentum
from segssl.models.segmodel import SegModel

DEFAULTS = {
    "dim": 128,  # projection size (paper: 128)
    "hidden": 2048,  # projector hidden width (paper: 2048)
    "grid": 7,  # S: the dense branch works on an S x S grid (paper: 7x7 C5 map)
    "tau": 0.2,  # InfoNCE temperature (MoCo v2 / DenseCL: 0.2)
    "lam": 0.5,  # lambda of Eq. 3
    "queue_size": 65536,  # K negatives per queue (paper: 65536)
    "momentum": 0.99,  # EMA momentum of the key encoder
    "momentum_schedule": "constant",  # constant | cosine (BYOL's increase to 1)
    "dense_source": "decoder",  # decoder | encoder
    "shuffle_bn": True,  # shuffle the key batch across processes under DDP
}


def global_projector(c_in: int, hidden: int, dim: int) -> nn.Module:
    """MoCo-v2's MLP head (Chen et al. 2020): fc-ReLU-fc."""
    return nn.Sequential(nn.Linear(c_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))


def dense_projector(c_in: int, hidden: int, dim: int) -> nn.Module:
    """DenseCL's dense head: the MLP as 1x1 convolutions, one output vector per grid location."""
    return nn.Sequential(nn.Conv2d(c_in, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, dim, 1))


@register("densecl")
class DenseCL(DensePretrainMethod):
    """Query encoder = online SegModel + projectors; key encoder = their EMA; two queues of negatives."""

    def __init__(self, cfg: dict, info):
        super().__init__(cfg, info)
        a = resolve_args(DEFAULTS, self.args, "densecl")
        if a["dense_source"] not in ("decoder", "encoder"):
            raise SegsslError(f"method_args.dense_source={a['dense_source']}: expected decoder or encoder")
        if a["momentum_schedule"] not in ("constant", "cosine"):
            raise SegsslError(f"method_args.momentum_schedule={a['momentum_schedule']}: expected constant or cosine")
        self.a = a
        enc_c = encoder_channels(self.model)
        dense_c = self.model.feature_dim if a["dense_source"] == "decoder" else enc_c
        dim, hidden = int(a["dim"]), int(a["hidden"])
        self.proj_global = global_projector(enc_c, hidden, dim)
        self.proj_dense = dense_projector(dense_c, hidden, dim)
        # key encoder: frozen EMA copies, updated in after_step, never by gradients
        self.key_model = EMA(self.model)
        self.key_global = EMA(self.proj_global)
        self.key_dense = EMA(self.proj_dense)
        k = int(a["queue_size"])
        self.register_buffer("queue_global", F.normalize(torch.randn(k, dim), dim=1))
        self.register_buffer("queue_dense", F.normalize(torch.randn(k, dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def encode(self, model: SegModel, proj_g: nn.Module, proj_d: nn.Module, x: torch.Tensor):
        """(global projection (B, D), dense projections (B, S*S, D), backbone grid features (B, S*S, C))."""
        h, w = x.shape[-2:]
        d, feats = model.decode(x)
        deepest = crop_to_input(feats[-1], h, w, model.stride)
        dense = crop_to_input(d, h, w, model.stride) if self.a["dense_source"] == "decoder" else deepest
        z_g = proj_g(deepest.mean(dim=(2, 3)))
        grid_feat = F.adaptive_avg_pool2d(dense, int(self.a["grid"]))  # (B, C, S, S)
        z_d = proj_d(grid_feat)
        return z_g, z_d.flatten(2).transpose(1, 2), grid_feat.flatten(2).transpose(1, 2)

    @torch.no_grad()
    def keys(self, x: torch.Tensor):
        """Key-view outputs of the momentum encoder (shuffled across processes for BatchNorm under DDP)."""
        perm = None
        if self.a["shuffle_bn"]:
            x, perm = batch_shuffle(x)
        out = self.encode(self.key_model.module, self.key_global.module, self.key_dense.module, x)
        return tuple(batch_unshuffle(t, perm) for t in out)

    def ssl_step(self, views: dict, step: int) -> StepOutput:
        q_g, q_grid, q_feat = self.encode(self.model, self.proj_global, self.proj_dense, views["view1"])
        k_g, k_grid, k_feat = self.keys(views["view2"])
        tau, lam = float(self.a["tau"]), float(self.a["lam"])
        loss_g = info_nce(q_g, k_g, self.queue_global.clone(), tau)
        loss_d = dense_info_nce(q_grid, k_grid, q_feat, k_feat, self.queue_dense.clone(), tau)
        # the dense queue gets one vector per key image: its dense keys averaged (official DenseCL)
        self.enqueue(F.normalize(k_g.float(), dim=1), F.normalize(k_grid.float().mean(dim=1), dim=1))
        loss = densecl_loss(loss_g, loss_d, lam)
        return StepOutput(loss, {"loss_global": loss_g.detach(), "loss_dense": loss_d.detach()})

    @torch.no_grad()
    def enqueue(self, k_global: torch.Tensor, k_dense: torch.Tensor) -> None:
        """Replace the oldest entries of both queues by this step's keys from every process."""
        k_global, k_dense = gather_tensors(k_global), gather_tensors(k_dense)
        size = self.queue_global.shape[0]
        k_global, k_dense = k_global[-size:], k_dense[-size:]
        n = k_global.shape[0]
        ptr = int(self.queue_ptr[0])
        idx = (ptr + torch.arange(n, device=self.queue_global.device)) % size
        self.queue_global[idx] = k_global.to(self.queue_global.dtype)
        self.queue_dense[idx] = k_dense.to(self.queue_dense.dtype)
        self.queue_ptr[0] = (ptr + n) % size

    def momentum(self, step: int, max_steps: int) -> float:
        base = float(self.a["momentum"])
        return cosine_momentum(step, max_steps, base) if self.a["momentum_schedule"] == "cosine" else base

    def after_step(self, step: int, max_steps: int) -> None:
        m = self.momentum(step, max_steps)
        self.key_model.update(self.model, m)
        self.key_global.update(self.proj_global, m)
        self.key_dense.update(self.proj_dense, m)
