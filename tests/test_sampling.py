import subprocess
import sys

import numpy as np
import pytest
import torch

import dposer
from dposer.formats import data
from dposer.spec import layout
from dposer.eval import metrics
from dposer.core.prior import DEFAULT_CHECKPOINT
from conftest import needs_data

KEYS = {"global_orient": 3, "body_pose": 63, "left_hand_pose": 45, "right_hand_pose": 45, "jaw_pose": 3, "expression": 100}


@pytest.fixture(scope="module")
def prior():
    return dposer.load_prior()


def test_default_checkpoint_is_small_fp16():
    assert DEFAULT_CHECKPOINT.is_file()
    assert DEFAULT_CHECKPOINT.stat().st_size <= 16 * 1024 * 1024
    from safetensors import safe_open
    with safe_open(str(DEFAULT_CHECKPOINT), "pt") as f:
        assert f.get_tensor("net.body.out.weight").dtype == torch.float16


def test_python_sample_api(prior):
    a = dposer.sample(prior, 6, seed=1)
    b = dposer.sample(prior, 6, seed=1)
    c = dposer.sample(prior, 6, seed=2)
    assert {k: v.shape for k, v in a.items()} == {k: (6, d) for k, d in KEYS.items()}
    assert all(np.array_equal(a[k], b[k]) for k in KEYS)
    assert not np.allclose(a["body_pose"], c["body_pose"])
    assert (a["global_orient"] == 0).all()
    assert all(np.isfinite(v).all() for v in a.values())


def test_euler_maruyama_sampler_is_seeded_and_refuses_unknown_samplers(prior):
    a = dposer.sample(prior, 4, seed=0, sampler="em", steps=20)
    assert np.array_equal(a["body_pose"], dposer.sample(prior, 4, seed=0, sampler="em", steps=20)["body_pose"])
    assert not np.allclose(a["body_pose"], dposer.sample(prior, 4, seed=0, steps=20)["body_pose"])  # not DDIM
    with pytest.raises(ValueError, match="sampler"):
        dposer.sample(prior, 4, sampler="nope")


@needs_data
def test_euler_maruyama_samples_lie_near_real_poses(prior, data_root):
    """The reverse SDE (50 steps, 100 samples) lands near real body poses, as DDIM does: nearest training pose
    0.046 against 0.077 for a Gaussian fitted to the data; spread like the data's."""
    rows = data.load_part_set("body", "train", data_root).vectors[:, layout.PART_SLICES["body"]]
    gauss = np.random.default_rng(0).multivariate_normal(rows.mean(0), np.cov(rows, rowvar=False), size=100)
    em = dposer.sample(prior, 100, seed=0, sampler="em", steps=50)["body_pose"]

    def joints(r):
        v = np.zeros((len(r), layout.DIM), np.float32)
        v[:, layout.PART_SLICES["body"]] = r
        return metrics.part_joints(v, "body")

    ref = joints(rows)
    ours, base = (metrics.nearest_neighbour_distance(joints(x), ref) for x in (em, gauss))
    assert ours < 0.8 * base, (ours, base)
    assert metrics.apd(joints(em)) > 0.5 * metrics.apd(joints(rows[:100]))


@needs_data
def test_samples_lie_near_real_poses(prior, data_root):
    """Body and hand samples are closer to real training poses than draws from a Gaussian fitted to the same
    data (the Gaussian matches mean and covariance, but most of its draws are off the pose manifold)."""
    n = 300
    s = dposer.sample(prior, n, seed=0)
    rng = np.random.default_rng(0)
    for part, key, jpart in (("body", "body_pose", "body"), ("hand", "right_hand_pose", "right_hand")):
        train = data.load_part_set(part, "train", data_root)
        sl = layout.PART_SLICES["body" if part == "body" else "right_hand"]
        rows = train.vectors[:, sl]
        gauss = rng.multivariate_normal(rows.mean(0), np.cov(rows, rowvar=False), size=n).astype(np.float32)

        def joints(r):
            v = np.zeros((len(r), 256), np.float32)
            v[:, sl] = r
            return metrics.part_joints(v, jpart)

        ref = joints(rows)
        ours = metrics.nearest_neighbour_distance(joints(s[key]), ref)
        base = metrics.nearest_neighbour_distance(joints(gauss), ref)
        assert ours < base, (part, ours, base)
        # and not collapsed: the spread of samples is a sizeable fraction of the data's
        assert metrics.apd(joints(s[key])) > 0.5 * metrics.apd(joints(rows[:n]))


def test_cli_sample_writes_six_keys(tmp_path):
    out = tmp_path / "poses.npz"
    img = tmp_path / "poses.png"
    r = subprocess.run([sys.executable, "-m", "dposer", "sample", "--n", "5", "--seed", "0", "--output", str(out),
                        "--image", str(img), "--image-count", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    d = np.load(out)
    assert {k: d[k].shape for k in d.files} == {k: (5, dim) for k, dim in KEYS.items()}
    assert img.stat().st_size > 10000


def test_cli_reports_a_bad_checkpoint(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    r = subprocess.run([sys.executable, "-m", "dposer", "sample", "--checkpoint", str(bad), "--output",
                        str(tmp_path / "x.npz")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not a valid safetensors" in r.stderr
    assert not (tmp_path / "x.npz").exists()


def test_sample_parts_from_their_marginal(prior):
    """parts='right_hand' samples right hands only (the rest stays zero), deterministic per seed; unknown parts
    are refused by name."""
    a = dposer.sample(prior, 5, seed=3, steps=20, parts="right_hand")
    b = dposer.sample(prior, 5, seed=3, steps=20, parts=["right_hand"])
    assert np.array_equal(a["right_hand_pose"], b["right_hand_pose"])
    assert np.abs(a["right_hand_pose"]).max() > 0.05 and np.isfinite(a["right_hand_pose"]).all()
    for key in ("body_pose", "left_hand_pose", "jaw_pose", "expression"):
        assert (a[key] == 0).all(), key
    whole = dposer.sample(prior, 5, seed=3, steps=20)
    assert not np.allclose(whole["right_hand_pose"], a["right_hand_pose"])  # the network saw a different mask
    with pytest.raises(ValueError, match="unknown part"):
        dposer.sample(prior, 2, parts="tail")


def test_bf16_precision_is_close_to_fp32(prior):
    """precision='bf16' runs the network's products in bfloat16: float32 in and out, within ~1 % of fp32."""
    bf16 = dposer.load_prior(precision="bf16")
    x = torch.randn(64, 256, generator=torch.Generator().manual_seed(0))
    t = torch.full((64,), 0.2)
    a, b = prior.eps(x, t), bf16.eps(x, t)
    assert b.dtype == torch.float32
    assert 0 < ((a - b).norm() / a.norm()).item() < 0.02
    # the matrices are stored in bfloat16 once, in a copy: a bf16 prior built on an fp32 prior's network leaves
    # that network in float32, and gives autocast's own results
    shared = dposer.core.prior.Prior(prior.net, prior.normalizer, prior.info, precision="bf16")
    assert shared.net.body.inp.lin.weight.dtype == torch.bfloat16
    assert prior.net.body.inp.lin.weight.dtype == torch.float32
    with torch.autocast("cpu", torch.bfloat16):
        assert torch.equal(shared.eps(x, t), prior.net(x, t).float())
    with pytest.raises(ValueError, match="precision"):
        dposer.load_prior(precision="fp8")


def test_seed_spread_table_reports_mean_and_std():
    from dposer.eval.evaluation import seed_spread_table

    def run(p):
        return {"hand": [{"rows": "ours", "precision": p, "density": 0.1, "coverage": 0.2}]}

    table = seed_spread_table([run(0.2), run(0.3)], seeds=[0, 1])
    assert "| ours | 0.250 +- 0.050 | 0.100 +- 0.000 | 0.200 +- 0.000 |" in table and "seeds 0..1" in table
