"""Hands over a take (dposer.tasks.hands): the best estimate, hypotheses that move like fingers, and their place in
complete(clip=True)."""
import json

import numpy as np
import pytest

from dposer.formats import data
from dposer.spec import layout
from dposer.tasks import hands, pose_tasks
from dposer.train.hands_fit import hand_error_deg, hand_speed_deg
from conftest import needs_data

R, L = layout.PART_SLICES["right_hand"], layout.PART_SLICES["left_hand"]


def test_model_file_is_what_the_fit_writes(data_root):
    from dposer.train import hands_fit

    model, _ = hands_fit.fit(data_root)
    stored = json.loads(hands.MODEL_FILE.read_text())
    assert set(stored) == set(model)
    for key, value in model.items():
        assert np.allclose(stored[key], value, rtol=1e-9, atol=1e-12), key


def test_hypotheses_are_smooth_lively_and_centred_on_the_best_estimate():
    m = hands.HandModel.load()
    est = hands.best_estimate(240, None, fps=30)
    assert np.allclose(est, m.constant)
    moves = hands.motion(5, 240, fps=30, seed=3)
    assert np.allclose(moves.mean(0), 0.0, atol=1e-9)  # the K hypotheses average to the best estimate
    speeds = [hand_speed_deg(est + h) * 30 for h in moves]  # degrees per second
    assert all(25 < s < 120 for s in speeds), speeds
    # no flicker: the frame-to-frame change itself changes slowly (second differences well below first ones)
    d1 = np.abs(np.diff(moves, axis=1)).mean()
    d2 = np.abs(np.diff(moves, n=2, axis=1)).mean()
    assert d2 < 0.5 * d1
    # the same motion in seconds at another frame rate: speed per second kept
    fast = hands.motion(5, 960, fps=120, seed=3)
    s120 = np.mean([hand_speed_deg(est[:1] + h) * 120 for h in fast])
    assert abs(s120 - np.mean(speeds)) < 0.25 * np.mean(speeds)
    with pytest.raises(ValueError, match="fps"):
        hands.motion(2, 10, fps=0)


def _turning_wrists(frames: int, fps: float, left_deg_s: float, right_deg_s: float) -> np.ndarray:
    """Whole-body rows whose only motion is each wrist turning about one axis at a steady speed (deg/s)."""
    v = np.zeros((frames, layout.DIM))
    t = np.arange(frames) / fps
    for side, speed in (("left", left_deg_s), ("right", right_deg_s)):
        v[:, layout.joint_vector_slice(f"{side}_wrist")] = np.radians(10 + speed * t)[:, None] * np.array([0.6, 0.8, 0])
    return v


def test_liveliness_is_the_wrists_speed_over_the_fitted_pace_at_any_frame_rate():
    m = hands.HandModel.load()
    for fps in (30, 120):
        v = _turning_wrists(4 * fps, fps, 0.5 * m.wrist_speed, 2 * m.wrist_speed)
        free = np.zeros_like(v, bool)
        free[:, layout.HANDS] = True
        inner = slice(fps, 3 * fps)  # away from the ends, where the low-pass sees both sides
        assert np.allclose(hands.liveliness(v, free, "left_hand", fps)[inner], 0.5, atol=0.01)
        assert np.allclose(hands.liveliness(v, free, "right_hand", fps)[inner], 2.0, atol=0.02)
    fast = _turning_wrists(120, 30, 0, 20 * m.wrist_speed)
    assert hands.liveliness(fast, free[:120], "right_hand", 30).max() == hands.LIVELY_MAX
    # no observed arm: a wrist free on one frame, never moved from a rig's rest, or a one-frame take
    free[7, layout.joint_vector_slice("right_wrist")] = True
    assert hands.liveliness(v, free, "right_hand", 120) is None
    v[:, layout.joint_vector_slice("left_wrist")] = 0
    assert hands.liveliness(v, free, "left_hand", 120) is None
    assert hands.liveliness(v[:1], free[:1], "left_hand", 120) is None


def test_hypotheses_run_at_their_liveliness_with_the_same_spread():
    est = hands.best_estimate(960, None, fps=30)
    speed, spread = {}, {}
    for rate in (0.5, 2.0):
        moves = hands.motion(5, 960, fps=30, seed=1, lively=np.full(960, rate))
        speed[rate] = np.mean([hand_speed_deg(est + h) for h in moves])
        spread[rate] = moves.std()
    assert 3.2 < speed[2.0] / speed[0.5] < 5.0, speed  # the speed follows the clock's rate (4x here)
    assert 0.8 < spread[2.0] / spread[0.5] < 1.25, spread  # what is unknown about the hand is the same
    held = hands.motion(3, 50, fps=30, seed=1, lively=np.zeros(50))  # a still clock holds each hypothesis' shape
    assert np.allclose(held, held[:, :1]) and np.abs(held[0] - held[1]).max() > 0.05
    with pytest.raises(ValueError, match="lively"):
        hands.motion(2, 10, fps=30, lively=-np.ones(10))


def test_a_hand_on_a_still_arm_moves_slower_than_one_on_a_gesturing_arm():
    m = hands.HandModel.load()
    v = _turning_wrists(240, 30, 0.2 * m.wrist_speed, 2 * m.wrist_speed)
    free = np.zeros_like(v, bool)
    free[:, layout.HANDS] = True
    dims, best, hyps = hands.clip_hands(v, free, 5, fps=30, seed=2)
    left, right = dims < R.start, dims >= R.start
    slow = np.mean([hand_speed_deg(h[:, left]) for h in hyps])
    fast = np.mean([hand_speed_deg(h[:, right]) for h in hyps])
    assert fast > 5 * slow, (slow, fast)
    # the wrists held still (off the rest pose): every hypothesis holds one shape, and they still differ
    v = _turning_wrists(240, 30, 0, 0)
    _, best, hyps = hands.clip_hands(v, free, 5, fps=30, seed=2)
    assert np.allclose(hyps, hyps[:, :1]) and np.abs(hyps[0] - hyps[1]).max() > 0.05


def test_best_estimate_follows_the_other_hands_slow_shape_not_its_jitter():
    m = hands.HandModel.load()
    rng = np.random.default_rng(0)
    shape = m.constant + 0.3
    other = shape + 0.05 * rng.standard_normal((300, 45))
    est = hands.best_estimate(300, other, fps=30)
    expected = m.constant + m.other_weight * (shape - m.constant)
    assert np.abs(est[30:-30] - expected).max() < 0.02
    assert hand_speed_deg(est) < 0.2 * hand_speed_deg(other)
    with pytest.raises(ValueError, match="other hand"):
        hands.best_estimate(300, other[:10], fps=30)


def test_clip_hands_fills_only_wholly_free_hands_and_ignores_a_rig_at_rest():
    v = np.zeros((20, layout.DIM), np.float32)
    free = np.zeros_like(v, bool)
    assert hands.clip_hands(v, free, 2) is None
    free[:, R] = True
    dims, best, hyps = hands.clip_hands(v, free, 3, fps=30, seed=1)
    assert np.array_equal(dims, np.arange(R.start, R.stop)) and best.shape == (20, 45) and hyps.shape == (3, 20, 45)
    # the left hand is all zeros (a rig's rest pose): unknown, so the estimate is the constant
    assert np.allclose(best, hands.HandModel.load().constant)
    v[:, L] = layout.mirror_hand(hands.HandModel.load().constant + 0.4)
    _, best2, _ = hands.clip_hands(v, free, 3, fps=30, seed=1)
    assert np.abs(best2 - best).max() > 0.05
    free[:5, L] = True  # a hand missing on some frames only is left to the prior
    assert hands.clip_hands(v, free, 3)[0].tolist() == list(range(R.start, R.stop))


@needs_data
@pytest.mark.parametrize("missing,known", [("right_hand", True), ("left_hand", True), ("left_hand,right_hand", False)])
def test_complete_clip_hands_beat_the_free_answers_on_the_finger_take(data_root, checkpoint, missing, known):
    """Measured on the AMASS finger take's frames 300-600 (the hypotheses' dynamics were fitted on 0-299): the best
    estimate beats every free answer, and each hypothesis moves at 0.5-2x the real hand's speed with an error at
    most 1.15x the constant mean hand's."""
    from dposer.core.prior import load_prior

    take = data.load_finger_take(data_root).subset(np.arange(300, 601))
    v = take.vectors.astype(np.float64)
    hidden = missing.split(",") + ([] if known else ["left_hand", "right_hand"])
    pose = {k: x for k, x in take.to_dict().items() if layout.KEY_PART.get(k) not in hidden}
    prior = load_prior(checkpoint)
    res = pose_tasks.complete(prior, pose, missing, hypotheses=5, seed=0, clip=True, fps=120)
    out = layout.dict_to_vectors(res, base=v)
    mean_right = data.load_part_set("hand", "train", data_root).vectors[:, R].mean(0)
    for side in missing.split(","):
        sl = layout.PART_SLICES[side]
        mean = mean_right if side == "right_hand" else layout.mirror_hand(mean_right)
        ours = hand_error_deg(out[:, sl], v[:, sl]).mean()
        free = [hand_error_deg(np.broadcast_to(mean, (len(v), 45)), v[:, sl]).mean()]
        if known:
            mirror = layout.mirrored_hand(v, "left_hand" if side == "right_hand" else "right_hand")
            free += [hand_error_deg(a * mirror + (1 - a) * mean, v[:, sl]).mean() for a in (0.25, 0.5, 0.75, 1.0)]
        assert ours < min(free), (side, ours, free)
        hyp = res[f"{side}_pose_hypotheses"]
        assert hyp.shape == (5, len(v), 45)
        assert np.allclose(hyp.mean(0), res[f"{side}_pose"], atol=1e-5)
        real = hand_speed_deg(v[:, sl])  # a resting left hand (about 10 deg/s), a gesturing right one (about 80)
        for h in hyp:
            assert hand_error_deg(h, v[:, sl]).mean() <= 1.15 * free[0]
            assert 0.5 * real <= hand_speed_deg(h) <= 2 * real, (side, hand_speed_deg(h) / real)
    assert np.array_equal(res["body_pose"], pose["body_pose"])
