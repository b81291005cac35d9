"""Standard-layout readers on tiny hand-made trees: splits, stems, classes, raw -> train-id mapping."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segssl.data.formats import (
    ImageNetSLabel,
    load_ade20k,
    load_camvid,
    load_cityscapes,
    load_imagenet_s,
    load_voc,
)
from segssl.data.source import DataSource, default_palette
from segssl.errors import DataError

H, W = 6, 8


def _img(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(path)


def _mask(path: Path, values: list[int], palette: bool = False) -> None:
    """An index PNG whose first pixels are `values` (row-major), the rest 0."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros(H * W, np.uint8)
    arr[: len(values)] = values
    im = Image.fromarray(arr.reshape(H, W), mode="L")
    if palette:
        im = im.convert("P")  # L -> P keeps the index values; then give it VOC's colours
        im.putpalette([c for rgb in default_palette(256) for c in rgb])
    im.save(path)


def _first(src: DataSource, split: str, n: int) -> list[int]:
    return src.read_label(src.samples(split)[0]).reshape(-1)[:n].tolist()


# ------------------------------------------------------------------------------------------------ VOC


def _voc(root: Path, aug: str | None = None) -> Path:
    voc = root / "VOCdevkit" / "VOC2012"
    for s in ("a", "b", "c"):
        _img(voc / "JPEGImages" / f"{s}.jpg")
        _mask(voc / "SegmentationClass" / f"{s}.png", [0, 15, 255, 20], palette=True)
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("a\nb\n")
    (sets / "val.txt").write_text("c\n")
    if aug:
        for s in ("a", "b", "d"):
            _img(voc / "JPEGImages" / f"{s}.jpg")
            _mask(voc / "SegmentationClassAug" / f"{s}.png", [7, 255])
        (voc / "ImageSets" / "SegmentationAug").mkdir(parents=True)
        (voc / "ImageSets" / "SegmentationAug" / "train_aug.txt").write_text(aug)
    return voc


def test_voc_plain(tmp_path: Path) -> None:
    voc = _voc(tmp_path)
    src = load_voc(voc)
    assert {k: [s.stem for s in v] for k, v in src.splits.items()} == {"train": ["a", "b"], "val": ["c"]}
    assert src.info.num_classes == 21 and src.info.classes[15] == "person"
    assert src.info.palette[1] == (128, 0, 0)  # VOC's aeroplane colour
    assert src.splits["train"][0].label == voc / "SegmentationClass" / "a.png"
    assert _first(src, "val", 4) == [0, 15, 255, 20]
    assert load_voc(tmp_path / "VOCdevkit").root == voc  # PATH may be VOCdevkit


SBD_LIST = "".join(f"/JPEGImages/{s}.jpg /SegmentationClassAug/{s}.png\n" for s in "abdc")


@pytest.mark.parametrize("aug", ["a\nb\nd\nc\n", SBD_LIST], ids=["stems", "sbd"])
def test_voc_aug_list_used(tmp_path: Path, aug: str) -> None:
    voc = _voc(tmp_path, aug)
    src = load_voc(voc)
    assert [s.stem for s in src.splits["train"]] == ["a", "b", "d"]  # val image c dropped from train
    assert src.splits["train"][0].label == voc / "SegmentationClassAug" / "a.png"
    assert _first(src, "train", 2) == [7, 255]


def test_voc_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "JPEGImages").mkdir()
    where = re.escape(str(tmp_path / "ImageSets" / "Segmentation"))
    with pytest.raises(DataError, match=rf"^{where}: missing .*Pascal VOC"):  # message starts with the path
        load_voc(tmp_path)


# ----------------------------------------------------------------------------------------- Cityscapes


def _cityscapes(root: Path) -> None:
    for split, city, n in (("train", "aachen", 2), ("train", "bochum", 1), ("val", "frankfurt", 1)):
        for i in range(n):
            stem = f"{city}_000000_00001{i}"
            _img(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
            _mask(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", [26, 0, 7, 33, 6, 24])
    _img(root / "leftImg8bit" / "test" / "berlin" / "berlin_000000_000019_leftImg8bit.png")
    (root / "leftImg8bit" / "train" / "aachen" / "notes.txt").write_text("not an image")


def test_cityscapes(tmp_path: Path) -> None:
    _cityscapes(tmp_path)
    src = load_cityscapes(tmp_path)
    assert {k: len(v) for k, v in src.splits.items()} == {"train": 3, "val": 1, "test": 1}
    assert [s.stem for s in src.splits["train"]] == [
        "aachen_000000_000010", "aachen_000000_000011", "bochum_000000_000010",
    ]  # fmt: skip
    assert src.info.num_classes == 19 and src.info.classes[13] == "car"
    assert src.info.palette[0] == (128, 64, 128)
    assert src.has_labels("train") and not src.has_labels("test")
    assert _first(src, "train", 6) == [13, 255, 0, 18, 255, 11]
    assert src.label_lut[40] == 40  # undefined raw value stays out of range, so check-data flags it


def test_cityscapes_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "gtFine").mkdir()
    with pytest.raises(DataError, match=r"leftImg8bit: missing .*Cityscapes"):
        load_cityscapes(tmp_path)


# -------------------------------------------------------------------------------------------- ADE20K


def _ade(root: Path) -> Path:
    ade = root / "ADEChallengeData2016"
    trees = {"training": ["ADE_train_00000001", "ADE_train_00000002"], "validation": ["ADE_val_00000001"]}
    for folder, stems in trees.items():
        for s in stems:
            _img(ade / "images" / folder / f"{s}.jpg")
            _mask(ade / "annotations" / folder / f"{s}.png", [0, 5, 1, 150])
    return ade


def test_ade20k(tmp_path: Path) -> None:
    ade = _ade(tmp_path)
    src = load_ade20k(tmp_path)  # parent of ADEChallengeData2016 is accepted too
    assert src.root == ade
    assert {k: [s.stem for s in v] for k, v in src.splits.items()} == {
        "train": ["ADE_train_00000001", "ADE_train_00000002"],
        "val": ["ADE_val_00000001"],
    }
    assert src.info.num_classes == 150 and len(src.info.palette) == 150
    assert src.info.classes[:3] == ("wall", "building", "sky") and src.info.classes[-1] == "flag"
    assert _first(src, "val", 4) == [255, 4, 0, 149]


def test_ade20k_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"images: missing .*ADE20K"):
        load_ade20k(tmp_path)


# -------------------------------------------------------------------------------------------- CamVid


def test_camvid(tmp_path: Path) -> None:
    trees = {"train": ["0001TP_006690", "0001TP_006720"], "val": ["0016E5_07959"], "test": ["Seq05VD_f00000"]}
    for split, stems in trees.items():
        for s in stems:
            _img(tmp_path / split / f"{s}.png")
            _mask(tmp_path / f"{split}annot" / f"{s}.png", [0, 10, 11, 3])
    src = load_camvid(tmp_path)
    assert {k: len(v) for k, v in src.splits.items()} == {"train": 2, "val": 1, "test": 1}
    assert src.splits["test"][0].stem == "Seq05VD_f00000" and src.has_labels("test")
    assert src.info.num_classes == 11 and src.info.classes[-1] == "bicyclist"
    assert src.info.palette[3] == (128, 64, 128)
    assert _first(src, "train", 4) == [0, 10, 255, 3]


def test_camvid_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "trainannot").mkdir()
    with pytest.raises(DataError, match=r"train: missing .*CamVid"):
        load_camvid(tmp_path)


# ----------------------------------------------------------------------------------------- ImageNet-S


def _rgb_ids(path: Path, ids: list[int]) -> None:
    """An ImageNet-S mask: id encoded as (id % 256, id // 256, 0)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = np.zeros(H * W, np.int64)
    flat[: len(ids)] = ids
    rgb = np.stack([flat % 256, flat // 256, np.zeros_like(flat)], -1).astype(np.uint8).reshape(H, W, 3)
    Image.fromarray(rgb).save(path)


def _imagenet_s(root: Path, val_ids: list[int]) -> Path:
    inet = root / "ImageNetS50"
    _img(inet / "train" / "n01443537" / "n01443537_16.JPEG")
    _img(inet / "train" / "n01491361" / "n01491361_2.JPEG")
    _img(inet / "validation" / "n01443537" / "ILSVRC2012_val_00004677.JPEG")
    _rgb_ids(inet / "validation-segmentation" / "n01443537" / "ILSVRC2012_val_00004677.png", val_ids)
    _img(inet / "test" / "n01443537" / "ILSVRC2012_val_00000001.JPEG")
    return inet


def test_imagenet_s(tmp_path: Path) -> None:
    src = load_imagenet_s(_imagenet_s(tmp_path, [0, 1, 50, 1000]))
    assert [s.stem for s in src.splits["train"]] == ["n01443537_16", "n01491361_2"]
    assert not src.has_labels("train") and src.has_labels("val") and not src.has_labels("test")
    assert src.info.num_classes == 51 and src.info.classes[:2] == ("background", "goldfish")
    assert _first(src, "val", 4) == [0, 1, 50, 255]
    assert pickle.loads(pickle.dumps(src.splits["val"][0].label)) == src.splits["val"][0].label


def test_imagenet_s_classes_txt_and_out_of_range(tmp_path: Path) -> None:
    inet = _imagenet_s(tmp_path, [0, 2, 3])
    (inet / "classes.txt").write_text("1 goldfish\n2 tiger shark\n")
    src = load_imagenet_s(inet)
    assert src.info.classes == ("background", "goldfish", "tiger shark")
    with pytest.raises(DataError, match=r"val_00004677\.png: class ids \[3\] exceed the 3 classes"):
        src.read_label(src.splits["val"][0])


def test_imagenet_s_too_many_classes(tmp_path: Path) -> None:
    inet = tmp_path / "ImageNetS300"
    (inet / "validation").mkdir(parents=True)
    (inet / "validation-segmentation").mkdir()
    with pytest.raises(DataError, match=r"ImageNetS300: 301 classes .* ImageNet-S-50"):
        load_imagenet_s(inet)


def test_imagenet_s_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"validation: missing .*ImageNet-S"):
        load_imagenet_s(tmp_path)
    (tmp_path / "validation").mkdir()
    with pytest.raises(DataError, match=r"validation-segmentation: missing"):
        load_imagenet_s(tmp_path)


def test_imagenet_s_label_class_is_callable_with_path(tmp_path: Path) -> None:
    _rgb_ids(tmp_path / "m.png", [256 + 3])  # R=3, G=1 -> id 259
    with pytest.raises(DataError, match=r"\[259\]"):
        ImageNetSLabel(tmp_path / "m.png", 51)()


# ------------------------------------------------------------------------------------ via load_source


def test_load_source_prefixes(tmp_path: Path) -> None:
    from segssl.data.registry import load_source

    voc = _voc(tmp_path / "v")
    _cityscapes(tmp_path / "c")
    _ade(tmp_path / "a")
    assert load_source(f"voc:{voc}").name == "voc2012"
    assert load_source(f"cityscapes:{tmp_path / 'c'}").name == "cityscapes"
    assert load_source(f"ade20k:{tmp_path / 'a'}").name == "ade20k"
    (tmp_path / "cv" / "train").mkdir(parents=True)
    _img(tmp_path / "cv" / "train" / "x.png")
    assert load_source(f"camvid:{tmp_path / 'cv'}").name == "camvid"
    assert load_source(f"imagenet-s:{_imagenet_s(tmp_path / 'i', [0])}").name == "imagenet-s50"
