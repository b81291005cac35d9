"""Pictures of masks: palette colouring, colour overlays and the image / truth / prediction grid.

`colorize` and `overlay` work on plain uint8 arrays so `segssl predict` can write its overlays
without matplotlib; the grid uses matplotlib (Agg) for titles and a class legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

Colour = Sequence[int]


def palette_lut(palette: Sequence[Colour], fill: Colour = (0, 0, 0)) -> np.ndarray:
    """uint8[256, 3] lookup table: value k -> palette[k]; values without a colour -> `fill`."""
    lut = np.empty((256, 3), dtype=np.uint8)
    lut[:] = np.asarray(fill, dtype=np.uint8)
    if len(palette) > 256:
        raise ValueError(f"palette has {len(palette)} colours; index masks hold at most 256 values")
    if len(palette):
        lut[: len(palette)] = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    return lut


def colorize(
    index_mask: np.ndarray,
    palette: Sequence[Colour],
    ignore_index: int | None = 255,
    ignore_color: Colour = (0, 0, 0),
) -> np.ndarray:
    """HxW class indices -> HxWx3 uint8 colours; ignore (void) pixels, and values past the palette, get
    `ignore_color` (black by default) so they never pass for a class."""
    mask = np.asarray(index_mask)
    if mask.ndim != 2:
        raise ValueError(f"index mask must be HxW, got shape {mask.shape}")
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError("index mask values must lie in 0..255")
    lut = palette_lut(palette, ignore_color)
    if ignore_index is not None and 0 <= int(ignore_index) < 256:
        lut[int(ignore_index)] = np.asarray(ignore_color, dtype=np.uint8)
    return lut[mask.astype(np.uint8)]


def overlay(
    image_uint8: np.ndarray,
    index_mask: np.ndarray,
    palette: Sequence[Colour],
    alpha: float = 0.5,
    ignore_index: int | None = 255,
) -> np.ndarray:
    """Blend class colours over an RGB image: (1 - alpha) * image + alpha * colour per pixel.

    Ignore pixels (and values without a palette colour) keep the image as is: an overlay is read
    on top of the photo, so "no label" should look like "nothing drawn", not like a class.
    """
    img = np.asarray(image_uint8)
    mask = np.asarray(index_mask)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be HxWx3, got shape {img.shape}")
    if img.shape[:2] != mask.shape:
        raise ValueError(f"mask size {mask.shape} differs from image size {img.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    colours = colorize(mask, palette, ignore_index).astype(np.float32)
    drawn = mask.astype(np.int64) < len(palette)
    if ignore_index is not None:
        drawn &= mask.astype(np.int64) != int(ignore_index)
    out = img.astype(np.float32)
    out[drawn] = (1.0 - alpha) * out[drawn] + alpha * colours[drawn]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def void_colour(palette: Sequence[Colour]) -> tuple[int, int, int]:
    """Black for void pixels, unless a class is already black (e.g. a background class), then white."""
    return (255, 255, 255) if any(tuple(c) == (0, 0, 0) for c in palette) else (0, 0, 0)


def picture_grid(
    path: Path,
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray | None],
    predictions: dict[str, Sequence[np.ndarray]],
    classes: Sequence[str],
    palette: Sequence[Colour],
    ignore_index: int = 255,
    titles: Sequence[str] | None = None,
) -> Path:
    """PNG grid: one row per image; columns image | ground truth | one prediction per run.

    Void ground-truth pixels are drawn in `void_colour(palette)`, named in the legend, so a viewer
    can tell "not labelled" from any class.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if not images:
        raise ValueError("picture grid needs at least one image")
    for name, preds in predictions.items():
        if len(preds) != len(images):
            raise ValueError(f"run {name}: {len(preds)} predictions for {len(images)} images")
    void = void_colour(palette)
    cols = ["image", "ground truth", *predictions]
    n_rows, n_cols = len(images), len(cols)
    h, w = np.asarray(images[0]).shape[:2]
    cell = 2.3
    aspect = h / max(w, 1)
    n_legend = len(classes) + 1
    ncol = min(n_legend, max(3, n_cols * 2))
    legend_in = 0.25 * -(-n_legend // ncol) + 0.15  # inches below the grid for the class legend
    fig_h = cell * aspect * n_rows + 0.3 + legend_in
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols, fig_h), squeeze=False)
    for r in range(n_rows):
        panels = [np.asarray(images[r])]
        lab = labels[r]
        panels.append(colorize(lab, palette, ignore_index, void) if lab is not None else np.full_like(panels[0], 128))
        panels += [colorize(predictions[name][r], palette, ignore_index, void) for name in predictions]
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if r == 0:
                ax.set_title(_short(cols[c]), fontsize=9)
            if c == 0 and titles is not None:
                ax.set_ylabel(titles[r], fontsize=7)
    handles = [
        Patch(facecolor=np.asarray(p) / 255.0, edgecolor="0.6", label=n) for n, p in zip(classes, palette, strict=False)
    ]
    handles.append(Patch(facecolor=np.asarray(void) / 255.0, edgecolor="0.6", label="void (ignored)"))
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, legend_in / fig_h, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _short(name: str, width: int = 24) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
