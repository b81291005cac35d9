"""CCT, AEL, GCT, Zhao et al. contrastive and self-correcting networks as methods: what each recipe
promises (gradient paths, stage switches, adaptive augmentations) and a short CLI run of every config."""

from __future__ import annotations

import csv
import inspect
import json
import math
from pathlib import Path

import pytest
import torch

import segssl.training.data as training_data
from conftest import tiny_overrides
from segssl.cli import main
from segssl.config import load_config
from segssl.data.boxes import batch_boxes_map, boxes_map_from_mask
from segssl.data.generated import GENERATED_INFO
from segssl.errors import SegsslError
from segssl.methods.base import build_method

ROOT = Path(__file__).resolve().parents[3]
TINY_MODEL = ["model.encoder_depth=3", "model.decoder_channels=[32,16,16]", "train.max_steps=10"]
CCT_SMALL = {
    k: 1
    for k in (
        "vat",
        "dropout",
        "cutout",
        "context_masking",
        "object_masking",
        "feature_drop",
        "feature_noise",
    )
}


def make(method: str, **args):
    over = [*TINY_MODEL, f"method={method}", *(f"method_args.{k}={v}" for k, v in args.items())]
    return build_method(load_config(None, over), GENERATED_INFO)


def batch(nl: int = 3, nu: int = 4, size: int = 32, seed: int = 0, boxes: bool = False) -> dict:
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, 6, (nl, size, size), generator=g)
    lab[:, :3] = 255  # some ignored rows, like crop padding
    hidden = torch.randint(0, 6, (nu, size // 4, size // 4), generator=g)
    hidden = hidden.repeat_interleave(4, 1).repeat_interleave(4, 2)  # blobs, so boxes are not the whole crop
    out = {
        "labeled": {
            "image": torch.randn(nl, 3, size, size, generator=g),
            "label": lab,
            "index": torch.arange(nl),
            "stem": [f"l{i}" for i in range(nl)],
        },
        "unlabeled": {
            "image": torch.randn(nu, 3, size, size, generator=g),
            "index": torch.arange(nu),
            "stem": [f"u{i}" for i in range(nu)],
        },
    }
    if boxes:
        out["unlabeled"]["boxes_map"] = batch_boxes_map(hidden, 6, 255, background=0)
    return out


def grads(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


# ------------------------------------------------------------------------------------------ CCT


def test_cct_unsupervised_loss_trains_aux_decoders_and_encoder_not_main_head():
    torch.manual_seed(0)
    m = make("cct", unsup_weight=1.0, rampup=0.0, **CCT_SMALL)
    assert len(m.aux) == 7
    b = batch()
    b["labeled"]["label"][:] = 255  # no labeled pixel: the loss is the consistency term only
    out = m.training_step(b, 0)
    out.loss.backward()
    assert float(out.logs["loss_unsup"]) > 0
    # the target is the main decoder's detached prediction: nothing flows into the head or decoder
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in m.model.head.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in m.model.decoder.parameters())
    # every auxiliary decoder (the VAT one included) and the deepest encoder stage learn from it
    for dec in m.aux:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in dec.parameters()), dec.kind
    assert m.model.encoder.layer2[-1].conv2.weight.grad.abs().sum() > 0


def test_cct_weight_ramps_up_over_the_configured_share():
    m = make("cct", unsup_weight=30.0, rampup=0.5, **CCT_SMALL)  # 10 steps: ramp over 5
    b = batch()
    w = [m.training_step(b, s).logs["w_unsup"] for s in (0, 5, 9)]
    assert w[0] == pytest.approx(30 * math.exp(-5.0))
    assert w[1] == pytest.approx(30.0) and w[2] == pytest.approx(30.0)


def test_cct_rejects_no_decoders_and_bad_level():
    with pytest.raises(SegsslError, match="at least one auxiliary decoder"):
        make("cct", **{k: 0 for k in CCT_SMALL})
    with pytest.raises(SegsslError, match="aux_level"):
        make("cct", aux_level=7, **CCT_SMALL)
    with pytest.raises(SegsslError, match="unknown"):
        make("cct", vatt=1)


# ------------------------------------------------------------------------------------------ AEL


def test_ael_bank_tracks_labeled_confidence_and_teacher_is_exported():
    torch.manual_seed(0)
    m = make("ael", copy_paste=False)
    assert m.segmenter() is m.teacher.module
    b = batch()
    xl, yl = b["labeled"]["image"], b["labeled"]["label"]
    m.training_step(b, 0)
    # first observation: the bank is the student's mean true-class probability per class
    with torch.no_grad():
        prob = m.model(xl).softmax(1)
    want = torch.stack([prob[:, c][yl == c].mean() for c in range(6)])
    assert bool(m.seen.all())
    assert torch.allclose(m.bank, want, atol=1e-5)
    m.training_step(b, 1)
    # second observation of the same values: the EMA keeps them
    assert torch.allclose(m.bank, want, atol=1e-5)


def test_ael_unsupervised_weight_ramps_up():
    b = batch()
    plain = make("ael", copy_paste=False, cutmix=False, sampling=False).eval()
    out = plain.training_step(b, 2)
    unsup = float(out.logs["loss_unsup"]) + float(out.logs["loss_cons_labeled"])
    assert float(out.loss) == pytest.approx(float(out.logs["loss_sup"]) + unsup, rel=1e-5)
    ramped = make("ael", copy_paste=False, cutmix=False, sampling=False, rampup=0.5).eval()
    ramped.load_state_dict(plain.state_dict())
    r = ramped.training_step(b, 2)  # t = 2 / (0.5 x 10 steps) = 0.4: weight exp(-5 x 0.6^2)
    assert float(r.loss) == pytest.approx(float(r.logs["loss_sup"]) + math.exp(-5 * 0.36) * unsup, rel=1e-5)
    with pytest.raises(SegsslError, match="rampup"):
        make("ael", rampup=1.5)


def test_ael_adaptive_cutmix_favours_under_performing_classes():
    torch.manual_seed(0)
    m = make("ael")
    pred = torch.zeros(3, 32, 32, dtype=torch.long)
    pred[1, 4:10, 20:30] = 3  # only crop 1 holds class 3, as one 6x10 component

    def hits(bank: list[float], trials: int = 200) -> int:
        m.bank.copy_(torch.tensor(bank))
        m.seen.fill_(True)
        n = 0
        for _ in range(trials):
            idx, region = m._adaptive_cutmix_masks(pred)
            for i in (0, 2):
                if int(idx[i]) == 1 and int(region[i].sum()) == 60:  # crop 1's class-3 component box
                    assert region[i, 4:10, 20:30].all()
                    n += 1
        return n

    # class 3 is drawn with softmax(1 - Conf): e / (e + 5 e^0.01) = 0.350 when it under-performs,
    # 1/6 when all classes are equal; 400 draws each, bounds at 4 standard deviations
    tilted = hits([0.99, 0.99, 0.99, 0.0, 0.99, 0.99])
    flat = hits([0.99] * 6)
    assert 102 <= tilted <= 178
    assert 37 <= flat <= 97


def test_ael_copy_paste_pastes_sampled_classes_with_their_labels():
    torch.manual_seed(0)
    m = make("ael", copy_paste_prob=1.0)
    img = torch.zeros(2, 3, 8, 8)
    lab = torch.zeros(2, 8, 8, dtype=torch.long)
    src_img = torch.ones(2, 3, 8, 8)
    src_lab = torch.full((2, 8, 8), 2)
    src_lab[:, :, :4] = 5
    out_i, out_l, pasted = m._copy_paste(img, lab, src_img, src_lab, torch.tensor([5]))
    assert torch.equal(pasted[:, :, :4], torch.ones(2, 8, 4, dtype=torch.bool)) and not pasted[:, :, 4:].any()
    assert (out_l[:, :, :4] == 5).all() and (out_l[:, :, 4:] == 0).all()
    assert (out_i[:, :, :, :4] == 1).all() and (out_i[:, :, :, 4:] == 0).all()


# ------------------------------------------------------------------------------------------ GCT


def test_gct_flaw_detector_and_task_models_have_disjoint_gradient_paths():
    b = batch()

    def run(**args):
        torch.manual_seed(0)
        m = make("gct", fd_channels=8, rampup=0.0, **args)
        out = m.training_step(b, 5)
        out.loss.backward()
        return m, out

    m0, _ = run(fd_weight=0.0)
    # without the flaw-detector loss, nothing reaches F (L_fc used detached copies of its weights)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in m0.flaw.parameters())
    m1, out = run(fd_weight=10.0)
    assert float(out.logs["loss_fd"]) > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m1.flaw.parameters())
    # ... and the flaw-detector loss does not change the task models' gradients
    g0, g1 = grads(m0.model), grads(m1.model)
    assert g0.keys() == g1.keys()
    assert all(torch.allclose(g0[k], g1[k], atol=1e-6) for k in g0)
    # the flaw detector gets its own learning rate group without weight decay
    groups = m1.param_groups()
    assert groups[1]["lr"] == pytest.approx(1e-4) and groups[1]["weight_decay"] == 0.0
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in m1.flaw.parameters()}


def test_gct_modes_select_constraints():
    b = batch()
    torch.manual_seed(0)
    logs = make("gct", fd_channels=8, mode="dc").training_step(b, 5).logs
    assert "loss_dc" in logs and "loss_fc" not in logs
    logs = make("gct", fd_channels=8, mode="fc").training_step(b, 5).logs
    assert "loss_fc" in logs and "loss_dc" not in logs
    with pytest.raises(SegsslError, match="mode"):
        make("gct", mode="both")


# ------------------------------------------------------------------------------- Zhao et al.


def test_zhao_inputs_follow_semi_flag():
    assert make("zhao_contrastive").inputs == ("labeled",)
    assert make("zhao_contrastive", semi=True).inputs == ("labeled", "unlabeled")


def test_zhao_stage_one_is_purely_contrastive_then_fresh_head():
    torch.manual_seed(0)
    m = make("zhao_contrastive", pretrain_fraction=0.5)  # 10 steps: 5 of pretraining
    b = batch()
    out = m.training_step(b, 0)
    out.loss.backward()
    assert out.logs["stage"] == 1.0
    assert all(p.grad is None for p in m.model.head.parameters())  # the head is not trained in stage 1
    assert m.probe.weight.grad is not None and m.proj.net[0].weight.grad is not None
    m.after_step(0, 10)
    assert torch.equal(m.model.head.weight, m.probe.weight)  # validation sees the online classifier
    m.zero_grad()
    out = m.training_step(b, 5)
    out.loss.backward()
    assert out.logs["stage"] == 2.0 and int(m.stage) == 1
    assert not torch.equal(m.model.head.weight, m.probe.weight)  # a fresh classifier
    assert m.model.head.weight.grad is not None and m.proj.net[0].weight.grad is None
    m.after_step(5, 10)
    assert not torch.equal(m.model.head.weight, m.probe.weight)  # no more copying


def test_zhao_semi_uses_only_confident_pseudo_labels():
    torch.manual_seed(0)
    m = make("zhao_contrastive", semi=True, threshold=1.0)
    logs = m.training_step(batch(), 0).logs
    assert float(logs["pseudo_ratio"]) == 0.0 and float(logs["loss_contrast_unlabeled"]) == 0.0
    m = make("zhao_contrastive", semi=True, threshold=0.0)
    logs = m.training_step(batch(), 0).logs
    assert float(logs["pseudo_ratio"]) == 1.0 and float(logs["loss_contrast_unlabeled"]) > 0


# ------------------------------------------------------------------------- self-correcting


def test_self_correcting_phases_and_frozen_ancillary():
    torch.manual_seed(0)
    m = make("self_correcting", ancillary_fraction=0.3)  # 10 steps: 3 ancillary steps
    assert m.needs_weak_boxes and m.segmenter() is m.model
    b = batch(boxes=True)
    out = m.training_step(b, 0)
    out.loss.backward()
    assert "loss_ancillary" in out.logs and "loss_weak" not in out.logs
    assert any(p.grad is not None for p in m.ancillary.parameters())
    m.zero_grad(set_to_none=True)
    out = m.training_step(b, 3)
    out.loss.backward()
    assert out.logs["alpha"] == pytest.approx(30.0) and float(out.logs["loss_weak"]) > 0
    assert all(p.grad is None for p in m.ancillary.parameters())  # frozen after its phase
    assert not m.ancillary.training
    assert m.training_step(b, 9).logs["alpha"] == pytest.approx(30.0 + (0.5 - 30.0) * 6 / 7)


def test_self_correcting_conv_trains_corrector_on_held_out_half():
    torch.manual_seed(0)
    m = make("self_correcting", correction="conv", conv_hidden=8, ancillary_fraction=0.3)
    b = batch(nl=4, boxes=True)
    even, odd = m._halves(b["labeled"])
    assert even.tolist() == [True, False, True, False] and odd.tolist() == [False, True, False, True]
    out = m.training_step(b, 5)
    out.loss.backward()
    assert float(out.logs["loss_corrector"]) > 0
    assert all(p.grad is not None for p in m.corrector.parameters())


def test_self_correcting_needs_boxes_after_the_ancillary_phase():
    m = make("self_correcting", ancillary_fraction=0.0)
    with pytest.raises(SegsslError, match="boxes_map"):
        m.training_step(batch(boxes=False), 0)
    with pytest.raises(SegsslError, match="correction"):
        make("self_correcting", correction="quadratic")


def test_self_correcting_labeled_boxes_follow_the_spec():
    m = make("self_correcting", background="null")
    b = batch()
    spec = m.weak_box_spec()
    assert spec == {"num_classes": 6, "ignore_index": 255, "background": None, "min_area": 1}
    got = m._labeled_boxes(b["labeled"])
    want = torch.stack([boxes_map_from_mask(y, **spec) for y in b["labeled"]["label"]])
    assert torch.equal(got, want)


# ------------------------------------------------------------------------ CLI, every config


def _patch_weak_boxes(monkeypatch, background):
    """Until the data module derives `boxes_map` itself (see data/boxes.py), derive it here the same way."""
    if "weak_boxes" in inspect.signature(training_data.SegDataModule.__init__).parameters:
        return
    base = training_data._Unlabeled

    class WithBoxes(base):
        def __init__(self, source, items, transform, cache, *args, **kwargs):
            super().__init__(source, items, transform, cache, *args, **kwargs)
            for ds in self.datasets:
                ds.labels = True
            self.spec = {
                "num_classes": source.info.num_classes,
                "ignore_index": source.info.ignore_index,
                "background": background,
                "min_area": 1,
            }

        def __getitem__(self, i):
            out = super().__getitem__(i)
            if "label" in out:
                out["boxes_map"] = boxes_map_from_mask(out.pop("label"), **self.spec)
            return out

    monkeypatch.setattr(training_data, "_Unlabeled", WithBoxes)


CLI_CASES = {  # config, extra overrides (tiny sizes), a train/ log only the method's own term writes
    "cct": ("cct.yaml", {f"method_args.{k}": v for k, v in CCT_SMALL.items()}, "loss_unsup"),
    "ael": ("ael.yaml", {}, "loss_unsup"),
    "gct": ("gct.yaml", {"method_args.fd_channels": 8}, "loss_dc"),
    "zhao_contrastive": (
        "zhao_contrastive.yaml",
        {"method_args.semi": "true", "method_args.threshold": 0.0},
        "loss_contrast_unlabeled",
    ),
    "self_correcting": ("self_correcting.yaml", {"method_args.ancillary_fraction": 0.5}, "loss_weak"),
}
FAST = {"train.max_steps": 3, "train.val_every_steps": 3, "train.epoch_steps": 3, "train.log_every_steps": 1}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_train_every_config(case, tmp_path, monkeypatch):
    cfg_name, extra, logged = CLI_CASES[case]
    if cfg_name == "self_correcting.yaml":
        _patch_weak_boxes(monkeypatch, background=None)
    out = tmp_path / "run"
    sets = sum((["--set", o] for o in tiny_overrides(**FAST, **extra)), [])
    rc = main(
        [
            "train",
            "--config",
            str(ROOT / "configs" / "semi" / cfg_name),
            "--labeled",
            "1/4",
            "--out",
            str(out),
            *sets,
        ]
    )
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["miou"] <= 100.0 and metrics["num_images"] > 0
    rows = list(csv.DictReader((out / "logs" / "csv" / "metrics.csv").open()))
    values = [float(r[f"train/{logged}"]) for r in rows if r.get(f"train/{logged}")]
    assert values and all(math.isfinite(v) for v in values)  # the method's own term really ran
    assert (out / "splits" / "unlabeled.txt").read_text().split()
