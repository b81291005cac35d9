"""`segssl probe` (linear, knn) and `segssl retrieve` end to end on a tiny DenseCL checkpoint."""

import json

import pytest

from conftest import tiny_overrides
from segssl.cli import main
from segssl.data.registry import load_source


def sets(*items: str) -> list[str]:
    return sum((["--set", o] for o in items), [])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("densecl") / "run"
    over = [*tiny_overrides(), "method_args.queue_size=32", "method_args.hidden=64"]
    rc = main(["pretrain", "--config", "configs/pretrain/densecl.yaml", "--out", str(out), *sets(*over)])
    assert rc == 0
    return str(out / "checkpoints" / "last.ckpt")


QUICK = ("data.crop=[32, 32]", "data.batch_size=4", "train.progress=false")


def read_metrics(run_dir) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= m["miou"] <= 100.0 and 0.0 <= m["pixel_acc"] <= 100.0
    assert m["split"] == "test" and m["num_images"] == 64
    return m


def test_probe_linear(tmp_path, checkpoint):
    out = tmp_path / "lin"
    rc = main(
        [
            "probe",
            "--config",
            "configs/probe/linear.yaml",
            "--checkpoint",
            checkpoint,
            "--protocol",
            "linear",
            "--out",
            str(out),
            *sets(*QUICK, "probe.pixels_per_image=50", "probe.max_iter=20", "probe.l2=[1e-4, 1e-1]"),
        ]
    )
    assert rc == 0
    m = read_metrics(out)
    assert m["protocol"] == "linear" and m["checkpoint"] == checkpoint and m["labeled_images"] == 16
    assert m["probe_pixels"] == 16 * 50
    # the grid: 3 class weightings (configs/probe/linear.yaml) x 2 l2 values, chosen on val
    assert len(m["probe_val_miou"]) == 6 and m["probe_choice"] in [r["name"] for r in m["probe_val_miou"]]
    best = max(m["probe_val_miou"], key=lambda r: r["val_miou"])
    assert m["probe_choice"] == best["name"]
    assert (out / "config.yaml").is_file()


def test_probe_knn_with_labeled_fraction(tmp_path, checkpoint):
    out = tmp_path / "knn"
    rc = main(
        [
            "probe",
            "--config",
            "configs/probe/knn.yaml",
            "--checkpoint",
            checkpoint,
            "--labeled",
            "1/4",
            "--out",
            str(out),
            *sets(*QUICK, "probe.pixels_per_image=50", "probe.k=5"),
        ]
    )
    assert rc == 0
    m = read_metrics(out)
    assert m["protocol"] == "knn" and m["labeled_images"] == 4 and m["bank_size"] == 4 * 50
    assert len((out / "splits" / "labeled.txt").read_text().split()) == 4


def test_probe_random_region_bank(tmp_path):
    out = tmp_path / "rand"
    model = ("model.encoder_depth=3", "model.decoder_channels=[32, 16, 16]")
    rc = main(
        [
            "probe",
            "--checkpoint",
            "random",
            "--protocol",
            "knn",
            "--data",
            "generated:16",
            "--out",
            str(out),
            *sets(*QUICK, *model, "probe.bank=region"),
        ]
    )
    assert rc == 0
    m = read_metrics(out)
    assert m["checkpoint"] == "random" and 16 <= m["bank_size"] <= 16 * 6  # one entry per (image, class)


def test_probe_errors(tmp_path, checkpoint, capsys):
    assert main(["probe", "--checkpoint", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "x")]) == 2
    assert main(["probe", "--checkpoint", checkpoint, "--out", str(tmp_path / "x"), *sets("probe.protocol=svm")]) == 2
    assert main(["probe", "--checkpoint", checkpoint, *sets("probe.stepz=3")]) == 2
    err = capsys.readouterr().err
    assert "missing.ckpt" in err and "svm" in err and "stepz" in err


def test_retrieve_random_and_explicit_queries(tmp_path, checkpoint):
    png = tmp_path / "pics" / "r.png"
    rc = main(
        [
            "retrieve",
            "--checkpoint",
            checkpoint,
            "--queries",
            "2",
            "--top-k",
            "3",
            "--pixels-per-image",
            "200",
            "--out",
            str(png),
            *sets("train.progress=false"),
        ]
    )
    assert rc == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    listing = json.loads(png.with_suffix(".json").read_text())
    assert len(listing["queries"]) == 2
    for q in listing["queries"]:
        assert len(q["matches"]) == 3
        assert all(mm["stem"] != q["query"]["stem"] for mm in q["matches"])  # other images only
        cos = [mm["cosine"] for mm in q["matches"]]
        assert cos == sorted(cos, reverse=True)

    stem = load_source("generated:16").samples("train")[0].stem
    png2 = tmp_path / "r2.png"
    rc = main(
        [
            "retrieve",
            "--checkpoint",
            checkpoint,
            "--query",
            f"{stem}:10,20",
            "--include-self",
            "--pixels-per-image",
            "0",
            "--top-k",
            "2",
            "--out",
            str(png2),
            *sets("train.progress=false"),
        ]
    )
    assert rc == 0
    q = json.loads(png2.with_suffix(".json").read_text())["queries"][0]
    assert q["query"] == {"stem": stem, "x": 10, "y": 20}
    # all pixels banked and the own image searched: the best match is the query pixel itself
    assert q["matches"][0] == {"stem": stem, "x": 10, "y": 20, "cosine": pytest.approx(1.0, abs=1e-5)}

    assert main(["retrieve", "--checkpoint", checkpoint, "--query", "nope:1,2", "--out", str(png2)]) == 2
    assert main(["retrieve", "--checkpoint", checkpoint, "--query", f"{stem}:1", "--out", str(png2)]) == 2
    assert main(["retrieve", "--checkpoint", checkpoint, "--query", f"{stem}:500,2", "--out", str(png2)]) == 2
