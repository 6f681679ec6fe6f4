"""The authors' released DPoser-X checkpoints (dposer.core.official): exact outputs against reference vectors computed by
the official code from random-weight checkpoints in the official Lightning format (shared data,
official_format/README.md), safe loading, conversion, and use through load_prior, the solvers, the CLI and the server.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from conftest import DATA
from dposer import cli
from dposer.spec import layout
from dposer.core import official
from dposer.core.prior import CheckpointError, load_prior

KINDS = ("body", "hand", "face", "wholebody")
FORMAT_DIR = None if DATA is None else DATA / "official_format"
needs_official = pytest.mark.skipif(FORMAT_DIR is None or not (FORMAT_DIR / "wholebody_random.ckpt").is_file(),
                                    reason="official-format test checkpoints not found: set DPOSER_DATA to the shared "
                                    "data folder holding official_format/")


def ckpt(kind: str) -> str:
    return str(FORMAT_DIR / f"{kind}_random.ckpt")


def vectors(kind: str) -> dict[str, np.ndarray]:
    return dict(np.load(FORMAT_DIR / f"{kind}_vectors.npz"))


def scaled_error(mine, ref) -> float:
    """max over rows of max|mine - ref| / max(1, max|ref|): the tolerance measure of the format README."""
    mine = np.asarray(mine.detach().cpu() if isinstance(mine, torch.Tensor) else mine, np.float64)
    ref = np.asarray(ref, np.float64)
    assert mine.shape == ref.shape
    return float((np.abs(mine - ref).max(1) / np.maximum(1.0, np.abs(ref).max(1))).max())


TOL = 2e-5


@pytest.fixture(scope="module", params=KINDS)
def loaded(request):
    kind = request.param
    return kind, load_prior(ckpt(kind)), vectors(kind)


# ---------------------------------------------------------------------------------------------- exact outputs

@needs_official
def test_outputs_match_official_reference(loaded):
    kind, prior, v = loaded
    assert prior.dim == official.KIND_DIMS[kind] == v["x_t"].shape[1]
    t, x_t = torch.from_numpy(v["t"]), torch.from_numpy(v["x_t"])
    out = prior.eps(x_t, t)
    assert scaled_error(out, v["net_out"]) <= TOL
    assert scaled_error(prior.score(x_t, t), v["score"]) <= TOL
    assert scaled_error(prior.denoise(x_t, t), v["x0_hat"]) <= TOL
    # the EMA weights are the official inference weights: the raw-weight output is far away
    assert scaled_error(out, v["net_out_raw_weights"]) > 100 * TOL


@needs_official
def test_time_label_and_sigma_index_in_float32(loaded):
    _, _, v = loaded
    tau, idx = official.time_label(torch.from_numpy(v["t"]))
    assert np.array_equal(tau.numpy(), v["labels"])
    assert np.array_equal(idx.numpy(), v["sigma_index"])  # rows 9, 10: 125 and 406, where float64 gives 124, 405
    assert np.array_equal(official.ve_sigmas()[idx].numpy(), v["scale_sigma"])


@needs_official
def test_normalizer_matches_official(loaded):
    kind, prior, v = loaded
    assert scaled_error(prior.normalize(torch.from_numpy(v["raw_pose"])), v["normalized_pose"]) <= 1e-6
    assert scaled_error(prior.denormalize(torch.from_numpy(v["x0_hat"])), v["denormalized_x0_hat"]) <= 1e-6


@needs_official
def test_raw_weights_reproduce_the_raw_reference(loaded):
    """The check above would catch raw-instead-of-EMA loading: loading the raw weights on purpose gives exactly the
    official raw-weight output, which differs from the EMA reference."""
    kind, _, v = loaded
    net, _, info = official.convert(ckpt(kind), weights="raw")
    assert info["weights"] == "raw"
    with torch.no_grad():
        out = net.eval()(torch.from_numpy(v["x_t"]), torch.from_numpy(v["t"]))
    assert scaled_error(out, v["net_out_raw_weights"]) <= TOL
    assert scaled_error(out, v["net_out"]) > 100 * TOL


@needs_official
def test_wholebody_mask_and_fusion_intermediates():
    prior, v = load_prior(ckpt("wholebody")), vectors("wholebody")
    t, x_t = torch.from_numpy(v["t"]), torch.from_numpy(v["x_t"])
    mask = torch.from_numpy(v["mask"]).bool()
    assert scaled_error(prior.eps(x_t, t, mask), v["net_out_masked"]) <= TOL
    net = prior.net
    b = net.base_model
    parts = [x_t[:, layout.PART_SLICES[p]] for p in layout.PARTS]
    nets = (b["body_model"], b["hand_model"], b["hand_model"], b["face_model"])
    with torch.no_grad():
        base = torch.cat([n(p, t) for n, p in zip(nets, parts)], 1)
        feats = torch.cat([n.pre_dense(p) for n, p in zip(nets, parts)], 1)
        fusion = net.mask_fc(feats, t)
    assert scaled_error(base, v["base_out"]) <= TOL
    assert scaled_error(feats, v["fusion_features"]) <= TOL
    assert scaled_error(fusion, v["fusion_out"]) <= TOL


@needs_official
def test_embedded_normalizer_equals_the_shared_copy():
    n = np.load(DATA / "dposer_x" / "official_normalizers.npz", allow_pickle=False)
    mean, std = official.official_normalizer_vectors()
    parts = ("body", "hand", "hand", "jaw", "expression")
    assert np.array_equal(mean.numpy(), np.concatenate([n[f"{p}_mean_poses"] for p in parts]))
    assert np.array_equal(std.numpy(), np.concatenate([n[f"{p}_std_poses"] for p in parts]))


# ---------------------------------------------------------------------------------------------- conversion

@needs_official
@pytest.mark.parametrize("kind", KINDS)
def test_import_official_round_trip(kind, tmp_path):
    out = tmp_path / f"{kind}.safetensors"
    assert cli.main(["import-official", ckpt(kind), "--kind", kind, "--out", str(out)]) == 0
    direct, converted = load_prior(ckpt(kind)), load_prior(out)
    assert type(converted.net) is type(direct.net) and converted.dim == direct.dim
    info = converted.info
    assert info["kind"] == kind and info["weights"] == "ema" and info["file"] == f"{kind}_random.ckpt"
    assert len(info["sha256"]) == 64 and "moonbow721/DPoser-X" in info["normalizer"] and "non-commercial" in info["licence"]
    v = vectors(kind)
    t, x_t = torch.from_numpy(v["t"]), torch.from_numpy(v["x_t"])
    assert torch.equal(converted.eps(x_t, t), direct.eps(x_t, t))
    raw = torch.from_numpy(v["raw_pose"])
    assert torch.equal(converted.normalize(raw), direct.normalize(raw))


@needs_official
def test_import_refuses_the_wrong_kind(tmp_path):
    assert cli.main(["import-official", ckpt("hand"), "--kind", "body", "--out", str(tmp_path / "x.safetensors")]) == 2
    assert not (tmp_path / "x.safetensors").exists()


@needs_official
def test_part_model_on_whole_body_vectors():
    """Part models serve the 256-D solvers: their slice(s) from the official net, the rest unit Gaussian."""
    from dposer.core.sde import alpha_sigma

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, layout.DIM, generator=gen)
    t = torch.full((3,), 0.2)
    a, s = alpha_sigma(t)
    gauss = (s / (a * a + s * s))[:, None] * x
    for kind, slices in official.SERVES.items():
        prior = load_prior(ckpt(kind))
        out = prior.eps(x, t)
        covered = torch.zeros(layout.DIM, dtype=torch.bool)
        for sl in slices:  # the hand model serves both hands: the left slice is already mirrored by the normaliser
            assert torch.allclose(out[:, sl], prior.eps(x[:, sl].contiguous(), t), atol=1e-6)
            covered[sl] = True
        assert torch.equal(out[:, ~covered], gauss[:, ~covered])
        raw = 0.3 * torch.randn(3, layout.DIM, generator=gen)
        assert torch.allclose(prior.denormalize(prior.normalize(raw)), raw, atol=1e-5)


# ---------------------------------------------------------------------------------------------- safe loading

class _Payload:
    """Unpickling this would run a shell command that creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("container", ["torch-zip", "plain-pickle"])
def test_code_running_pickle_is_refused_not_executed(tmp_path, container):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    obj = {"state_dict": {"model.pre_dense.weight": torch.zeros(2, 63)}, "model_ema": {}, "x": _Payload(marker)}
    if container == "torch-zip":
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=2))
    for load in (lambda: load_prior(path), lambda: official.import_official(path, tmp_path / "o.safetensors")):
        with pytest.raises(CheckpointError, match="refused") as e:
            load()
        assert "not executed" in str(e.value)
    assert cli.main(["import-official", str(path), "--out", str(tmp_path / "o.safetensors")]) == 2
    assert not marker.exists()
    assert not (tmp_path / "o.safetensors").exists()


def test_non_checkpoint_files_give_clear_errors(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_prior(junk)
    plain = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(3)}, plain)
    with pytest.raises(CheckpointError, match="not a DPoser-X Lightning checkpoint"):
        load_prior(plain)
    with pytest.raises(CheckpointError, match="not found"):
        load_prior(tmp_path / "missing.ckpt")


@needs_official
def test_real_file_objects_are_read_as_inert_stand_ins(tmp_path, monkeypatch):
    """A real released file holds an ml_collections ConfigDict and numpy float64 learning rates, which plain
    weights_only=True refuses. They load as inert stand-ins, without ml_collections installed."""
    c = torch.load(ckpt("body"), map_location="cpu", weights_only=True)

    class ConfigDict:  # what ml_collections pickles: the class by name plus its state
        def __init__(self, fields):
            self._fields = fields

        def __getstate__(self):
            return {"_fields": self._fields, "_locked": False}

    mod = types.ModuleType("ml_collections.config_dict.config_dict")
    ConfigDict.__module__, ConfigDict.__qualname__ = mod.__name__, "ConfigDict"
    mod.ConfigDict = ConfigDict
    for name in ("ml_collections", "ml_collections.config_dict", mod.__name__):
        monkeypatch.setitem(sys.modules, name, mod)
    c["hyper_parameters"]["config"] = ConfigDict({"model": ConfigDict({"HIDDEN_DIM": 1024}), "name": "BaseMLP"})
    c["optimizer_states"][0]["param_groups"][0]["lr"] = np.float64(1e-4)
    c["lr_schedulers"][0]["_last_lr"] = [np.float64(1e-4)]
    real = tmp_path / "real_structure.ckpt"
    torch.save(c, real)
    for name in ("ml_collections", "ml_collections.config_dict", mod.__name__):
        monkeypatch.delitem(sys.modules, name)

    unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(real)))
    assert "ml_collections.config_dict.config_dict.ConfigDict" in unsafe and "numpy.dtype" in unsafe
    with pytest.raises(Exception):  # what the official loader does on a current torch
        torch.load(real, map_location="cpu", weights_only=True)
    loaded = official.read_lightning_checkpoint(real)
    assert repr(loaded["hyper_parameters"]["config"]) == "<ignored>"
    assert "ml_collections" not in sys.modules
    v = vectors("body")
    prior = load_prior(real)
    assert scaled_error(prior.eps(torch.from_numpy(v["x_t"]), torch.from_numpy(v["t"])), v["net_out"]) <= TOL


# ---------------------------------------------------------------------------------------------- CLI and server

def _pose_file(path, n=2, seed=0):
    rng = np.random.default_rng(seed)
    pose = {"global_orient": np.zeros((n, 3)), "body_pose": 0.2 * rng.standard_normal((n, 63)),
            "left_hand_pose": 0.2 * rng.standard_normal((n, 45)), "right_hand_pose": 0.2 * rng.standard_normal((n, 45)),
            "jaw_pose": np.zeros((n, 3)), "expression": np.zeros((n, 100))}
    pose = {k: v.astype(np.float32) for k, v in pose.items()}
    np.savez(path, **pose)
    return pose


@needs_official
@pytest.mark.parametrize("kind, missing, key", [("body", "left_leg", "body_pose"),
                                                ("wholebody", "right_hand", "right_hand_pose")])
def test_cli_complete_with_official_checkpoint(tmp_path, kind, missing, key):
    pose = _pose_file(tmp_path / "in.npz")
    out = tmp_path / "out.npz"
    assert cli.main(["complete", "--checkpoint", ckpt(kind), "--input", str(tmp_path / "in.npz"),
                     "--output", str(out), "--missing", missing, "--steps", "20", "--hypotheses", "2"]) == 0
    res = np.load(out)
    free = layout.dim_mask(missing)[layout.KEY_SLICES[key]]
    assert np.all(np.isfinite(res[key]))
    assert np.array_equal(res[key][:, ~free], pose[key][:, ~free])  # observed joints kept exactly
    assert not np.allclose(res[key][:, free], pose[key][:, free])
    assert np.array_equal(res["body_pose"] if key != "body_pose" else res["right_hand_pose"],
                          pose["body_pose"] if key != "body_pose" else pose["right_hand_pose"])


@needs_official
def test_server_complete_with_official_wholebody():
    rng = np.random.default_rng(1)
    pose = {"body_pose": (0.2 * rng.standard_normal((1, 63))).astype(np.float32).tolist()}
    requests = [{"id": "c1", "op": "complete", "args": {"pose": pose, "missing": ["right_hand"], "seed": 0}},
                {"id": "v", "op": "version"}]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "dposer.serve", "--threads", "1", "--checkpoint", ckpt("wholebody")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    proc.stdin.write("".join(json.dumps(r) + "\n" for r in requests).encode())
    proc.stdin.flush()
    replies = []
    while not any(r.get("id") == "c1" and r["type"] in ("result", "error") for r in replies):
        line = proc.stdout.readline()  # stdin stays open until the answer is in: EOF would cancel the work
        assert line, "server exited early"
        replies.append(json.loads(line))
    proc.stdin.close()
    assert proc.wait(60) == 0
    assert replies[0]["type"] == "ready"
    final = {r["id"]: r for r in replies if r["type"] in ("result", "error")}
    assert final["v"]["type"] == "result"
    res = final["c1"]
    assert res["type"] == "result", res
    body = np.asarray(res["result"]["body_pose"], np.float32)
    assert np.array_equal(body, np.asarray(pose["body_pose"], np.float32))
    assert np.all(np.isfinite(np.asarray(res["result"]["right_hand_pose"])))


# ---------------------------------------------------------------------------------------------- download

def test_download_without_huggingface_hub_explains_manual_route(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(CheckpointError) as e:
        official.download_official(tmp_path / "dl")
    msg = str(e.value)
    assert "pip install" in msg and "huggingface.co/Moon-bow/DPoser-X" in msg and "import-official" in msg
    assert cli.main(["download-official", "--out", str(tmp_path / "dl")]) == 2
    assert "import-official" in capsys.readouterr().err
    assert not (tmp_path / "dl").exists()


def _fake_hub(monkeypatch, download):
    hub = types.ModuleType("huggingface_hub")
    hub.hf_hub_download = download
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)


def test_download_without_network_fails_fast(monkeypatch, tmp_path):
    calls = []
    _fake_hub(monkeypatch, lambda *a, **k: calls.append(a))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: refused at once
    import urllib.request

    requests, urlopen = [], urllib.request.urlopen
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda req, timeout: requests.append((req.full_url, timeout)) or urlopen(req, timeout=timeout))
    with pytest.raises(CheckpointError, match="cannot reach the Hugging Face hub") as e:
        official.download_official(tmp_path / "dl", timeout=2.0)
    # fast: one request with the given timeout, then the error (no retries, huggingface_hub never called)
    assert requests == [(f"http://127.0.0.1:9/api/models/{official.HUB_REPO}", 2.0)]
    assert "by hand" in str(e.value) and "docs/official_weights.md" in str(e.value)
    assert calls == [] and not (tmp_path / "dl").exists()


@needs_official
def test_download_converts_what_the_hub_returns(monkeypatch, tmp_path):
    def download(repo, filename, local_dir, etag_timeout):
        assert repo == "Moon-bow/DPoser-X" and filename == "hand/BaseMLP/last.ckpt"
        target = tmp_path / "dl" / filename
        target.parent.mkdir(parents=True)
        target.write_bytes(open(ckpt("hand"), "rb").read())
        return str(target)

    _fake_hub(monkeypatch, download)
    monkeypatch.setattr(official, "_check_hub_reachable", lambda endpoint, timeout: None)
    got = official.download_official(tmp_path / "dl", kinds=["hand"], log=lambda m: None)
    assert got == {"hand": tmp_path / "dl" / "dposer-x-hand.safetensors"}
    assert load_prior(got["hand"]).dim == 45
