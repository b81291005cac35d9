"""Pixel retrieval with frozen features: for a query pixel, the most similar pixels of other images.

A picture of what a representation considers "the same thing": good dense features retrieve the
same object part in other images, poor ones retrieve the same colour or position. Similarity is
the cosine of full-resolution features; the bank keeps a seeded random subset of pixels per
image so memory stays bounded on large splits, and by default each retrieved image contributes
only its best pixel (adjacent pixels of one image would otherwise fill the whole row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from segssl.data.source import DataSource, Sample
from segssl.data.transforms import eval_transform, to_tv
from segssl.evaluation.probes import image_features


@dataclass
class PixelBank:
    """Features (N, C) of sampled pixels with where they come from: image number, row, column."""

    feats: torch.Tensor
    image: torch.Tensor
    ys: torch.Tensor
    xs: torch.Tensor
    samples: list[Sample]

    def locate(self, i: int) -> tuple[Sample, int, int]:
        return self.samples[int(self.image[i])], int(self.xs[i]), int(self.ys[i])


def normalized_image(source: DataSource, sample: Sample) -> torch.Tensor:
    img, _ = to_tv(source.read_image(sample))
    return eval_transform()(img).as_subclass(torch.Tensor)


@torch.no_grad()
def build_pixel_bank(
    backbone,
    source: DataSource,
    samples: Sequence[Sample],
    *,
    pixels_per_image: int = 1000,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress=None,
) -> PixelBank:
    """Bank of `pixels_per_image` random pixels per image (all pixels when <= 0), features L2-normalised."""
    gen = torch.Generator().manual_seed(int(seed))
    feats, image, ys, xs = [], [], [], []
    backbone.eval().to(device)
    it = list(enumerate(samples))
    for n, s in it if progress is None else progress(it, "building retrieval bank"):
        f = image_features(backbone, normalized_image(source, s), device)
        c, h, w = f.shape
        pos = torch.arange(h * w)
        if 0 < pixels_per_image < h * w:
            pos = torch.randperm(h * w, generator=gen)[:pixels_per_image].sort().values
        feats.append(f.reshape(c, -1)[:, pos.to(f.device)].t().cpu())
        image.append(torch.full((len(pos),), n, dtype=torch.long))
        ys.append(pos // w)
        xs.append(pos % w)
    return PixelBank(torch.cat(feats), torch.cat(image), torch.cat(ys), torch.cat(xs), list(samples))


@torch.no_grad()
def retrieve(
    query: torch.Tensor,
    bank: PixelBank,
    k: int = 5,
    exclude_image: Sequence[int | None] | None = None,
    one_per_image: bool = True,
) -> list[list[tuple[int, float]]]:
    """Per query (Q, C): the k best (bank index, cosine), best first, skipping the query's `exclude_image`."""
    q = torch.nn.functional.normalize(query.float().to(bank.feats.device), dim=1)
    sims = q @ bank.feats.float().t()  # (Q, N)
    if exclude_image is not None:
        for i, ex in enumerate(exclude_image):
            if ex is not None:
                sims[i, bank.image == int(ex)] = -torch.inf
    n_img = int(bank.image.max()) + 1
    out = []
    for i in range(q.shape[0]):
        s = sims[i]
        if one_per_image:
            # best pixel of each image, then the k best images
            best = torch.full((n_img,), -torch.inf).scatter_reduce(0, bank.image, s, reduce="amax")
            order = best.argsort(descending=True)
            hits = []
            for m in order.tolist():
                if len(hits) == k or not torch.isfinite(best[m]):
                    break
                cand = ((bank.image == m) & (s == best[m])).nonzero()[0, 0]
                hits.append((int(cand), float(s[cand])))
        else:
            vals, idx = s.topk(min(k, s.numel()))
            hits = [(int(j), float(v)) for j, v in zip(idx, vals, strict=True) if torch.isfinite(v)]
        out.append(hits)
    return out


def draw_retrieval(
    path,
    source: DataSource,
    queries: Sequence[tuple[Sample, int, int]],
    results: Sequence[Sequence[tuple[Sample, int, int, float]]],
) -> None:
    """PNG grid: one row per query — the query image with its pixel marked, then the retrieved images."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = 1 + max((len(r) for r in results), default=0)
    rows = max(1, len(queries))
    fig = Figure(figsize=(2.2 * cols, 2.4 * rows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")

    def show(ax, sample: Sample, x: int, y: int, title: str, colour: str) -> None:
        ax.imshow(source.read_image(sample))
        ax.scatter([x], [y], s=90, facecolors="none", edgecolors=colour, linewidths=2)
        ax.scatter([x], [y], s=6, c=colour)
        ax.set_title(title, fontsize=7)

    for r, ((qs, qx, qy), hits) in enumerate(zip(queries, results, strict=True)):
        show(axes[r, 0], qs, qx, qy, f"query {qs.stem} ({qx},{qy})", "red")
        for c, (s, x, y, sim) in enumerate(hits, start=1):
            show(axes[r, c], s, x, y, f"{s.stem}\ncos {sim:.3f}", "yellow")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
