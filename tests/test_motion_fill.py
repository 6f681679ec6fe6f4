"""dposer fill: the cells outside the gap are the input's bit for bit, no pop at the gap's edges, clear errors.
Run on real takes (the HumanEva gestures clip, the AMASS take, the CMU hop BVH) with a random-weight motion prior
(the mechanics need no trained checkpoint)."""
import numpy as np
import pytest

from conftest import needs_data


@pytest.fixture(scope="module")
def prior():
    from dposer.motion.prior import random_motion_prior

    return random_motion_prior(seed=3)


@pytest.fixture(scope="module")
def checkpoint(prior, tmp_path_factory):
    """The random-weight prior as a checkpoint file (the real save / load path)."""
    from dposer.motion.checkpoint import save_motion

    path = tmp_path_factory.mktemp("motion") / "random.safetensors"
    save_motion(path, prior.net, prior.resid_scale, {"note": "random weights"})
    return path


@pytest.fixture(scope="module")
def gestures(data_root):
    from dposer.motion.corpus import stack

    d = np.load(data_root / "dposer_x" / "gestures_clip_240f.npz")
    return d["pose_body"], d["root_orient"]


def _geo(a, b):
    from dposer.motion.filling import geodesic_deg

    return geodesic_deg(a, b)


@needs_data
def test_fill_file_keeps_every_other_cell_bit_exact(tmp_path, gestures, checkpoint):
    from dposer.motion import filling as F

    body, root = gestures
    src = tmp_path / "take.npz"
    trans = np.cumsum(np.full((len(body), 3), 0.01, np.float32), 0)
    np.savez(src, body_pose=body.astype(np.float32), global_orient=root.astype(np.float32), trans=trans,
             betas=np.arange(10, dtype=np.float32), mocap_framerate=np.float64(30.0))
    F.fill_file(src, tmp_path / "out.npz", "100-129", parts="left_leg,right_arm", checkpoint=checkpoint,
                log=lambda s: None)
    out = np.load(tmp_path / "out.npz")
    inp = np.load(src)
    assert sorted(out.files) == sorted(inp.files)
    assert np.array_equal(out["betas"], inp["betas"]) and np.array_equal(out["trans"], inp["trans"])
    assert np.array_equal(out["global_orient"], inp["global_orient"])  # the root is not in the parts
    changed = out["body_pose"] != inp["body_pose"]
    cols = np.zeros(63, bool)
    from dposer.motion.masks import part_joints

    for j in np.flatnonzero(part_joints("left_leg,right_arm").numpy()):
        cols[3 * (j - 1):3 * j] = True
    rows = np.zeros(len(body), bool)
    rows[100:130] = True
    assert not changed[~rows].any() and not changed[:, ~cols].any()
    assert changed[rows][:, cols].any()


@needs_data
def test_whole_body_fill_of_an_amass_take_fills_trans_only_in_the_gap(tmp_path, data_root, checkpoint):
    from dposer.motion import filling as F

    src = data_root / "amass" / "amass_sample_smplh_500f.npz"
    F.fill_file(src, tmp_path / "out.npz", "200-259", checkpoint=checkpoint, log=lambda s: None)
    out, inp = np.load(tmp_path / "out.npz"), np.load(src)
    for k in inp.files:
        if k not in ("poses", "trans"):
            assert np.array_equal(out[k], inp[k]), k
    for k in ("poses", "trans"):
        same = (out[k] == inp[k]).all(1)
        assert same[:200].all() and same[260:].all(), k
    assert not np.array_equal(out["poses"][200:260, :66], inp["poses"][200:260, :66])
    assert np.array_equal(out["poses"][:, 66:], inp["poses"][:, 66:])  # hands untouched


@needs_data
def test_no_pop_at_the_gap_edges(gestures, prior):
    """The step into and out of the gap is of the size of the steps around it, even with a random network (the
    residual ramps in from the observed frames)."""
    from dposer.motion.corpus import stack
    from dposer.motion.filling import fill

    body, root = gestures
    rot = stack(root, body).astype(np.float64)
    mask = np.zeros((len(rot), 22), bool)
    a, b = 90, 129
    mask[a:b + 1] = True
    out, rec = fill(rot, mask, 30.0, prior, check=False)
    assert rec[0]["method"] == "prior"
    from dposer.motion import interp

    slerp = interp.fill(rot, mask, 30.0, "slerp")
    assert _geo(out[a:b + 1], slerp[a:b + 1]).max() > 1.0  # the random network did move the gap off SLERP
    steps = _geo(out[1:], out[:-1])  # (F - 1, 22): step from frame i to i + 1
    for edge, near in ((a - 1, [a - 3, a - 2, a, a + 1]), (b, [b - 2, b - 1, b + 1, b + 2])):  # into, out of it
        limit = 2.0 * steps[near].max(0) + 0.25  # the two steps on each side of the edge's step (without the
        assert (steps[edge] <= limit).all(), (edge, steps[edge], limit)  # ramp, this network's pop is ~3x them)


@needs_data
def test_probes_pick_a_free_answer_without_a_prior(gestures):
    from dposer.motion.corpus import stack
    from dposer.motion.filling import fill

    body, root = gestures
    rot = stack(root, body).astype(np.float64)
    mask = np.zeros((len(rot), 22), bool)
    mask[110:125, 1:] = True
    out, rec = fill(rot, mask, 30.0, None, match=False)
    assert rec[0]["method"] in ("spline", "slerp") and rec[0]["probes"] >= 2
    assert set(rec[0]["probe_err"]) == {"spline", "slerp"}
    assert np.array_equal(out[~mask], rot[~mask])
    out, rec = fill(rot, mask, 30.0, None)  # with the take match: the probes weigh it too
    assert set(rec[0]["probe_err"]) == {"spline", "slerp", "match"}
    assert np.array_equal(out[~mask], rot[~mask])


def _cyclic_take(n=300, fps=30.0, period_s=1.1, seed=0):
    """(n, 22, 3): every joint swings on one period (a walk-like cycle with a different phase and axis per joint)
    plus a slow drift of the root's heading; the gap's motion happens again elsewhere in the take."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None] / fps
    axes = rng.normal(size=(22, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    amp = rng.uniform(0.2, 0.6, 22)
    phase = rng.uniform(0, 2 * np.pi, 22)
    ang = amp * np.sin(2 * np.pi * t / period_s + phase) + 0.3 * np.sin(2 * np.pi * t / (2 * period_s) + phase)
    rot = ang[..., None] * axes
    rot[:, 0] = [0.0, 1.0, 0.0] * (0.2 * t)  # the root turns slowly: its heading never repeats
    return rot


def test_take_match_fills_a_gap_from_where_the_take_repeats_itself():
    """A whole-body gap of 0.7 s in a cyclic take is filled from another cycle: far closer to the truth than SLERP
    or the spline, exact at the edges' neighbours (no pop), never drawn from missing frames."""
    from dposer.motion import interp, matching
    from dposer.motion.filling import fill

    rot = _cyclic_take()
    mask = np.zeros((len(rot), 22), bool)
    a, b = 140, 160
    mask[a:b + 1] = True
    mask[40:70, 3:9] = True  # another hole elsewhere: the match may not draw these joints from there
    shift = matching.best_shift(rot, mask, a, b)
    assert shift is not None and not mask[a - 1 + shift:b + 2 + shift, :].any()
    got = matching.fill_gap(rot, mask, a, b, 30.0)
    err = _geo(got, rot[a:b + 1])
    free = min(_geo(interp.fill(rot, mask, 30.0, k)[a:b + 1], rot[a:b + 1]).mean() for k in ("slerp", "spline"))
    assert err.mean() < 0.25 * free, (err.mean(), free)
    # no pop: the step into and out of the gap is no bigger than the take's steps there
    filled = rot.copy()
    filled[a:b + 1] = got
    steps = _geo(filled[1:], filled[:-1])
    true_steps = _geo(rot[1:], rot[:-1])
    for edge in (a - 1, b):
        assert (steps[edge] <= 1.5 * true_steps[edge] + 0.2).all()
    out, rec = fill(rot, mask, 30.0, None)
    assert rec[1]["method"].startswith("match"), rec[1]
    assert np.array_equal(out[~mask], rot[~mask])


def test_take_match_gives_up_when_nothing_else_is_observed():
    """No stretch of the take has the gap's joints observed: no match (the probes then pick a free answer)."""
    from dposer.motion import matching

    rot = _cyclic_take(n=120)
    mask = np.zeros((len(rot), 22), bool)
    mask[:, 4] = True  # the left knee is missing everywhere but frames 60-62
    mask[60:63, 4] = False
    mask[50:60, 4] = True
    assert matching.fill_gap(rot, mask, 50, 59, 30.0) is None


def test_bad_frame_ranges_give_clear_errors():
    from dposer.formats.npz import DataError
    from dposer.motion.filling import parse_frames

    assert parse_frames("10-20", 100) == (10, 20) and parse_frames("7", 100) == (7, 7)
    for text, msg in (("20-10", "after the last"), ("10-100", "has 100 frames"), ("a-b", "A-B"),
                      ("0-99", "whole take"), ("-5-3", "A-B")):
        with pytest.raises(DataError, match=msg):
            parse_frames(text, 100)


@needs_data
def test_cli_fill_reports_a_bad_range(tmp_path, data_root, capsys):
    from dposer.cli import main

    rc = main(["fill", "--input", str(data_root / "dposer_x" / "gestures_clip_240f.npz"), "--frames", "230-260",
               "--output", str(tmp_path / "o.npz")])
    assert rc == 2 and "the take has 240 frames" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


@needs_data
def test_bvh_fill_changes_only_the_gap_frames(tmp_path, data_root, checkpoint):
    from dposer.formats import bvh
    from dposer.motion import filling as F

    src = data_root / "bvh" / "other_studios" / "cmu_131_03_hop.bvh"
    F.fill_file(src, tmp_path / "out.bvh", "400-459", parts="right_arm", checkpoint=checkpoint, log=lambda s: None)
    a, b = bvh.read(src), bvh.read(tmp_path / "out.bvh")
    same = (a.motion == b.motion).all(1)
    assert same[:400].all() and same[460:].all() and not same[400:460].all()


def test_mean_rotation_weighs_every_answer():
    """Equal weights give the rotation halfway between two answers; a single non-zero weight gives that answer."""
    from dposer.motion.matching import mean_rotation

    a = np.zeros((4, 3))
    b = np.tile([0.0, 0.0, 0.6], (4, 1))
    assert np.allclose(mean_rotation([a, b], [1.0, 1.0]), b / 2)
    assert np.allclose(mean_rotation([a, b], [3.0, 1.0])[:, 2], 0.6 / 4, atol=0.01)
    assert mean_rotation([a, b], [0.0, 1.0]) is b
