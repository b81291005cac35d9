"""`segssl train` writes the DESIGN.md run directory; `evaluate` reproduces it; `predict`; `--resume`."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_overrides
from segssl import __version__
from segssl.cli import main
from segssl.data.generated import CLASSES, generated_source
from segssl.data.splits import split_labeled
from segssl.data.transforms import eval_transform, to_tv
from segssl.models.checkpoint import read_checkpoint
from segssl.models.segmodel import build_model

# validate and test on the 16 train images: the same code path as val/test, several times cheaper
FAST = {"data.val_split": "train", "data.test_split": "train"}
METRIC_KEYS = {
    "split",
    "checkpoint",
    "miou",
    "pixel_acc",
    "per_class_iou",
    "num_images",
    "classes",
    "ignore_index",
}


def _sets(**extra) -> list[str]:
    return sum((["--set", o] for o in tiny_overrides(**{**FAST, **extra})), [])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    torch.manual_seed(0)
    assert main(["train", "--out", str(out), "--labeled", "1/4", *_sets()]) == 0
    return out


def test_run_directory_layout(run):
    assert (run / "config.yaml").is_file()
    for name in ("last.ckpt", "best.ckpt"):
        ck = torch.load(run / "checkpoints" / name, weights_only=True)
        entry = ck["segssl"]
        assert {"model_state", "config", "version"} <= set(entry)
        assert entry["version"] == __version__ and entry["kind"] == "segmenter"
        assert entry["config"]["train"]["max_steps"] == 4 and entry["config"]["data"]["labeled"] == "1/4"
        assert entry["classes"] == list(CLASSES)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["segssl"]["global_step"] == 4
    assert not list((run / "checkpoints").glob(".*.tmp"))  # atomic writes leave no temp files
    rows = list(csv.DictReader((run / "logs" / "csv" / "metrics.csv").open()))
    assert any(r.get("train/loss") for r in rows) and any(r.get("val/miou") for r in rows)


def test_split_files(run):
    labeled = (run / "splits" / "labeled.txt").read_text().split("\n")
    unlabeled = (run / "splits" / "unlabeled.txt").read_text().split("\n")
    assert labeled[-1] == "" and unlabeled[-1] == ""  # one stem per line, newline-terminated
    labeled, unlabeled = labeled[:-1], unlabeled[:-1]
    stems = [s.stem for s in generated_source(16).samples("train")]
    assert len(labeled) == 4 and len(unlabeled) == 12
    assert labeled == sorted(labeled) and unlabeled == sorted(unlabeled)
    assert sorted(labeled + unlabeled) == stems
    assert (labeled, unlabeled) == split_labeled(stems, "1/4", seed=0)  # same seed + fraction -> same files


def test_metrics_json(run):
    m = json.loads((run / "metrics.json").read_text())
    assert METRIC_KEYS <= set(m)
    assert m["split"] == "train" and m["checkpoint"] == "last" and m["num_images"] == 16
    assert m["classes"] == list(CLASSES) and m["ignore_index"] == 255
    assert list(m["per_class_iou"]) == list(CLASSES)
    assert 0.0 <= m["miou"] <= 100.0 and 0.0 <= m["pixel_acc"] <= 100.0
    present = [v for v in m["per_class_iou"].values() if v is not None]
    assert m["miou"] == pytest.approx(sum(present) / len(present), abs=1e-3)
    assert m["global_step"] == 4
    assert json.loads((run / "metrics_best.json").read_text())["checkpoint"] == "best"


def test_second_train_into_the_same_run_is_refused(run, capsys):
    last = run / "checkpoints" / "last.ckpt"
    before, config_before = last.read_bytes(), (run / "config.yaml").read_text()
    assert main(["train", "--out", str(run), "--labeled", "1/4", *_sets()]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a run" in err[0] and "--resume" in err[0]
    assert last.read_bytes() == before and (run / "config.yaml").read_text() == config_before


def test_evaluate_checkpoint_reproduces_metrics(run, tmp_path):
    for name, fname in (("last", "metrics.json"), ("best", "metrics_best.json")):
        out = tmp_path / name
        ckpt = run / "checkpoints" / f"{name}.ckpt"
        assert (
            main(
                [
                    "evaluate",
                    "--checkpoint",
                    str(ckpt),
                    "--split",
                    "train",
                    "--device",
                    "cpu",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        got = json.loads((out / "metrics.json").read_text())
        want = json.loads((run / fname).read_text())
        assert got["miou"] == want["miou"] and got["per_class_iou"] == want["per_class_iou"]
        assert got["confusion_matrix"] == want["confusion_matrix"] and got["checkpoint"] == name


def test_evaluate_checkpoint_by_group(run, tmp_path):
    """One group holding every image scores exactly the split; groups by last digit partition the images."""
    base = ["evaluate", "--checkpoint", str(run / "checkpoints" / "last.ckpt"), "--split", "train"]
    assert main([*base, "--out", str(tmp_path / "one"), "--group-by", "^gen_(train)"]) == 0
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert list(one["groups"]) == ["train"]
    assert one["groups"]["train"]["miou"] == one["miou"] and one["groups"]["train"]["num_images"] == one["num_images"]
    assert main([*base, "--out", str(tmp_path / "digit"), "--group-by", r"\d$"]) == 0
    digit = json.loads((tmp_path / "digit" / "metrics.json").read_text())
    assert len(digit["groups"]) > 1 and all(len(g) == 1 and g.isdigit() for g in digit["groups"])
    assert sum(g["num_images"] for g in digit["groups"].values()) == digit["num_images"]
    assert digit["miou"] == one["miou"]


def test_predict_writes_index_masks_and_overlays(run, tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    src = generated_source(1, num_val=0, num_test=3, size=(40, 50))
    for s in src.samples("test"):
        Image.fromarray(src.read_image(s)).save(imgs / f"{s.stem}.png")
    out = tmp_path / "pred"
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(run / "checkpoints" / "last.ckpt"),
                "--images",
                str(imgs),
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    entry = read_checkpoint(run / "checkpoints" / "last.ckpt")
    model = build_model({**entry["config"]["model"], "encoder_weights": None}, 6).eval()
    model.load_state_dict(entry["model_state"])
    for s in src.samples("test"):
        with Image.open(out / "masks" / f"{s.stem}.png") as im:
            assert im.mode == "P" and im.size == (50, 40)
            mask = np.asarray(im)
            assert im.getpalette()[:6] == [0, 0, 0, 60, 180, 75]  # the dataset's palette
        assert mask.max() < 6
        rgb = src.read_image(s)
        with torch.no_grad():
            expected = model(eval_transform()(to_tv(rgb)[0]).as_subclass(torch.Tensor)[None]).argmax(1)[0]
        assert np.array_equal(mask, expected.numpy())
        with Image.open(out / "overlays" / f"{s.stem}.png") as ov:
            assert ov.mode == "RGB" and ov.size == (50, 40)


def test_resume_continues_to_a_larger_max_steps(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert (
        main(
            [
                "train",
                "--config",
                str(copy / "config.yaml"),
                "--resume",
                "--out",
                str(copy),
                "--set",
                "train.max_steps=6",
            ]
        )
        == 0
    )
    entry = read_checkpoint(copy / "checkpoints" / "last.ckpt")
    assert entry["global_step"] == 6 and entry["config"]["train"]["max_steps"] == 6
    assert json.loads((copy / "metrics.json").read_text())["global_step"] == 6
    assert (copy / "logs" / "csv-resume1" / "metrics.csv").is_file()  # the first run's log is kept
    first_log = run / "logs" / "csv" / "metrics.csv"
    assert (copy / "logs" / "csv" / "metrics.csv").read_bytes() == first_log.read_bytes()
    assert (copy / "splits" / "labeled.txt").read_text() == (run / "splits" / "labeled.txt").read_text()
