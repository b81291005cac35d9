"""SegModel: logits and full-resolution features at any input size; local encoder weights."""

import pytest
import torch
import torchvision

from segssl.errors import SegsslError
from segssl.models.segmodel import SegModel, build_model

CASES = [
    ("unet", 3, [32, 16, 16]),
    ("unet++", 3, [16, 16, 16]),
    ("fpn", 5, [32]),
    ("deeplabv3+", 5, [24]),
    ("unet", 5, [32, 16, 16, 16, 8]),
]


@pytest.mark.parametrize(("arch", "depth", "dec"), CASES, ids=[f"{a}-d{d}" for a, d, _ in CASES])
def test_logits_and_features_at_input_size(arch, depth, dec):
    torch.manual_seed(0)
    m = SegModel(5, arch=arch, encoder="resnet18", encoder_depth=depth, decoder_channels=dec).eval()
    x = torch.randn(2, 3, 45, 61)  # odd sizes, not multiples of the stride
    with torch.no_grad():
        logits, feats = m(x, return_features=True)
        assert torch.equal(m(x), logits)
        assert torch.allclose(m.features(x), feats, atol=1e-6)
    assert logits.shape == (2, 5, 45, 61)
    assert feats.shape == (2, m.feature_dim, 45, 61)
    assert m.feature_dim == (dec[-1] if arch in ("unet", "unet++") else dec[0])
    # the head is applied before upsampling; a 1x1 conv commutes with bilinear resizing
    assert torch.allclose(m.head(feats), logits, atol=1e-4)
    assert torch.isfinite(logits).all()


def test_padding_does_not_leak_between_images():
    torch.manual_seed(0)
    m = SegModel(3, encoder_depth=3, decoder_channels=[16, 16, 16]).eval()
    x = torch.randn(2, 3, 21, 30)
    with torch.no_grad():
        both = m(x)
        first = m(x[:1])
    assert torch.allclose(both[:1], first, atol=1e-5)


def test_unknown_architecture_and_encoder():
    with pytest.raises(SegsslError, match="model.arch=segformer: unknown architecture"):
        SegModel(3, arch="segformer")
    with pytest.raises(SegsslError, match="model.encoder=resnet_nope"):
        SegModel(3, encoder="resnet_nope")


def _tiny(weights=None) -> SegModel:
    return build_model(
        {
            "arch": "unet",
            "encoder": "resnet18",
            "encoder_depth": 3,
            "decoder_channels": [16, 16, 16],
            "encoder_weights": weights,
        },
        4,
    )


# smp 0.6's ResNetEncoder.load_state_dict returns None, so reading `.missing_keys` from it crashes


def test_encoder_weights_from_a_local_file(tmp_path):
    torch.manual_seed(1)
    src = _tiny()
    torch.save(src.encoder.state_dict(), tmp_path / "enc.pt")
    torch.save({"state_dict": src.encoder.state_dict()}, tmp_path / "wrapped.pt")
    torch.manual_seed(2)
    assert not torch.equal(_tiny().encoder.conv1.weight, src.encoder.conv1.weight)  # a fresh init differs
    for f in ("enc.pt", "wrapped.pt"):
        dst = _tiny(str(tmp_path / f)).encoder.state_dict()
        for k, a in src.encoder.state_dict().items():
            assert torch.equal(a, dst[k]), k


def test_torchvision_resnet_weights_load(tmp_path):
    tv = torchvision.models.resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "tv.pt")  # has fc.* that the encoder lacks: ignored
    m = SegModel(4, encoder_depth=5, decoder_channels=[16, 16, 16, 16, 16], encoder_weights=str(tmp_path / "tv.pt"))
    assert torch.equal(m.encoder.layer4[1].conv2.weight, tv.layer4[1].conv2.weight)


def test_encoder_weights_missing_or_unreadable_file(tmp_path):
    with pytest.raises(SegsslError, match="encoder weights file does not exist"):
        _tiny(str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(SegsslError, match="junk.pt: cannot load encoder weights"):
        _tiny(str(tmp_path / "junk.pt"))


def test_encoder_weights_matching_nothing(tmp_path):
    torch.save({"unrelated.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(SegsslError, match="other.pt: no tensor in the file matches"):
        _tiny(str(tmp_path / "other.pt"))


def test_encoder_weights_of_another_encoder_is_a_user_error(tmp_path):
    state = torchvision.models.resnet18(weights=None).state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(8, 64, 1, 1)  # as in a bottleneck ResNet
    torch.save(state, tmp_path / "wrong.pt")
    with pytest.raises(SegsslError, match="wrong.pt"):
        _tiny(str(tmp_path / "wrong.pt"))
