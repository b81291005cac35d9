"""Configuration: defaults <- YAML <- --set, value parsing, and loud failure on typos."""

import pytest
import yaml

from segssl.config import DEFAULTS, load_config, parse_override, save_config
from segssl.errors import SegsslError


def _yaml(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_yaml_overrides_precedence(tmp_path):
    p = _yaml(
        tmp_path,
        "method: cps\ntrain:\n  max_steps: 10\n  lr: 0.1\ndata:\n  crop: [64, 64]\nmethod_args:\n  tau: 0.9\n",
    )
    cfg = load_config(p, ["train.max_steps=20", "method_args.extra=3"])
    assert cfg["train"]["max_steps"] == 20  # --set beats YAML
    assert cfg["train"]["lr"] == 0.1  # YAML beats defaults
    assert cfg["data"]["crop"] == [64, 64]
    assert cfg["train"]["optimizer"] == DEFAULTS["train"]["optimizer"]  # untouched defaults survive the merge
    assert cfg["data"]["batch_size"] == DEFAULTS["data"]["batch_size"]
    assert cfg["method"] == "cps"
    assert cfg["method_args"] == {"tau": 0.9, "extra": 3}
    assert DEFAULTS["train"]["max_steps"] == 600 and DEFAULTS["method_args"] == {}  # defaults not mutated


def test_later_override_wins():
    assert load_config(None, ["seed=1", "seed=2"])["seed"] == 2


@pytest.mark.parametrize(
    ("item", "keys", "value"),
    [
        ("train.max_steps=100", ["train", "max_steps"], 100),
        ("train.lr=0.0005", ["train", "lr"], 0.0005),
        ("data.crop=[32, 48]", ["data", "crop"], [32, 48]),
        ("model.init=null", ["model", "init"], None),
        ("model.init=", ["model", "init"], None),
        ("train.progress=false", ["train", "progress"], False),
        ("data.labeled=1/8", ["data", "labeled"], "1/8"),
        ("data.path=generated:16", ["data", "path"], "generated:16"),
        ("method=mean_teacher", ["method"], "mean_teacher"),
        ("data.path=a=b", ["data", "path"], "a=b"),
        ("method_args.w={a: 1}", ["method_args", "w"], {"a": 1}),
    ],
)
def test_override_value_parsing(item, keys, value):
    k, v = parse_override(item)
    assert k == keys and v == value and type(v) is type(value)


def test_override_types_reach_the_config():
    cfg = load_config(None, ["data.crop=[32, 48]", "train.max_steps=7", "model.encoder_weights=null"])
    assert cfg["data"]["crop"] == [32, 48] and cfg["train"]["max_steps"] == 7
    assert cfg["model"]["encoder_weights"] is None


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("train.bogus=1", "unknown config key 'train.bogus'"),
        ("bogus.key=1", "unknown config section 'bogus'"),
        ("train.max_steps.sub=1", "'train.max_steps' is not a section"),
        ("train.max_steps", "expected key=value"),
    ],
)
def test_unknown_or_malformed_overrides_are_rejected(item, message):
    with pytest.raises(SegsslError, match=message.replace(".", r"\.")):
        load_config(None, [item])


def test_replacing_a_section_by_a_scalar_is_rejected():
    with pytest.raises(SegsslError, match="'data' is a section"):
        load_config(None, ["data=/some/folder"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train:\n  max_stepz: 5\n", "unknown config key 'train.max_stepz'"),
        ("trian:\n  max_steps: 5\n", "unknown config key 'trian'"),
        ("data:\n  views:\n    scale: 1\n", "unknown config key 'data.views'"),
        ("train: [1, 2\n", "invalid YAML at line"),
        ("- a\n- b\n", "config must be a mapping of sections"),
    ],
)
def test_bad_yaml_files_are_rejected_naming_the_file(tmp_path, text, message):
    p = _yaml(tmp_path, text)
    with pytest.raises(SegsslError) as e:
        load_config(p)
    assert str(e.value).startswith(str(p)) and message in str(e.value)


def test_free_form_sections_and_empty_file(tmp_path):
    cfg = load_config(_yaml(tmp_path, "name: demo\ndescription: x\nmethod_args:\n  any:\n    nested: [1]\n"))
    assert cfg["method_args"] == {"any": {"nested": [1]}}
    assert load_config(_yaml(tmp_path, "")) == DEFAULTS


def test_missing_config_file(tmp_path):
    with pytest.raises(SegsslError, match="config file does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_save_config_round_trips(tmp_path):
    cfg = load_config(None, ["data.crop=[32, 48]", "data.labeled=1/8"])
    save_config(cfg, tmp_path / "run" / "config.yaml")
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text()) == cfg
    assert load_config(tmp_path / "run" / "config.yaml") == cfg
