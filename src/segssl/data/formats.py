"""Readers for the standard on-disk layouts users already have: no conversion step, no copies.

Each reader turns one published layout (Pascal VOC 2012, Cityscapes, ADE20K SceneParsing, CamVid in
the SegNet layout, ImageNet-S) into a `DataSource` and is registered under a `--data` prefix, e.g.
`voc:/data/VOCdevkit/VOC2012`.

Raw label values are mapped to train ids through `label_lut`. Values a dataset documents as void map
to 255 (ignore). Values it does not define at all pass through unchanged: they land outside the class
range, so `segssl check-data` reports the file, where mapping them to ignore would hide a corrupt mask.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from segssl.data.registry import register_reader
from segssl.data.source import IMAGE_EXTS, ClassInfo, DataSource, Sample, default_palette, list_images
from segssl.errors import DataError

IGNORE = 255


def _lut(mapping: dict[int, int], void: tuple[int, ...] = ()) -> np.ndarray:
    """Identity LUT with `mapping` applied and `void` values sent to ignore (see module docstring)."""
    lut = np.arange(256, dtype=np.uint8)
    for raw in void:
        lut[raw] = IGNORE
    for raw, tid in mapping.items():
        lut[raw] = tid
    return lut


def _first_dir(candidates: list[Path], marker: str) -> Path:
    """The first candidate holding `marker` (to accept a dataset folder or its parent); else the first."""
    for c in candidates:
        if (c / marker).is_dir():
            return c
    return candidates[0]


def _walk_images(folder: Path) -> list[Path]:
    """All images below `folder` (class sub-folders included), sorted for a deterministic order."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):  # ImageNet-S links its images
        dirnames.sort()
        base = Path(dirpath)
        out.extend(base / f for f in sorted(filenames) if os.path.splitext(f)[1].lower() in IMAGE_EXTS)
    return out


# --------------------------------------------------------------------------------------------------
# Pascal VOC 2012

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip


def _read_list(path: Path) -> list[str]:
    """Stems from a VOC image-set file: plain stems, or SBD style "/JPEGImages/x.jpg /Seg.../x.png"."""
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise DataError(f"{path}: cannot read image list ({e.strerror})") from None
    return [Path(line.split()[0]).stem for line in lines if line.strip()]


@register_reader("voc")
def load_voc(path: Path) -> DataSource:
    """Pascal VOC 2012 (Everingham et al., IJCV 2010); train uses SBD's 10,582-image aug set if present.

    PATH is VOCdevkit/VOC2012 or VOCdevkit (or its parent). With SegmentationClassAug/ and a
    train_aug.txt (in ImageSets/SegmentationAug/ or at PATH), train is the aug list with its labels;
    any val image in that list is dropped so val never leaks into train.
    """
    path = Path(path)
    root = _first_dir([path, path / "VOC2012", path / "VOCdevkit" / "VOC2012"], "JPEGImages")
    img_dir, sets = root / "JPEGImages", root / "ImageSets" / "Segmentation"
    for d in (img_dir, sets, root / "SegmentationClass"):
        if not d.is_dir():
            raise DataError(
                f"{d}: missing (expected Pascal VOC 2012: VOCdevkit/VOC2012 with JPEGImages/, "
                "SegmentationClass/, ImageSets/Segmentation/)"
            )

    def samples(stems: list[str], lab_dir: Path | None) -> list[Sample]:
        return [Sample(s, img_dir / f"{s}.jpg", lab_dir / f"{s}.png" if lab_dir else None) for s in stems]

    splits: dict[str, list[Sample]] = {}
    val = _read_list(sets / "val.txt") if (sets / "val.txt").exists() else []
    splits["val"] = samples(val, root / "SegmentationClass")
    aug_dir = root / "SegmentationClassAug"
    aug_lists = [root / "ImageSets" / "SegmentationAug" / "train_aug.txt", root / "train_aug.txt"]
    aug_list = next((p for p in aug_lists + [path / "train_aug.txt"] if p.is_file()), None)
    if aug_dir.is_dir() and aug_list is not None:
        held_out = set(val)
        train = [s for s in dict.fromkeys(_read_list(aug_list)) if s not in held_out]
        splits["train"] = samples(train, aug_dir)
    elif (sets / "train.txt").exists():
        splits["train"] = samples(_read_list(sets / "train.txt"), root / "SegmentationClass")
    if (sets / "test.txt").exists():  # the separately downloaded test images; labels are server-side
        splits["test"] = samples(_read_list(sets / "test.txt"), None)
    splits = {k: v for k, v in splits.items() if v}
    if not splits:
        raise DataError(f"{sets}: no train.txt, val.txt or test.txt image lists found")
    info = ClassInfo(VOC_CLASSES, default_palette(len(VOC_CLASSES)), IGNORE)  # VOC's palette is this one
    return DataSource("voc2012", info, splits, _lut({}, void=(IGNORE,)), root)


# --------------------------------------------------------------------------------------------------
# Cityscapes

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip
CITYSCAPES_PALETTE = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip
# labelId -> trainId from cityscapesScripts helpers/labels.py; the other labelIds 0..33 are void.
CITYSCAPES_LABEL_TO_TRAIN = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
    27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip


@register_reader("cityscapes")
def load_cityscapes(path: Path) -> DataSource:
    """Cityscapes fine annotations (Cordts et al., CVPR 2016): 34 labelIds mapped to the 19 train ids.

    Test labels are left out: the public gtFine/test masks are placeholders, scored only on the server.
    A missing gtFine/ gives unlabeled splits (leftImg8bit is downloaded separately).
    """
    root = Path(path)
    img_root = _first_dir([root / "leftImg8bit", root / "leftImg8bit_trainvaltest" / "leftImg8bit"], "train")
    gt_root = _first_dir([root / "gtFine", root / "gtFine_trainvaltest" / "gtFine"], "train")
    if not img_root.is_dir():
        raise DataError(f"{img_root}: missing (expected Cityscapes: leftImg8bit/{{train,val,test}}/CITY/)")
    suffix = "_leftImg8bit.png"
    splits: dict[str, list[Sample]] = {}
    for split in ("train", "val", "test"):
        if not (img_root / split).is_dir():
            continue
        labeled = split != "test" and (gt_root / split).is_dir()
        samples = []
        for city in sorted(p for p in (img_root / split).iterdir() if p.is_dir()):
            for img in sorted(city.glob(f"*{suffix}")):
                stem = img.name[: -len(suffix)]
                lab = gt_root / split / city.name / f"{stem}_gtFine_labelIds.png" if labeled else None
                samples.append(Sample(stem, img, lab))
        if samples:
            splits[split] = samples
    if not splits:
        raise DataError(f"{img_root}: no {{train,val,test}}/CITY/*{suffix} images found")
    void = tuple(i for i in range(34) if i not in CITYSCAPES_LABEL_TO_TRAIN)
    info = ClassInfo(CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, IGNORE)
    return DataSource("cityscapes", info, splits, _lut(CITYSCAPES_LABEL_TO_TRAIN, void), root)


# --------------------------------------------------------------------------------------------------
# ADE20K SceneParsing

# objectInfo150 order (short first name of each); palette as in the CSAIL reference code / mmsegmentation.
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car",
    "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat",
    "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column",
    "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator",
    "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway",
    "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole", "land",
    "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship", "fountain",
    "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket",
    "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen",
    "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip
ADE20K_PALETTE = (
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80),
    (140, 140, 140), (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7),
    (150, 5, 61), (120, 120, 70), (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4),
    (255, 51, 7), (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255),
    (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92), (112, 9, 255),
    (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10), (7, 255, 255),
    (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20),
    (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255),
    (140, 140, 140), (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0),
    (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255),
    (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255), (0, 255, 112), (0, 255, 133),
    (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0), (0, 143, 255), (51, 255, 0),
    (0, 82, 255), (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153),
    (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20),
    (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194),
    (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255), (0, 122, 255),
    (0, 255, 163), (255, 153, 0), (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255),
    (163, 255, 0), (255, 235, 0), (8, 184, 170), (133, 0, 255), (0, 255, 92), (184, 0, 255),
    (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0), (0, 224, 255),
    (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0), (255, 0, 163),
    (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235), (245, 0, 255),
    (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255),
    (255, 255, 0), (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0),
    (173, 0, 255), (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255),
    (184, 255, 0), (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0), (92, 0, 255),
)  # fmt: skip


@register_reader("ade20k")
def load_ade20k(path: Path) -> DataSource:
    """ADE20K SceneParsing / ADEChallengeData2016 (Zhou et al., CVPR 2017): 150 classes, 0 = ignore.

    PATH is ADEChallengeData2016 (or its parent). training -> train, validation -> val, and an
    images/testing/ folder (the separately released test images) -> unlabeled test.
    """
    path = Path(path)
    root = _first_dir([path, path / "ADEChallengeData2016"], "images")
    img_root, ann_root = root / "images", root / "annotations"
    if not img_root.is_dir():
        raise DataError(
            f"{img_root}: missing (expected ADE20K ADEChallengeData2016: images/ and annotations/ "
            "with training/ and validation/)"
        )
    splits: dict[str, list[Sample]] = {}
    for folder, split in (("training", "train"), ("validation", "val"), ("testing", "test")):
        if not (img_root / folder).is_dir():
            continue
        labeled = split != "test" and (ann_root / folder).is_dir()
        samples = [
            Sample(p.stem, p, ann_root / folder / f"{p.stem}.png" if labeled else None)
            for p in list_images(img_root / folder)
        ]
        if samples:
            splits[split] = samples
    if not splits:
        raise DataError(f"{img_root}: no training/ or validation/ images found")
    mapping = {raw: raw - 1 for raw in range(1, 151)}
    info = ClassInfo(ADE20K_CLASSES, ADE20K_PALETTE, IGNORE)
    return DataSource("ade20k", info, splits, _lut(mapping, void=(0,)), root)


# --------------------------------------------------------------------------------------------------
# CamVid (SegNet layout)

CAMVID_CLASSES = (
    "sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car", "pedestrian", "bicyclist",
)  # fmt: skip
CAMVID_PALETTE = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (0, 0, 192), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)  # fmt: skip


@register_reader("camvid")
def load_camvid(path: Path) -> DataSource:
    """CamVid in the SegNet layout (Brostow et al., PRL 2009; SegNet, TPAMI 2017): 11 classes, 11 = void.

    PATH holds {train,val,test}/ images and {train,val,test}annot/ masks with the same file names.
    """
    root = Path(path)
    if not (root / "train").is_dir():
        raise DataError(
            f"{root / 'train'}: missing (expected CamVid SegNet layout: train/, trainannot/, "
            "val/, valannot/, test/, testannot/)"
        )
    splits: dict[str, list[Sample]] = {}
    for split in ("train", "val", "test"):
        img_dir, ann_dir = root / split, root / f"{split}annot"
        if not img_dir.is_dir():
            continue
        lab_dir = ann_dir if ann_dir.is_dir() else None
        samples = [Sample(p.stem, p, lab_dir / f"{p.stem}.png" if lab_dir else None) for p in list_images(img_dir)]
        if samples:
            splits[split] = samples
    if not splits:
        raise DataError(f"{root / 'train'}: no images found")
    info = ClassInfo(CAMVID_CLASSES, CAMVID_PALETTE, IGNORE)
    return DataSource("camvid", info, splits, _lut({}, void=(11, IGNORE)), root)


# --------------------------------------------------------------------------------------------------
# ImageNet-S

IMAGENET_S50_CLASSES = (
    "background", "goldfish", "tiger shark", "goldfinch", "tree frog", "kuvasz", "red fox", "siamese cat",
    "american black bear", "ladybug", "sulphur butterfly", "wood rabbit", "hamster", "wild boar", "gibbon",
    "african elephant", "giant panda", "airliner", "ashcan", "ballpoint", "beach wagon", "boathouse",
    "bullet train", "cellular telephone", "chest", "clog", "container ship", "digital watch",
    "dining table", "golf ball", "grand piano", "iron", "lab coat", "mixing bowl", "motor scooter",
    "padlock", "park bench", "purse", "streetcar", "table lamp", "television", "toilet seat", "umbrella",
    "vase", "water bottle", "water tower", "yawl", "street sign", "lemon", "carbonara", "agaric",
)  # fmt: skip
IMAGENET_S_IGNORE = 1000  # "ignored part" in ImageNet-S masks; 0 is the background/other class


@dataclass(frozen=True)
class ImageNetSLabel:
    """Lazy ImageNet-S mask: class id = R + 256*G, 1000 -> ignore. A class (not a lambda) so it pickles."""

    path: Path
    num_classes: int

    def __call__(self) -> np.ndarray:
        try:
            with Image.open(self.path) as im:
                if im.mode not in ("RGB", "RGBA"):
                    raise DataError(f"{self.path}: ImageNet-S mask must be an RGB PNG, got mode {im.mode}")
                rgb = np.asarray(im.convert("RGB"))
        except DataError:
            raise
        except Exception as e:
            raise DataError(f"{self.path}: cannot read label ({type(e).__name__}: {e})") from None
        ids = rgb[..., 0].astype(np.int32) + 256 * rgb[..., 1].astype(np.int32)
        ignore = ids == IMAGENET_S_IGNORE
        bad = np.unique(ids[(ids >= self.num_classes) & ~ignore])
        if bad.size:
            raise DataError(
                f"{self.path}: class ids {bad[:8].tolist()} exceed the {self.num_classes} classes assumed "
                "(ImageNet-S-50 unless a classes.txt or the folder name says otherwise)"
            )
        out = ids.astype(np.uint8)
        out[ignore] = IGNORE
        return out


def _imagenet_s_classes(root: Path) -> tuple[str, ...]:
    """Class names incl. background: classes.txt/names.txt, else the ImageNetS<N> folder name, else S-50.

    classes.txt lines are either names (e.g. the wnid list ImageNetS_categories_im50.txt, class i+1 on
    line i; "background" is prepended unless it is the first line) or "ID NAME" pairs, where the
    class count is the largest ID + 1 (0 = background).
    """
    for name in ("classes.txt", "names.txt"):
        f = root / name
        if not f.is_file():
            continue
        lines = [ln.strip() for ln in f.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        if not lines:
            raise DataError(f"{f}: empty class list")
        if all(ln.split()[0].isdigit() for ln in lines):
            pairs = [ln.split(maxsplit=1) for ln in lines]
            named = {int(p[0]): p[1] if len(p) > 1 else f"class{p[0]}" for p in pairs}
            n = max(named) + 1
            return tuple(named.get(i, "background" if i == 0 else f"class{i}") for i in range(n))
        return tuple(lines) if lines[0].lower() in ("background", "other") else ("background", *lines)
    m = re.fullmatch(r"imagenet-?s-?(\d+)", root.name.lower())
    n = int(m.group(1)) + 1 if m else len(IMAGENET_S50_CLASSES)
    if n == len(IMAGENET_S50_CLASSES):
        return IMAGENET_S50_CLASSES
    return ("background", *(f"class{i}" for i in range(1, n)))


@register_reader("imagenet-s")
def load_imagenet_s(path: Path) -> DataSource:
    """ImageNet-S (Gao et al., "Large-scale Unsupervised Semantic Segmentation", TPAMI 2022).

    PATH is one ImageNet-S folder (e.g. ImageNetS50) with train/ (class folders, no masks: unlabeled),
    validation/ + validation-segmentation/ and optionally test/ (masks are server-side: unlabeled).
    Masks are RGB PNGs with class id R + 256*G (0 = background, 1000 = ignore), decoded lazily.
    The class count comes from classes.txt/names.txt (see `_imagenet_s_classes`), else from a folder
    name like ImageNetS50, else the ImageNet-S-50 default of 51 (background + 50). Train ids are 8-bit,
    so more than 255 classes (ImageNet-S-300: 301, ImageNet-S-919: 920) is refused.
    """
    root = Path(path)
    train_dir, val_dir, seg_dir = root / "train", root / "validation", root / "validation-segmentation"
    if not train_dir.is_dir() and not val_dir.is_dir():
        raise DataError(
            f"{val_dir}: missing (expected an ImageNet-S folder such as ImageNetS50 with train/, "
            "validation/ and validation-segmentation/)"
        )
    if val_dir.is_dir() and not seg_dir.is_dir():
        raise DataError(f"{seg_dir}: missing (the ImageNet-S validation masks; see datapreparation_anno.sh)")
    classes = _imagenet_s_classes(root)
    n = len(classes)
    if n > IGNORE:
        raise DataError(
            f"{root}: {n} classes (incl. background) do not fit 8-bit train ids (at most 255); "
            "use the ImageNet-S-50 subset (ImageNetS50) or a classes.txt with at most 254 classes"
        )
    splits: dict[str, list[Sample]] = {}
    if train_dir.is_dir():
        splits["train"] = [Sample(p.stem, p, None) for p in _walk_images(train_dir)]
    if val_dir.is_dir():
        splits["val"] = [
            Sample(p.stem, p, ImageNetSLabel(seg_dir / p.relative_to(val_dir).with_suffix(".png"), n))
            for p in _walk_images(val_dir)
        ]
        # check-data cannot look inside callables, so a missing mask is reported here, up front
        missing = [s for s in splits["val"] if not s.label.path.exists()]
        if missing:
            raise DataError(
                f"{missing[0].label.path}: missing ImageNet-S mask for {missing[0].image} "
                f"({len(missing)} of {len(splits['val'])} validation masks missing)"
            )
    if (root / "test").is_dir():
        splits["test"] = [Sample(p.stem, p, None) for p in _walk_images(root / "test")]
    splits = {k: v for k, v in splits.items() if v}
    if not splits:
        raise DataError(f"{root}: no images found in train/, validation/ or test/")
    info = ClassInfo(classes, default_palette(n), IGNORE)
    return DataSource(f"imagenet-s{n - 1}", info, splits, None, root)
