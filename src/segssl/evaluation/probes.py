"""Frozen-feature probes of a backbone's pixel features: a linear probe and a kNN ("distance matching").

Both score representations rather than fine-tuning recipes: the backbone is frozen (eval mode,
no gradient), so a number differs between checkpoints only because their features differ.

* linear: a 1x1 convolution (a per-pixel linear classifier): multinomial logistic regression,
  class-balanced, solved to convergence on cached full-resolution features of sampled labeled
  pixels, evaluated like any segmenter.
* knn: PASS's distance matching (Gao et al., TPAMI 2022, Sec. 5) with DINO's weighted vote
  (Caron et al. 2021, kNN eval): each test pixel takes the k most cosine-similar entries of a
  bank of labeled-train embeddings — subsampled pixels, or one mean embedding per (image, class)
  region as PASS — and predicts argmax_c sum_{neighbours of class c} exp(sim / T).

Both wrap the frozen backbone in a module returning (B, K, H, W) scores, so
`segssl.evaluation.evaluate.evaluate_model` computes the same dataset-level metrics as for
trained models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segssl.data.dataset import SegmentationDataset
from segssl.data.source import DataSource, Sample
from segssl.data.transforms import eval_transform
from segssl.errors import SegsslError
from segssl.evaluation.metrics import confusion_matrix, scores
from segssl.models.checkpoint import load_matching, read_checkpoint
from segssl.models.segmodel import SegModel, build_model


def load_backbone(checkpoint: str, num_classes: int, model_cfg: dict, seed: int = 0) -> tuple[SegModel, dict]:
    """Frozen SegModel from a segssl checkpoint (pretrained or trained), or `random` init (baseline row).

    Returns (model in eval mode without gradients, the model config used). With a checkpoint its
    own model config is used, since only that architecture matches the weights.
    """
    if str(checkpoint) == "random":
        cfg = {**model_cfg, "encoder_weights": None, "init": None}
        torch.manual_seed(seed)
        model = build_model(cfg, num_classes)
    else:
        entry = read_checkpoint(checkpoint)
        cfg = {**(entry.get("config") or {}).get("model", model_cfg), "encoder_weights": None, "init": None}
        model = build_model(cfg, num_classes)
        load_matching(model, entry["model_state"], str(checkpoint))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, cfg


class LinearProbeSegmenter(nn.Module):
    """Frozen backbone + trained 1x1 head: logits = head(full-resolution features)."""

    def __init__(self, backbone: nn.Module, head: nn.Conv2d):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.features(x))


def fit_linear_probe(
    feats: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    class_weight: torch.Tensor | None = None,
    l2: float = 1e-4,
    max_iter: int = 300,
    tol: float = 1e-7,
) -> nn.Conv2d:
    """Multinomial logistic regression on cached pixel features, solved to convergence (L-BFGS).

    Minimises sum_i w_(y_i) CE(W z_i + b, y_i) / sum_i w_(y_i) + l2/2 ||W||^2 over standardised
    features z = (f - mean) / std (the bias is not penalised, as in scikit-learn). A probe that
    is solved, not trained for a few hundred SGD steps, measures the features and not the
    optimiser: with CamVid's long tail an under-trained probe predicts only sky, road and
    building. `class_weight` (K,) rebalances rare classes (median-frequency weights = balanced).
    The standardisation is folded into the returned 1x1 conv, which applies to raw features.
    """
    x = feats.float()
    y = labels.long()
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    z = (x - mean) / std
    w = torch.ones(num_classes) if class_weight is None else class_weight.float()
    sample_w = w.to(x.device)[y]
    norm = sample_w.sum().clamp(min=1e-12)
    weight = torch.zeros(num_classes, x.shape[1], device=x.device, requires_grad=True)
    bias = torch.zeros(num_classes, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=int(max_iter),
        history_size=20,
        tolerance_grad=tol,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        ce = F.cross_entropy(z @ weight.t() + bias, y, reduction="none")
        loss = (sample_w * ce).sum() / norm + 0.5 * float(l2) * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    head = nn.Conv2d(x.shape[1], num_classes, kernel_size=1).to(x.device)
    with torch.no_grad():
        w_raw = weight / std  # W z = (W / std) f - (W / std) mean
        head.weight.copy_(w_raw[:, :, None, None])
        head.bias.copy_(bias - w_raw @ mean)
    head.eval()
    for p in head.parameters():
        p.requires_grad_(False)
    return head


@torch.no_grad()
def probe_scores(head: nn.Conv2d, feats: torch.Tensor, labels: torch.Tensor, classes: Sequence[str]) -> dict:
    """Dataset-level scores of a 1x1-conv head on cached (N, C) pixel features with (N,) labels (no ignore)."""
    k = len(classes)
    w, b = head.weight[:, :, 0, 0], head.bias
    cm, chunk = torch.zeros(k, k, dtype=torch.long), 1 << 20
    for s in range(0, feats.shape[0], chunk):
        pred = (feats[s : s + chunk].float() @ w.t() + b).argmax(1)
        cm += confusion_matrix(pred.cpu(), labels[s : s + chunk].cpu(), k, -1)
    return scores(cm, list(classes))


def select_linear_probe(
    feats: torch.Tensor,
    labels: torch.Tensor,
    val_feats: torch.Tensor,
    val_labels: torch.Tensor,
    classes: Sequence[str],
    candidates: Sequence[dict],
    max_iter: int = 300,
) -> tuple[nn.Conv2d, list[dict]]:
    """Fit one probe per candidate {"class_weight": (K,) or None, "l2": float, "name": str}; keep the one
    with the best validation mIoU (the usual linear-evaluation protocol: each representation gets its
    best probe hyper-parameters, chosen on val, never on test). Returns (head, [{name, val_miou}])."""
    best, table = None, []
    for c in candidates:
        head = fit_linear_probe(
            feats, labels, len(classes), class_weight=c.get("class_weight"), l2=float(c["l2"]), max_iter=max_iter
        )
        miou = probe_scores(head, val_feats, val_labels, classes)["miou"]
        table.append({"name": c["name"], "val_miou": miou})
        if best is None or miou > best[0]:
            best = (miou, head)
    if best is None:
        raise SegsslError("linear probe: no candidate hyper-parameters to fit")
    return best[1], table


# ----------------------------------------------------------------------------------------- kNN


@torch.no_grad()
def knn_topk(
    query: torch.Tensor, bank: torch.Tensor, k: int, q_chunk: int = 2048, b_chunk: int = 32768
) -> tuple[torch.Tensor, torch.Tensor]:
    """(similarities, indices) of the k largest `query @ bank.T` per row, in bounded memory.

    Memory is q_chunk x b_chunk similarities at a time: the bank is scanned chunk by chunk and a
    running top-k is merged, so a million-entry bank never needs a full similarity matrix.
    """
    k = min(int(k), bank.shape[0])
    sims_out, idx_out = [], []
    for qs in range(0, query.shape[0], q_chunk):
        q = query[qs : qs + q_chunk]
        best_s = torch.full((q.shape[0], 0), -math.inf, device=q.device)
        best_i = torch.zeros((q.shape[0], 0), dtype=torch.long, device=q.device)
        for bs in range(0, bank.shape[0], b_chunk):
            s = q @ bank[bs : bs + b_chunk].t()
            top_s, top_i = s.topk(min(k, s.shape[1]), dim=1)
            cand_s = torch.cat([best_s, top_s], dim=1)
            cand_i = torch.cat([best_i, top_i + bs], dim=1)
            best_s, pos = cand_s.topk(min(k, cand_s.shape[1]), dim=1)
            best_i = torch.gather(cand_i, 1, pos)
        sims_out.append(best_s)
        idx_out.append(best_i)
    return torch.cat(sims_out), torch.cat(idx_out)


@torch.no_grad()
def knn_vote(
    query: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    q_chunk: int = 2048,
    b_chunk: int = 32768,
) -> torch.Tensor:
    """DINO's weighted kNN vote: (Q, K) scores sum_{j in top-k, y_j = c} exp(cos(q, b_j) / T), normalised.

    `query` (Q, C) and `bank` (N, C) are L2-normalised here; returns per-query class probabilities.
    """
    q = F.normalize(query.float(), dim=1)
    b = F.normalize(bank.float(), dim=1)
    sims, idx = knn_topk(q, b, k, q_chunk, b_chunk)
    weights = (sims / temperature).exp()
    votes = torch.zeros(q.shape[0], num_classes, device=q.device)
    votes.scatter_add_(1, bank_labels.to(q.device)[idx], weights)
    return votes / votes.sum(1, keepdim=True).clamp(min=1e-12)


@torch.no_grad()
def image_features(
    backbone: nn.Module, image: torch.Tensor, device: str | torch.device = "cpu", normalize: bool = True
) -> torch.Tensor:
    """Full-resolution features (C, H, W) of one normalised CHW image, L2-normalised unless `normalize=False`."""
    f = backbone.features(image[None].to(device)).float()
    return (F.normalize(f, dim=1) if normalize else f)[0]


@torch.no_grad()
def pixel_embeddings(
    feats: torch.Tensor, label: torch.Tensor, ignore_index: int, pixels: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to `pixels` random non-ignore pixels of one image: (n, C) features and (n,) labels."""
    c = feats.shape[0]
    f = feats.reshape(c, -1).t()
    y = label.reshape(-1).to(f.device)
    keep = (y != ignore_index).nonzero().squeeze(1)
    if pixels > 0 and keep.numel() > pixels:
        keep = keep[torch.randperm(keep.numel(), generator=gen)[:pixels].to(keep.device)]
    return f[keep], y[keep]


@torch.no_grad()
def region_embeddings(feats: torch.Tensor, label: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PASS's region bank: per class present in the image, the mean of its pixels' normalised features."""
    c = feats.shape[0]
    f = feats.reshape(c, -1).t()
    y = label.reshape(-1).to(f.device)
    out_f, out_y = [], []
    for cls in torch.unique(y).tolist():
        if cls == ignore_index:
            continue
        out_f.append(F.normalize(f[y == cls].mean(0), dim=0))
        out_y.append(cls)
    if not out_f:
        return f.new_zeros(0, c), y.new_zeros(0)
    return torch.stack(out_f), torch.tensor(out_y, dtype=torch.long, device=f.device)


@torch.no_grad()
def build_bank(
    backbone: nn.Module,
    source: DataSource,
    split: str,
    samples: Sequence[Sample],
    *,
    bank: str = "pixel",
    pixels_per_image: int = 1000,
    max_bank: int = 2_000_000,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress=None,
    normalize: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Memory bank (N, C) + labels (N,) from whole labeled images (eval transform), bounded to `max_bank`.

    The kNN probe uses L2-normalised features (cosine); the linear probe raw ones (`normalize=False`).
    """
    if bank not in ("pixel", "region"):
        raise SegsslError(f"probe.bank={bank}: expected pixel or region")
    ds = SegmentationDataset(source, split, samples, eval_transform())
    ppi = int(pixels_per_image)
    if bank == "pixel" and len(ds) and max_bank > 0:
        ppi = min(ppi, max(1, int(max_bank) // len(ds))) if ppi > 0 else max(1, int(max_bank) // len(ds))
    gen = torch.Generator().manual_seed(int(seed))
    backbone.eval().to(device)
    feats, labels = [], []
    it = range(len(ds)) if progress is None else progress(range(len(ds)), "extracting pixel features")
    for i in it:
        item = ds[i]
        f = image_features(backbone, item["image"], device, normalize=normalize)
        if bank == "pixel":
            bf, bl = pixel_embeddings(f, item["label"], source.info.ignore_index, ppi, gen)
        else:
            bf, bl = region_embeddings(f, item["label"], source.info.ignore_index)
        feats.append(bf)
        labels.append(bl)
    if not feats or sum(len(x) for x in labels) == 0:
        raise SegsslError(f"{source.root or source.name}/{split}: no labeled pixels to build a kNN bank from")
    return torch.cat(feats), torch.cat(labels)


class KNNSegmenter(nn.Module):
    """Frozen backbone + memory bank: log of the kNN vote distribution per pixel (argmax = prediction)."""

    def __init__(
        self,
        backbone: nn.Module,
        bank: torch.Tensor,
        bank_labels: torch.Tensor,
        num_classes: int,
        k: int = 20,
        temperature: float = 0.07,
        q_chunk: int = 2048,
        b_chunk: int = 32768,
        query_stride: int = 1,
    ):
        super().__init__()
        self.backbone, self.query_stride = backbone, max(1, int(query_stride))
        self.register_buffer("bank", F.normalize(bank.float(), dim=1))
        self.register_buffer("bank_labels", bank_labels.long())
        self.num_classes, self.k, self.temperature = num_classes, k, temperature
        self.q_chunk, self.b_chunk = q_chunk, b_chunk

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.backbone.features(x)
        full = f.shape[-2:]
        if self.query_stride > 1:
            # vote on an s x s average-pooled grid and upsample the vote distribution: s^2 times fewer
            # queries (all-pixel kNN against a large bank is hours on a CPU), boundaries stay bilinear
            f = F.avg_pool2d(f, self.query_stride, ceil_mode=True)
        b, c, h, w = f.shape
        q = f.permute(0, 2, 3, 1).reshape(-1, c)
        probs = knn_vote(
            q,
            self.bank,
            self.bank_labels,
            self.num_classes,
            self.k,
            self.temperature,
            self.q_chunk,
            self.b_chunk,
        )
        probs = probs.view(b, h, w, -1).permute(0, 3, 1, 2)
        if probs.shape[-2:] != full:
            probs = F.interpolate(probs, size=full, mode="bilinear", align_corners=False)
        return probs.clamp(min=1e-12).log()
