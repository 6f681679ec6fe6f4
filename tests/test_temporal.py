"""Clip completion: the temporal model (dposer.tasks.temporal) and complete(clip=True) on the real finger take."""
import numpy as np
import pytest
import torch

import dposer
from dposer.formats import data
from dposer.spec import layout
from dposer.tasks import pose_tasks as tasks
from dposer.core.torch_rotations import geodesic_degrees
from dposer.tasks.temporal import Temporal, gaussian_kernel, lowpass
from conftest import needs_data


def test_gaussian_kernel_is_normalised_and_one_tap_without_width():
    assert torch.allclose(gaussian_kernel(3.0).sum(), torch.tensor(1.0))
    assert len(gaussian_kernel(3.0)) == 19
    assert gaussian_kernel(0.0).tolist() == [1.0]


def test_lowpass_keeps_constants_and_lines_inside_and_removes_noise():
    f = torch.arange(50, dtype=torch.float32)
    x = torch.stack([torch.full_like(f, 2.0), f], -1)[None]  # (1, 50, 2): a constant and a ramp
    y = lowpass(x, 3.0)
    assert torch.allclose(y[0, :, 0], torch.full_like(f, 2.0))  # edges renormalised: no droop
    assert torch.allclose(y[0, 10:40, 1], f[10:40], atol=1e-4)  # a line is kept away from the ends
    noise = torch.randn(1, 400, 1, generator=torch.Generator().manual_seed(0))
    assert lowpass(noise, 3.0).std() < 0.4 * noise.std()


@pytest.mark.parametrize("coherence", [0.0, 0.5, 1.0])
def test_noise_is_standard_and_shared_over_frames_by_coherence(coherence):
    t = Temporal(hypotheses=3, frames=400, dim=64, sigma=2.0, coherence=coherence)
    eps = t.noise(torch.Generator().manual_seed(0)).reshape(3, 400, 64)
    assert abs(eps.std().item() - 1.0) < 0.1
    a, b = eps[:, :-1].flatten(), eps[:, 1:].flatten()  # frame-to-frame correlation = the shared fraction
    corr = torch.corrcoef(torch.stack([a, b]))[0, 1].item()
    assert abs(corr - coherence) < 0.1
    with pytest.raises(ValueError, match="coherence"):
        Temporal(1, 2, 3, 1.0, coherence=1.5)
    with pytest.raises(ValueError, match="fps"):
        Temporal.for_clip(1, 2, 3, fps=0.0)


def test_windows_cover_the_take_with_overlaps_and_crossfade_is_exact_on_agreeing_windows():
    assert tasks._windows(100, 1024, 64) == [(0, 100)]
    w = tasks._windows(2500, 1024, 64)
    assert w[0][0] == 0 and w[-1][1] == 2500 and all(b - a == 1024 for a, b in w)
    assert all(w[i][1] - w[i + 1][0] >= 64 for i in range(len(w) - 1))
    x = torch.randn(2, 2500, 5)
    assert torch.allclose(tasks._crossfade([(a, b, x[:, a:b]) for a, b in w], 2500), x, atol=1e-6)


@pytest.fixture(scope="module")
def prior():
    return dposer.load_prior()


@pytest.fixture(scope="module")
def take(data_root):
    """60 frames of the finger take at 30 fps (every 4th frame of the 120 fps capture)."""
    ps = data.load_finger_take(data_root)
    return ps.subset(np.arange(0, 240, 4))


def _motion(hand):  # mean frame-to-frame rotation change of the finger joints, degrees
    h = torch.from_numpy(np.asarray(hand, np.float64).reshape(len(hand), 15, 3))
    return geodesic_degrees(h[1:], h[:-1]).mean().item()


@needs_data
def test_clip_completion_keeps_observed_joints_exact_and_does_not_tremble(prior, take):
    pose = take.to_dict()
    per_frame = tasks.complete(prior, pose, "right_hand", hypotheses=1, seed=0)
    res = tasks.complete(prior, pose, "right_hand", hypotheses=3, seed=0, clip=True, fps=30)
    for key in ("body_pose", "left_hand_pose", "jaw_pose"):
        assert np.array_equal(res[key], pose[key])
        assert np.array_equal(res[f"{key}_hypotheses"][1], pose[key])
    real = _motion(pose["right_hand_pose"])
    # frame by frame every pose is its own sample: the fingers tremble far more than the real ones move
    assert _motion(per_frame["right_hand_pose"]) > 2 * real
    for hand in (res["right_hand_pose"], *res["right_hand_pose_hypotheses"]):
        assert _motion(hand) < 2 * real
    # hypotheses are distinct whole motions, ranked as wholes (one score per hypothesis)
    h = res["right_hand_pose_hypotheses"]
    assert np.abs(h[0] - h[1]).mean() > 0.01
    assert np.allclose(res["scores"], res["scores"][:, :1])
    # the written answer is the mean of the hypotheses (the best estimate)
    assert np.allclose(res["right_hand_pose"], h.mean(0), atol=1e-5)


@needs_data
def test_long_takes_run_in_windows_without_seams(prior, take, monkeypatch):
    monkeypatch.setattr(tasks, "CLIP_WINDOW", 24)
    monkeypatch.setattr(tasks, "CLIP_OVERLAP", 8)
    pose = take.to_dict()
    calls = []
    res = tasks.complete(prior, pose, "left_arm", seed=0, clip=True, fps=30, progress=lambda d, t: calls.append((d, t)))
    assert len(tasks._windows(60, 24, 8)) == 4
    assert calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == sorted(d for d, _ in calls)
    arm = layout.dict_to_vectors(res)[:, layout.names_to_dims("left_arm")]
    steps = np.degrees(np.linalg.norm(np.diff(arm.reshape(60, -1, 3), axis=0), axis=-1)).mean(1)
    assert steps.max() < 4 * np.median(steps) + 0.5  # no jump where windows meet
    assert np.array_equal(res["right_hand_pose"], pose["right_hand_pose"])


def test_server_takes_clip_and_fps_and_allows_long_clips_only_with_clip():
    from dposer.serve import server

    body = [[0.0] * 63] * 2
    _, op, args = server.validate({"id": 1, "op": "complete", "args": {"pose": {"body_pose": body}, "clip": True,
                                                                      "fps": 24}})
    assert (op, args["clip"], args["fps"]) == ("complete", True, 24.0)
    _, _, args = server.validate({"id": 2, "op": "complete", "args": {"pose": {"body_pose": body}}})
    assert args["clip"] is False and args["fps"] is None
    with pytest.raises(server.RequestError, match="true or false"):
        server.validate({"id": 3, "op": "complete", "args": {"pose": {"body_pose": body}, "clip": 1}})
    long = [[0.0] * 63] * (server.MAX_POSES + 1)
    with pytest.raises(server.RequestError, match="clip=true") as e:
        server.validate({"id": 4, "op": "complete", "args": {"pose": {"body_pose": long}}})
    assert e.value.code == "limit_exceeded"
    assert server.validate({"id": 5, "op": "complete", "args": {"pose": {"body_pose": long}, "clip": True}})[1] == "complete"


@needs_data
def test_cli_complete_clip_reads_the_frame_rate_from_the_file(take, tmp_path, capsys):
    from dposer import cli

    src = tmp_path / "take.npz"
    pose = take.subset(np.arange(12)).to_dict()
    np.savez(src, **{k: v for k, v in pose.items() if k != "right_hand_pose"}, fps=np.float64(30))
    out = tmp_path / "done.npz"
    assert cli.main(["complete", "--input", str(src), "--missing", "right_hand", "--clip", "--steps", "5",
                     "--output", str(out)]) == 0
    assert "12 frames at 30 fps" in capsys.readouterr().out
    with np.load(out) as d:
        assert d["right_hand_pose"].shape == (12, 45)
        assert np.array_equal(d["left_hand_pose"], pose["left_hand_pose"])
