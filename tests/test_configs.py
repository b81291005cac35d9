"""Every shipped config loads (no unknown keys), and the benchmark config trains on real CamVid files."""

from pathlib import Path

import pytest

from conftest import tiny_overrides
from segssl.cli import main
from segssl.config import DEFAULTS, load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
CAMVID = ROOT.parent / "shared" / "data" / "camvid"


def test_configs_exist():
    assert len(CONFIGS) >= 20


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_config_loads_and_names_a_known_method(path):
    from segssl.commands.probe import PROBE_DEFAULTS  # probe configs add a `probe:` section

    cfg = load_config(path, defaults={**DEFAULTS, "probe": PROBE_DEFAULTS})
    if "probe" in path.parts:
        assert cfg["probe"]["protocol"] in ("linear", "knn")
        return
    from segssl.methods.base import build_method_class

    assert build_method_class(cfg).name == cfg["method"]


@pytest.mark.skipif(not CAMVID.is_dir(), reason="needs ../shared/data/camvid")
def test_benchmark_config_trains_and_evaluates_on_real_camvid(tmp_path):
    sets = tiny_overrides(
        **{
            "data.path": str(CAMVID),
            "data.crop": "[64, 80]",
            "data.base_size": "[180, 240]",
            "train.max_steps": 2,
            "train.val_every_steps": 0,
            "data.test_split": "val",
        }
    )
    args = [
        "train",
        "--config",
        str(ROOT / "configs/benchmarks/camvid_supervised.yaml"),
        "--labeled",
        "8",
        "--out",
        str(tmp_path / "r"),
    ]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    labeled = (tmp_path / "r" / "splits" / "labeled.txt").read_text().split()
    assert len(labeled) == 8 and labeled == sorted(labeled)
    import json

    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["num_images"] == 101 and m["ignore_index"] == 11 and len(m["classes"]) == 11
    assert 0.0 <= m["miou"] <= 100.0
