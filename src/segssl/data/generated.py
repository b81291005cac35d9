"""The built-in generated dataset: cluttered procedural scenes, so demos and tests need no files.

Six classes are told apart by texture, shading and shape rather than by colour: instance hues are
jittered and shared between classes, every image gets its own brightness / contrast / colour cast,
noise and blur, objects occlude each other in random depth order, and small distractor shapes of
any colour belong to the background. A per-pixel colour classifier therefore does poorly, while a
model that looks at context can learn the task. Class frequencies are imbalanced (background
most, thin rods rarest) and the antialiased rim of discs is labelled `ignore_index` (void).

Every image depends only on (seed, split, index), so any subset is reproducible on its own.
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from segssl.data.source import SPLITS, ClassInfo, DataSource, Sample
from segssl.errors import DataError

CLASSES = ("background", "grass", "brick", "disc", "rod", "spots")
PALETTE = ((0, 0, 0), (60, 180, 75), (200, 70, 50), (65, 105, 225), (255, 215, 0), (220, 80, 220))
IGNORE = 255
GENERATED_INFO = ClassInfo(CLASSES, PALETTE, IGNORE)
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
BG, GRASS, BRICK, DISC, ROD, SPOTS = range(6)
DEFAULT_NUM_TRAIN = 192

Box = tuple[int, int, int, int]


def generated_source(
    num_train: int | None = None,
    seed: int = 0,
    *,
    num_val: int = 48,
    num_test: int = 64,
    size: tuple[int, int] = (96, 96),
) -> DataSource:
    """Lazily generated train/val/test splits; `size` is (height, width)."""
    n_train = DEFAULT_NUM_TRAIN if num_train is None else int(num_train)
    if n_train < 1:
        raise DataError(f"generated:{n_train}: the number of train images must be at least 1")
    if num_val < 0 or num_test < 0:
        raise DataError("generated: num_val and num_test must not be negative")
    if seed < 0:
        raise DataError(f"generated: seed must be non-negative, got {seed}")
    h, w = (int(v) for v in size)
    if h < 8 or w < 8:
        raise DataError(f"generated: image size must be at least 8x8, got {h}x{w}")
    splits: dict[str, list[Sample]] = {}
    for split, n in (("train", n_train), ("val", num_val), ("test", num_test)):
        if n == 0:
            continue
        sid = SPLIT_IDS[split]
        splits[split] = [
            Sample(
                f"gen_{split}_{i:05d}",
                GeneratedPart(seed, sid, i, h, w, "image"),
                GeneratedPart(seed, sid, i, h, w, "label"),
            )
            for i in range(n)
        ]
    return DataSource("generated", GENERATED_INFO, splits)


@dataclass(frozen=True)
class GeneratedPart:
    """A picklable zero-arg callable (data-loader workers may use spawn) returning one image or mask."""

    seed: int
    split_id: int
    index: int
    height: int
    width: int
    part: str  # "image" or "label"

    def __call__(self) -> np.ndarray:
        img, lab = _cached(self.seed, self.split_id, self.index, self.height, self.width)
        return (img if self.part == "image" else lab).copy()


@lru_cache(maxsize=16)
def _cached(seed: int, split_id: int, index: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Image and label are read one after the other; render once for both."""
    return render_scene(seed, split_id, index, (h, w))


def render_scene(seed: int, split_id: int, index: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (RGB uint8 HxWx3, label uint8 HxW) from its own random stream."""
    rng = np.random.default_rng([seed, split_id, index])
    h, w = size
    s = min(h, w) / 96.0  # geometry scales with the image, so any size shows the same kind of scene
    img = _background(rng, h, w)
    lab = np.zeros((h, w), np.uint8)
    light = rng.uniform(0, 2 * np.pi)  # one light direction per scene for disc shading

    if rng.random() < 0.75:
        _grass_band(rng, img, lab, h, w, s)
    # (depth key, painter); regions tend to be behind objects but may occlude them
    layers: list[tuple[float, str]] = []
    layers += [(rng.uniform(0.0, 1.0), "grass")] * int(rng.random() < 0.2)
    layers += [(rng.uniform(0.0, 1.0), "brick") for _ in range(rng.choice(3, p=[0.35, 0.45, 0.2]))]
    layers += [(rng.uniform(0.0, 1.0), "spots") for _ in range(rng.choice(3, p=[0.4, 0.45, 0.15]))]
    layers += [(rng.uniform(0.3, 1.3), "disc") for _ in range(rng.integers(1, 6))]
    layers += [(rng.uniform(0.3, 1.3), "rod") for _ in range(rng.choice(5, p=[0.12, 0.3, 0.3, 0.18, 0.1]))]
    layers += [(rng.uniform(0.0, 1.3), "clutter") for _ in range(rng.integers(4, 13))]
    layers.sort(key=lambda t: t[0])
    for _, kind in layers:
        if kind == "grass":
            _grass_blob(rng, img, lab, h, w, s)
        elif kind == "brick":
            _brick(rng, img, lab, h, w, s)
        elif kind == "spots":
            _spots(rng, img, lab, h, w, s)
        elif kind == "disc":
            _disc(rng, img, lab, h, w, s, light)
        elif kind == "rod":
            _rod(rng, img, lab, h, w, s)
        else:
            _clutter(rng, img, lab, h, w, s)
    return _photometric(rng, img), lab


# ---------------------------------------------------------------------------------------- helpers


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """Instance colours are drawn in HSV so hue, saturation and value jitter independently."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)), np.float32) * 255


def _any_colour(rng: np.random.Generator) -> np.ndarray:
    """A colour from the shared pool, so no class owns a hue."""
    return _hsv(rng.random(), rng.uniform(0.15, 0.9), rng.uniform(0.25, 0.95))


def _box(cy: float, cx: float, ry: float, rx: float, h: int, w: int) -> tuple[Box, np.ndarray, np.ndarray] | None:
    """Clip an object's bounding box to the image; pixel coordinates relative to its centre."""
    y0, y1 = max(int(np.floor(cy - ry)) - 1, 0), min(int(np.ceil(cy + ry)) + 2, h)
    x0, x1 = max(int(np.floor(cx - rx)) - 1, 0), min(int(np.ceil(cx + rx)) + 2, w)
    if y0 >= y1 or x0 >= x1:
        return None
    yy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    xx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    return (y0, y1, x0, x1), yy, xx


def _rotate(yy: np.ndarray, xx: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    c, sn = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    return xx * c + yy * sn, yy * c - xx * sn


def _alpha(dist: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside, in pixels) to a 1-pixel antialiased coverage."""
    return np.clip(np.float32(0.5) - dist, 0.0, 1.0)


def _paint(
    img: np.ndarray,
    lab: np.ndarray,
    box: Box,
    alpha: np.ndarray,
    colour: np.ndarray,
    cls: int,
    void: bool = False,
) -> None:
    """Blend a layer over the canvas; its label wins where it covers at least half the pixel."""
    y0, y1, x0, x1 = box
    sub = img[y0:y1, x0:x1]
    sub += alpha[..., None] * (colour - sub)
    sl = lab[y0:y1, x0:x1]
    sl[alpha >= 0.5] = cls
    if void:  # pixels where the object blends into what is behind it
        sl[(alpha > 0.1) & (alpha < 0.9)] = IGNORE


def _star_dist(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, r0: float) -> np.ndarray:
    """Signed distance to an irregular star-shaped blob (radius perturbed by low harmonics)."""
    theta = np.arctan2(yy, xx)
    rad = np.ones_like(theta)
    for k in (2, 3, 5):
        rad += np.float32(rng.uniform(0, 0.14)) * np.cos(k * theta + np.float32(rng.uniform(0, 2 * np.pi)))
    return np.sqrt(yy * yy + xx * xx) - np.float32(r0) * rad


# ---------------------------------------------------------------------------------------- layers


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth sky-to-ground (or wall-to-floor) gradient with low-frequency shading."""
    if rng.random() < 0.6:
        top = _hsv(rng.uniform(0.5, 0.7), rng.uniform(0.1, 0.6), rng.uniform(0.55, 0.95))
    else:
        top = _any_colour(rng)
    bottom = _hsv(
        rng.choice([rng.uniform(0.02, 0.12), rng.uniform(0.15, 0.4), rng.random()]),
        rng.uniform(0.1, 0.6),
        rng.uniform(0.25, 0.75),
    )
    y = np.arange(h, dtype=np.float32)[:, None] / h
    x = np.arange(w, dtype=np.float32)[None, :] / w
    t = 1.0 / (1.0 + np.exp(-(y - rng.uniform(0.3, 0.7)) / rng.uniform(0.04, 0.25)))
    shade = np.ones((h, w), np.float32)
    for _ in range(2):
        fy, fx = rng.uniform(-6, 6, size=2)
        shade += np.float32(rng.uniform(0.03, 0.1)) * np.cos(fy * y + fx * x + rng.uniform(0, 2 * np.pi))
    img = (top * (1 - t)[..., None] + bottom * t[..., None]) * shade[..., None]
    return img.astype(np.float32)


def _grass_texture(rng: np.random.Generator, hh: int, ww: int, s: float) -> np.ndarray:
    """Noisy high-frequency texture with short vertical blades, green-ish (or dry) hue."""
    hue = rng.uniform(0.17, 0.45) if rng.random() < 0.75 else rng.uniform(0.07, 0.17)
    base = _hsv(hue, rng.uniform(0.35, 0.85), rng.uniform(0.3, 0.8))
    blade = max(2, int(round(3 * s)))
    streaks = np.repeat(rng.standard_normal((hh // blade + 1, ww), dtype=np.float32), blade, axis=0)[:hh]
    n = 0.65 * streaks + 0.45 * rng.standard_normal((hh, ww), dtype=np.float32)
    shade = np.clip(1.0 + np.float32(rng.uniform(0.25, 0.4)) * n, 0.2, 2.0)
    tint = np.float32(rng.uniform(-0.15, 0.15)) * n  # blade tips shift toward yellow / blue
    col = base * shade[..., None]
    col[..., 0] += tint * 60
    col[..., 2] -= tint * 60
    return col


def _grass_band(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray, h: int, w: int, s: float) -> None:
    """Ground covered with grass below a wavy horizon."""
    x = np.arange(w, dtype=np.float32)[None, :]
    edge = np.full((1, w), rng.uniform(0.35, 0.8) * h, np.float32)
    for _ in range(3):
        edge += np.float32(rng.uniform(0, 4) * s) * np.sin(
            x * np.float32(rng.uniform(0.02, 0.3) / s) + rng.uniform(0, 6)
        )
    y = np.arange(h, dtype=np.float32)[:, None]
    alpha = _alpha(edge - y)
    _paint(img, lab, (0, h, 0, w), alpha, _grass_texture(rng, h, w, s), GRASS)


def _grass_blob(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray, h: int, w: int, s: float) -> None:
    """A tuft of grass as a free-standing patch."""
    r0 = rng.uniform(10, 22) * s
    got = _box(rng.uniform(0, h), rng.uniform(0, w), r0 * 1.45, r0 * 1.45, h, w)
    if got is None:
        return
    box, yy, xx = got
    alpha = _alpha(_star_dist(rng, yy, xx, r0))
    _paint(img, lab, box, alpha, _grass_texture(rng, *alpha.shape, s), GRASS)


def _brick(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray, h: int, w: int, s: float) -> None:
    """A rotated wall of bricks (or planks): a periodic pattern with mortar lines."""
    a, b = rng.uniform(10, 30, size=2) * s
    ang = rng.uniform(-0.5, 0.5)
    rr = float(np.hypot(a, b))
    got = _box(rng.uniform(0, h), rng.uniform(0, w), rr, rr, h, w)
    if got is None:
        return
    box, yy, xx = got
    u, v = _rotate(yy, xx, ang)
    alpha = _alpha(np.maximum(np.abs(u) - np.float32(a), np.abs(v) - np.float32(b)))
    if rng.random() < 0.7:
        base = _hsv(rng.uniform(-0.03, 0.1), rng.uniform(0.35, 0.8), rng.uniform(0.35, 0.8))
    else:
        base = _hsv(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.35, 0.85))  # concrete-grey blocks
    mortar = _hsv(rng.uniform(0.05, 0.15), rng.uniform(0.0, 0.25), rng.uniform(0.55, 0.95))
    bw = rng.uniform(7, 13) * s
    bh = bw * rng.uniform(0.35, 0.55)
    t = np.float32(max(0.9, 1.1 * s))
    uu, vv = u + np.float32(rng.uniform(0, bw)), v + np.float32(rng.uniform(0, bh))
    row = np.floor(vv / np.float32(bh))
    planks = rng.random() < 0.3
    shift = 0.0 if planks else np.float32(bw / 2)
    uo = uu + (row % 2) * shift
    col = np.floor(uo / np.float32(bw))
    is_mortar = (vv - row * np.float32(bh)) < t
    if not planks:
        is_mortar |= (uo - col * np.float32(bw)) < t
    jitter = rng.uniform(0.75, 1.2, size=61).astype(np.float32)
    per_brick = jitter[((row * 7 + col * 13) % 61).astype(np.intp)]
    grain = 1.0 + np.float32(0.08) * rng.standard_normal(u.shape, dtype=np.float32)
    colour = base * (per_brick * grain)[..., None]
    colour[is_mortar] = mortar
    _paint(img, lab, box, alpha, colour, BRICK)


def _spots(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray, h: int, w: int, s: float) -> None:
    """An irregular patch covered with a jittered grid of dots."""
    r0 = rng.uniform(9, 22) * s
    got = _box(rng.uniform(0, h), rng.uniform(0, w), r0 * 1.45, r0 * 1.45, h, w)
    if got is None:
        return
    box, yy, xx = got
    alpha = _alpha(_star_dist(rng, yy, xx, r0))
    base = _any_colour(rng)
    dots = _any_colour(rng)
    if abs(float(dots.mean() - base.mean())) < 50:  # keep the dots visible against their ground
        dots = np.clip(dots + (80 if base.mean() < 128 else -80), 0, 255)
    p = np.float32(rng.uniform(4.5, 8) * s)
    u, v = _rotate(yy, xx, rng.uniform(0, np.pi))
    iu, iv = np.floor(u / p), np.floor(v / p)
    k = ((iu * 5 + iv * 11) % 37).astype(np.intp)
    ju, jv = (rng.uniform(-0.2, 0.2, size=(2, 37)) * p).astype(np.float32)
    du = u - (iu + np.float32(0.5)) * p - ju[k]
    dv = v - (iv + np.float32(0.5)) * p - jv[k]
    cover = _alpha(np.sqrt(du * du + dv * dv) - np.float32(rng.uniform(0.2, 0.35)) * p)
    colour = base + cover[..., None] * (dots - base)
    _paint(img, lab, box, alpha, colour, SPOTS)


def _disc(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray, h: int, w: int, s: float, light: float) -> None:
    """A round blob with radial shading toward the scene's light; its blended rim is void."""
    r = rng.uniform(4.5, 14) * s
    ry = r * rng.uniform(0.75, 1.0)
    ang = rng.uniform(0, np.pi)
    got = _box(rng.uniform(-0.05, 1.05) * h, rng.uniform(-0.05, 1.05) * w, r, r, h, w)
    if got is None:
        return
    box, yy, xx = got
    u, v = _rotate(yy, xx, ang)
    rn = np.sqrt((u / np.float32(r)) ** 2 + (v / np.float32(ry)) ** 2)
    alpha = _alpha((rn - 1) * np.float32(np.sqrt(r * ry)))
    hy, hx = -0.4 * r * np.sin(light), -0.4 * r * np.cos(light)
    dl = np.sqrt((yy - np.float32(hy)) ** 2 + (xx - np.float32(hx)) ** 2) / np.float32(1.4 * r)
    shade = np.clip(np.float32(1.25) - np.float32(rng.uniform(0.6, 0.9)) * dl, 0.25, 1.35)
    colour = _any_colour(rng) * shade[..., None]
    _paint(img, lab, box, alpha, colour, DISC, void=True)


def _rod(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray, h: int, w: int, s: float) -> None:
    """A thin rotated bar with cylinder shading: a small class that needs shape to be found."""
    half_len = rng.uniform(7, 22) * s
    half_w = max(0.8, rng.uniform(0.8, 1.7) * s)
    got = _box(rng.uniform(0, h), rng.uniform(0, w), half_len + 2, half_len + 2, h, w)
    if got is None:
        return
    box, yy, xx = got
    u, v = _rotate(yy, xx, rng.uniform(0, np.pi))
    alpha = _alpha(np.maximum(np.abs(u) - np.float32(half_len), np.abs(v) - np.float32(half_w)))
    shade = 1.15 - 0.55 * np.clip(v / np.float32(half_w + 0.5), -1, 1) ** 2
    colour = _any_colour(rng) * shade[..., None]
    _paint(img, lab, box, alpha, colour, ROD)


def _clutter(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray, h: int, w: int, s: float) -> None:
    """A small distractor (dot, chip or stub) of any colour that belongs to the background."""
    kind = rng.integers(3)
    r = rng.uniform(1.5, 3.5) * s
    got = _box(rng.uniform(0, h), rng.uniform(0, w), r * 1.8, r * 1.8, h, w)
    if got is None:
        return
    box, yy, xx = got
    u, v = _rotate(yy, xx, rng.uniform(0, np.pi))
    if kind == 0:  # small dot, like a tiny disc
        dist = np.sqrt(u * u + v * v) - np.float32(r)
    elif kind == 1:  # square chip
        dist = np.maximum(np.abs(u), np.abs(v)) - np.float32(r * 0.8)
    else:  # short stub, like a tiny rod
        dist = np.maximum(np.abs(u) - np.float32(r * 1.6), np.abs(v) - np.float32(max(0.8, 0.4 * r)))
    _paint(img, lab, box, _alpha(dist), _any_colour(rng), BG)


def _photometric(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Per-image exposure, contrast and colour cast, slight blur and sensor noise."""
    gain = rng.uniform(0.85, 1.15, size=3).astype(np.float32) * np.float32(rng.uniform(0.7, 1.3))
    mean = img.mean()
    img = (img - mean) * gain + mean + np.float32(rng.uniform(-30, 30))
    sigma = rng.uniform(0.3, 0.8)
    img = gaussian_filter(img, sigma=(sigma, sigma, 0), truncate=2.0)
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(2, 9))
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------- writing


def write_generated(out_dir: Path, source: DataSource) -> Path:
    """Materialise a source in the segssl folder format, for tools and users that want real files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = source.info
    (out_dir / "classes.json").write_text(json.dumps(info.to_dict(), indent=2) + "\n")
    pal = np.zeros((256, 3), np.uint8)
    pal[: info.num_classes] = np.asarray(info.palette, np.uint8)
    if info.ignore_index < 256:
        pal[info.ignore_index] = (255, 255, 255)
    flat_pal = pal.reshape(-1).tolist()
    for split in SPLITS:
        samples = source.splits.get(split) or []
        if not samples:
            continue
        img_dir, lab_dir = out_dir / split / "images", out_dir / split / "labels"
        img_dir.mkdir(parents=True, exist_ok=True)
        for sample in samples:
            Image.fromarray(source.read_image(sample)).save(img_dir / f"{sample.stem}.png")
            if sample.label is not None:
                lab_dir.mkdir(parents=True, exist_ok=True)
                im = Image.fromarray(source.read_label(sample))
                im.putpalette(flat_pal)  # turns the 'L' image into 'P' without touching the indices
                im.save(lab_dir / f"{sample.stem}.png")
    return out_dir
