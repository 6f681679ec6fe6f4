"""Mocap cleaning: the fault model, fault detection (cuts, spikes, pops, held limbs, limit breaks; nothing on a clean
take), repair against the truth, strength, locks and the 'repaired' report. Real prior, real takes."""
from __future__ import annotations

import numpy as np
import pytest

import dposer
from dposer.tasks import cleaning, faults
from dposer.spec import layout
from dposer.eval import metrics
from dposer.tasks.pose_tasks import clean

from conftest import needs_data

pytestmark = needs_data

BODY = list(layout.VECTOR_JOINTS[:21])


@pytest.fixture(scope="module")
def take(data_root):
    """The AMASS fingers take at 30 fps (151 frames; a tuning take) as body rotations, plus its root."""
    ps = dposer.formats.data.load_pose_file(data_root / "amass" / "amass_sample_smplh_601f_fingers.npz")
    return ps.vectors[::4, :63].copy(), ps.extras["global_orient"][::4].copy()


def _mm(a, b):
    va, vb = (np.concatenate([x, np.zeros((len(x), layout.DIM - 63), np.float32)], 1) for x in (a, b))
    return 1000 * (metrics.part_joints(va, "body") - metrics.part_joints(vb, "body")).norm(dim=-1).numpy()


def test_fault_model_is_seeded_and_masks_what_it_changed(take):
    body, _ = take
    a, b = faults.inject(body, seed=4), faults.inject(body, seed=4)
    assert np.array_equal(a.body_pose, b.body_pose) and a.events == b.events
    assert not np.array_equal(a.body_pose, faults.inject(body, seed=5).body_pose)
    assert {e[0] for e in a.events} == set(faults.KINDS)
    quiet = faults.inject(body, seed=4, model=faults.FaultModel(jitter_deg=0.0))
    changed = np.abs(quiet.body_pose - body).reshape(len(body), 21, 3).max(-1) > 1e-6
    assert not (changed & ~quiet.mask).any()  # only the masked cells changed (no jitter)
    gap = next(e for e in quiet.events if e[0] == "gap")
    held = quiet.body_pose.reshape(-1, 21, 3)[gap[2]:gap[3] + 1, BODY.index(faults.LIMBS[gap[1]][1])]
    assert np.ptp(held, axis=0).max() == 0  # the limb is held on one value
    assert np.array_equal(body, take[0])  # input untouched


def test_each_fault_kind_is_detected_and_a_clean_take_is_left_alone(take):
    body, orient = take
    aa = body.reshape(len(body), 21, 3).astype(np.float64)
    det = cleaning.detect(aa, BODY, 0.5)
    assert not det.flags.any() and det.cuts == []
    quiet = faults.inject(body, seed=4, model=faults.FaultModel(jitter_deg=0.0))
    det = cleaning.detect(quiet.body_pose.reshape(-1, 21, 3).astype(np.float64), BODY, 0.5)
    fast = cleaning.detect(quiet.body_pose.reshape(-1, 21, 3).astype(np.float64), BODY, cleaning.FAST_STRENGTH)
    for kind, joint, a, b in quiet.events:
        joints = faults.LIMBS[joint] if kind == "gap" else (joint,)
        cells = det.flags[a:b + 1, [BODY.index(j) for j in joints]]
        if kind != "gap" and joint in cleaning.FAST_JOINTS:  # an ankle spike: looked for from FAST_STRENGTH up
            assert not cells.any() and fast.flags[a:b + 1, BODY.index(joint)].mean() > 0.8, (kind, joint, a, b)
            continue
        assert cells.mean() > 0.8, (kind, joint, a, b)
    assert (det.flags & ~quiet.mask).sum() <= 2  # (almost) nothing else
    # a T-pose first frame is a cut
    tpose = np.concatenate([np.zeros((1, 21, 3)), aa])
    det = cleaning.detect(tpose, BODY, 0.5)
    assert det.cuts == [1] and not det.flags.any()


def test_clean_repairs_faults_and_keeps_good_data(take):
    body, orient = take
    prior = dposer.load_prior()
    trans = np.random.default_rng(0).normal(size=(len(body), 3)).astype(np.float32)
    same = clean(prior, {"body_pose": body, "global_orient": orient, "trans": trans})
    d = _mm(same["body_pose"], body)
    assert d.mean() <= 1.0 and d.max() <= 20.0 and same["repaired"] == []
    f = faults.inject(body, seed=2)
    res = clean(prior, {"body_pose": f.body_pose, "global_orient": orient, "trans": trans}, lock=["left_knee"])
    before, after = _mm(f.body_pose, body), _mm(res["body_pose"], body)
    ff = np.delete(f.mask, BODY.index("left_knee"), 1).any(1)  # faults the lock leaves alone excluded
    assert after[ff].mean() < 0.9 * before[ff].mean() and after.mean() < 0.75 * before.mean(), (before.mean(), after.mean())
    assert np.array_equal(res["global_orient"], orient) and np.array_equal(res["trans"], trans)
    knee = layout.joint_vector_slice("left_knee")
    assert np.array_equal(res["body_pose"][:, knee], f.body_pose[:, knee])
    assert "left_hand_pose" not in res
    # the report names the faults' frames and bones
    rep = res["repaired"]
    assert rep and all(set(r) == {"joint", "first", "last", "kind"} for r in rep)
    found = {(r["joint"], f0) for r in rep for f0 in range(r["first"], r["last"] + 1)}
    spikes = [e for e in f.events if e[0] == "spike" and e[1] != "left_knee"]
    hits = [(j, a) in found for _, j, a, _ in spikes]
    assert spikes and sum(hits) >= 2 * len(hits) / 3, (spikes, rep)
    assert "repaired" in cleaning.summary(rep)


def test_strength_is_monotonic_and_zero_changes_nothing(take):
    body, _ = take
    prior = dposer.load_prior()
    f = faults.inject(body, seed=3)
    moved = []
    for s in (0.0, 0.25, 0.5, 1.0):
        res = clean(prior, {"body_pose": f.body_pose}, strength=s)
        moved.append(_mm(res["body_pose"], f.body_pose).mean())
    assert moved[0] == 0.0
    assert moved[1] < moved[2] < moved[3] and moved[3] > 1.1 * moved[1], moved


def test_what_a_rotation_moves_decides_not_its_angle(take):
    """A twist flip about a straight arm (a converter's choice when the elbow is straight) moves no joint and is not
    a fault; the same flip as a swing is. A one-way fast step (a foot strike) is not a spike."""
    body, _ = take
    aa = body.reshape(len(body), 21, 3).astype(np.float64)
    arm, elbow = BODY.index("right_shoulder"), BODY.index("right_elbow")
    aa[:, elbow] = 0  # straight arm
    pr = cleaning.probes(aa, BODY)
    bone = pr[:, arm, 0]  # the first probe of the shoulder: towards the elbow
    assert np.allclose(np.linalg.norm(bone, axis=-1), 1)
    from scipy.spatial.transform import Rotation

    def flip(axis, a, b, deg=35.0):
        out = aa.copy()
        local = Rotation.from_rotvec(aa[a:b, arm]) * Rotation.from_rotvec(np.radians(deg) * axis)
        out[a:b, arm] = local.as_rotvec()
        return out

    rest_bone = cleaning.probes(np.zeros((1, 21, 3)), BODY)[0, arm, 0]
    twist = flip(rest_bone, 60, 68)  # about the bone in the joint's own frame: moves nothing
    swing = flip(np.cross(rest_bone, [0.0, 0.0, 1.0]) / np.linalg.norm(np.cross(rest_bone, [0.0, 0.0, 1.0])), 60, 68)
    assert not cleaning.detect(twist, BODY, 0.5).flags[:, arm].any()
    assert cleaning.detect(swing, BODY, 0.5).flags[60:68, arm].mean() > 0.8
    # a fast step that does not come back: 25 deg of knee flexion in one frame, held after it
    step = aa.copy()
    knee = BODY.index("left_knee")
    step[80:, knee] = (Rotation.from_rotvec(np.radians(25) * np.array([1.0, 0, 0])) *
                       Rotation.from_rotvec(aa[80:, knee])).as_rotvec()
    assert not cleaning.detect(step, BODY, 0.5).flags[:, knee].any()


def test_a_fault_is_one_joints_not_a_re_solved_chain(take):
    """A knee that turns back what its hip turned in the same frame (the shin stays where it was: a converter's
    re-solved leg) is not a fault; the same knee spike alone is. (Whether the hip's turn is one is the hip's own
    test.)"""
    from scipy.spatial.transform import Rotation

    body, _ = take
    aa = body.reshape(len(body), 21, 3).astype(np.float64)
    hip, knee, ankle = (BODY.index(f"left_{j}") for j in ("hip", "knee", "ankle"))
    parents = cleaning.chain_parents(BODY)
    assert parents[ankle] == knee and parents[knee] == hip and parents[hip] == -1
    e = Rotation.from_rotvec(np.radians(30) * np.array([1.0, 0, 0]))
    spike = aa.copy()
    spike[50, knee] = (Rotation.from_rotvec(aa[50, knee]) * e).as_rotvec()
    assert cleaning.detect(spike, BODY, 0.5).flags[50, knee]
    resolved = spike.copy()  # the hip turns the other way first: hip * knee is unchanged at frame 50
    below = Rotation.from_rotvec(aa[50, knee])
    resolved[50, hip] = (Rotation.from_rotvec(aa[50, hip]) * below * e.inv() * below.inv()).as_rotvec()
    shin = cleaning.chained(cleaning.to_quaternions(resolved), parents)[50, knee]
    assert np.degrees(cleaning._angle(shin, cleaning.chained(cleaning.to_quaternions(aa), parents)[50, knee])) < 1e-6
    assert not cleaning.detect(resolved, BODY, 0.5).flags[:, knee].any()
