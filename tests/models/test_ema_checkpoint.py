"""EMA update and momentum schedule; checkpoints that are atomic, safe to load and partially loadable."""

import math

import pytest
import torch
from torch import nn

from segssl.errors import SegsslError
from segssl.models.checkpoint import atomic_save, init_from_config, load_matching, payload, read_checkpoint
from segssl.models.ema import EMA, cosine_momentum
from segssl.models.segmodel import SegModel


def test_ema_update_formula_and_buffers():
    online = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    with torch.no_grad():
        online[0].weight.copy_(torch.tensor([[1.0, -2.0]]))
        online[0].bias.fill_(0.5)
    ema = EMA(online)
    assert all(not p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        online[0].weight.copy_(torch.tensor([[3.0, 2.0]]))
        online[0].bias.fill_(-1.5)
        online[1].running_mean.fill_(7.0)
    ema.update(online, 0.9)
    # theta' = 0.9 theta' + 0.1 theta
    assert torch.allclose(ema.module[0].weight, torch.tensor([[0.9 * 1 + 0.1 * 3, 0.9 * -2 + 0.1 * 2]]))
    assert torch.allclose(ema.module[0].bias, torch.tensor([0.9 * 0.5 + 0.1 * -1.5]))
    assert float(ema.module[1].running_mean) == 7.0  # BN statistics are copied, not averaged
    ema.update(online, 0.0)
    assert torch.equal(ema.module[0].weight, online[0].weight)
    online[0].weight.data.fill_(100.0)  # the copy is independent of the online model
    assert not torch.equal(ema.module[0].weight, online[0].weight)


def test_cosine_momentum_schedule():
    assert cosine_momentum(0, 100) == pytest.approx(0.99)
    assert cosine_momentum(100, 100) == pytest.approx(1.0)
    assert cosine_momentum(50, 100) == pytest.approx(0.995)  # 1 - 0.01 * (cos(pi / 2) + 1) / 2
    assert cosine_momentum(25, 100) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2)
    assert cosine_momentum(500, 100) == pytest.approx(1.0)  # clamped after the end
    assert cosine_momentum(0, 10, base=0.996) == pytest.approx(0.996)
    values = [cosine_momentum(k, 20) for k in range(21)]
    assert values == sorted(values)


def _model(classes: int = 3) -> SegModel:
    return SegModel(classes, encoder_depth=3, decoder_channels=[16, 16, 16])


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "ck" / "last.ckpt"
    atomic_save({"segssl": {"model_state": {"w": torch.tensor([1.0, 2.0])}, "config": {}}}, path)
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"segssl": {"model_state": {"w": torch.tensor([9.0])}}}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert torch.equal(read_checkpoint(path)["model_state"]["w"], torch.tensor([1.0, 2.0]))


def test_read_checkpoint_forms_and_errors(tmp_path):
    with pytest.raises(SegsslError, match="checkpoint does not exist"):
        read_checkpoint(tmp_path / "nope.ckpt")
    (tmp_path / "garbage.ckpt").write_bytes(b"\x00\x01 definitely not torch")
    with pytest.raises(SegsslError, match="garbage.ckpt: not a loadable checkpoint"):
        read_checkpoint(tmp_path / "garbage.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
    with pytest.raises(SegsslError, match="not a segssl checkpoint"):
        read_checkpoint(tmp_path / "plain.ckpt")
    torch.save({"model_state": {"a": torch.ones(1)}, "config": {"seed": 1}}, tmp_path / "bare.ckpt")
    assert read_checkpoint(tmp_path / "bare.ckpt")["config"] == {"seed": 1}
    entry = payload({"a": torch.ones(2)}, {"seed": 2}, "segmenter", {"classes": ["x"]})
    torch.save({"state_dict": {}, "segssl": entry}, tmp_path / "full.ckpt")
    got = read_checkpoint(tmp_path / "full.ckpt")
    assert got["kind"] == "segmenter" and got["classes"] == ["x"] and got["version"]


def test_read_checkpoint_refuses_pickled_code(tmp_path):
    # a file needing arbitrary unpickling (here a Python object) is rejected by weights_only loading
    torch.save({"segssl": {"model_state": {}, "config": {}}, "obj": nn.Linear(1, 1)}, tmp_path / "evil.ckpt")
    with pytest.raises(SegsslError, match="evil.ckpt: not a loadable checkpoint"):
        read_checkpoint(tmp_path / "evil.ckpt")


def test_load_matching_skips_the_head_of_another_class_count():
    torch.manual_seed(0)
    six, three = _model(6), _model(3)
    skipped = load_matching(three, six.state_dict(), "six.ckpt")
    assert skipped == ["head.bias", "head.weight"]
    assert torch.equal(three.encoder.conv1.weight, six.encoder.conv1.weight)
    assert not torch.equal(three.head.bias, six.head.bias[:3])
    with pytest.raises(SegsslError, match="other.ckpt: no parameter matches"):
        load_matching(three, {"x": torch.zeros(1)}, "other.ckpt")


def test_init_from_config(tmp_path):
    torch.manual_seed(0)
    src = _model(6)
    atomic_save({"segssl": payload(src.state_dict(), {}, "segmenter", {})}, tmp_path / "p.ckpt")
    dst = _model(3)
    init_from_config(dst, {"model": {"init": str(tmp_path / "p.ckpt")}})
    own, theirs = dst.state_dict(), src.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in own.items() if not k.startswith("head."))
    assert dst.head.weight.shape[0] == 3
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    init_from_config(dst, {"model": {"init": None}})  # nothing to load: untouched
    assert all(torch.equal(v, dst.state_dict()[k]) for k, v in before.items())


def test_init_parts_encoder_keeps_the_fresh_decoder_and_head(tmp_path):
    torch.manual_seed(0)
    src = _model(3)
    atomic_save({"segssl": payload(src.state_dict(), {}, "segmenter", {})}, tmp_path / "p.ckpt")
    torch.manual_seed(1)
    dst = _model(3)
    fresh = {k: v.clone() for k, v in dst.state_dict().items()}
    init_from_config(dst, {"model": {"init": str(tmp_path / "p.ckpt"), "init_parts": "encoder"}})
    for k, v in dst.state_dict().items():
        want = src.state_dict()[k] if k.startswith("encoder.") else fresh[k]
        assert torch.equal(v, want), k
    assert not torch.equal(dst.head.weight, src.head.weight)
    with pytest.raises(SegsslError, match="init_parts=decoder"):
        init_from_config(dst, {"model": {"init": str(tmp_path / "p.ckpt"), "init_parts": "decoder"}})
