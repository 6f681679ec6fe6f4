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


def _write_cache(path, clips):
    """A Bandai cache of `dposer corpus` (body_pose rows, clip index per row) made of the given (F, 63) clips."""
    np.savez(path, body_pose=np.concatenate(clips).astype(np.float32),
             clip=np.concatenate([np.full(len(c), i) for i, c in enumerate(clips)]))
    return path


@pytest.fixture
def caches(tmp_path, data_root, monkeypatch):
    """Stand-ins for the two Bandai caches of `dposer corpus` (not made in CI: that needs the BVH archives), made of
    real body poses from the AMASS test split, in the cache folder `dposer bench heldout` reads; rows distinct."""
    from dposer.formats import data

    body = data.load_part_set("body", "test", data_root).vectors[:, layout.PART_SLICES["body"]]
    monkeypatch.setenv("DPOSER_CACHE", str(tmp_path))
    return {1: _write_cache(tmp_path / "bandai1.npz", [body[:25], body[25:40]]),
            2: _write_cache(tmp_path / "bandai2.npz", [body[40:47], body[47:60]])}


def test_the_test_sets_spread_n_poses_evenly_over_each_source(data_root, caches):
    from dposer.formats import data

    sets = heldout.test_sets(data_root, n=10, bandai1=caches[1])
    test_split = data.load_part_set("body", "test", data_root).vectors
    np.testing.assert_array_equal(sets["AMASS body test split"], test_split[:10])
    takes = sets["AMASS takes (500 + 601 frames, unseen)"]
    first, last = data.load_amass_take(data_root).vectors[0], data.load_finger_take(data_root).vectors[-1]
    body = layout.PART_SLICES["body"]
    assert takes.shape == (10, layout.DIM) and not takes[:, body.stop:].any()  # body poses, nothing else
    np.testing.assert_array_equal(takes[[0, -1], body], [first[body], last[body]])  # both takes, end to end
    bandai = sets["Bandai Namco dataset-1 (converted, held out)"]
    rows = np.load(caches[1])["body_pose"]
    np.testing.assert_array_equal(bandai[:, body], rows[[0, 4, 9, 13, 17, 22, 26, 30, 35, 39]])
    assert len(heldout.test_sets(data_root, n=1000, bandai1=caches[1])["Bandai Namco dataset-1 (converted, held "
                                                                         "out)"]) == 40  # never more than there are


def test_the_body_pools_add_every_stride_th_bandai_frame_and_its_mirror_image(data_root, caches):
    from dposer.formats import data

    pools = heldout.body_pools(data_root, bandai2=caches[2], stride=4)
    train = data.load_part_set("body", "train", data_root).vectors
    np.testing.assert_array_equal(pools["AMASS"], train)
    rows = np.load(caches[2])["body_pose"]
    kept = heldout._vec(rows[[0, 4, 7, 11, 15, 19]])  # frames 0 and 4 of the 7-frame clip, 0, 4, 8, 12 of the next
    np.testing.assert_array_equal(pools["AMASS + Bandai-2"], np.concatenate([train, kept, layout.mirror_pose(kept)]))


def test_run_compares_the_checkpoint_with_every_free_answer(data_root, caches):
    from dposer.core.prior import load_prior

    lines = []
    table, res = heldout.run({"bundled": load_prior()}, data_root, n=12, stride=4, log=lines.append)
    assert list(res) == ["AMASS body test split", "AMASS takes (500 + 601 frames, unseen)",
                         "Bandai Namco dataset-1 (converted, held out)"]
    pools = ("AMASS", "AMASS + Bandai-2")
    methods = {f"{kind} ({pool})" for pool in pools for kind in ("nearest neighbour", "Gaussian conditional")}
    for tasks in res.values():
        assert list(tasks) == list(heldout.TASKS)
        for task, rows in tasks.items():
            assert set(rows) == methods | {"bundled"} | ({heldout.MIRRORED} if task != "trunk" else set())
            assert all(r.shape == (12,) and (r > 0).all() for r in rows.values())
    assert len(lines) == 3 * 3  # one log line per set, task and checkpoint
    assert table.count("| bundled | ") == 3 and "| mirrored other limb | " in table
    # the quality the model card reports for the bundled checkpoint, on 12 test poses: filling the trunk it beats
    # the nearest training pose (80 against 59 mm on 300 poses)
    trunk = res["AMASS body test split"]["trunk"]
    assert trunk["bundled"].mean() < trunk["nearest neighbour (AMASS)"].mean()


def test_checkpoints_answer_what_dposer_complete_returns(data_root, caches):
    from dposer.eval import bench
    from dposer.core.prior import load_prior

    prior = load_prior()
    truth = heldout.test_sets(data_root, n=4, bandai1=caches[1])["AMASS body test split"]
    case = heldout._case("left_leg", truth, truth)
    one = heldout._completed(prior, case, 1)
    np.testing.assert_array_equal(one, bench.run_completion(prior, case)[0])  # one hypothesis: that hypothesis
    m = layout.names_to_dims("left_leg")
    body = np.setdiff1d(np.arange(layout.PART_SLICES["body"].start, layout.PART_SLICES["body"].stop), m)
    np.testing.assert_allclose(one[:, body], truth[:, body], atol=1e-5)  # the observed body joints are kept
    mean = heldout._completed(prior, case, 3)
    hyp = bench.run_completion(prior, case, hypotheses=3)[1]
    assert not np.allclose(mean[:, m], hyp[0][:, m])  # three: their mean, not the rank-1 hypothesis
