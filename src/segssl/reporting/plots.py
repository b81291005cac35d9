"""Report plots (matplotlib, Agg): confusion matrix, per-class IoU across runs, label efficiency.

Each function writes one PNG and returns its path; none needs a display, so reports can be made
on headless machines and in CI.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def normalize_rows(cm: np.ndarray) -> np.ndarray:
    """Each ground-truth row divided by its pixel count (rows without pixels stay 0): per-class recall
    is what a reader wants to see, independent of how frequent the class is."""
    cm = np.asarray(cm, dtype=np.float64)
    sums = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, sums, out=np.zeros_like(cm), where=sums > 0)


def confusion_matrix_plot(
    cm: Sequence[Sequence[float]] | np.ndarray, classes: Sequence[str], path: Path, title: str | None = None
) -> Path:
    """Row-normalised confusion matrix (rows: ground truth, columns: prediction), in percent."""
    plt = _plt()
    m = np.asarray(cm, dtype=np.float64)
    k = len(classes)
    if m.shape != (k, k):
        raise ValueError(f"confusion matrix of shape {m.shape} does not match {k} classes")
    norm = normalize_rows(m) * 100
    size = min(max(4.0, 0.45 * k + 2.0), 24.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=100, interpolation="nearest")
    fs = 8 if k <= 12 else (6 if k <= 25 else 4)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(classes, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center", fontsize=fs)
    ax.set_yticklabels(classes, fontsize=fs)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    if k <= 25:  # beyond that the numbers are unreadable; the colours still tell the story
        for i in range(k):
            for j in range(k):
                v = norm[i, j]
                if v >= 0.05:
                    ax.text(
                        j,
                        i,
                        f"{v:.0f}" if v >= 9.95 else f"{v:.1f}",
                        ha="center",
                        va="center",
                        fontsize=fs,
                        color="white" if v > 55 else "black",
                    )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="% of ground-truth pixels")
    if title:
        set_wrapped_title(ax, title)
    fig.tight_layout()
    return _save(fig, path)


def per_class_iou_plot(
    runs: dict[str, dict[str, float | None]],
    classes: Sequence[str],
    path: Path,
    title: str | None = "Per-class IoU (test, last checkpoint)",
) -> Path:
    """Grouped bars: for every class, one bar per run. Classes absent from a split (IoU null) get no bar."""
    plt = _plt()
    if not runs:
        raise ValueError("per-class IoU plot needs at least one run")
    k, n = len(classes), len(runs)
    width = 0.8 / n
    longest = max(len(str(r)) for r in runs)
    fig_w = min(max(6.0, 0.22 * k * n + 2.5), 30.0) + min(0.075 * longest + 0.4, 3.5)  # room for the legend
    fig, ax = plt.subplots(figsize=(fig_w, 3.8))
    colours = plt.get_cmap("tab10" if n <= 10 else "tab20")
    x = np.arange(k)
    for r, (name, ious) in enumerate(runs.items()):
        vals = np.array([np.nan if ious.get(c) is None else float(ious[c]) for c in classes])
        ax.bar(
            x - 0.4 + width * (r + 0.5),
            np.nan_to_num(vals, nan=0.0),
            width,
            label=name,
            color=colours(r % colours.N),
        )
    ax.set_xticks(x)
    ax.set_xticklabels(
        classes, rotation=45 if k > 6 else 0, ha="right" if k > 6 else "center", fontsize=8 if k <= 30 else 5
    )
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_xlim(-0.6, k - 0.4)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        set_wrapped_title(ax, title)
    fig.tight_layout()
    return _save(fig, path)


def fraction_label(f: float) -> str:
    """0.125 -> '1/8', 1.0 -> 'all', 0.3 -> '30%': labeled fractions read best as the papers write them."""
    if f >= 1 - 1e-9:
        return "all"
    fr = Fraction(f).limit_denominator(1024)
    if fr.numerator == 1 and abs(float(fr) - f) < 1e-6:
        return f"1/{fr.denominator}"
    return f"{f * 100:.3g}%"


BASELINE = "supervised"


def method_styles(methods: Sequence[str]) -> dict[str, dict]:
    """Matplotlib line style of each method: the supervised baseline black, thick and dashed (every
    other line is read against it); the others a distinct (colour, marker) pair, so that a table of 16
    methods never draws two lines alike (tab10 alone repeats after ten).
    """
    plt = _plt()
    tab20 = plt.get_cmap("tab20").colors
    colours = [*tab20[0::2], *tab20[1::2]]  # the 10 dark ones, then the 10 light ones
    markers = "osD^v<>pP*Xh"
    styles, i = {}, 0
    for m in sorted(methods):
        if m == BASELINE:
            styles[m] = {"color": "black", "marker": "s", "linestyle": "--", "linewidth": 2.4, "zorder": 3}
            continue
        styles[m] = {
            "color": colours[i % len(colours)],
            "marker": markers[i % len(markers)],
            "linestyle": "-",
            "linewidth": 1.4,
            "zorder": 2,
        }
        i += 1
    return styles


def label_efficiency_plot(
    points: Iterable[dict], path: Path, title: str | None = "Label efficiency", ylabel: str = "mIoU (%)"
) -> Path:
    """mIoU against labeled fraction, one line per method (log2 x axis).

    `points`: dicts with "method", "fraction" (0 < f <= 1) and "miou". Several points for the same
    (method, fraction), e.g. seeds, are drawn as their mean with a min-max bar, so a single lucky seed
    does not look like a result.
    """
    plt = _plt()
    groups: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for p in points:
        f, m = p.get("fraction"), p.get("miou")
        if f is None or m is None:
            continue
        f = float(f)
        if not 0 < f <= 1:
            raise ValueError(f"labeled fraction must be in (0, 1], got {f} for method {p.get('method')}")
        groups[str(p["method"])][round(f, 9)].append(float(m))
    if not groups:
        raise ValueError("label-efficiency plot needs at least one point with a fraction and an mIoU")
    many = len(groups) > 6  # the legend goes beside the axes, where it hides no point
    fig, ax = plt.subplots(figsize=(8.4 if many else 6.4, 4.2))
    all_x: set[float] = set()
    styles = method_styles(list(groups))
    for method, by_f in sorted(groups.items()):
        xs = sorted(by_f)
        mean = np.array([np.mean(by_f[f]) for f in xs])
        lo = mean - np.array([np.min(by_f[f]) for f in xs])
        hi = np.array([np.max(by_f[f]) for f in xs]) - mean
        ax.errorbar(
            xs,
            mean,
            yerr=[lo, hi] if (lo.any() or hi.any()) else None,
            capsize=3,
            label=method,
            **styles[method],
        )
        all_x.update(xs)
    ax.set_xscale("log", base=2)
    ticks = sorted(all_x)
    ax.set_xticks(ticks)
    ax.set_xticklabels([fraction_label(f) for f in ticks])
    ax.minorticks_off()
    if len(ticks) == 1:
        ax.set_xlim(ticks[0] / 2, min(ticks[0] * 2, 2.0))
    else:
        ax.set_xlim(ticks[0] / math.sqrt(2), ticks[-1] * math.sqrt(2))
    ax.set_xlabel("labeled fraction of the training images")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if many:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    else:
        ax.legend(fontsize=8)
    if title:
        set_wrapped_title(ax, title)
    fig.tight_layout()
    return _save(fig, path)


def set_wrapped_title(ax, title: str, fontsize: int = 10) -> None:
    """Title wrapped to the figure's width: a benchmark's long protocol title would otherwise be cut off at both
    edges of the PNG (tight_layout does not shrink titles)."""
    import textwrap

    width_pt = ax.figure.get_figwidth() * 72
    chars = max(int(width_pt / (0.55 * fontsize)), 20)  # ~0.55 em per character of the default sans-serif
    ax.set_title(textwrap.fill(title, chars), fontsize=fontsize)


def _save(fig, path: Path) -> Path:
    plt = _plt()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
