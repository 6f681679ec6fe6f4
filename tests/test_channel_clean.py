"""The channel cleaner (dposer.channel_clean, dposer.bvh_channels) on a small synthetic BVH take: spikes, pops,
held limbs and twist spikes on bones with no SMPL-X counterpart are repaired; an unfaulted take and every
untouched value come back as written; a fault is found at any frame rate."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dposer.formats import bvh, bvh_channels
from dposer.tasks import channel_clean

# name, parent, offset (cm); Neck1 and Chest2 have no SMPL-X joint
SKELETON = [("Hips", -1, (0, 90, 0)), ("Spine", 0, (0, 10, 0)), ("Chest2", 1, (0, 15, 0)), ("Neck", 2, (0, 20, 0)),
            ("Neck1", 3, (0, 5, 0)), ("Head", 4, (0, 8, 0)), ("LeftArm", 2, (15, 15, 0)),
            ("LeftForeArm", 6, (28, 0, 0)), ("LeftHand", 7, (25, 0, 0)), ("RightUpLeg", 0, (-9, -5, 0)),
            ("RightLeg", 9, (0, -42, 0)), ("RightFoot", 10, (0, -40, 0))]
NECK1, HEAD, ARM, FOREARM, HAND, UPLEG, KNEE, FOOT = 4, 5, 6, 7, 8, 9, 10, 11


def _take(fps: float, seconds: float = 4.0) -> tuple[str, bvh.Bvh]:
    """Smooth motion (0.4-1.3 Hz, up to 35 deg) on every bone, ZXY channels, root with positions; text and Bvh."""
    t = np.arange(int(round(seconds * fps))) / fps
    rng = np.random.default_rng(0)
    cols = [np.stack([5 * np.sin(0.5 * t), 90 + 2 * np.sin(0.7 * t), 3 * t], 1)]
    for _ in SKELETON:
        freq, amp, phase = rng.uniform(0.4, 1.3, 3), rng.uniform(10, 35, 3), rng.uniform(0, 6, 3)
        cols.append(amp * np.sin(2 * np.pi * freq * t[:, None] + phase))
    motion = np.round(np.concatenate(cols, 1), 4)
    joints = []
    for k, (name, parent, off) in enumerate(SKELETON):
        ch = (("Xposition", "Yposition", "Zposition") if parent < 0 else ()) + ("Zrotation", "Xrotation", "Yrotation")
        joints.append(bvh.Joint(name, parent, tuple(map(float, off)), ch,
                                (0.0, 8.0, 0.0) if name in ("Head", "LeftHand", "RightFoot") else None))
    take = bvh.Bvh(tuple(joints), 1.0 / fps, motion)
    text = bvh.dumps(take)
    return text, bvh.parse(text)


def _bone_cols(take: bvh.Bvh, bone: int) -> np.ndarray:
    return bvh_channels.rotation_columns(take)[bvh_channels.rotation_bones(take).index(bone)]


def _faulty(take: bvh.Bvh, bone: int, first: int, last: int, rotvec) -> bvh.Bvh:
    """The take with ``bone`` rotated by ``rotvec`` (bone-local) on frames first..last."""
    q = bvh_channels.rotations(take)
    i = bvh_channels.rotation_bones(take).index(bone)
    n = last - first + 1
    q[first:last + 1, i] = (Rotation.from_quat(q[first:last + 1, i]) * Rotation.from_rotvec(np.tile(rotvec, (n, 1)))).as_quat()
    cells = np.zeros(q.shape[:2], bool)
    cells[first:last + 1, i] = True
    return bvh_channels.with_rotations(take, q, cells)


def _angle_deg(a: bvh.Bvh, b: bvh.Bvh, bone: int, frames) -> np.ndarray:
    i = bvh_channels.rotation_bones(a).index(bone)
    qa, qb = bvh_channels.rotations(a)[frames, i], bvh_channels.rotations(b)[frames, i]
    return np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(qa * qb, -1)), 0, 1)))


def _clean(take: bvh.Bvh) -> bvh.Bvh:
    return bvh_channels.clean_take(take)[0]


def test_a_spike_moves_back_to_within_a_tenth_of_its_size():
    _, take = _take(30.0)
    bad = _faulty(take, FOREARM, 50, 50, np.radians([0.0, 0.0, 30.0]))
    assert _angle_deg(bad, take, FOREARM, [50])[0] == pytest.approx(30.0, abs=0.01)
    assert _angle_deg(_clean(bad), take, FOREARM, [50])[0] < 3.0


def test_a_twist_spike_on_a_bone_with_no_smplx_joint_is_repaired():
    _, take = _take(30.0)
    axis = np.array(SKELETON[NECK1 + 1][2], float)
    bad = _faulty(take, NECK1, 70, 70, np.radians(25.0) * axis / np.linalg.norm(axis))  # about the bone's own axis
    assert _angle_deg(_clean(bad), take, NECK1, [70])[0] < 2.5


def test_a_pop_is_repaired():
    _, take = _take(60.0)
    bad = _faulty(take, ARM, 100, 111, np.radians([20.0, 0.0, 0.0]))  # 0.2 s
    frames = np.arange(100, 112)
    assert _angle_deg(bad, take, ARM, frames).mean() == pytest.approx(20.0, abs=0.01)
    assert _angle_deg(_clean(bad), take, ARM, frames).max() < 3.0


def test_a_held_limb_is_repaired():
    _, take = _take(30.0)
    q = bvh_channels.rotations(take)
    limb = [bvh_channels.rotation_bones(take).index(b) for b in (ARM, FOREARM, HAND)]
    q[40:64, limb] = q[39, limb]  # 0.8 s frozen at the last good frame
    cells = np.zeros(q.shape[:2], bool)
    cells[40:64, limb] = True
    bad = bvh_channels.with_rotations(take, q, cells)
    frames = np.arange(40, 64)
    before = _angle_deg(bad, take, FOREARM, frames).mean()
    after = _angle_deg(_clean(bad), take, FOREARM, frames).mean()
    assert before > 10 and after < 0.3 * before  # a 0.8 s gap on 1 Hz motion: most of the error removed


def test_an_unfaulted_take_comes_back_bit_for_bit():
    text, _ = _take(30.0)
    out, rep, _ = bvh_channels.clean_bvh(text)
    assert rep.events == [] and not rep.smoothed
    assert out == text


def test_untouched_channels_keep_their_text():
    text, take = _take(30.0)
    bad = _faulty(take, NECK1, 60, 60, np.radians([0.0, 30.0, 0.0]))
    bad_text = bvh_channels.motion_text(text, bad.motion, bad.motion != take.motion)
    out, rep, names = bvh_channels.clean_bvh(bad_text)
    assert [(k, names[b], a, e) for k, b, a, e in rep.events] == [("spike", "Neck1", 60, 60)]
    rows_in = [ln.split() for ln in bad_text.splitlines()[-take.num_frames:]]
    rows_out = [ln.split() for ln in out.splitlines()[-take.num_frames:]]
    cols = set(_bone_cols(take, NECK1))
    diff = {(f, c) for f, (a, b) in enumerate(zip(rows_in, rows_out)) for c, (x, y) in enumerate(zip(a, b)) if x != y}
    assert diff and diff <= {(60, c) for c in cols}  # only the repaired bone's channels on the spiked frame
    assert out.split("MOTION")[0] == bad_text.split("MOTION")[0]  # the hierarchy as written


def _planted_foot_strike(take: bvh.Bvh, first: int, peak_deg: float, settle_deg: float) -> bvh.Bvh:
    """The take with a calm foot (its motion scaled to a fifth) that strikes at ``first``: one frame turned by
    ``peak_deg``, then turned by ``settle_deg`` from there on (it goes and stays)."""
    motion = take.motion.copy()
    motion[:, _bone_cols(take, FOOT)] *= 0.2
    calm = replace(take, motion=motion)
    q = bvh_channels.rotations(calm)
    i = bvh_channels.rotation_bones(calm).index(FOOT)
    turn = np.zeros(len(q))
    turn[first], turn[first + 1:] = peak_deg, settle_deg
    q[:, i] = (Rotation.from_quat(q[:, i]) * Rotation.from_rotvec(np.radians(turn)[:, None] * [1.0, 0, 0])).as_quat()
    return bvh_channels.with_rotations(calm, q, np.ones(q.shape[:2], bool))


def test_a_foot_strike_that_goes_and_stays_is_kept_while_a_spike_on_the_foot_is_repaired():
    _, take = _take(30.0)
    strike = _planted_foot_strike(take, 40, 12.0, 5.0)  # at 30 fps: 12 deg for a frame, settling at 5 deg
    out, changed, rep = bvh_channels.clean_take(strike)
    assert rep.events == [] and not changed.any()
    assert np.array_equal(out.motion, strike.motion)
    spiked = _faulty(strike, FOOT, 80, 80, np.radians([25.0, 0.0, 0.0]))
    out, _, rep = bvh_channels.clean_take(spiked)
    assert [e[0] for e in rep.events] == ["spike"]
    assert _angle_deg(out, strike, FOOT, [80])[0] < 2.5
    assert np.array_equal(out.motion[:80], strike.motion[:80])  # the strike at frame 40 as it was


def test_a_toe_that_snaps_down_and_stays_is_not_a_spike():
    """A foot bending up, then snapping down by 23 deg in one frame and staying there (a toe meeting the floor, as
    in a Bandai walk take): the frame after the snap equals the ones after it, so it is no spike, however far it
    stands off the midpoint of its neighbours; a spike of the same size on the same foot is still repaired."""
    _, take = _take(30.0)
    motion = take.motion.copy()
    motion[:, _bone_cols(take, FOOT)] *= 0.2
    calm = replace(take, motion=motion)
    q = bvh_channels.rotations(calm)
    i = bvh_channels.rotation_bones(calm).index(FOOT)
    turn = np.full(len(q), 30.0)
    turn[36:42] = [30.0, 36.0, 48.0, 55.0, 44.6, 21.3]
    turn[42:] = 22.0
    q[:, i] = (Rotation.from_quat(q[:, i]) * Rotation.from_rotvec(np.radians(turn)[:, None] * [1.0, 0, 0])).as_quat()
    snap = bvh_channels.with_rotations(calm, q, np.ones(q.shape[:2], bool))
    out, changed, rep = bvh_channels.clean_take(snap)
    assert rep.events == [] and not changed.any(), rep.events
    spiked = _faulty(snap, FOOT, 80, 80, np.radians([23.0, 0.0, 0.0]))
    out, _, rep = bvh_channels.clean_take(spiked)
    assert [e[0] for e in rep.events] == ["spike"]
    assert _angle_deg(out, snap, FOOT, [80])[0] < 2.5


def test_a_jump_out_and_back_shared_by_a_bone_and_its_child_is_kept_as_motion():
    """A head nod (the neck and the bone below the head turn out and back on the same frames) is the body's motion;
    the same turn on the neck alone is one bone's fault."""
    text, take = _take(30.0)
    nod = _faulty(_faulty(take, 3, 60, 63, np.radians([25.0, 0.0, 0.0])), NECK1, 60, 63, np.radians([15.0, 0.0, 0.0]))
    nod_text = bvh_channels.motion_text(text, nod.motion, nod.motion != take.motion)
    out, rep, _ = bvh_channels.clean_bvh(nod_text)
    assert rep.events == [] and out == nod_text
    alone = _faulty(take, 3, 60, 63, np.radians([25.0, 0.0, 0.0]))
    _, _, rep = bvh_channels.clean_take(alone)
    assert [(k, b, a, e) for k, b, a, e in rep.events] == [("pop", 3, 60, 63)]


def test_a_spike_is_repaired_when_an_unrelated_limb_flicks_on_the_same_frame():
    """The knee and foot flick out and back together (a glitch down the leg's chain, left as it is) on the frame of
    a spike on the forearm: the leg is far from the arm in the skeleton, so the forearm's spike is still one bone's
    fault and is repaired. Without the skeleton every bone counts as a companion and the spike is left."""
    _, take = _take(30.0)
    leg = _faulty(_faulty(take, KNEE, 60, 60, np.radians([25.0, 0.0, 0.0])), FOOT, 60, 60, np.radians([20.0, 0, 0]))
    both = _faulty(leg, FOREARM, 60, 60, np.radians([0.0, 0.0, 30.0]))
    out, _, rep = bvh_channels.clean_take(both)
    bones = bvh_channels.rotation_bones(take)
    assert [(k, b, a, e) for k, b, a, e in rep.events] == [("spike", bones.index(FOREARM), 60, 60)]
    assert _angle_deg(out, take, FOREARM, [60])[0] < 3.0
    for bone in (KNEE, FOOT):  # the leg's flick as it was
        assert np.array_equal(out.motion[:, _bone_cols(take, bone)], both.motion[:, _bone_cols(take, bone)])
    _, rep = channel_clean.clean(bvh_channels.rotations(both), 30.0)  # no skeleton: every bone is a companion
    assert rep.events == []


def test_the_skeleton_the_companion_rule_walks():
    """Nearby bones are at most two links apart: parent, child, sibling, grandparent, grandchild; a joint without
    rotation channels is skipped to its nearest rotating ancestor."""
    _, take = _take(30.0)
    parents = bvh_channels.rotation_parents(take)
    assert list(parents) == [p for _, p, _ in SKELETON]
    near = channel_clean.near_bones(parents, 2)
    assert sorted(np.flatnonzero(near[FOREARM])) == [2, ARM, HAND]  # Chest2 (grandparent), arm, hand
    assert sorted(np.flatnonzero(near[ARM])) == [1, 2, 3, FOREARM, HAND]  # Spine, Chest2, Neck (sibling), ...
    assert not near[FOREARM, FOOT] and not near[ARM, ARM]
    joints = list(take.joints)
    joints[2] = replace(joints[2], channels=())  # Chest2 without channels: the arm and neck hang from Spine
    assert list(bvh_channels.rotation_parents(replace(take, joints=tuple(joints)))) == \
        [-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9]


def test_a_take_that_starts_with_the_whole_body_still_has_no_held_limb():
    """Every bone but the root still for the first 0.5 s, then jumping into its motion (a capture that starts late):
    nothing is held while the body moves, so nothing is repaired; one limb frozen the same way is."""
    text, take = _take(30.0)
    q = bvh_channels.rotations(take)
    q[:15, 1:] = q[0, 1:]
    still = bvh_channels.with_rotations(take, q, np.ones(q.shape[:2], bool))
    still_text = bvh_channels.motion_text(text, still.motion, np.ones(still.motion.shape, bool))
    out, rep, _ = bvh_channels.clean_bvh(still_text)
    assert rep.events == [] and out == still_text
    q = bvh_channels.rotations(take)
    arm = bvh_channels.rotation_bones(take).index(ARM)
    q[40:64, arm] = q[39, arm]
    _, _, rep = bvh_channels.clean_take(bvh_channels.with_rotations(take, q, np.ones(q.shape[:2], bool)))
    assert [(k, b) for k, b, _, _ in rep.events] == [("hold", arm)]


def test_fast_limbs_at_30_fps_without_jitter_are_not_smoothed():
    """A run at 30 fps: the head, the arm and the leg swing at 2 Hz (their third differences look like 0.4 deg of
    jitter), the spine and neck do not; jitter is on every bone, so nothing is smoothed."""
    text, take = _take(30.0)
    t = np.arange(take.num_frames) / 30.0
    motion = take.motion.copy()
    for bone in (HEAD, ARM, FOREARM, HAND, UPLEG, KNEE, FOOT):
        motion[:, _bone_cols(take, bone)] = 40 * np.sin(2 * np.pi * 2.0 * t + bone)[:, None] * [1, 0.3, 0.2]
    fast = replace(take, motion=np.round(motion, 4))
    noise = channel_clean.jitter_deg(channel_clean.continuous(bvh_channels.rotations(fast)))
    assert (noise > channel_clean.Settings().jitter_min_deg).sum() > len(noise) / 2
    fast_text = bvh_channels.motion_text(text, fast.motion, np.ones(fast.motion.shape, bool))
    out, rep, _ = bvh_channels.clean_bvh(fast_text)
    assert not rep.smoothed and rep.events == []
    assert out == fast_text


def test_the_same_fault_in_seconds_is_found_at_30_and_120_fps():
    found = {}
    for fps in (30.0, 120.0):
        _, take = _take(fps)
        a, b = int(round(2.0 * fps)), int(round(2.2 * fps)) - 1  # 0.2 s pop from t = 2 s
        _, _, rep = bvh_channels.clean_take(_faulty(take, FOREARM, a, b, np.radians([0.0, 25.0, 0.0])))
        found[fps] = [(k, e[2] / fps, (e[3] + 1) / fps) for k, e in ((e[0], e) for e in rep.events)]
    for fps, ev in found.items():
        assert len(ev) == 1 and ev[0][0] == "pop", (fps, ev)
        assert ev[0][1] == pytest.approx(2.0, abs=1e-9) and ev[0][2] == pytest.approx(2.2, abs=1e-9)


def test_jitter_is_estimated_and_smoothed_only_when_present():
    _, take = _take(60.0)
    q = channel_clean.continuous(bvh_channels.rotations(take))
    rng = np.random.default_rng(1)
    noisy = (Rotation.from_quat(q.reshape(-1, 4)) *
             Rotation.from_rotvec(rng.normal(scale=np.radians(1.5), size=(q.size // 4, 3)))).as_quat().reshape(q.shape)
    assert channel_clean.jitter_deg(channel_clean.continuous(noisy)).mean() == pytest.approx(1.5, rel=0.25)
    out, rep = channel_clean.clean(noisy, 60.0)
    assert rep.smoothed and not channel_clean.clean(q, 60.0)[1].smoothed
    err = lambda x: np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(x * q, -1)), 0, 1))).mean()  # noqa: E731
    assert err(out) < 0.6 * err(noisy)


def test_a_fill_function_can_replace_the_spline():
    _, take = _take(30.0)
    bad = _faulty(take, FOREARM, 50, 50, np.radians([0.0, 0.0, 30.0]))
    seen = []

    def hold_previous(q, mask, fps):
        seen.append(int(mask.sum()))
        out = q.copy()
        for f, b in zip(*np.nonzero(mask)):
            out[f, b] = out[f - 1, b]
        return out

    q, rep = channel_clean.clean(bvh_channels.rotations(bad), bad.fps, fill=hold_previous)
    assert seen and seen[0] == 1 and rep.bad.sum() == 1
    i = bvh_channels.rotation_bones(take).index(FOREARM)
    assert np.allclose(np.abs(np.sum(q[50, i] * q[49, i])), 1.0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="quaternions"):
        channel_clean.clean(np.zeros((10, 3)), 30.0)
    with pytest.raises(ValueError, match="fps"):
        channel_clean.clean(np.tile([0.0, 0, 0, 1], (10, 2, 1)), 0.0)
    with pytest.raises(ValueError, match="parents"):
        channel_clean.clean(np.tile([0.0, 0, 0, 1], (10, 2, 1)), 30.0, parents=[-1])
    _, take = _take(30.0)
    assert replace(take, motion=take.motion[:3]).num_frames == 3
    out, rep = channel_clean.clean(bvh_channels.rotations(take)[:3], 30.0)  # too short to judge: unchanged
    assert rep.events == [] and np.array_equal(out, bvh_channels.rotations(take)[:3])


def test_numpy_filters_match_scipy():
    from scipy.interpolate import CubicSpline
    from scipy.ndimage import maximum_filter1d, median_filter
    from scipy.signal import butter, filtfilt

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3, 4)).cumsum(0)
    for wn in (0.05, 0.2, 0.6):
        b, a = channel_clean.butter2(wn)
        assert np.allclose(np.r_[b, a], np.r_[butter(2, wn)], atol=1e-14)
        assert np.allclose(channel_clean.filtfilt(b, a, x, 15), filtfilt(b, a, x, axis=0, padlen=15), atol=1e-9)
    t = np.sort(rng.choice(300, 60, replace=False)).astype(float)
    y, at = rng.normal(size=(60, 4)), np.linspace(t[0], t[-1], 500)
    assert np.allclose(channel_clean.natural_spline(t, y, at), CubicSpline(t, y, bc_type="natural")(at), atol=1e-9)
    m = rng.normal(size=(50, 7))
    assert np.array_equal(channel_clean._sliding(m, 2, np.max), maximum_filter1d(m, 5, axis=0, mode="nearest"))
    assert np.array_equal(channel_clean._sliding(m, 3, np.median), median_filter(m, size=(7, 1), mode="nearest"))
