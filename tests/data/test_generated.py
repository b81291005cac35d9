"""The generated dataset is the default for demos and tests, so its contract must hold exactly."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segssl.data.folder import load_folder
from segssl.data.generated import CLASSES, generated_source, write_generated
from segssl.errors import DataError

ROD = CLASSES.index("rod")


def _arrays(src, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    samples = src.samples(split)[:n]
    return (
        np.stack([src.read_image(s) for s in samples]),
        np.stack([src.read_label(s) for s in samples]),
    )


def test_splits_stems_and_class_info() -> None:
    src = generated_source(num_train=5, num_val=2, num_test=3)
    assert src.name == "generated"
    assert [len(src.samples(k)) for k in ("train", "val", "test")] == [5, 2, 3]
    assert src.samples("train")[4].stem == "gen_train_00004"
    assert src.samples("test")[0].stem == "gen_test_00000"
    assert src.has_labels("train") and src.has_labels("test")
    assert src.info.num_classes == 6 and len(set(src.info.palette)) == 6
    assert src.info.ignore_index == 255
    assert len(generated_source().samples("train")) == 192


def test_shapes_and_dtypes_any_size() -> None:
    src = generated_source(num_train=2, size=(40, 72))
    s = src.samples("train")[0]
    img, lab = src.read_image(s), src.read_label(s)
    assert img.shape == (40, 72, 3) and img.dtype == np.uint8
    assert lab.shape == (40, 72) and lab.dtype == np.uint8


def test_deterministic_per_seed_and_independent_of_subset() -> None:
    a_img, a_lab = _arrays(generated_source(num_train=4, seed=3), "train", 4)
    b_img, b_lab = _arrays(generated_source(num_train=30, seed=3), "train", 4)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    c_img, c_lab = _arrays(generated_source(num_train=4, seed=4), "train", 4)
    assert not np.array_equal(a_img, c_img) and not np.array_equal(a_lab, c_lab)
    v_img, _ = _arrays(generated_source(num_train=4, num_val=4, seed=3), "val", 4)
    assert not np.array_equal(a_img, v_img)


def test_reads_return_fresh_arrays() -> None:
    src = generated_source(num_train=1)
    s = src.samples("train")[0]
    first = src.read_label(s)
    first[:] = 0
    assert src.read_label(s).any()


def test_classes_imbalance_and_void() -> None:
    src = generated_source(num_train=16)
    _, labs = _arrays(src, "train", 16)
    values = set(np.unique(labs).tolist())
    assert values <= set(range(len(CLASSES))) | {255}
    assert values >= set(range(len(CLASSES))), "every class appears in a handful of images"
    counts = np.bincount(labs.ravel(), minlength=256)
    assert counts[0] == counts[: len(CLASSES)].max(), "background is the most frequent class"
    assert counts[0] > 10 * counts[ROD] > 0
    assert 0 < counts[255] < 0.05 * labs.size, "a thin void band exists"


def test_callables_are_picklable() -> None:
    src = generated_source(num_train=2)
    s = src.samples("train")[1]
    clone = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(clone.image(), src.read_image(s))
    np.testing.assert_array_equal(clone.label(), src.read_label(s))


@pytest.mark.parametrize(
    "kwargs",
    [{"num_train": 0}, {"num_val": -1}, {"size": (4, 96)}, {"seed": -1}],
)
def test_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(DataError):
        generated_source(**kwargs)


def test_write_generated_round_trip(tmp_path: Path) -> None:
    src = generated_source(num_train=3, num_val=1, num_test=0, size=(32, 48))
    root = write_generated(tmp_path / "gen", src)
    meta = json.loads((root / "classes.json").read_text())
    assert meta["classes"] == list(CLASSES) and meta["ignore_index"] == 255
    assert sorted(p.name for p in (root / "train" / "images").iterdir()) == [f"gen_train_{i:05d}.png" for i in range(3)]
    assert not (root / "test").exists()
    with Image.open(root / "train" / "labels" / "gen_train_00000.png") as im:
        assert im.mode in ("P", "L")
    back = load_folder(root)
    assert back.info == src.info
    for split in ("train", "val"):
        for orig, disk in zip(src.samples(split), back.samples(split), strict=True):
            assert orig.stem == disk.stem
            np.testing.assert_array_equal(back.read_image(disk), src.read_image(orig))
            np.testing.assert_array_equal(back.read_label(disk), src.read_label(orig))
