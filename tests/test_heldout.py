"""dposer.eval.heldout: the free answers the held-out body benchmark measures checkpoints against."""
import numpy as np
import pytest
from dposer.eval import heldout
from dposer.spec import layout


def _poses(n, seed=0):
    rng = np.random.default_rng(seed)
    v = np.zeros((n, layout.DIM), np.float32)
    v[:, layout.PART_SLICES["body"]] = rng.normal(0, 0.3, (n, 63))
    return v


def test_the_gaussian_conditional_recovers_a_linear_relation_exactly():
    pool = _poses(2000)
    m = layout.names_to_dims("left_leg")
    o = np.setdiff1d(np.arange(63), m)
    w = np.random.default_rng(1).normal(0, 0.2, (len(o), len(m)))
    pool[:, m] = 0.1 + pool[:, o] @ w
    truth = _poses(20, seed=2)
    truth[:, m] = 0.1 + truth[:, o] @ w
    guess = heldout.gaussian_conditional(pool, truth.copy(), "left_leg")
    np.testing.assert_allclose(guess[:, m], truth[:, m], atol=1e-3)
    np.testing.assert_array_equal(np.delete(guess, m, 1), np.delete(truth, m, 1))


def test_the_mirrored_limb_is_exact_on_a_symmetric_pose_and_absent_for_the_trunk():
    pose = _poses(5)
    symmetric = (pose + layout.mirror_pose(pose)) / 2  # its own mirror image
    np.testing.assert_allclose(layout.mirror_pose(symmetric), symmetric, atol=1e-6)
    for limb in ("left_leg", "right_arm"):
        np.testing.assert_allclose(heldout.mirrored_limb(symmetric, limb), symmetric, atol=1e-6)
        guess = heldout.mirrored_limb(pose, limb)
        m = layout.names_to_dims(limb)
        np.testing.assert_array_equal(np.delete(guess, m, 1), np.delete(pose, m, 1))  # only the limb is filled
        assert not np.allclose(guess[:, m], pose[:, m])
    assert heldout.mirrored_limb(pose, "trunk") is None


@pytest.fixture
def _stand_in_cache(tmp_path):
    """A stand-in for the Bandai dataset-1 cache of `dposer corpus` (not made in CI: it needs the BVH archives)."""
    path = tmp_path / "bandai1.npz"
    np.savez(path, body_pose=np.full((40, 63), 0.1, np.float32), clip=np.repeat([0, 1], 20))
    return path


def test_the_test_sets_hold_the_unseen_amass_takes(data_root, _stand_in_cache):
    sets = heldout.test_sets(data_root, n=50, bandai1=_stand_in_cache)
    takes = sets["AMASS takes (500 + 601 frames, unseen)"]
    assert takes.shape == (50, layout.DIM)
    assert np.abs(takes[:, layout.PART_SLICES["body"]]).sum(1).min() > 0  # real body poses, nothing else
    assert not takes[:, layout.PART_SLICES["body"].stop:].any()
    assert len(sets["Bandai Namco dataset-1 (converted, held out)"]) == 40


def test_checkpoints_answer_what_dposer_complete_returns(data_root, _stand_in_cache):
    from dposer.eval import bench
    from dposer.core.prior import load_prior

    prior = load_prior()
    truth = heldout.test_sets(data_root, n=4, bandai1=_stand_in_cache)["AMASS body test split"]
    case = heldout._case("left_leg", truth, truth)
    one = heldout._completed(prior, case, 1)
    np.testing.assert_array_equal(one, bench.run_completion(prior, case)[0])  # one hypothesis: that hypothesis
    m = layout.names_to_dims("left_leg")
    body = np.setdiff1d(np.arange(layout.PART_SLICES["body"].start, layout.PART_SLICES["body"].stop), m)
    np.testing.assert_allclose(one[:, body], truth[:, body], atol=1e-5)  # the observed body joints are kept
    mean = heldout._completed(prior, case, 3)
    hyp = bench.run_completion(prior, case, hypotheses=3)[1]
    assert not np.allclose(mean[:, m], hyp[0][:, m])  # three: their mean, not the rank-1 hypothesis
