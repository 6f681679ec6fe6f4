"""Every solver task with quality assertions (default checkpoint); tests given `data_root` use held-out data."""
import numpy as np
import pytest
import torch

import dposer
from dposer.eval import bench, metrics
from dposer.spec import layout
from dposer.core.solver import Cancelled
from dposer.tasks.pose_tasks import COMPLETE, clean, complete, fit, refine, vary


@pytest.fixture(scope="module")
def prior():
    torch.manual_seed(0)
    return dposer.load_prior()


@pytest.fixture(scope="module")
def cases(data_root):
    return {c.name: c for c in bench.completion_cases("test", 48, data_root)}


def _vec(res):
    n = len(res["body_pose"])
    v = np.zeros((n, 256), np.float32)
    for k, sl in layout.KEY_SLICES.items():
        if k in res:
            v[:, sl] = res[k]
    return v


def test_public_api_names():
    assert (dposer.complete, dposer.clean, dposer.vary, dposer.refine, dposer.fit) == (complete, clean, vary, refine, fit)


@pytest.mark.parametrize("name", ["left_leg", "right_arm"])
def test_body_completion_beats_trivial_baselines(prior, cases, name):
    case = cases[name]
    res = complete(prior, case.pose, case.missing, seed=0)
    ours = bench.completion_error(_vec(res), case)
    mean = bench.completion_error(bench.baseline_mean(case), case)
    nn = bench.completion_error(bench.baseline_nearest(case), case)
    assert ours["mpjpe_mm"] < min(mean["mpjpe_mm"], nn["mpjpe_mm"]), (ours, mean, nn)
    assert ours["geodesic_deg"] < min(mean["geodesic_deg"], nn["geodesic_deg"]), (ours, mean, nn)
    obs = np.setdiff1d(np.arange(63), layout.names_to_dims(case.missing))
    assert np.array_equal(res["body_pose"][:, obs], case.pose["body_pose"][:, obs])  # observed joints untouched


def test_completion_fills_absent_keys_and_ranks_hypotheses(prior, cases):
    case = cases["pinky_ring_given_hand"]
    pose = {"right_hand_pose": case.pose["right_hand_pose"][:6]}
    res = complete(prior, pose, "right_pinky,right_ring", hypotheses=3, seed=1, combine="best")
    assert res["right_hand_pose_hypotheses"].shape == (3, 6, 45)
    assert res["body_pose"].shape == (6, 63) and np.abs(res["body_pose"]).sum() > 0  # absent body filled in
    keep = np.setdiff1d(np.arange(45), layout.names_to_dims("right_pinky,right_ring") - 108)
    assert np.array_equal(res["right_hand_pose_hypotheses"][:, :, keep], np.broadcast_to(pose["right_hand_pose"][:, keep], (3, 6, len(keep))))
    assert (np.diff(res["scores"], axis=0) >= 0).all()  # best first
    assert np.array_equal(res["right_hand_pose"], res["right_hand_pose_hypotheses"][0])
    hyp = res["right_hand_pose_hypotheses"]
    assert np.abs(hyp[0] - hyp[1]).max() > 1e-3  # distinct hypotheses


def test_pinky_ring_completion_beats_the_mean_pose(prior, cases):
    case = cases["pinky_ring_given_hand"]
    ours = bench.completion_error(_vec(complete(prior, case.pose, case.missing)), case)
    assert ours["mpjpe_mm"] < bench.completion_error(bench.baseline_mean(case), case)["mpjpe_mm"]


def test_progress_and_cancel(prior, cases):
    case = cases["left_leg"]
    pose = {"body_pose": case.pose["body_pose"][:2]}
    seen = []
    complete(prior, pose, "left_leg", cfg=COMPLETE.with_(steps=7), progress=lambda i, n: seen.append((i, n)))
    assert seen == [(i, 7) for i in range(1, 8)]
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        complete(prior, pose, "left_leg", cancel=cancel)
    assert len(calls) == 4


def test_vary_strength_and_locks(prior, cases):
    pose = {k: v[:1] for k, v in cases["hands_given_body"].pose.items()}
    base = metrics.part_joints(_vec({**pose, "global_orient": np.zeros((1, 3))}), "body")
    assert all(np.array_equal(v, np.repeat(pose[k], 4, 0)) for k, v in vary(prior, pose, 4, 0.0).items() if k in pose)
    spread = []
    for s in (0.1, 0.4, 1.0):
        res = vary(prior, pose, 6, strength=s, seed=0, lock=["right_arm"])
        d = (metrics.part_joints(_vec(res), "body") - base).norm(dim=-1).mean().item()
        spread.append(d)
        arm = layout.names_to_dims("right_arm")
        assert np.array_equal(res["body_pose"][:, arm], np.repeat(pose["body_pose"][:, arm], 6, 0))
        assert np.abs(res["body_pose"][0] - res["body_pose"][1]).max() > 1e-4
    assert spread[0] < spread[1] < spread[2], spread


def test_fit_reaches_pinned_joints(prior, cases):
    truth = cases["left_leg"].truth[:4]
    joints = metrics.part_joints(truth, "body")  # built-in skeleton frame, pelvis at its rest position
    names = ["left_wrist", "right_wrist", "left_ankle", "right_ankle", "head"]
    targets = {n: joints[:, layout.JOINT_INDEX[n]].numpy() for n in names}
    res = fit(prior, targets, free="body")
    assert res["target_error"].max() < 0.01  # within 1 cm
    all_err = (metrics.part_joints(_vec(res), "body") - metrics.part_joints(truth, "body")).norm(dim=-1).mean()
    assert all_err < 0.06  # the unpinned joints land near the real pose too (mean < 6 cm)


def test_refine_makes_poses_more_plausible(prior, cases):
    truth = cases["left_leg"].truth[:16]
    noisy = truth.copy()
    noisy[:, :63] += np.random.default_rng(0).normal(size=(16, 63)).astype(np.float32) * 0.25
    res = refine(prior, {"body_pose": noisy[:, :63]}, strength=0.5)
    assert set(res) == {"global_orient", "body_pose"}  # absent keys stay absent
    err = lambda v: (metrics.part_joints(v, "body") - metrics.part_joints(truth, "body")).norm(dim=-1).mean().item()
    assert err(_vec(res)) < err(noisy)


@pytest.mark.parametrize("call, message", [
    (lambda p: complete(p, {"body_pose": np.zeros((1, 63))}, "left_legg"), "left_legg"),
    (lambda p: complete(p, {"body_pose": np.zeros((1, 63))}, "left_leg", hypotheses=0), "hypotheses"),
    (lambda p: clean(p, {"body_pose": np.zeros((5, 63))}, strength=2), "strength"),
    (lambda p: clean(p, {"body_pose": np.zeros((2, 63))}), "3 frames"),
    (lambda p: vary(p, {"body_pose": np.zeros((2, 63))}, 3), "one pose"),
    (lambda p: fit(p, {"left_wristt": [0, 1, 0]}), "left_wristt"),
    (lambda p: fit(p, {"left_wrist": [0, np.nan, 0]}), "finite"),
    (lambda p: complete(p, {"body_pose": np.full((1, 63), np.nan)}, "left_leg"), "NaN"),
])
def test_bad_input_is_named(prior, call, message):
    with pytest.raises(ValueError, match=message):
        call(prior)


def test_cosine_lr_decay_settles_the_solver(prior):
    """With the prior switched off, Adam on a noisy quadratic data term (like the solver's noisy regulariser)
    jitters around the optimum at a constant step size; annealed to zero (lr_decay='cosine', the completion
    default) it ends much closer."""
    from dposer.core.solver import SolverConfig, solve

    target = torch.linspace(-1, 1, 256)[None].repeat(3, 1)

    def data_loss(x, k):
        noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(k))
        return ((x - target - 0.5 * noise) ** 2).sum(1)

    cfg = SolverConfig(steps=100, lr=0.2, prior_weight=0.0)
    const = solve(prior, torch.zeros(3, 256), data_loss=data_loss, cfg=cfg)
    cosine = solve(prior, torch.zeros(3, 256), data_loss=data_loss, cfg=cfg.with_(lr_decay="cosine"))
    assert (cosine - target).abs().max() < 0.5 * (const - target).abs().max()


def test_denoise_optimizer_steps_towards_the_denoised_estimate(prior):
    """optimizer='denoise' with no data term: x <- x + lr (D(x_t, t) - x) on the free dims, fixed dims exact."""
    from dposer.core.sde import alpha_sigma
    from dposer.core.solver import SolverConfig, solve

    x0 = torch.randn(4, 256, generator=torch.Generator().manual_seed(1))
    free = torch.zeros(256, dtype=torch.bool)
    free[63:153] = True  # both hands
    cfg = SolverConfig(steps=1, optimizer="denoise", lr=0.4, t_max=0.3, t_min=0.3)
    out = solve(prior, x0, free, cfg=cfg, seed=5)
    t = torch.full((4,), 0.3)
    a, s = alpha_sigma(t)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
    expected = x0 + 0.4 * (prior.denoise(a[:, None] * x0 + s[:, None] * eps, t) - x0)
    assert torch.allclose(out[:, free], expected[:, free], atol=1e-5)
    assert torch.equal(out[:, ~free], x0[:, ~free])


def test_denoise_optimizer_follows_a_data_term(prior):
    """With a data term the 'denoise' step is gradient descent scaled by the prior term's curvature: it settles
    between the prior and the data, and a stronger data term ends closer to its target."""
    from dposer.core.solver import SolverConfig, solve

    target = torch.randn(3, 256, generator=torch.Generator().manual_seed(2))
    cfg = SolverConfig(steps=60, optimizer="denoise", lr=0.02, t_max=0.2, t_min=0.05)

    def pulled(weight):
        def data_loss(x, k):
            return weight * ((x - target) ** 2).mean(1)
        return (solve(prior, torch.zeros(3, 256), data_loss=data_loss, cfg=cfg) - target).abs().mean()

    weak, strong = pulled(0.1), pulled(20.0)
    assert strong < 0.2 * weak
    assert strong < 0.1 * target.abs().mean()
    with pytest.raises(ValueError, match="prior_weight"):
        solve(prior, torch.zeros(1, 256), cfg=cfg.with_(prior_weight=0.0))


def test_network_shortcuts_are_exact(prior):
    """Skipping the heads of fixed parts and precomputing the schedule's time projections change nothing the
    solver uses (up to float rounding of the batched product)."""
    x = torch.randn(5, 256, generator=torch.Generator().manual_seed(3))
    ts = torch.tensor([0.5, 0.2, 0.05])
    biases = prior.time_biases(ts)
    for i, t0 in enumerate(ts.tolist()):
        t = torch.full((5,), t0)
        full = prior.eps(x, t)
        hands = prior.eps(x, t, outputs=(False, True, True, False))
        assert torch.equal(full[:, 63:153], hands[:, 63:153])
        pre = prior.eps(x, t, time_biases={k: [b[i:i + 1] for b in v] for k, v in biases.items()})
        assert torch.allclose(full, pre, atol=1e-5)
    # per-sample times: the table's rows line up with the batch rows
    t = torch.tensor([0.5, 0.2, 0.05])
    assert torch.allclose(prior.eps(x[:3], t), prior.eps(x[:3], t, time_biases=biases), atol=1e-5)


def test_completion_default_is_the_validated_denoise_solver():
    assert (COMPLETE.optimizer, COMPLETE.steps, COMPLETE.t_max, COMPLETE.t_min) == ("denoise", 100, 0.5, 0.05)


def test_plausibility_batches_noise_levels_and_scores_the_filled_dims(prior):
    """One batched evaluation gives the per-level residuals computed one by one; ``dims`` restricts the average."""
    from dposer.core.sde import alpha_sigma
    from dposer.core.solver import plausibility

    x = torch.randn(3, 256, generator=torch.Generator().manual_seed(4))
    dims = torch.zeros(256, dtype=torch.bool)
    dims[108:153] = True
    gen = torch.Generator().manual_seed(7)
    full, hand = torch.zeros(3), torch.zeros(3)
    for t0 in (0.05, 0.1, 0.15):
        t = torch.full((3,), t0)
        a, s = alpha_sigma(t)
        for _ in range(2):
            eps = torch.randn(x.shape, generator=gen)
            r = (prior.denoise(a[:, None] * x + s[:, None] * eps, t) - x) ** 2
            full += r.mean(1) / 6
            hand += r[:, dims].mean(1) / 6
    assert torch.allclose(plausibility(prior, x, seed=7), full, rtol=1e-4)
    assert torch.allclose(plausibility(prior, x, seed=7, dims=dims), hand, rtol=1e-4)
