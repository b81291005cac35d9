"""Report building blocks: exact mask colours, plots written as PNGs, the HTML page from run folders."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from segssl.config import DEFAULTS
from segssl.errors import SegsslError
from segssl.reporting.html import fmt_time, render_report
from segssl.reporting.pictures import colorize, overlay, picture_grid, void_colour
from segssl.reporting.plots import (
    confusion_matrix_plot,
    fraction_label,
    label_efficiency_plot,
    method_styles,
    normalize_rows,
    per_class_iou_plot,
)
from segssl.reporting.report import label_efficiency_points, write_report
from segssl.reporting.runs import load_run

PALETTE = [(10, 20, 30), (40, 50, 60), (70, 80, 90)]
CLASSES = ["sky", "road", "car"]


def _png(path):
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def test_colorize_maps_classes_to_palette_and_ignore_to_black():
    mask = np.array([[0, 1], [2, 255], [7, 1]], dtype=np.uint8)
    out = colorize(mask, PALETTE, ignore_index=255)
    assert out.dtype == np.uint8 and out.shape == (3, 2, 3)
    assert out[0, 0].tolist() == [10, 20, 30]
    assert out[0, 1].tolist() == [40, 50, 60]
    assert out[1, 0].tolist() == [70, 80, 90]
    assert out[1, 1].tolist() == [0, 0, 0]  # void
    assert out[2, 0].tolist() == [0, 0, 0]  # no colour for value 7: never passes for a class
    assert out[2, 1].tolist() == [40, 50, 60]
    # ignore index inside the palette range is still void
    assert colorize(np.array([[1]]), PALETTE, ignore_index=1)[0, 0].tolist() == [0, 0, 0]
    with pytest.raises(ValueError):
        colorize(np.zeros((2, 2, 2), dtype=np.uint8), PALETTE)


def test_overlay_blends_exactly_and_leaves_void_pixels():
    img = np.full((1, 3, 3), 100, dtype=np.uint8)
    img[0, 2] = (0, 50, 255)
    mask = np.array([[0, 255, 1]], dtype=np.uint8)
    out = overlay(img, mask, [(200, 0, 0), (0, 0, 100)], alpha=0.25)
    assert out[0, 0].tolist() == [125, 75, 75]  # 0.75 * 100 + 0.25 * (200, 0, 0)
    assert out[0, 1].tolist() == [100, 100, 100]  # void: image unchanged
    assert out[0, 2].tolist() == [0, 38, 216]  # 0.75 * (0, 50, 255) + 0.25 * (0, 0, 100), rounded
    assert overlay(img, mask, [(200, 0, 0), (0, 0, 100)], alpha=0.0).tolist() == img.tolist()
    with pytest.raises(ValueError):
        overlay(img, np.zeros((2, 2), dtype=np.uint8), PALETTE)


def test_void_colour_avoids_a_black_class():
    assert void_colour(PALETTE) == (0, 0, 0)
    assert void_colour([(0, 0, 0), (1, 2, 3)]) == (255, 255, 255)


def test_normalize_rows_and_fraction_labels():
    assert normalize_rows(np.array([[2, 6], [0, 0]])).tolist() == [[0.25, 0.75], [0.0, 0.0]]
    assert fraction_label(0.125) == "1/8"
    assert fraction_label(1 / 16) == "1/16"
    assert fraction_label(1.0) == "all"
    assert fraction_label(0.3) == "30%"
    assert fmt_time(59) == "59s" and fmt_time(125) == "2m05s" and fmt_time(3725, exact=False) == "≈1h02m"


def test_plots_write_pngs(tmp_path):
    cm = [[50, 5, 0], [10, 30, 0], [0, 0, 0]]
    arr = _png(confusion_matrix_plot(cm, CLASSES, tmp_path / "cm.png", title="run a"))
    assert arr.shape[0] > 200 and arr.shape[1] > 200
    with pytest.raises(ValueError):
        confusion_matrix_plot([[1, 2], [3, 4]], CLASSES, tmp_path / "bad.png")
    _png(
        per_class_iou_plot(
            {"a": {"sky": 80.0, "road": 40.0, "car": None}, "b": {"sky": 70.0, "road": 55.5, "car": 10.0}},
            CLASSES,
            tmp_path / "pc.png",
        )
    )
    sup = ((1 / 8, 30.0), (1 / 4, 40.0), (1, 60))
    points = [{"method": "supervised", "fraction": f, "miou": m} for f, m in sup]
    points += [{"method": "unimatch", "fraction": 1 / 8, "miou": m} for m in (38.0, 42.0)]  # two seeds
    _png(label_efficiency_plot(points, tmp_path / "le.png"))
    with pytest.raises(ValueError):
        label_efficiency_plot([], tmp_path / "none.png")
    with pytest.raises(ValueError):
        label_efficiency_plot([{"method": "x", "fraction": 2.0, "miou": 1.0}], tmp_path / "bad.png")


def test_method_styles_tell_sixteen_methods_apart_and_mark_the_baseline(tmp_path):
    methods = ["supervised"] + [f"method_{i:02d}" for i in range(15)]
    styles = method_styles(methods)
    others = [(tuple(styles[m]["color"]), styles[m]["marker"]) for m in methods[1:]]
    assert len(set(others)) == 15 and len({c for c, _ in others}) == 15  # 15 colours, no two lines alike
    assert styles["supervised"]["color"] == "black" and styles["supervised"]["linestyle"] == "--"
    assert all(styles[m]["linewidth"] < styles["supervised"]["linewidth"] for m in methods[1:])
    points = [{"method": m, "fraction": 1 / 8, "miou": float(i)} for i, m in enumerate(methods)]
    wide = _png(label_efficiency_plot(points, tmp_path / "many.png"))
    narrow = _png(label_efficiency_plot(points[:3], tmp_path / "few.png"))
    assert wide.shape[1] > narrow.shape[1]  # many methods: the legend sits beside the axes


def test_picture_grid_draws_palette_colours(tmp_path):
    rng = np.random.default_rng(0)
    pal = [(0, 0, 0), (60, 180, 75), (200, 70, 50)]
    images = [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for _ in range(2)]
    labels = [np.full((24, 32), 1, dtype=np.uint8), np.full((24, 32), 255, dtype=np.uint8)]
    preds = {"run a": [np.full((24, 32), 2, dtype=np.uint8)] * 2}
    arr = _png(
        picture_grid(
            tmp_path / "grid.png",
            images,
            labels,
            preds,
            ["bg", "grass", "brick"],
            pal,
            255,
            titles=["x0", "x1"],
        )
    )
    flat = arr.reshape(-1, 3)
    for colour in ((60, 180, 75), (200, 70, 50)):
        assert (flat == colour).all(1).sum() > 500  # nearest-neighbour panels keep exact palette colours
    with pytest.raises(ValueError):
        picture_grid(tmp_path / "bad.png", images, labels, {"r": preds["run a"][:1]}, ["a"], pal)


def _fake_run(root, name, *, miou=None, labeled=None, method="supervised", init=None):
    """A run directory as `segssl train` leaves it, without training: config, metrics, split files."""
    d = root / name
    d.mkdir(parents=True)
    cfg = {
        **DEFAULTS,
        "method": method,
        "data": {**DEFAULTS["data"], "path": "generated:16"},
        "model": {**DEFAULTS["model"], "init": init},
    }
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    if miou is not None:
        ious = {"sky": miou + 10, "road": miou - 10, "car": None}
        m = {
            "split": "test",
            "checkpoint": "last",
            "miou": miou,
            "pixel_acc": 90.125,
            "per_class_iou": ious,
            "num_images": 4,
            "classes": CLASSES,
            "ignore_index": 255,
            "confusion_matrix": [[90, 10, 0], [20, 80, 0], [0, 0, 0]],
            "train_time_s": 75.0,
        }
        (d / "metrics.json").write_text(json.dumps(m))
        (d / "metrics_best.json").write_text(json.dumps({**m, "checkpoint": "best", "miou": miou + 1.0}))
    if labeled is not None:
        (d / "splits").mkdir()
        (d / "splits" / "labeled.txt").write_text("\n".join(f"s{i}" for i in range(labeled)) + "\n")
        (d / "splits" / "unlabeled.txt").write_text("\n".join(f"u{i}" for i in range(8 - labeled)) + "\n")
    return d


def test_report_from_run_folders(tmp_path):
    a = _fake_run(tmp_path, "sup_all", miou=61.2345)
    b = _fake_run(tmp_path, "sup_quarter", miou=40.5, labeled=2)
    p = _fake_run(tmp_path, "pixpro", method="pixpro")
    c = _fake_run(tmp_path, "ft_quarter", miou=44.25, labeled=2, init=str(p / "checkpoints" / "last.ckpt"))
    page = write_report([a, b, p, c], tmp_path / "rep", num_images=0)
    text = page.read_text()
    assert "61.23" in text and 'title="61.2345"' in text and "40.50" in text and "44.25" in text
    assert "62.23" in text  # best-val checkpoint column
    assert "1/4 (2)" in text and "all (16)" in text  # split files / labeled=all with generated:16
    assert "pixpro (pixpro/last.ckpt)" in text  # the fine-tuned run names its pretraining
    assert 'class="best" title="61.2345"' in text
    assert "1m15s" in text  # train_time_s from metrics.json
    assert text.count("data:image/png;base64,") == 2 + 3  # per-class + label efficiency + 3 confusion
    for f in ("per_class_iou.png", "label_efficiency.png", "confusion_sup_all.png", "results.csv"):
        assert (tmp_path / "rep" / f).is_file()
    rows = (tmp_path / "rep" / "results.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[2].startswith("sup_quarter,supervised,,0.25,2,")
    runs = [load_run(x) for x in (b, c)]
    assert [(q["method"], q["fraction"], q["miou"]) for q in label_efficiency_points(runs)] == [
        ("supervised", 0.25, 40.5),
        ("supervised (init: pixpro)", 0.25, 44.25),
    ]


def test_render_report_without_metrics_lists_run(tmp_path):
    run = load_run(_fake_run(tmp_path, "only_cfg"))
    html = render_report([run], {}, ["a note"])
    assert "only_cfg" in html and "a note" in html and "<table>" in html and "</html>" in html


def test_bad_run_dirs_name_the_path(tmp_path):
    with pytest.raises(SegsslError, match="missing_dir"):
        load_run(tmp_path / "missing_dir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SegsslError, match=r"empty[/\\]config.yaml"):
        load_run(tmp_path / "empty")
    bad = _fake_run(tmp_path, "bad_json", miou=1.0)
    (bad / "metrics.json").write_text("{not json")
    with pytest.raises(SegsslError, match="metrics.json"):
        load_run(bad)


def test_a_long_plot_title_is_wrapped_inside_the_figure():
    """A benchmark's protocol title (~120 characters) was cut off at both edges of its PNG."""
    from segssl.reporting.plots import _plt, set_wrapped_title

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    title = (
        "CamVid test mIoU vs labeled fraction (1200 steps after a shared 3000-step supervised warm start, "
        "table `s15`, final checkpoint)"
    )
    set_wrapped_title(ax, title)
    fig.tight_layout()
    fig.canvas.draw()
    box = ax.title.get_window_extent()
    assert "\n" in ax.title.get_text() and ax.title.get_text().replace("\n", " ") == title
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width
    plt.close(fig)
