"""Baseline priors (dposer.eval.baselines): exact diffused Gaussian / GMM denoisers, EM, the VAE's latent solver hook, the
Combiner and the SMPLify GMM; all through the same task API as the trained prior."""
import numpy as np
import pytest
import torch

from dposer.eval import baselines as B
from dposer.eval import vae_prior as V
from dposer.spec import layout
from dposer.core.model import NetConfig, ScoreNet
from dposer.core.prior import Normalizer, Prior
from dposer.core.sde import alpha_sigma
from dposer.core.solver import SolverConfig
from dposer.tasks.pose_tasks import complete
from conftest import needs_data

IDENTITY = Normalizer(torch.zeros(256), torch.ones(256))


def _random_gaussian(d=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d // 4, generator=g, dtype=torch.float64)
    cov = a @ a.T / (d // 4) + 0.05 * torch.eye(d, dtype=torch.float64)
    mu = 0.3 * torch.randn(d, generator=g, dtype=torch.float64)
    return mu, cov


def _gaussian_prior(seed=0):
    mu, cov = _random_gaussian(seed=seed)
    return B.MixturePrior([(slice(0, 256), B.Mixture(torch.ones(1), mu[None], cov[None]))], IDENTITY, "gaussian")


def test_gaussian_denoise_is_the_closed_form_posterior_mean():
    prior = _gaussian_prior()
    mu, cov = prior.blocks[0][1].means[0], prior.blocks[0][1].covs[0]
    x = torch.randn(5, 256)
    for t0 in (0.05, 0.3, 0.9):
        t = torch.full((5,), t0)
        a, s = alpha_sigma(t.double())
        a, s = a[0], s[0]
        ref = mu + (a * cov @ torch.linalg.solve(a * a * cov + s * s * torch.eye(256, dtype=torch.float64),
                                                 (x.double() - a * mu).T)).T
        assert torch.allclose(prior.denoise(x, t).double(), ref, atol=1e-4)
        # eps and score are the same answer in the other parametrisations
        eps = prior.eps(x, t)
        assert torch.allclose((x - s * eps) / a, prior.denoise(x, t), atol=1e-4)
        assert torch.allclose(prior.score(x, t), -eps / s, atol=1e-4)


def test_hidden_parts_are_marginalised():
    prior = _gaussian_prior()
    mu, cov = prior.blocks[0][1].means[0], prior.blocks[0][1].covs[0]
    x = torch.randn(3, 256)
    t = torch.full((3,), 0.2)
    mask = torch.tensor([[True, False, False, True]] * 3)
    vis = torch.from_numpy(layout.dims_from_part_mask(mask[0].numpy()))
    a, s = (v[0] for v in alpha_sigma(t.double()))
    C = a * a * cov[vis][:, vis] + s * s * torch.eye(int(vis.sum()), dtype=torch.float64)
    ref = mu + (a * cov[:, vis] @ torch.linalg.solve(C, (x.double()[:, vis] - a * mu[vis]).T)).T
    assert torch.allclose(prior.denoise(x, t, mask).double(), ref, atol=1e-4)
    # the hidden dims' values do not matter
    x2 = x.clone()
    x2[:, 63:153] = 100.0
    assert torch.allclose(prior.denoise(x2, t, mask), prior.denoise(x, t, mask), atol=1e-5)


def test_mixture_denoise_matches_explicit_responsibilities():
    g = torch.Generator().manual_seed(1)
    d = 6
    covs = torch.stack([(lambda a: a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64))(
        torch.randn(d, d, generator=g, dtype=torch.float64)) for _ in range(3)])
    means = 2 * torch.randn(3, d, generator=g, dtype=torch.float64)
    w = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    mix = B.Mixture(w, means, covs)
    y = torch.randn(4, d, generator=g, dtype=torch.float64)
    a, s = torch.full((4, 1), 0.8, dtype=torch.float64), torch.full((4, 1), 0.5, dtype=torch.float64)
    num, den = 0, 0
    for k in range(3):
        C = 0.64 * covs[k] + 0.25 * torch.eye(d, dtype=torch.float64)
        dist = torch.distributions.MultivariateNormal(0.8 * means[k], C)
        p = w[k] * dist.log_prob(y).exp()
        post = means[k] + (0.8 * covs[k] @ torch.linalg.solve(C, (y - 0.8 * means[k]).T)).T
        num = num + p[:, None] * post
        den = den + p[:, None]
    assert torch.allclose(mix.denoise(y, a, s), num / den, atol=1e-8)


def test_complete_with_the_gaussian_prior_approaches_its_conditional_mean():
    """The DPoser solver on an exact Gaussian prior is a noisy estimate centred on the closed-form conditional mean:
    the regulariser's fixed point is the conditional mean of N(mu, a^2 S + s^2 I), which tends to it as t -> 0, and
    the injected noise averages out over hypotheses."""
    prior = _gaussian_prior()
    x = prior.sample(16, seed=3)
    pose = {"body_pose": x[:, :63].numpy()}
    cond = B.gaussian_conditional(prior, pose, "left_leg")
    dims = layout.names_to_dims("left_leg")
    spread = np.abs(x[:, dims].numpy() - cond[:, dims]).mean()  # how far the truth is from the conditional mean
    res = complete(prior, pose, "left_leg", hypotheses=16, cfg=SolverConfig(steps=200, lr=0.1, t_max=0.3, t_min=0.05),
                   combine="mean")
    one = res["body_pose_hypotheses"][:, :, dims]
    err_one = np.abs(one - cond[None, :, dims]).mean()
    err_mean = np.abs(res["body_pose"][:, dims] - cond[:, dims]).mean()
    mean_pose = prior.blocks[0][1].means[0][dims].numpy()
    far = np.abs(mean_pose[None] - cond[:, dims]).mean()  # the unconditional answer
    assert err_one < 0.75 * spread, (err_one, spread)  # each hypothesis: closer than a posterior sample would be
    # their mean nearly converges on the conditional mean (what remains: the shrinkage of the t_min > 0 fixed point
    # and directions of large variance, along which the regulariser is flat, not yet converged)
    assert err_mean < 0.35 * spread and err_mean < 0.35 * far, (err_mean, spread, far)
    keep = np.setdiff1d(np.arange(63), dims)
    assert np.allclose(res["body_pose"][:, keep], pose["body_pose"][:, keep])  # observed joints kept


def test_em_recovers_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-4.0, 0, 0], [4.0, 0, 0]], dtype=torch.float64)
    x = torch.cat([c + 0.5 * torch.randn(400, 3, generator=g, dtype=torch.float64) for c in centres])
    mix = B.fit_gmm(x, 2)
    got = mix.means[mix.means[:, 0].argsort()]
    assert torch.allclose(got, centres, atol=0.15)
    assert torch.allclose(mix.weights, torch.full((2,), 0.5, dtype=torch.float64), atol=0.02)
    best, scores = B.select_gmm(x[::2], x[1::2], ks=(1, 2))
    assert len(best.weights) == 2 and scores[2] > scores[1]


def test_vae_prior_solves_in_its_latent_through_the_task_api():
    x = torch.randn(300, 256, dtype=torch.float64)
    present = torch.ones(300, 256, dtype=torch.bool)
    vaes = {p: V.train_vae(B.part_rows(x, present, p)[:300], steps=20, latent=8)[0] for p in ("body", "hand")}
    prior = V.VAEPrior(vaes, IDENTITY, latent_weight=0.1)
    pose = {"body_pose": np.random.default_rng(0).normal(size=(4, 63)).astype(np.float32)}
    res = complete(prior, pose, "left_leg", hypotheses=3, cfg=SolverConfig(steps=10))
    dims = layout.names_to_dims("left_leg")
    keep = np.setdiff1d(np.arange(63), dims)
    assert np.array_equal(res["body_pose"][:, keep], pose["body_pose"][:, keep])
    assert all(np.isfinite(res[k]).all() for k in layout.KEY_SLICES)
    assert not np.allclose(res["body_pose"][:, dims], pose["body_pose"][:, dims])


def test_combiner_is_the_network_without_its_fusion_residual():
    torch.manual_seed(0)
    net = ScoreNet(NetConfig(body_width=32, hand_width=32, face_width=32, fusion_width=32, time_dim=16))
    torch.nn.init.normal_(net.fusion_out.weight, std=0.1)
    prior = Prior(net, IDENTITY)
    comb = B.combiner_prior(prior)
    ref_net = ScoreNet(net.cfg)
    ref_net.load_state_dict(net.state_dict())
    torch.nn.init.zeros_(ref_net.fusion_out.weight)
    torch.nn.init.zeros_(ref_net.fusion_out.bias)
    ref = Prior(ref_net, IDENTITY)
    x, t = torch.randn(5, 256), torch.full((5,), 0.3)
    assert torch.allclose(comb.eps(x, t), ref.eps(x, t), atol=1e-6)
    assert not torch.allclose(prior.eps(x, t), ref.eps(x, t), atol=1e-4)  # the original fuses


@needs_data
def test_smplify_gmm_is_a_body_prior_in_our_space(data_root):
    from dposer.formats import data
    from dposer import load_prior

    norm = load_prior().normalizer
    smplify = B.smplify_gmm_prior(norm, data_root)
    body = smplify.blocks[0][1]
    assert smplify.blocks[0][0] == slice(0, 63) and len(body.weights) == 8
    test = data.load_part_set("body", "test", data_root).vectors
    x = norm.normalize(torch.from_numpy(test)).double()[:, :63]
    shuffled = x[:, torch.randperm(63, generator=torch.Generator().manual_seed(0))]
    assert body.log_likelihood(x).mean() > body.log_likelihood(shuffled).mean() + 20


@needs_data
def test_gaussian_conditional_beats_the_mean_pose_on_held_out_legs(data_root):
    from dposer.eval import bench
    from dposer import load_prior

    norm = load_prior().normalizer
    rows = B.training_rows(norm, root=data_root)
    g = B.gaussian_prior(norm, rows=rows)
    case = {c.name: c for c in bench.completion_cases("test", 64, data_root)}["left_leg"]
    ours = bench.completion_error(B.gaussian_conditional(g, case.pose, case.missing, rows=rows), case)
    mean = bench.completion_error(bench.baseline_mean(case), case)
    assert ours["mpjpe_mm"] < 0.8 * mean["mpjpe_mm"]
