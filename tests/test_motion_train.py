"""The motion prior's data and training mechanics: resampling by time, masks, the interpolation base, a resumed
run equal to an uninterrupted one. Tiny networks on real takes (the gestures clip and the AMASS take)."""
import numpy as np
import pytest
import torch

from conftest import needs_data


def test_resample_by_time_keeps_the_frames_that_coincide():
    from scipy.spatial.transform import Rotation

    from dposer.motion.corpus import resample

    rot = Rotation.random(121 * 2, random_state=0).as_rotvec().reshape(121, 2, 3) * 0.3
    out = resample(rot, 120.0, 30.0)
    assert out.shape == (31, 2, 3)
    assert np.allclose(out, rot[::4], atol=1e-5)
    out24 = resample(rot[:97], 120.0, 24.0)  # 0.8 s -> 20 intervals at 24 fps
    assert out24.shape == (20, 2, 3) and np.allclose(out24, rot[:97:5], atol=1e-5)
    # a 24 fps take at 30 fps: a non-integer ratio, between the source frames
    src = resample(rot[:97], 120.0, 24.0)
    up = resample(src, 24.0, 30.0)
    assert up.shape == (24, 2, 3) and np.allclose(up[0], src[0], atol=1e-6)
    assert np.allclose(up[5], src[4], atol=1e-5)  # both at 1/6 s


def test_masks_cover_every_kind_and_name_parts():
    from dposer.motion import masks

    gen = torch.Generator().manual_seed(0)
    for kind in masks.KINDS:
        m = masks.one_mask(96, gen, kind)
        assert m.shape == (96, 22) and m.any(), kind
    assert masks.part_joints("body").all() and masks.part_joints("left_leg").sum() == 4
    with pytest.raises(ValueError, match="unknown body part 'tail'"):
        masks.part_joints("left_leg,tail")


@needs_data
def test_a_fresh_network_answers_the_interpolation(data_root):
    """Zero output = the SLERP base; observed cells are the take's."""
    from dposer.motion.corpus import stack
    from dposer.motion.model import MotionConfig, MotionNet, finish, prepare, sample
    from dposer.core.torch_rotations import axis_angle_to_quaternion, matrix_to_axis_angle

    d = np.load(data_root / "dposer_x" / "gestures_clip_240f.npz")
    rot = torch.as_tensor(stack(d["root_orient"], d["pose_body"])[:96], dtype=torch.float32)
    q = axis_angle_to_quaternion(rot)[None]
    m = torch.zeros(1, 96, 22, dtype=torch.bool)
    m[:, 40:60, 5:9] = True
    x6, b6, turn = prepare(q, m)
    r = sample(MotionNet(MotionConfig(width=32, ff=64, layers=1)), b6, m, 0.14, steps=3)
    assert torch.equal(r, torch.zeros_like(r))
    out = matrix_to_axis_angle(finish(b6, r, turn))[0]
    obs = ~m[0]
    assert torch.allclose(out[obs], rot[obs], atol=1e-4) or torch.allclose(
        torch.cos(out[obs].norm(dim=-1)), torch.cos(rot[obs].norm(dim=-1)), atol=1e-4)
    assert not torch.allclose(out[40:60, 5:9], rot[40:60, 5:9], atol=1e-3)  # the gap was filled by SLERP


@needs_data
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, data_root):
    from dposer.motion import corpus
    from dposer.motion.checkpoint import read_motion
    from dposer.motion.model import MotionConfig
    from dposer.motion.train import MotionTrainConfig, train

    ps = np.load(data_root / "dposer_x" / "gestures_clip_240f.npz")
    rot = corpus.stack(ps["root_orient"], ps["pose_body"]).astype(np.float32)
    path = tmp_path / "corpus.npz"
    np.savez(path, rotvec=np.concatenate([rot[:150], rot[90:]]), frames=np.array([150, 150]),
             names=np.array(["a", "b"]), split=np.array(["train", "val"]), rate=np.float64(corpus.RATE))
    cfg = MotionTrainConfig(net=MotionConfig(frames=32, width=32, ff=64, layers=1), steps=4, batch=4,
                            val_every=2, val_windows=4, ckpt_seconds=1e9, warmup=2)
    quiet = dict(corpus_path=path, log=lambda s: None)
    train(tmp_path / "straight", cfg, **quiet)
    cfg2 = MotionTrainConfig(**{**cfg.__dict__, "steps": 2})
    train(tmp_path / "resumed", cfg2, **quiet)
    train(tmp_path / "resumed", cfg, resume=True, **quiet)
    a, meta_a = read_motion(tmp_path / "straight" / "last.safetensors")
    b, meta_b = read_motion(tmp_path / "resumed" / "last.safetensors")
    assert meta_a["step"] == meta_b["step"] == "4"
    for k in a:
        if k.startswith(("net.", "train.raw.")):
            assert torch.equal(a[k], b[k]), k
    assert (tmp_path / "straight" / "log.jsonl").read_text().count("\n") == 2


def test_training_windows_balance_sources_and_vary_speed(tmp_path):
    """other_share of the windows come from takes outside Bandai (here a tenth of the frames); a window played at
    speed 1 is the take's frames, at other speeds unit quaternions between them."""
    from dposer.motion import corpus
    from dposer.motion.train import Windows

    t = np.arange(1000, dtype=np.float32)[:, None, None] * np.ones((1, 22, 3), np.float32)
    bandai, other = 0.001 * t[:900], -0.001 * t[:100]  # the sign of a window tells its source
    path = tmp_path / "corpus.npz"
    np.savez(path, rotvec=np.concatenate([bandai, other]), frames=np.array([900, 100]),
             names=np.array(["bandai2/a", "cgspeed/b"]), split=np.array(["train", "train"]),
             rate=np.float64(corpus.RATE))
    gen = torch.Generator().manual_seed(0)
    plain = Windows("train", 16, path, mirror=False)
    balanced = Windows("train", 16, path, mirror=False, other_share=0.5)
    share = [float((w.batch(2000, gen)[:, 1, 1, 1] < 0).float().mean()) for w in (plain, balanced)]
    assert share[0] < 0.15 and 0.45 < share[1] < 0.55, share
    fast = Windows("train", 16, path, mirror=False, speed=(1.25, 1.25))
    q = fast.batch(64, gen)
    assert torch.allclose(q.norm(dim=-1), torch.ones(()), atol=1e-6)

    def mean_step(q):  # mean change of the rotation angle from frame to frame
        angle = 2 * torch.atan2(q[..., 1:].norm(dim=-1), q[..., 0].abs())
        return float((angle[:, 1:] - angle[:, :-1]).abs().mean())

    ratio = mean_step(q) / mean_step(plain.batch(64, gen))
    assert abs(ratio - 1.25) < 0.02, ratio
