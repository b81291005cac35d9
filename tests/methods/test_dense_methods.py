"""DenseCL and PASS alignment as methods: momentum encoder really used, queues, gather across processes,
deep-to-shallow gradient flow, and a short pretraining run through the CLI."""

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from conftest import tiny_overrides
from segssl.cli import main
from segssl.config import load_config
from segssl.data.generated import GENERATED_INFO
from segssl.errors import SegsslError
from segssl.methods.base import build_method
from segssl.models.checkpoint import read_checkpoint
from segssl.models.segmodel import build_model

TINY_MODEL = ["model.encoder_depth=3", "model.decoder_channels=[32,16,16]"]


def make(method: str, **args):
    over = [*TINY_MODEL, f"method={method}", *(f"method_args.{k}={v}" for k, v in args.items())]
    return build_method(load_config(None, over), GENERATED_INFO)


def views(batch: int = 4, seed: int = 0, size: int = 32) -> dict:
    g = torch.Generator().manual_seed(seed)
    box1 = torch.tensor([[0.0, 0.0, 0.8, 0.8], [0.1, 0.1, 0.9, 1.0], [0.7, 0.0, 0.1, 0.6], [0.2, 0.3, 1.0, 1.0]])
    box2 = torch.tensor([[0.2, 0.1, 1.0, 0.9], [0.9, 0.0, 0.2, 0.7], [0.0, 0.2, 0.7, 0.9], [0.0, 0.0, 0.6, 0.7]])
    return {
        "view1": torch.randn(batch, 3, size, size, generator=g),
        "view2": torch.randn(batch, 3, size, size, generator=g),
        "box1": box1[:batch],
        "box2": box2[:batch],
        "index": torch.arange(batch),
    }


DENSECL_ARGS = {"queue_size": 16, "hidden": 64, "dim": 16, "grid": 4}


def queue_state(m):
    return m.queue_global.clone(), m.queue_dense.clone(), m.queue_ptr.clone()


def restore(m, state):
    m.queue_global.copy_(state[0])
    m.queue_dense.copy_(state[1])
    m.queue_ptr.copy_(state[2])


# ------------------------------------------------------------------------------------ DenseCL


def test_densecl_keys_come_from_the_momentum_encoder():
    torch.manual_seed(0)
    m = make("densecl", **DENSECL_ARGS)
    v = views()
    q0 = queue_state(m)
    base = float(m.ssl_step(v, 0).loss)
    restore(m, q0)
    assert float(m.ssl_step(v, 0).loss) == pytest.approx(base, rel=1e-6)  # deterministic given the queue
    # perturbing only the momentum (key) encoder must change the loss: keys are computed with it
    for key_part in (m.key_model, m.key_dense):
        saved = [p.clone() for p in key_part.parameters()]
        with torch.no_grad():
            for p in key_part.parameters():
                p.add_(0.5 * torch.randn_like(p))
        restore(m, q0)
        changed = float(m.ssl_step(v, 0).loss)
        assert abs(changed - base) > 1e-3, type(key_part.module).__name__
        with torch.no_grad():
            for p, s in zip(key_part.parameters(), saved, strict=True):
                p.copy_(s)


def test_densecl_gradients_reach_only_the_query_side():
    torch.manual_seed(0)
    m = make("densecl", **DENSECL_ARGS)
    out = m.ssl_step(views(), 0)
    out.loss.backward()
    assert all(p.grad is None for p in m.key_model.parameters())
    assert all(p.grad is None for p in m.key_global.parameters())
    enc = next(m.model.encoder.parameters())
    assert enc.grad is not None and enc.grad.abs().sum() > 0
    assert m.proj_dense[0].weight.grad.abs().sum() > 0 and m.proj_global[0].weight.grad.abs().sum() > 0
    lam = 0.5
    assert float(out.loss) == pytest.approx(
        (1 - lam) * float(out.logs["loss_global"]) + lam * float(out.logs["loss_dense"]), rel=1e-6
    )


def test_densecl_enqueues_normalised_keys_with_wraparound():
    torch.manual_seed(0)
    m = make("densecl", queue_size=6, hidden=64, dim=16, grid=4)
    v = views()
    old = m.queue_global.clone()
    k_g, k_grid, _ = m.keys(v["view2"])
    m.ssl_step(v, 0)
    assert torch.allclose(m.queue_global[:4], F.normalize(k_g, dim=1), atol=1e-6)
    assert torch.allclose(m.queue_dense[:4], F.normalize(k_grid.mean(1), dim=1), atol=1e-6)
    assert torch.equal(m.queue_global[4:], old[4:])
    assert int(m.queue_ptr) == 4
    m.ssl_step(v, 1)  # 4 more keys: slots 4, 5, then wrap to 0, 1
    assert int(m.queue_ptr) == 2
    assert torch.allclose(m.queue_global[4:6], F.normalize(k_g[:2], dim=1), atol=1e-6)
    assert torch.allclose(m.queue_global[0:2], F.normalize(k_g[2:], dim=1), atol=1e-6)
    assert {"queue_global", "queue_dense", "queue_ptr"} <= set(m.state_dict())


def test_densecl_momentum_update():
    torch.manual_seed(0)
    m = make("densecl", momentum=0.9, **{k: v for k, v in DENSECL_ARGS.items()})
    online = next(m.proj_global.parameters())
    key = next(m.key_global.parameters())
    with torch.no_grad():
        online.add_(1.0)
    before = key.clone()
    m.after_step(0, 10)
    assert torch.allclose(key, 0.9 * before + 0.1 * online.detach(), atol=1e-6)
    cos = make("densecl", momentum_schedule="cosine", **DENSECL_ARGS)
    assert cos.momentum(0, 10) == pytest.approx(0.99)
    assert cos.momentum(10, 10) == pytest.approx(1.0)


def test_densecl_encoder_dense_source_and_bad_args():
    torch.manual_seed(0)
    m = make("densecl", dense_source="encoder", **DENSECL_ARGS)
    assert torch.isfinite(m.ssl_step(views(), 0).loss)
    with pytest.raises(SegsslError, match="queue_sise"):
        make("densecl", queue_sise=8)
    with pytest.raises(SegsslError, match="dense_source"):
        make("densecl", dense_source="middle")


# ------------------------------------------------------------------ gather across 2 processes


def _gather_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        m = make("densecl", **DENSECL_ARGS).eval()  # eval: BatchNorm per sample, so halves are comparable
        losses = []
        for step in range(2):
            v = views(seed=step)
            half = {k: t[rank * 2 : (rank + 1) * 2] for k, t in v.items()}
            with torch.no_grad():
                losses.append(float(m.ssl_step(half, step).loss))
        torch.save(
            {
                "losses": losses,
                "queue_global": m.queue_global,
                "queue_dense": m.queue_dense,
                "ptr": m.queue_ptr,
            },
            Path(out_dir) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_densecl_gathered_queue_matches_single_process(tmp_path):
    # fork (where available) skips re-importing torch/smp in each child: seconds instead of half a minute;
    # safe here because the parent runs single-threaded (conftest), so no OpenMP pool is forked mid-use
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(
        _gather_worker,
        args=(2, str(tmp_path / "init"), str(tmp_path)),
        nprocs=2,
        join=True,
        start_method=method,
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    torch.manual_seed(0)
    single = make("densecl", **DENSECL_ARGS).eval()
    losses = []
    for step in range(2):
        with torch.no_grad():
            losses.append(float(single.ssl_step(views(seed=step), step).loss))
    for step in range(2):  # DDP averages the per-process (equal-size) batch means
        mean = (ranks[0]["losses"][step] + ranks[1]["losses"][step]) / 2
        assert mean == pytest.approx(losses[step], abs=1e-5)
    for r in ranks:
        assert int(r["ptr"]) == 8
        assert torch.allclose(r["queue_global"], single.queue_global, atol=1e-5)
        assert torch.allclose(r["queue_dense"], single.queue_dense, atol=1e-5)
    # the second step's loss depends on the first step's gathered keys: the ranks' own halves alone
    # would give a different queue
    assert not torch.allclose(ranks[0]["queue_global"][2:4], single.queue_global[6:8])


# ---------------------------------------------------------------------------------------- PASS


def test_pass_align_loss_and_levels():
    torch.manual_seed(0)
    m = make("pass_align", grid=4, hidden=32, shallow="[-2, 0]", shallow_hidden=16)
    assert m.shallow_idx == [0, 1]
    deep, shallow = m.levels(torch.randn(2, 3, 32, 32))
    assert deep.shape[1] == m.model.feature_dim and [s.shape[1] for s in shallow] == [32, 16]
    out = m.ssl_step(views(), 0)
    assert float(out.logs["overlap_valid"]) == 1.0
    assert -1.0 <= float(out.logs["loss_p2p"]) <= 1.0
    total = float(out.logs["loss_p2p"]) + float(out.logs["loss_d2s"])
    assert float(out.loss) == pytest.approx(total, rel=1e-5)
    out.loss.backward()
    assert all(p.grad is not None for p in m.shallow_predictors.parameters())
    assert next(m.model.encoder.parameters()).grad.abs().sum() > 0
    # hooks are removed after each pass
    assert all(len(b._forward_hooks) == 0 for b in m.model.decoder.blocks)


def test_pass_align_deep_supervises_shallow_never_the_reverse():
    # the d2s targets are the deep projections under stop-gradient: the deep projector's gradient
    # must not depend on the d2s weight, while the backbone's does
    grads = {}
    for w in (0.0, 5.0):
        torch.manual_seed(0)
        m = make("pass_align", grid=4, hidden=32, shallow="[-2]", shallow_hidden=16, d2s_weight=w)
        m.ssl_step(views(), 0).loss.backward()
        grads[w] = (m.projector[0].weight.grad.clone(), next(m.model.encoder.parameters()).grad.clone())
    assert torch.allclose(grads[0.0][0], grads[5.0][0], atol=1e-7)
    assert not torch.allclose(grads[0.0][1], grads[5.0][1], atol=1e-7)


def test_pass_align_without_shallow_and_bad_levels():
    torch.manual_seed(0)
    m = make("pass_align", grid=4, hidden=32, shallow="[]")
    out = m.ssl_step(views(), 0)
    assert float(out.loss) == pytest.approx(float(out.logs["loss_p2p"]))
    assert "loss_d2s" not in out.logs
    with pytest.raises(SegsslError, match="deep level"):
        make("pass_align", shallow="[-1]")
    assert make("pass_align", grid=4, hidden=32).shallow_idx == [1]  # auto on a 3-block UNet: [-2]
    fpn = build_method(
        load_config(None, ["method=pass_align", "model.arch=fpn", "method_args.hidden=32"]), GENERATED_INFO
    )
    assert fpn.shallow_idx == [] and len(fpn.shallow_projectors) == 0
    with pytest.raises(SegsslError, match="no decoder block list"):
        build_method(
            load_config(None, ["method=pass_align", "model.arch=fpn", "method_args.shallow=[0]"]),
            GENERATED_INFO,
        )


def test_pass_align_masks_non_overlapping_views():
    torch.manual_seed(0)
    m = make("pass_align", grid=4, hidden=32, shallow="[]")
    v = views(batch=2)
    v["box1"] = torch.tensor([[0.0, 0.0, 0.3, 0.3], [0.0, 0.0, 0.3, 0.3]])
    v["box2"] = torch.tensor([[0.5, 0.5, 1.0, 1.0], [0.5, 0.5, 1.0, 1.0]])
    out = m.ssl_step(v, 0)
    assert float(out.loss) == 0.0 and float(out.logs["overlap_valid"]) == 0.0


# ------------------------------------------------------------------------------------- CLI e2e


@pytest.mark.parametrize(
    "config, extra",
    [
        ("configs/pretrain/densecl.yaml", ["method_args.queue_size=32", "method_args.hidden=64"]),
        ("configs/pretrain/pass_align.yaml", ["method_args.grid=6", "method_args.hidden=64"]),
    ],
)
def test_pretrain_cli(tmp_path, config, extra):
    out = tmp_path / "run"
    sets = sum((["--set", o] for o in [*tiny_overrides(), *extra]), [])
    assert main(["pretrain", "--config", config, "--out", str(out), *sets]) == 0
    entry = read_checkpoint(out / "checkpoints" / "last.ckpt")
    assert entry["kind"] == "pretrained" and entry["global_step"] == 4
    model = build_model(entry["config"]["model"], GENERATED_INFO.num_classes)
    model.load_state_dict(entry["model_state"])  # the exported state is exactly a SegModel
    if "densecl" in config:  # queues live in the training checkpoint, so a resumed run keeps them
        ck = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        assert int(ck["state_dict"]["method.queue_ptr"]) == (4 * 4) % 32
