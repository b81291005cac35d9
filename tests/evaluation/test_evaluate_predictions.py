"""`segssl evaluate --predictions` agrees exactly with an independent numpy mIoU."""

import json

import numpy as np
import pytest
from PIL import Image

from segssl.cli import main
from segssl.data.generated import generated_source, write_generated
from segssl.data.source import read_index


def numpy_miou(preds: list[np.ndarray], gts: list[np.ndarray], k: int, ignore: int):
    """Independent reference: per class, intersection and union summed over every pixel of every image."""
    ious, per_class = [], {}
    for c in range(k):
        inter = union = 0
        for p, g in zip(preds, gts, strict=True):
            valid = g != ignore
            inter += int(np.sum((p == c) & (g == c) & valid))
            union += int(np.sum(((p == c) | (g == c)) & valid))
        if union > 0:
            ious.append(inter / union)
            per_class[c] = 100 * inter / union
        else:
            per_class[c] = None
    correct = sum(int(np.sum((p == g) & (g != ignore))) for p, g in zip(preds, gts, strict=True))
    total = sum(int(np.sum(g != ignore)) for g in gts)
    return 100 * float(np.mean(ious)), per_class, 100 * correct / total


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    write_generated(root, generated_source(2, seed=5, num_val=0, num_test=4, size=(24, 28)))
    return root


def _write_preds(folder, stems, arrays):
    folder.mkdir(parents=True, exist_ok=True)
    for s, a in zip(stems, arrays, strict=True):
        Image.fromarray(a.astype(np.uint8), mode="L").save(folder / f"{s}.png")


def test_predictions_match_independent_miou(dataset, tmp_path, capsys):
    stems = sorted(p.stem for p in (dataset / "test" / "labels").iterdir())
    gts = [read_index(dataset / "test" / "labels" / f"{s}.png") for s in stems]
    assert any((g == 255).any() for g in gts)  # the generated data has void pixels: ignore is exercised
    rng = np.random.default_rng(0)
    # random predictions biased toward the truth, so IoUs are neither all 0 nor all 100
    preds = [np.where(rng.random(g.shape) < 0.5, np.where(g == 255, 0, g), rng.integers(0, 6, g.shape)) for g in gts]
    _write_preds(tmp_path / "pred", stems, preds)
    out = tmp_path / "eval"
    rc = main(
        [
            "evaluate",
            "--predictions",
            str(tmp_path / "pred"),
            "--data",
            str(dataset),
            "--split",
            "test",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    miou, per_class, acc = numpy_miou(preds, gts, 6, 255)
    assert 5 < miou < 95
    assert m["miou"] == round(miou, 4)
    assert m["pixel_acc"] == round(acc, 4)
    names = m["classes"]
    assert {n: m["per_class_iou"][n] for n in names} == {
        n: (None if per_class[i] is None else round(per_class[i], 4)) for i, n in enumerate(names)
    }
    assert m["num_images"] == 4 and m["split"] == "test" and m["ignore_index"] == 255
    valid = sum(int((g != 255).sum()) for g in gts)
    assert int(np.sum(m["confusion_matrix"])) == valid


def test_perfect_predictions_score_100(dataset, tmp_path):
    stems = sorted(p.stem for p in (dataset / "test" / "labels").iterdir())
    gts = [read_index(dataset / "test" / "labels" / f"{s}.png") for s in stems]
    _write_preds(tmp_path / "pred", stems, [np.where(g == 255, 3, g) for g in gts])  # anything under void
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(tmp_path / "pred"),
                "--data",
                str(dataset),
                "--out",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["miou"] == 100.0 and m["pixel_acc"] == 100.0


def test_missing_or_bad_prediction_is_a_one_line_error(dataset, tmp_path, capsys):
    stems = sorted(p.stem for p in (dataset / "test" / "labels").iterdir())
    gts = [read_index(dataset / "test" / "labels" / f"{s}.png") for s in stems]
    _write_preds(tmp_path / "pred", stems[1:], [np.zeros_like(g) for g in gts[1:]])
    args = [
        "evaluate",
        "--predictions",
        str(tmp_path / "pred"),
        "--data",
        str(dataset),
        "--out",
        str(tmp_path / "e"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{stems[0]}.png" in err and "missing prediction" in err and len(err.strip().splitlines()) == 1
    _write_preds(tmp_path / "pred", stems[:1], [np.full_like(gts[0], 9)])  # class 9 of 6
    assert main(args) == 2
    assert "outside classes 0..5" in capsys.readouterr().err
    _write_preds(tmp_path / "pred", stems[:1], [np.zeros((5, 5), np.uint8)])
    assert main(args) == 2
    assert "differs from label 28x24" in capsys.readouterr().err
    assert not (tmp_path / "e" / "metrics.json").exists()


@pytest.fixture(scope="module")
def two_sequences(dataset, tmp_path_factory):
    """The 4 test images renamed into two 'sequences' of two frames, as CamVid names frames `SEQ_frame`."""
    root = tmp_path_factory.mktemp("seq")
    (root / "classes.json").write_text((dataset / "classes.json").read_text())
    stems = sorted(p.stem for p in (dataset / "test" / "labels").iterdir())
    for sub in ("images", "labels"):
        (root / "test" / sub).mkdir(parents=True)
        for i, s in enumerate(stems):
            src = next((dataset / "test" / sub).glob(f"{s}.*"))
            (root / "test" / sub / f"seq{'AB'[i // 2]}_{i % 2}{src.suffix}").write_bytes(src.read_bytes())
    return root


def test_group_by_scores_each_group_like_its_own_split(two_sequences, tmp_path, capsys):
    stems = sorted(p.stem for p in (two_sequences / "test" / "labels").iterdir())
    gts = [read_index(two_sequences / "test" / "labels" / f"{s}.png") for s in stems]
    rng = np.random.default_rng(1)
    preds = [np.where(rng.random(g.shape) < 0.6, np.where(g == 255, 0, g), rng.integers(0, 6, g.shape)) for g in gts]
    _write_preds(tmp_path / "pred", stems, preds)
    base = ["evaluate", "--predictions", str(tmp_path / "pred"), "--data", str(two_sequences)]
    assert main([*base, "--out", str(tmp_path / "e"), "--group-by", "^[^_]+"]) == 0
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["group_by"] == "^[^_]+" and list(m["groups"]) == ["seqA", "seqB"]
    assert m["miou"] == round(numpy_miou(preds, gts, 6, 255)[0], 4)  # the split's own numbers are unchanged
    for g, idx in (("seqA", [0, 1]), ("seqB", [2, 3])):
        miou, per_class, acc = numpy_miou([preds[i] for i in idx], [gts[i] for i in idx], 6, 255)
        assert m["groups"][g]["miou"] == round(miou, 4)
        assert m["groups"][g]["pixel_acc"] == round(acc, 4)
        assert m["groups"][g]["num_images"] == 2
        assert m["groups"][g]["per_class_iou"][m["classes"][0]] == (
            None if per_class[0] is None else round(per_class[0], 4)
        )
    assert m["groups"]["seqA"]["miou"] != m["groups"]["seqB"]["miou"]
    assert "by group" in capsys.readouterr().out
    # with a capture group, the group is what it captured
    assert main([*base, "--out", str(tmp_path / "c"), "--group-by", "^seq(.)_"]) == 0
    assert list(json.loads((tmp_path / "c" / "metrics.json").read_text())["groups"]) == ["A", "B"]
    # an optional group that did not take part: the whole match names the group
    assert main([*base, "--out", str(tmp_path / "o"), "--group-by", "^seq(A)?B?"]) == 0
    assert list(json.loads((tmp_path / "o" / "metrics.json").read_text())["groups"]) == ["A", "seqB"]


def test_group_by_errors_are_one_line_and_write_nothing(two_sequences, tmp_path, capsys):
    stems = sorted(p.stem for p in (two_sequences / "test" / "labels").iterdir())
    _write_preds(tmp_path / "pred", stems, [np.zeros((24, 28), np.uint8)] * 4)
    base = ["evaluate", "--predictions", str(tmp_path / "pred"), "--data", str(two_sequences)]
    base += ["--out", str(tmp_path / "e")]
    assert main([*base, "--group-by", "^seqA"]) == 2
    err = capsys.readouterr().err
    assert "seqB_0" in err and "does not match its name" in err and len(err.strip().splitlines()) == 1
    assert main([*base, "--group-by", "(unclosed"]) == 2
    err = capsys.readouterr().err
    assert "not a regular expression" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "e" / "metrics.json").exists()
