"""The folder format reader, unlabeled image folders, and `--data` spec resolution."""

import json

import numpy as np
import pytest
from PIL import Image

from segssl.data.folder import load_folder
from segssl.data.generated import CLASSES, generated_source, write_generated
from segssl.data.registry import load_source
from segssl.errors import DataError


def test_load_folder_round_trips_a_written_dataset(tmp_path):
    src = generated_source(3, seed=2, num_val=2, num_test=0, size=(20, 24))
    write_generated(tmp_path / "ds", src)
    got = load_folder(tmp_path / "ds")
    assert got.info.classes == CLASSES and got.info.ignore_index == 255
    assert got.info.palette == src.info.palette
    assert sorted(got.splits) == ["train", "val"]
    assert [s.stem for s in got.samples("train")] == ["gen_train_00000", "gen_train_00001", "gen_train_00002"]
    assert got.has_labels("train") and got.has_labels("val")
    for a, b in zip(src.samples("train"), got.samples("train"), strict=True):
        assert np.array_equal(src.read_image(a), got.read_image(b))
        assert np.array_equal(src.read_label(a), got.read_label(b))
    with Image.open(tmp_path / "ds" / "train" / "labels" / "gen_train_00000.png") as im:
        assert im.mode == "P"
    with pytest.raises(DataError, match="split 'test' is missing or empty"):
        got.samples("test")


def test_split_without_labels_folder_is_unlabeled(tmp_path):
    write_generated(tmp_path / "ds", generated_source(2, num_val=0, num_test=0, size=(16, 16)))
    (tmp_path / "ds" / "test" / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "ds" / "test" / "images" / "x.jpg")
    src = load_folder(tmp_path / "ds")
    assert src.has_labels("train") and not src.has_labels("test")
    assert src.samples("test")[0].label is None
    with pytest.raises(DataError, match="x: no label for this image"):
        src.read_label(src.samples("test")[0])


@pytest.mark.parametrize("sub", ["", "images"])
def test_plain_image_folder_is_an_unlabeled_dataset(tmp_path, sub):
    d = tmp_path / "pics" / sub
    d.mkdir(parents=True)
    Image.fromarray(np.full((8, 9, 3), 7, np.uint8)).save(d / "b.png")
    Image.fromarray(np.full((8, 9, 3), 9, np.uint8)).save(d / "a.jpg")
    (d / "notes.txt").write_text("not an image")
    src = load_folder(tmp_path / "pics")
    assert list(src.splits) == ["train"]
    assert [s.stem for s in src.samples("train")] == ["a", "b"]
    assert all(s.label is None for s in src.samples("train"))
    assert src.info.classes == ("foreground",)
    rgb = src.read_image(src.samples("train")[1])
    assert rgb.shape == (8, 9, 3) and rgb.dtype == np.uint8 and int(rgb[0, 0, 0]) == 7


def test_empty_or_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_folder(tmp_path / "empty")
    with pytest.raises(DataError, match="dataset folder does not exist"):
        load_folder(tmp_path / "nope")


def test_classes_json_defaults(tmp_path):
    (tmp_path / "train" / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "train" / "images" / "a.png")
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["x", "y"]}))
    info = load_folder(tmp_path).info
    assert info.ignore_index == 255 and info.palette == ((0, 0, 0), (128, 0, 0))  # VOC palette by default


def test_load_source_generated_prefix():
    src = load_source("generated:8")
    assert len(src.samples("train")) == 8 and len(src.samples("val")) == 48 and len(src.samples("test")) == 64
    assert len(load_source("generated").samples("train")) == 192
    a, again = load_source("generated:2"), load_source("generated:2")
    other = load_source("generated:2", generated_seed=1)
    first = [s.read_image(s.samples("train")[0]) for s in (a, again, other)]
    assert np.array_equal(first[0], first[1]) and not np.array_equal(first[0], first[2])


def test_load_source_folder_and_errors(tmp_path):
    write_generated(tmp_path / "ds", generated_source(1, num_val=0, num_test=0, size=(16, 16)))
    assert load_source(tmp_path / "ds").root == tmp_path / "ds"
    assert load_source(str(tmp_path / "ds")).info.classes == CLASSES
    with pytest.raises(DataError, match="unknown dataset kind 'foo' .*known: .*camvid.*generated"):
        load_source("foo:/some/where")
    with pytest.raises(DataError, match="dataset folder does not exist"):
        load_source(f"camvid:{tmp_path / 'missing'}")
    with pytest.raises(DataError, match="at least 1"):
        load_source("generated:0")


def test_generated_with_a_bad_count_is_a_data_error():
    with pytest.raises(DataError, match="generated:abc"):
        load_source("generated:abc")
