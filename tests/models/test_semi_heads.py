"""Extra networks of the semi-supervised recipes: CCT perturbations and auxiliary decoders, GCT's flaw
detector, the self-correcting ancillary model and correction net, Zhao et al.'s projection head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segssl.models.heads import (
    CCT_PERTURBATIONS,
    BoxAttentionSegModel,
    CCTAuxDecoder,
    ConvSelfCorrection,
    FlawDetector,
    PixelShuffleUpsample,
    ProjectionHead,
    feature_drop,
    feature_noise,
    guided_cutout_mask,
    object_mask,
    vat_perturbation,
)
from segssl.models.segmodel import SegModel


def test_feature_noise_is_multiplicative_and_shared_across_the_batch():
    torch.manual_seed(0)
    z = torch.rand(2, 3, 4, 4) + 0.5
    out = feature_noise(z, 0.3)
    ratio = (out - z) / z
    assert float(ratio.abs().max()) <= 0.3 + 1e-6 and float(ratio.abs().max()) > 0
    assert torch.allclose(ratio[0], ratio[1])
    assert torch.equal(feature_noise(z, 0.0), z)


def test_feature_drop_removes_the_most_active_positions():
    z = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    # channel mean = z, max 4, gamma .7: threshold 2.8 keeps 1 and 2 only
    assert feature_drop(z, 0.7, 0.7).tolist() == [[[[1.0, 2.0], [0.0, 0.0]]]]


def test_object_mask_background_and_mode():
    pred = torch.tensor([[[0, 1], [2, 0]], [[3, 3], [3, 1]]])
    assert object_mask(pred, 0)[:, 0].tolist() == [[[0, 1], [1, 0]], [[1, 1], [1, 1]]]
    assert object_mask(pred, None)[:, 0].tolist() == [[[0, 1], [1, 0]], [[0, 0], [0, 1]]]  # per-image mode


def test_guided_cutout_erases_inside_each_object_box():
    torch.manual_seed(0)
    pred = torch.zeros(1, 32, 32, dtype=torch.long)
    pred[0, 5:15, 10:20] = 2  # a 10x10 object: erase a 4x4 box inside its bounding box
    pred[0, 30, 30] = 1  # a speck under min_area: untouched
    keep = guided_cutout_mask(pred, erase=0.4, background=0, min_area=50)
    assert keep.shape == (1, 1, 32, 32)
    assert int((keep == 0).sum()) == 16
    assert bool((keep[0, 0, 5:15, 10:20] == 0).sum() == 16)


def test_vat_perturbation_has_norm_eps_and_leaves_decoder_grads_alone():
    torch.manual_seed(0)
    dec = PixelShuffleUpsample(8, 3, 2)
    z = torch.randn(2, 8, 4, 4)
    r = vat_perturbation(z, dec, xi=1e-6, eps=2.0)
    assert torch.allclose(r.flatten(1).norm(dim=1), torch.full((2,), 2.0), atol=1e-4)
    assert all(p.grad is None for p in dec.parameters())
    # the adversarial direction raises the divergence more than a random one of the same norm
    p = dec(z).softmax(1)

    def kl(delta):
        return float(torch.nn.functional.kl_div(dec(z + delta).log_softmax(1), p, reduction="batchmean"))

    rand = torch.randn_like(z)
    rand = 2.0 * rand / rand.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    assert kl(r) > kl(rand)


def test_aux_decoders_output_input_resolution():
    torch.manual_seed(0)
    z = torch.randn(2, 16, 4, 4)
    pred = torch.zeros(2, 32, 32, dtype=torch.long)
    pred[:, 8:24, 8:24] = 1
    for kind in CCT_PERTURBATIONS:
        out = CCTAuxDecoder(kind, 16, 5, 8, cutout_min_area=10)(z, pred)
        assert out.shape == (2, 5, 32, 32), kind
    with pytest.raises(ValueError):
        CCTAuxDecoder("mixup", 16, 5, 8)
    with pytest.raises(ValueError):
        PixelShuffleUpsample(16, 5, 3)


def test_flaw_detector_any_size():
    fd = FlawDetector(3 + 4, ndf=4)
    for h, w in ((32, 32), (30, 45)):
        out = fd(torch.randn(2, 3, h, w), torch.rand(2, 4, h, w))
        assert out.shape == (2, 1, h, w)


def test_box_attention_model_depends_on_boxes():
    torch.manual_seed(0)
    seg = SegModel(4, encoder_depth=3, decoder_channels=[16, 8, 8])
    anc = BoxAttentionSegModel(seg, 4).eval()
    assert len(anc.box_encoders) == 3
    x = torch.randn(1, 3, 30, 40)
    b1, b2 = torch.zeros(1, 4, 30, 40), torch.zeros(1, 4, 30, 40)
    b1[:, 0] = 1.0
    b2[:, 2, 5:20, 5:30] = 1.0
    with torch.no_grad():
        o1, o2 = anc(x, b1), anc(x, b2)
    assert o1.shape == (1, 4, 30, 40) and not torch.allclose(o1, o2)


def test_correction_net_and_projection_head():
    c = ConvSelfCorrection(3, hidden=8)
    assert c(torch.randn(2, 3, 5, 6), torch.randn(2, 3, 5, 6)).shape == (2, 3, 5, 6)
    assert isinstance(c.net[0], nn.Conv2d) and c.net[0].in_channels == 6
    e = ProjectionHead(8, dim=4)(torch.randn(2, 8, 5, 6))
    assert e.shape == (2, 4, 5, 6) and torch.allclose(e.norm(dim=1), torch.ones(2, 5, 6), atol=1e-5)
