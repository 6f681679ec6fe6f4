import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import dposer
from dposer.spec import layout
from dposer.core.model import NetConfig, ScoreNet
from dposer.core.prior import CheckpointError, Normalizer, load_prior, read_checkpoint, save_prior
from dposer.train.train import TrainConfig, TrainingData, train, validation_loss
from conftest import REPO, needs_data

TINY = REPO / "backend" / "dposer" / "configs" / "tiny.json"


def _state(path):
    tensors, _ = read_checkpoint(path)
    return {k: v for k, v in tensors.items() if k.startswith("net.")}


def test_hidden_parts_do_not_change_visible_outputs():
    torch.manual_seed(0)
    net = ScoreNet(NetConfig(body_width=32, hand_width=32, face_width=32, fusion_width=32, time_dim=16)).eval()
    torch.nn.init.normal_(net.fusion_out.weight, std=0.1)  # make the fusion path active
    x = torch.randn(5, 256)
    t = torch.rand(5)
    mask = torch.tensor([[True, False, False, True]]).expand(5, 4)
    y = x.clone()
    y[:, 63:153] = torch.randn(5, 90) * 10  # change only the hidden hands
    a, b = net(x, t, mask), net(y, t, mask)
    assert torch.allclose(a[:, :63], b[:, :63], atol=1e-6) and torch.allclose(a[:, 153:], b[:, 153:], atol=1e-6)
    # with the hands visible, the body output does depend on them (the fusion path)
    full = torch.ones(5, 4, dtype=torch.bool)
    assert not torch.allclose(net(x, t, full)[:, :63], net(y, t, full)[:, :63])


def test_shared_time_path_matches_per_row_times():
    torch.manual_seed(0)
    net = ScoreNet(NetConfig(body_width=32, hand_width=32, face_width=32, fusion_width=32, time_dim=16)).eval()
    torch.nn.init.normal_(net.fusion_out.weight, std=0.1)
    x = torch.randn(6, 256)
    t = torch.full((6,), 0.3)
    mask = torch.rand(6, 4) > 0.3
    with torch.no_grad():
        shared = net(x, t, mask)
        per_row = torch.cat([net(x[i : i + 1], t[i : i + 1], mask[i : i + 1]) for i in range(6)])
    assert torch.allclose(shared, per_row, atol=1e-5)


@needs_data
def test_a_few_steps_reduce_the_loss(tmp_path, data_root):
    cfg = TrainConfig.load(TINY)
    torch.manual_seed(0)
    val = TrainingData("val", cfg.limit, data_root)
    tr = TrainingData("train", cfg.limit, data_root).all()
    norm = Normalizer.fit(tr.vectors, tr.present)
    before = validation_loss(ScoreNet(cfg.net), norm, val)["mean"]
    cfg.steps = 60
    res = train(cfg, tmp_path / "run", seed=0, data_root=data_root, progress=False)
    after = res["history"][-1]["val"]["mean"]
    assert after < 0.9 * before, (before, after)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 60


@needs_data
def test_seed_determinism_and_resume(tmp_path, data_root):
    cfg = TrainConfig.load(TINY)
    train(cfg, tmp_path / "a", seed=3, data_root=data_root, progress=False)
    train(cfg, tmp_path / "b", seed=3, data_root=data_root, progress=False)
    train(cfg, tmp_path / "c", seed=4, data_root=data_root, progress=False)
    a, b, c = (_state(tmp_path / x / "prior.safetensors") for x in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    # interrupted after 15 of 30 steps, then resumed == 30 steps straight
    train(cfg, tmp_path / "r", seed=3, data_root=data_root, progress=False, stop_at=15)
    _, meta = read_checkpoint(tmp_path / "r" / "last.safetensors")
    assert meta["step"] == "15"
    train(cfg, tmp_path / "r", seed=3, data_root=data_root, progress=False, resume=True)
    r = _state(tmp_path / "r" / "prior.safetensors")
    assert all(torch.equal(r[k], a[k]) for k in a)
    _, meta = read_checkpoint(tmp_path / "r" / "last.safetensors")
    assert meta["step"] == "30"


@needs_data
def test_init_from_a_checkpoint(tmp_path, data_root):
    cfg = TrainConfig.load(TINY)
    cfg.steps = 5
    train(cfg, tmp_path / "a", seed=0, data_root=data_root, progress=False)
    cfg.lr = 0.0  # no update: the fine-tuned weights must equal the starting ones
    train(cfg, tmp_path / "b", seed=1, data_root=data_root, progress=False, init=str(tmp_path / "a" / "prior.safetensors"))
    a, b = _state(tmp_path / "a" / "prior.safetensors"), _state(tmp_path / "b" / "prior.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # an interrupted fine-tune resumes with the starting checkpoint's normaliser, not one refitted to the data
    cfg.lr, cfg.steps = 1e-3, 6
    start = load_prior(tmp_path / "a" / "prior.safetensors")  # a starting point whose normaliser the data's differs from
    init = str(tmp_path / "start.safetensors")
    save_prior(init, start.net, Normalizer(start.normalizer.mean + 0.1, start.normalizer.std * 1.5), start.info)
    train(cfg, tmp_path / "s", seed=1, data_root=data_root, progress=False, init=init)
    train(cfg, tmp_path / "r", seed=1, data_root=data_root, progress=False, init=init, stop_at=3)
    train(cfg, tmp_path / "r", seed=1, data_root=data_root, progress=False, init=init, resume=True)
    s, r = (read_checkpoint(tmp_path / x / "prior.safetensors")[0] for x in "sr")
    assert all(torch.equal(s[k], r[k]) for k in s)  # weights and normaliser
    wide = TrainConfig.load(TINY)
    wide.net.body_width = 96
    with pytest.raises(ValueError, match="differs"):
        train(wide, tmp_path / "c", seed=0, data_root=data_root, progress=False, init=str(tmp_path / "a" / "prior.safetensors"))


def test_checkpoint_round_trip_and_fp16(tmp_path):
    torch.manual_seed(0)
    net = ScoreNet(NetConfig(body_width=32, hand_width=32, face_width=32, fusion_width=32, time_dim=16))
    torch.nn.init.normal_(net.fusion_out.weight, std=0.05)
    norm = Normalizer(torch.randn(256) * 0.1, torch.rand(256) + 0.5)
    save_prior(tmp_path / "p.safetensors", net, norm, {"note": "test"})
    prior = load_prior(tmp_path / "p.safetensors")
    x, t = torch.randn(7, 256), torch.rand(7) * 0.9 + 0.05
    net.eval()
    with torch.no_grad():
        ref = net(x, t)
    assert torch.allclose(prior.eps(x, t), ref, atol=1e-6)
    assert prior.info == {"note": "test"}
    raw = torch.randn(7, 256)
    assert torch.allclose(prior.denormalize(prior.normalize(raw)), raw, atol=1e-5)
    save_prior(tmp_path / "h.safetensors", prior.net, prior.normalizer, dtype=torch.float16)
    half = load_prior(tmp_path / "h.safetensors")
    assert (tmp_path / "h.safetensors").stat().st_size < 0.6 * (tmp_path / "p.safetensors").stat().st_size
    assert torch.allclose(half.eps(x, t), ref, atol=2e-2)


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_prior(tmp_path / "missing.safetensors")
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_prior(tmp_path / "corrupt.safetensors")
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(3)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="not a dposer prior"):
        load_prior(tmp_path / "foreign.safetensors")
    torch.save({"state_dict": {}}, tmp_path / "model.ckpt")  # read safely as a would-be official checkpoint
    with pytest.raises(CheckpointError, match="not a DPoser-X Lightning checkpoint"):
        load_prior(tmp_path / "model.ckpt")
    # right format, wrong network shapes
    net = ScoreNet(NetConfig(body_width=32, hand_width=32, face_width=32, fusion_width=32, time_dim=16))
    save_prior(tmp_path / "p.safetensors", net, Normalizer(torch.zeros(256), torch.ones(256)))
    from safetensors.torch import load_file
    from safetensors import safe_open
    with safe_open(str(tmp_path / "p.safetensors"), "pt") as f:
        meta = f.metadata()
    meta["net_config"] = json.dumps({**json.loads(meta["net_config"]), "body_width": 64})
    save_file(load_file(str(tmp_path / "p.safetensors")), str(tmp_path / "q.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="does not match"):
        load_prior(tmp_path / "q.safetensors")


def test_group_norm_matches_torch():
    """model.GroupNorm (layer norm over groups + affine) is torch's GroupNorm: same outputs and gradients."""
    from dposer.core.model import GroupNorm

    torch.manual_seed(0)
    ours, ref = GroupNorm(32, 256), torch.nn.GroupNorm(32, 256)
    torch.nn.init.normal_(ours.weight), torch.nn.init.normal_(ours.bias)
    ref.load_state_dict(ours.state_dict())
    x = (3 * torch.randn(7, 256) + 1).requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)
    a, b = ours(x), ref(x2)
    assert torch.allclose(a, b, atol=1e-5)
    a.square().sum().backward()
    b.square().sum().backward()
    assert torch.allclose(x.grad, x2.grad, atol=1e-4)
    assert torch.allclose(ours.weight.grad, ref.weight.grad, atol=1e-4)


@needs_data
def test_torchrun_two_processes(tmp_path, data_root):
    """`torchrun --nproc_per_node 2 -m dposer train` (DDP, gloo on CPU) trains the given steps and writes both
    checkpoints."""
    env = dict(os.environ, OMP_NUM_THREADS="1", DPOSER_DATA=str(data_root))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "dposer",
           "train", "--config", str(TINY), "--out", str(tmp_path / "ddp"), "--seed", "1", "--steps", "20"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert load_prior(tmp_path / "ddp" / "prior.safetensors").info["config"]["steps"] == 20
    _, meta = read_checkpoint(tmp_path / "ddp" / "last.safetensors")
    assert meta["step"] == "20"


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "backend" / "dposer" / "configs").glob("*.json")))
def test_every_shipped_config_loads_and_its_network_fits_the_checkpoint_limit(name):
    """Each config in configs/ parses (no unknown keys, mix weights sum to 1) and exports within the 16 MiB fp16
    limit of a bundled checkpoint."""
    cfg = TrainConfig.load(REPO / "backend" / "dposer" / "configs" / name)
    assert abs(sum(cfg.mix.values()) - 1) < 1e-6
    params = sum(p.numel() for p in ScoreNet(cfg.net).parameters())
    assert 2 * params <= 16 * 1024 * 1024
