"""Every kind of broken dataset is reported with the offending file, by the API and by `segssl check-data`."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import tiny_overrides
from segssl.cli import main
from segssl.data.folder import load_folder
from segssl.data.registry import load_source
from segssl.data.validate import ensure_valid, validate_source
from segssl.errors import DataError

CLASSES = {
    "classes": ["bg", "fg", "edge"],
    "palette": [[0, 0, 0], [255, 0, 0], [0, 255, 0]],
    "ignore_index": 255,
}


def make_dataset(root, n=3, size=(12, 10)):
    """A valid folder-format dataset: train split of n RGB images with index masks (values 0..2 and 255)."""
    (root / "train" / "images").mkdir(parents=True)
    (root / "train" / "labels").mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps(CLASSES))
    rng = np.random.default_rng(0)
    for i in range(n):
        h, w = size
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / "train" / "images" / f"im{i}.png")
        lab = rng.integers(0, 3, (h, w)).astype(np.uint8)
        lab[0, 0] = 255
        Image.fromarray(lab, mode="L").save(root / "train" / "labels" / f"im{i}.png")
    return root


def problems(root):
    src = load_folder(root)
    return [str(p) for p in validate_source(src, need_labels=["train"])]


def check_cli(root, capsys, expected_file, expected_text):
    rc = main(["check-data", str(root)])
    out = capsys.readouterr().out
    assert rc == 1
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert any(str(expected_file) in ln and expected_text in ln for ln in lines), out


def test_valid_dataset_has_no_problems(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds")
    assert problems(root) == []
    assert main(["check-data", str(root)]) == 0
    assert "OK" in capsys.readouterr().out


def test_unreadable_image(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds")
    bad = root / "train" / "images" / "im1.png"
    bad.write_bytes(b"\x00garbage, not a png at all" * 3)
    probs = problems(root)
    assert len(probs) == 1 and probs[0].startswith(f"{bad}: cannot read image")
    check_cli(root, capsys, bad, "cannot read image")


def test_size_mismatch(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds")
    lab = root / "train" / "labels" / "im2.png"
    Image.fromarray(np.zeros((12, 11), np.uint8), mode="L").save(lab)
    assert problems(root) == [f"{lab}: size 11x12 differs from image 10x12"]
    check_cli(root, capsys, lab, "differs from image")


def test_label_values_outside_classes(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds")
    lab = root / "train" / "labels" / "im0.png"
    arr = np.zeros((12, 10), np.uint8)
    arr[3, 3], arr[4, 4], arr[5, 5] = 7, 3, 255  # 3 and 7 are not classes; 255 is the ignore index
    Image.fromarray(arr, mode="L").save(lab)
    probs = problems(root)
    assert len(probs) == 1 and probs[0].startswith(f"{lab}: label values [3, 7] outside classes 0..2")
    check_cli(root, capsys, lab, "label values [3, 7]")


def test_rgb_label_is_rejected(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds")
    lab = root / "train" / "labels" / "im0.png"
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(lab)
    probs = problems(root)
    assert len(probs) == 1 and probs[0].startswith(f"{lab}: label must be an 8-bit index PNG")
    check_cli(root, capsys, lab, "mode RGB")


def test_missing_label_for_an_image(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds")
    (root / "train" / "labels" / "im1.png").unlink()
    img = root / "train" / "images" / "im1.png"
    probs = problems(root)
    assert len(probs) == 1 and probs[0].startswith(f"{img}: no matching label")
    check_cli(root, capsys, img, "no matching label")


def test_label_without_image(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds")
    (root / "train" / "images" / "im1.png").unlink()
    orphan = root / "train" / "labels" / "im1.png"
    assert problems(root) == [f"{orphan}: label has no matching image"]
    check_cli(root, capsys, orphan, "label has no matching image")


def test_empty_split(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds")
    (root / "val" / "images").mkdir(parents=True)
    assert problems(root) == [f"{root / 'val'}: split is missing or empty"]
    check_cli(root, capsys, root / "val", "split is missing or empty")


def test_missing_classes_json(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds")
    (root / "classes.json").unlink()
    with pytest.raises(DataError, match=r"classes\.json: missing"):
        load_folder(root)
    check_cli(root, capsys, root / "classes.json", "missing")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"classes": []}', "'classes' must be a non-empty list"),
        ('["a", "b"]', "'classes' must be a non-empty list"),
        ('{"classes": ["a", "b"], "palette": [[0, 0, 0]]}', "'palette' must hold one [r, g, b] per class"),
        ('{"classes": ["a", "b"], "ignore_index": 1}', "ignore_index 1 collides with class 'b'"),
    ],
    ids=["json", "empty", "list", "palette", "ignore"],
)
def test_invalid_classes_json(tmp_path, capsys, content, message):
    root = make_dataset(tmp_path / "ds")
    (root / "classes.json").write_text(content)
    with pytest.raises(DataError) as e:
        load_folder(root)
    assert str(e.value).startswith(f"{root / 'classes.json'}: ") and message in str(e.value)
    check_cli(root, capsys, root / "classes.json", message)


def test_every_problem_is_listed(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", n=4)
    (root / "train" / "images" / "im0.png").write_bytes(b"junk")
    Image.fromarray(np.full((12, 10), 9, np.uint8), mode="L").save(root / "train" / "labels" / "im3.png")
    assert len(problems(root)) == 2
    assert main(["check-data", str(root)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "im0.png" in out[0] and "im3.png" in out[1]


def test_ensure_valid_names_first_problem_and_count(tmp_path):
    root = make_dataset(tmp_path / "ds", n=4)
    for i in (1, 2):
        (root / "train" / "labels" / f"im{i}.png").unlink()
    with pytest.raises(DataError, match=r"im1\.png: no matching label .*\(and 1 more problems"):
        ensure_valid(load_source(root), ["train"], need_labels=["train"])


def test_train_on_bad_mask_is_one_line_error_without_checkpoint(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", size=(40, 40))
    lab = root / "train" / "labels" / "im1.png"
    Image.fromarray(np.full((40, 40), 42, np.uint8), mode="L").save(lab)
    out = tmp_path / "run"
    sets = sum((["--set", o] for o in tiny_overrides()), [])
    rc = main(["train", "--data", str(root), "--out", str(out), *sets])
    err = capsys.readouterr().err
    assert rc != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(lab) in lines[0] and "label values [42]" in lines[0], err
    assert not (out / "checkpoints").exists()
