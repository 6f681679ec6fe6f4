"""Variations of a whole take (dposer.tasks.vary_clip, ``dposer vary --clip``) with the bundled checkpoint on real
takes: shapes, locks, the issue's smoothness / speed / distance / correlation targets at strength 0.3, distance growing with
strength, planted feet, and more plausible than the free answer (the take plus smooth random offsets)."""
from __future__ import annotations

import numpy as np
import pytest

from dposer.eval.vary_metrics import free_answer, measure
from dposer.spec import layout
from dposer.tasks.vary_clip import vary_clip

from conftest import needs_data

pytestmark = needs_data
N = 4


@pytest.fixture(scope="module")
def prior():
    from dposer.core.prior import load_prior

    return load_prior(None)  # the bundled checkpoint


def _take(ps):
    pose = {k: v for k, v in ps.to_dict().items()
            if k == "global_orient" or ps.present[:, layout.KEY_SLICES[k]].all()}
    if "trans" in ps.extras:
        pose["trans"] = ps.extras["trans"]
    return pose, ps.present.all(0)


@pytest.fixture(scope="module")
def gestures(data_root):
    from dposer.formats.data import load_gestures_clip

    return load_gestures_clip(data_root)  # 240 frames, body + root orientation, no translation (30 fps)


@pytest.fixture(scope="module")
def walk(data_root):
    from dposer.formats.data import load_amass_take

    return load_amass_take(data_root).subset(np.arange(300))  # 2.5 s of a walk at 120 fps, body + hands, translation


def _vectors(res, ps) -> np.ndarray:
    """(N, F, 256) of a result, absent dims from the take."""
    keys = {k: res[k].reshape(-1, res[k].shape[-1]) for k in layout.KEY_SLICES if k in res}
    v = layout.dict_to_vectors(keys).reshape(len(res["global_orient"]), len(ps), -1)
    return np.where(ps.present.all(0), v, ps.vectors[None]).astype(np.float64)


def test_shapes_locks_and_strength_zero(prior, walk):
    pose, present = _take(walk)
    res = vary_clip(prior, pose, 3, strength=0.3, seed=1, lock=["left_arm", "right_hand"], fps=120)
    F = len(walk)
    assert set(res) == {"global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "trans"}
    assert {k: res[k].shape for k in res} == {"global_orient": (3, F, 3), "body_pose": (3, F, 63),
                                              "left_hand_pose": (3, F, 45), "right_hand_pose": (3, F, 45),
                                              "trans": (3, F, 3)}
    v = _vectors(res, walk)
    locked = layout.names_to_dims(["left_arm", "right_hand"])
    assert np.array_equal(v[:, :, locked], np.broadcast_to(walk.vectors[:, locked], (3, F, len(locked))))
    assert np.array_equal(res["global_orient"], np.broadcast_to(pose["global_orient"], (3, F, 3)))
    free = np.setdiff1d(np.nonzero(present)[0], locked)
    assert np.abs(v[:, :, free] - walk.vectors[None, :, free]).max() > 0.05  # the rest does change
    assert not np.array_equal(v[0], v[1])
    same = vary_clip(prior, pose, 2, strength=0.0, fps=120)
    assert all(np.array_equal(same[k], np.broadcast_to(pose[k], same[k].shape)) for k in same)


def test_targets_at_strength_0_3_and_distance_grows(prior, gestures):
    """The issue's targets on a take the prior never saw (the HumanEva gesture clip, no translation)."""
    pose, present = _take(gestures)
    take = gestures.vectors.astype(np.float64)
    dist = []
    for s in (0.1, 0.3, 0.6):
        v = _vectors(vary_clip(prior, pose, N, strength=s, seed=0, fps=30), gestures)
        m = measure(take, v, present, 30.0)
        dist.append(m["distance"])
        if s == 0.3:
            assert m["p99_step"] <= 1.5 * m["p99_step_take"] + 0.5, m
            assert all(0.7 <= r <= 1.3 for r in m["speed_ratio"]), m
            assert m["distance"] >= 2.0 and m["pairwise"] >= 2.0, m
            assert m["moving_joints"] >= 3 and m["min_corr"] >= 0.7, m
    assert dist[0] < dist[1] < dist[2], dist


def test_planted_feet_and_beats_the_free_answer(prior, walk):
    """On a take with translation: foot skating of the variations no worse than the take's (5% slack for the
    numerics of re-planting), the free answer at the same distance skates far more, and the prior scores the
    variations as plausible as the take and clearly more than the free answer."""
    pose, present = _take(walk)
    take = walk.vectors.astype(np.float64)
    res = vary_clip(prior, pose, N, strength=0.3, seed=0, fps=120)
    orient, trans = walk.extras["global_orient"], walk.extras["trans"]
    ours = measure(take, _vectors(res, walk), present, 120.0, orient, trans, res["trans"], prior=prior)
    rot = present & (np.arange(layout.DIM) < layout.KEY_SLICES["expression"].start)
    free = free_answer(take, rot, N, ours["distance"], 120.0, present=present)
    theirs = measure(take, free, present, 120.0, orient, trans, prior=prior)
    assert abs(theirs["distance"] - ours["distance"]) < 0.05 * ours["distance"]
    assert ours["contact_frames"] > 0.1
    assert ours["skate"] <= 1.05 * ours["skate_take"], ours
    assert theirs["skate"] > 1.5 * ours["skate"], (ours, theirs)
    assert ours["plaus"] <= 1.2 * ours["plaus_take"], ours
    assert theirs["plaus"] > 2 * ours["plaus"], (ours, theirs)
    assert ours["min_corr"] > theirs["min_corr"]


def test_bad_inputs(prior, gestures):
    pose, _ = _take(gestures)
    one = {k: v[:1] for k, v in pose.items()}
    with pytest.raises(ValueError, match="at least 2 frames"):
        vary_clip(prior, one, 2)
    with pytest.raises(ValueError, match="strength"):
        vary_clip(prior, pose, 2, strength=1.5)
    with pytest.raises(ValueError, match="n must be"):
        vary_clip(prior, pose, 0)
    with pytest.raises(ValueError, match="fps"):
        vary_clip(prior, pose, 2, fps=0.0)
    with pytest.raises(ValueError, match="unknown"):
        vary_clip(prior, pose, 2, lock=["left_tail"])


def test_cli_and_server(tmp_path, data_root):
    from dposer.cli import main
    from dposer.serve import requests as server

    src = data_root / "dposer_x" / "gestures_clip_240f.npz"
    out = tmp_path / "var.npz"
    assert main(["vary", "--input", str(src), "--clip", "--n", "2", "--strength", "0.2", "--output", str(out)]) == 0
    with np.load(out) as d:
        assert d["body_pose"].shape == (2, 240, 63) and d["global_orient"].shape == (2, 240, 3)
        assert float(d["fps"]) == 30.0
    # the request validation: a take needs clip=true, clip=true needs >= 2 frames
    take = {"body_pose": np.zeros((5, 63)).tolist()}
    with pytest.raises(server.RequestError, match="clip=true"):
        server.validate({"id": 1, "op": "vary", "args": {"pose": take, "n": 2}})
    with pytest.raises(server.RequestError, match="at least 2 frames"):
        server.validate({"id": 1, "op": "vary", "args": {"pose": {"body_pose": [[0.0] * 63]}, "n": 2, "clip": True}})
    _, op, args = server.validate({"id": 1, "op": "vary", "args": {"pose": take, "n": 2, "clip": True, "fps": 24}})
    assert op == "vary" and args["clip"] is True and args["fps"] == 24.0


def test_cancel_stops_the_sampler_and_the_feet(prior, walk):
    from dposer.core.solver import Cancelled
    from dposer.tasks.feet import plant_feet

    pose, present = _take(walk)
    with pytest.raises(Cancelled):
        vary_clip(prior, pose, 2, strength=0.3, fps=120, cancel=lambda: True)
    take = walk.vectors.astype(np.float64)
    varied = np.stack([take, take])
    with pytest.raises(Cancelled, match="planting the feet"):
        plant_feet(take, walk.extras["global_orient"].astype(np.float64), walk.extras["trans"].astype(np.float64),
                   varied, present, 120.0, cancel=lambda: True)
