"""Semi-supervised methods and their shared blocks, stepped directly on a tiny model (no training loop)."""

import math

import pytest
import torch
import torch.nn.functional as F

from segssl.config import load_config
from segssl.data.source import ClassInfo, default_palette
from segssl.errors import SegsslError
from segssl.methods.base import build_method
from segssl.methods.semi.common import (
    StrongAug,
    class_balanced_keep,
    ema_momentum,
    feature_perturbed_forward,
    noisy_forward,
    renormalize,
    sigmoid_rampup,
)

INFO = ClassInfo(("a", "b", "c"), default_palette(3))
TINY = ["model.encoder_depth=3", "model.decoder_channels=[16, 16, 16]", "train.max_steps=10"]


def _method(name: str, **args):
    cfg = load_config(None, [f"method={name}", *TINY])
    cfg["method_args"] = dict(args)
    return build_method(cfg, INFO)


def _batch(b: int = 2, size: int = 32, seed: int = 0, views: bool = False) -> dict:
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 3, (b, size, size), generator=g)
    label[:, :2] = 255  # a padded strip
    out = {
        "labeled": {
            "image": torch.randn(b, 3, size, size, generator=g),
            "label": label,
            "index": torch.arange(b),
        },
        "unlabeled": {"image": torch.randn(b, 3, size, size, generator=g), "index": torch.arange(b)},
    }
    if views:
        out["views"] = {
            "view1": out["unlabeled"]["image"],
            "view2": out["unlabeled"]["image"].flip(-1),
            "box1": torch.tensor([[0.0, 0.0, 1.0, 1.0]]).repeat(b, 1),
            "box2": torch.tensor([[1.0, 0.0, 0.0, 1.0]]).repeat(b, 1),
            "index": torch.arange(b),
        }
    return out


# ---------------------------------------------------------------- shared blocks


def test_sigmoid_rampup_and_ema_schedule():
    assert sigmoid_rampup(0, 100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(50, 100) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(100, 100) == 1.0 and sigmoid_rampup(500, 100) == 1.0 and sigmoid_rampup(3, 0) == 1.0
    assert ema_momentum(0, 0.99) == 0.0 and ema_momentum(1, 0.99) == 0.5
    assert ema_momentum(10_000, 0.99) == 0.99


def test_strong_aug_identity_grayscale_and_determinism():
    rgb = torch.rand(2, 3, 8, 8)
    x = renormalize(rgb)
    off = StrongAug(jitter_p=0.0, gray_p=0.0, blur_p=0.0)
    assert torch.allclose(off(x), x, atol=1e-5)
    gray = StrongAug(jitter_p=0.0, gray_p=1.0, blur_p=0.0)(x)
    lum = (0.2989 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]).unsqueeze(1).expand(-1, 3, -1, -1)
    assert torch.allclose(gray, renormalize(lum), atol=1e-3)
    aug = StrongAug()
    a = aug(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, aug(x, torch.Generator().manual_seed(3))) and not torch.allclose(a, x)


def test_noisy_forward_flips_back_and_feature_perturbation_matches_plain_forward_without_dropout():
    m = _method("supervised").model.eval()  # eval: BN statistics do not depend on the batch
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        plain, mirrored = m(x), m(x.flip(-1)).flip(-1)
        torch.manual_seed(0)
        out = noisy_forward(m, x, flip=True)
        for i in range(4):  # each sample is either the plain pass or the flipped-and-restored pass
            assert any(torch.allclose(out[i], ref[i], atol=1e-5) for ref in (plain, mirrored))
        assert torch.allclose(noisy_forward(m, x), plain, atol=1e-5)
        assert not torch.allclose(noisy_forward(m, x, dropout=0.5), plain, atol=1e-3)
        logits, fp = feature_perturbed_forward(m, x, start=1, p=0.0)
        assert torch.allclose(logits, plain, atol=1e-5) and torch.allclose(fp, plain[1:], atol=1e-5)
        _, fp_drop = feature_perturbed_forward(m, x, start=1, p=0.5)
        assert not torch.allclose(fp_drop, plain[1:], atol=1e-3)


def test_unknown_and_out_of_range_method_args_fail_loudly():
    with pytest.raises(SegsslError, match="method_args.treshold"):
        _method("fixmatch", treshold=0.9)
    with pytest.raises(SegsslError, match="method_args.threshold"):
        _method("fixmatch", threshold=1.5)
    with pytest.raises(SegsslError, match="method_args.mask"):
        _method("cutmix", mask="boxes")


# ---------------------------------------------------------------- pseudo-label self-training


def test_pseudo_label_rounds_snapshot_and_label_with_the_frozen_model():
    m = _method("pseudo_label", rounds=2, threshold=0.0)
    assert [m.round_of(s) for s in (0, 4, 5, 9)] == [0, 0, 1, 1]
    b = _batch()
    out0 = m.training_step(b, 0)
    assert "loss_pl" not in out0.logs and int(m.round) == 0
    with torch.no_grad():
        for p in m.model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    m.eval()
    out = m.training_step(b, 5)
    assert int(m.round) == 1 and out.logs["pl_ratio"] == 1.0
    for p, q in zip(m.labeler.parameters(), m.model.parameters(), strict=True):
        assert torch.equal(p, q) and not p.requires_grad
    with torch.no_grad():  # the pseudo-label term is CE against the labeler's argmax
        xu = b["unlabeled"]["image"]
        expected = F.cross_entropy(m.model(xu), m.labeler(xu).argmax(1))
    assert float(out.logs["loss_pl"]) == pytest.approx(float(expected), rel=1e-5)
    m.train()
    assert m.model.training and not m.labeler.training


def test_pseudo_label_reinit_restarts_the_student_but_keeps_the_labeler():
    m = _method("pseudo_label", reinit=True)
    with torch.no_grad():
        for p in m.model.parameters():
            p.add_(1.0)
    trained = [p.clone() for p in m.model.parameters()]
    m.training_step(_batch(), 5)
    assert all(torch.equal(p, t) for p, t in zip(m.labeler.parameters(), trained, strict=True))
    assert not torch.equal(next(m.model.parameters()), trained[0])


def test_pseudo_label_labels_from_step_0_when_init_is_a_trained_segmenter(tmp_path):
    from segssl.models.checkpoint import payload

    src = _method("supervised").model
    ck, pre = tmp_path / "seg.ckpt", tmp_path / "pre.ckpt"
    torch.save({"segssl": payload(src.state_dict(), {}, "segmenter", {})}, ck)
    torch.save({"segssl": payload(src.state_dict(), {}, "pretrained", {})}, pre)
    cfg = load_config(None, ["method=pseudo_label", *TINY, f"model.init={ck}"])
    cfg["method_args"] = {"threshold": 0.0}
    m = build_method(cfg, INFO).eval()
    out = m.training_step(_batch(), 0)  # round 0 already pseudo-labels, with the init model as labeler
    assert int(m.round) == 0 and out.logs["pl_ratio"] == 1.0 and "loss_pl" in out.logs
    assert all(torch.equal(p, q) for p, q in zip(m.labeler.parameters(), src.parameters(), strict=True))
    cfg["method_args"] = {"first_labeler": "labeled"}
    assert "loss_pl" not in build_method(cfg, INFO).training_step(_batch(), 0).logs
    cfg["model"]["init"] = str(pre)  # a pretrained encoder cannot label: round 0 stays labeled-only
    cfg["method_args"] = {}
    assert "loss_pl" not in build_method(cfg, INFO).training_step(_batch(), 0).logs
    cfg["method_args"] = {"first_labeler": "init"}
    with pytest.raises(SegsslError, match="first_labeler=init"):
        build_method(cfg, INFO)


# ---------------------------------------------------------------- Pi-model and Temporal Ensembling


def test_pi_model_consistency_is_zero_without_noise_and_positive_with_it():
    b = _batch()
    quiet = _method("pi_model", noise=0.0, dropout=0.0, flip=False).eval()
    assert float(quiet.training_step(b, 0).logs["loss_cons"]) == pytest.approx(0.0, abs=1e-10)
    noisy = _method("pi_model").eval()
    out = noisy.training_step(b, 1)  # ramp over 0.25 x 10 steps: t = 0.4
    assert float(out.logs["loss_cons"]) > 0
    assert out.logs["cons_weight"] == pytest.approx(12.5 * math.exp(-5 * 0.36))


def _te(**args):
    return _method("temporal_ensembling", grid=[2, 4], **args)


def test_te_first_update_stores_the_scaled_prediction_and_bias_correction_recovers_it():
    te = _te()
    te._grow(1)
    q = torch.tensor([0.2, 0.3, 0.5]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    full = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    te.update(torch.tensor([0]), full, q)
    # Z = (1 - 0.6) q = [0.08, 0.12, 0.2] -> uint8 round(255 Z) = [20, 31, 51]
    assert te.ensemble[0, :, 0, 0].tolist() == [20, 31, 51] and bool((te.updates == 1).all())
    target, avail = te.targets(torch.tensor([0]), full, 8, 8)
    assert bool(avail.all())
    expected = torch.tensor([20.0, 31.0, 51.0]) / 255 / 0.4
    assert torch.allclose(target[0, :, 3, 3], expected / expected.sum(), atol=1e-6)
    q2 = torch.tensor([0.6, 0.2, 0.2]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    te.update(torch.tensor([0]), full, q2)
    z2 = (0.6 * torch.tensor([20.0, 31.0, 51.0]) / 255 + 0.4 * torch.tensor([0.6, 0.2, 0.2])) * 255
    assert te.ensemble[0, :, 1, 2].tolist() == z2.round().tolist()  # [60, 51, 63]
    assert bool((te.updates == 2).all())


def test_te_updates_only_covered_cells_and_follows_flips():
    te = _te()
    te._grow(2)
    left_half = torch.tensor([[0.0, 0.0, 0.5, 1.0]])
    te.update(torch.tensor([0]), left_half, torch.full((1, 3, 8, 8), 1 / 3))
    assert te.updates[0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]]
    _, avail = te.targets(torch.tensor([0]), torch.tensor([[0.5, 0.0, 1.0, 1.0]]), 8, 8)
    assert not avail.any()  # the right half of the image was never predicted
    _, avail = te.targets(torch.tensor([0]), torch.tensor([[0.0, 0.0, 1.0, 1.0]]), 8, 16)
    assert bool(avail[0, :, :4].all()) and not avail[0, :, 8:].any()
    # a flipped full-image crop whose left half says class 0 and right half class 2
    pred = torch.zeros(1, 3, 8, 8)
    pred[0, 0, :, :4], pred[0, 2, :, 4:] = 1.0, 1.0
    te.update(torch.tensor([1]), torch.tensor([[1.0, 0.0, 0.0, 1.0]]), pred)
    assert te.ensemble[1].argmax(0).tolist() == [[2, 2, 0, 0], [2, 2, 0, 0]]  # image left = crop right


def test_te_buffers_grow_and_reload_into_a_fresh_method():
    te = _te()
    te._grow(5)
    te.update(torch.tensor([4]), torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.full((1, 3, 4, 4), 1 / 3))
    fresh = _te()
    fresh.load_state_dict(te.state_dict())  # strict: the saved size is taken before the shape check
    assert fresh.ensemble.shape == (5, 3, 2, 4) and torch.equal(fresh.ensemble, te.ensemble)
    assert torch.equal(fresh.updates, te.updates)


def test_te_training_step_has_no_target_on_first_visit_and_one_on_the_second():
    te = _te()
    b = _batch(views=True)
    first = te.training_step(b, 0)
    assert float(first.logs["target_coverage"]) == 0.0 and float(first.logs["loss_cons"]) == 0.0
    second = te.training_step(b, 1)
    assert float(second.logs["target_coverage"]) == 1.0 and float(second.logs["loss_cons"]) > 0
    second.loss.backward()
    assert te.model.head.weight.grad is not None


# ---------------------------------------------------------------- teacher-student methods


def test_mean_teacher_trains_the_student_and_evaluates_the_ema_teacher():
    m = _method("mean_teacher")
    assert m.segmenter() is m.teacher.module
    out = m.training_step(_batch(), 3)
    out.loss.backward()
    assert all(p.grad is None for p in m.teacher.parameters())
    assert m.model.head.weight.grad is not None
    t0, s0 = m.teacher.module.head.weight.clone(), m.model.head.weight.detach().clone()
    with torch.no_grad():
        m.model.head.weight.add_(1.0)
    m.after_step(1000, 1000)
    assert torch.allclose(m.teacher.module.head.weight, 0.99 * t0 + 0.01 * (s0 + 1.0), atol=1e-6)


@pytest.mark.parametrize("mask", ["cutmix", "cutout"])
def test_cutmix_consistency_is_gated_by_teacher_confidence(mask):
    b = _batch()
    none = _method("cutmix", mask=mask, threshold=1.0).training_step(b, 0)
    assert float(none.logs["loss_cons"]) == 0.0 and float(none.logs["conf_ratio"]) == 0.0
    every = _method("cutmix", mask=mask, threshold=0.0, conf_per_pixel=True).training_step(b, 0)
    assert float(every.logs["loss_cons"]) > 0 and float(every.logs["conf_ratio"]) == 1.0
    assert _method("cutmix", mask=mask).segmenter() is not None


def test_classmix_weight_is_the_share_of_confident_pixels():
    b = _batch()
    zero = _method("classmix", threshold=1.0).training_step(b, 0)
    assert float(zero.logs["loss_unsup"]) == 0.0
    full = _method("classmix", threshold=0.0)
    out = full.training_step(b, 0)
    assert float(out.logs["conf_ratio"]) == 1.0 and float(out.logs["loss_unsup"]) > 0
    assert full.segmenter() is full.model


# ---------------------------------------------------------------- CPS, FixMatch, UniMatch


def test_cps_networks_differ_and_the_cps_term_crosses_their_argmaxes():
    m = _method("cps").eval()
    assert not torch.equal(m.model.head.weight, m.model2.head.weight)
    b = _batch()
    out = m.training_step(b, 0)
    x = torch.cat((b["labeled"]["image"], b["unlabeled"]["image"]))
    valid = torch.cat((b["labeled"]["label"] != 255, torch.ones(2, 32, 32, dtype=torch.bool)))
    with torch.no_grad():
        l1, l2 = m.model(x), m.model2(x)
    ce = F.cross_entropy(l1, l2.argmax(1), reduction="none") + F.cross_entropy(l2, l1.argmax(1), reduction="none")
    assert float(out.logs["loss_cps"]) == pytest.approx(float(ce[valid].mean()), rel=1e-5)
    assert float(out.loss) == pytest.approx(float(out.logs["loss_sup"]) + 1.5 * float(out.logs["loss_cps"]), rel=1e-5)
    ramped = _method("cps", rampup=0.5).eval().training_step(b, 2)  # t = 2 / (0.5 x 10 steps) = 0.4
    w = 1.5 * math.exp(-5 * 0.6**2)
    assert float(ramped.logs["cps_weight"]) == pytest.approx(w)
    assert float(ramped.loss) == pytest.approx(float(ramped.logs["loss_sup"]) + w * float(ramped.logs["loss_cps"]))
    m.train()
    mixed = _method("cps", cutmix=True).training_step(b, 0)
    mixed.loss.backward()
    assert float(mixed.logs["loss_cps"]) > 0


def test_fixmatch_loss_is_half_the_sum_and_respects_threshold_and_padding():
    b = _batch()
    out = _method("fixmatch", threshold=0.0).training_step(b, 0)
    assert float(out.loss) == pytest.approx((float(out.logs["loss_sup"]) + float(out.logs["loss_unsup"])) / 2)
    assert float(out.logs["loss_unsup"]) > 0
    assert float(_method("fixmatch", threshold=1.0).training_step(b, 0).logs["loss_unsup"]) == 0.0
    b["unlabeled"]["valid"] = torch.zeros(2, 32, 32, dtype=torch.bool)  # all padding: nothing to learn
    assert float(_method("fixmatch", threshold=0.0).training_step(b, 0).logs["loss_unsup"]) == 0.0


def test_class_balanced_keep_matches_hand_computed_cbst_thresholds():
    labels = torch.tensor([[0, 0, 0, 0, 1, 1, 2]])
    conf = torch.tensor([[0.99, 0.97, 0.6, 0.5, 0.7, 0.4, 0.3]])
    # class 0: top ceil(0.5*4)=2 -> k=0.97, capped at 0.95; class 1: top 1 of 2 -> 0.7; class 2: its one pixel
    keep = class_balanced_keep(labels, conf, 3, portion=0.5, cap=0.95)
    assert keep.tolist() == [[1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]]
    # the cap: class 0's top 1 (0.99) is above tau, so everything above tau is still kept
    assert class_balanced_keep(labels, conf, 3, portion=0.25, cap=0.95)[0, :4].tolist() == [1.0, 1.0, 0.0, 0.0]
    # ties at the class threshold are all kept; a class absent from the batch changes nothing
    tied = class_balanced_keep(torch.zeros(1, 3, dtype=torch.long), torch.tensor([[0.5, 0.5, 0.2]]), 4, 0.34, 0.95)
    assert tied.tolist() == [[1.0, 1.0, 0.0]]


def test_fixmatch_and_unimatch_class_balanced_mask_keeps_what_a_fixed_threshold_drops():
    b = _batch()
    assert float(_method("fixmatch", threshold=1.0).training_step(b, 0).logs["conf_ratio"]) == 0.0
    cb = _method("fixmatch", threshold=1.0, class_balanced_portion=1.0).training_step(b, 0)
    assert float(cb.logs["conf_ratio"]) == 1.0  # portion 1: every predicted pixel of every class
    assert float(cb.logs["loss_unsup"]) > 0
    half = _method("unimatch", threshold=1.0, class_balanced_portion=0.5).training_step(b, 0)
    assert 0.4 < float(half.logs["conf_ratio"]) < 0.7 and float(half.logs["loss_fp"]) > 0
    with pytest.raises(SegsslError):
        _method("fixmatch", class_balanced_portion=1.5)


def test_unimatch_combines_its_four_terms_as_the_paper():
    m = _method("unimatch", threshold=0.0)
    out = m.training_step(_batch(), 0)
    lg = {k: float(v) for k, v in out.logs.items()}
    assert float(out.loss) == pytest.approx(
        (lg["loss_sup"] + 0.25 * lg["loss_s1"] + 0.25 * lg["loss_s2"] + 0.5 * lg["loss_fp"]) / 2, rel=1e-6
    )
    assert min(lg["loss_s1"], lg["loss_s2"], lg["loss_fp"]) > 0
    out.loss.backward()
    assert m.model.encoder.conv1.weight.grad is not None


def test_cps_from_a_checkpoint_shares_the_encoder_but_not_the_decoder(tmp_path):
    src = _method("supervised").model
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.5)  # unlike any fresh initialisation
    ck = tmp_path / "init.pt"
    torch.save({"model_state": src.state_dict(), "config": {}}, ck)
    cfg = load_config(None, ["method=cps", *TINY, f"model.init={ck}"])
    m = build_method(cfg, INFO)
    for k, v in src.state_dict().items():
        assert torch.equal(m.model.state_dict()[k], v)  # f1: the whole checkpoint
        if k.startswith("encoder."):
            assert torch.equal(m.model2.state_dict()[k], v)
    assert not torch.equal(m.model2.head.weight, src.head.weight)  # f2: its own decoder and head
    dec = [k for k in src.state_dict() if k.startswith("decoder.") and k.endswith("weight")]
    assert dec and all(not torch.equal(m.model2.state_dict()[k], src.state_dict()[k]) for k in dec)
    cfg["method_args"] = {"init2_parts": "all"}
    same = build_method(cfg, INFO)
    assert all(torch.equal(same.model2.state_dict()[k], v) for k, v in src.state_dict().items())


def test_unlabeled_class_weights_weight_each_pseudo_labelled_pixel_by_its_class():
    logits = torch.zeros(1, 3, 1, 4)  # uniform prediction: CE = ln 3 at every pixel
    labels = torch.tensor([[[0, 1, 2, 0]]])
    keep, valid = torch.tensor([[[1.0, 1.0, 1.0, 0.0]]]), torch.ones(1, 1, 4)
    weighted = _method("fixmatch", unlabeled_class_weights=True)
    # no train.class_weights: weight 1, the paper's loss (3 kept pixels of 4 valid)
    assert float(weighted.unsup_ce(logits, labels, keep, valid)) == pytest.approx(3 / 4 * math.log(3))
    weighted.set_class_weights(torch.tensor([2.0, 0.5, 1.0]))
    # kept pixels weigh 2, 0.5, 1; the unkept class-0 pixel stays 0; the mean is over the 4 valid pixels
    assert float(weighted.unsup_ce(logits, labels, keep, valid)) == pytest.approx(3.5 / 4 * math.log(3))
    paper = _method("unimatch")
    paper.set_class_weights(torch.tensor([2.0, 0.5, 1.0]))
    assert float(paper.unsup_ce(logits, labels, keep, valid)) == pytest.approx(3 / 4 * math.log(3))


def test_weak_to_strong_photometric_probabilities_switch_the_strong_colour_ops_off():
    x = renormalize(torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)))  # a real image
    labels, keep = torch.zeros(4, 16, 16, dtype=torch.long), torch.ones(4, 16, 16)
    valid = torch.ones(4, 16, 16)
    off = _method("unimatch", strong_jitter_p=0.0, strong_gray_p=0.0, strong_blur_p=0.0, cutmix_p=0.0)
    assert (off.strong.jitter_p, off.strong.gray_p, off.strong.blur_p) == (0.0, 0.0, 0.0)
    xs = off.strong_view(x, labels, keep, valid)[0]
    assert torch.allclose(xs, x, atol=1e-5)  # no CutMix, no colour: the weak crop itself
    paper = _method("fixmatch")
    assert (paper.strong.jitter_p, paper.strong.gray_p, paper.strong.blur_p) == (0.8, 0.2, 0.5)
    with pytest.raises(SegsslError, match="strong_gray_p"):
        _method("fixmatch", strong_gray_p=2.0)
