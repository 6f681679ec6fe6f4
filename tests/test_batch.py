"""dposer batch: a folder of takes (six-key npz, AMASS npz, BVH, and a corrupt file) through both engines.

Local worker processes (through the CLI: exit code 1 because one take is corrupt) and Ray on a local 2-CPU cluster
(one Ray session for the module) give identical outputs; the corrupt take is in the report and never stops the
batch; a re-run skips finished takes and redoes the ones a crash left unrecorded. Tiny takes (16 frames), the tiny
random-weight prior and 3 solver steps keep it fast: the time is worker start-up (torch import), not solving.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bvh_synth import CMU_EXTRA, CMU_NAMES, synth_bvh  # noqa: E402
from dposer.serve import batch  # noqa: E402
from dposer.formats import bvh  # noqa: E402
from dposer import cli  # noqa: E402

FRAMES = 32  # the cleaner needs a few dozen frames to call a one-frame spike an outlier
STEPS = 3
OUTPUTS = ["six.npz", "sub/amass.npz", "sub/take.bvh", "sub/take.smplx.npz"]


@pytest.fixture(scope="module")
def takes(tmp_path_factory, data_root) -> Path:
    """Real takes cut to 32 frames: a six-key npz and a BVH (CMU names, cm) of the AMASS gestures clip, an AMASS
    npz, and a file that is not an npz."""
    root = tmp_path_factory.mktemp("takes")
    (root / "sub").mkdir()
    g = np.load(data_root / "dposer_x" / "gestures_clip_240f.npz")
    body, orient = g["pose_body"][:FRAMES].copy(), g["root_orient"][:FRAMES]
    body[8, 9] += 0.6  # a one-frame 34-degree spike on the left knee: a fault for the cleaner to repair
    np.savez(root / "six.npz", body_pose=body, global_orient=orient, fps=np.float64(30))
    a = np.load(data_root / "amass" / "amass_sample_smplh_500f.npz")
    np.savez(root / "sub" / "amass.npz", poses=a["poses"][:FRAMES], trans=a["trans"][:FRAMES], betas=a["betas"],
             mocap_framerate=a["mocap_framerate"])
    (root / "sub" / "take.bvh").write_text(synth_bvh(body.astype(np.float64), orient, np.zeros((FRAMES, 3)),
                                                     CMU_NAMES, extra=CMU_EXTRA))
    (root / "broken.npz").write_bytes(b"this is not a zip archive")
    return root


@pytest.fixture(scope="module")
def local_run(takes, checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    rc = cli.main(["batch", "clean", "--input", str(takes), "--output", str(out), "--workers", "2",
                   "--steps", str(STEPS), "--checkpoint", checkpoint])
    return rc, out, json.loads((out / batch.REPORT).read_text())


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def _same_file(a: Path, b: Path) -> bool:
    if a.suffix == ".npz":
        x, y = np.load(a), np.load(b)
        return sorted(x.files) == sorted(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files)
    return a.read_bytes() == b.read_bytes()


def test_local_engine_reports_the_corrupt_take_and_exits_nonzero(local_run, takes, data_root, tmp_path):
    rc, out, report = local_run
    assert rc == 1  # one take failed
    recs = report["takes"]
    assert set(recs) == {"broken.npz", "six.npz", "sub/amass.npz", "sub/take.bvh"} and report["finished"]
    assert recs["broken.npz"]["status"] == "failed" and "not an npz file" in recs["broken.npz"]["error"]
    assert report["summary"] == {**report["summary"], "done": 3, "failed": 1, "skipped": 0, "pending": 0,
                                 "frames_done": 3 * FRAMES}
    for rel in ("six.npz", "sub/amass.npz", "sub/take.bvh"):
        r = recs[rel]
        assert r["status"] == "done" and r["frames"] == FRAMES and r["seconds"] > 0 and r["error"] is None
    # the 34-degree knee spike is the largest change in the spiked takes; the AMASS cut has no fault
    assert 30 < recs["six.npz"]["change_deg"]["max"] < 40 and 30 < recs["sub/take.bvh"]["change_deg"]["max"] < 40
    assert recs["sub/amass.npz"]["change_deg"]["max"] == 0.0  # good motion is left alone
    # repaired: the spiked knee is back within a degree of the motion it replaced; every other frame is unchanged
    truth = np.load(data_root / "dposer_x" / "gestures_clip_240f.npz")["pose_body"][:FRAMES]
    err = np.abs(np.load(out / "six.npz")["body_pose"] - truth).max(1)
    assert err[8] < np.radians(1) and np.delete(err, 8).max() < 1e-6, err
    # on the BVH take's own channels: within 5 degrees of the BVH of the unspiked motion, other frames unchanged
    orient = np.load(takes / "six.npz")["global_orient"]
    (tmp_path / "truth.bvh").write_text(synth_bvh(truth.astype(np.float64), orient, np.zeros((FRAMES, 3)),
                                                  CMU_NAMES, extra=CMU_EXTRA))
    err = np.abs(bvh.read(out / "sub" / "take.bvh").motion - bvh.read(tmp_path / "truth.bvh").motion).max(1)
    assert err[8] < 5 and np.delete(err, 8).max() < 1e-3, err  # 34 degrees off before
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        sorted(OUTPUTS + [batch.REPORT])
    amass = np.load(out / "sub" / "amass.npz")
    assert amass["body_pose"].shape == (FRAMES, 63) and float(amass["mocap_framerate"]) == 120.0
    assert np.array_equal(amass["trans"], np.load(takes / "sub" / "amass.npz")["trans"][:FRAMES].astype(np.float32))
    # BVH in -> BVH out on the take's own skeleton: same hierarchy, root motion kept, body rotations changed
    src, res = bvh.read(takes / "sub" / "take.bvh"), bvh.read(out / "sub" / "take.bvh")
    assert res.joints == src.joints and res.frame_time == src.frame_time
    assert np.array_equal(res.motion[:, :3], src.motion[:, :3]) and not np.array_equal(res.motion, src.motion)
    smplx = np.load(out / "sub" / "take.smplx.npz")
    assert smplx["body_pose"].shape == (FRAMES, 63) and str(smplx["convert_skeleton"]) == "cmu_bvh"


def test_ray_engine_gives_identical_outputs_and_resumes(local_run, takes, checkpoint, ray_session, tmp_path):
    _, local_out, local_report = local_run
    out = tmp_path / "ray"
    report = batch.run("clean", takes, out, engine="ray", workers=2, progress=False, steps=STEPS,
                       checkpoint=checkpoint)
    assert {k: r["status"] for k, r in report["takes"].items()} == \
        {k: r["status"] for k, r in local_report["takes"].items()}
    for rel in OUTPUTS:
        assert _same_file(local_out / rel, out / rel), rel
    assert all(report["takes"][k]["seed"] == local_report["takes"][k]["seed"] for k in report["takes"])
    for rep in (report, local_report):  # the prior is loaded once per worker process, not once per take
        done = [r for r in rep["takes"].values() if r["status"] == "done" and "prior_loaded" in r]
        assert len(done) == 2  # the npz takes; a BVH take is cleaned in its own channels, without the prior
        assert sum(r["prior_loaded"] for r in done) == len({r["worker"] for r in done})
    assert len({r["worker"] for r in local_report["takes"].values()}) <= 2

    # a re-run skips what is done and tries the corrupt take again
    bvh_out = out / "sub" / "take.bvh"
    stamp = bvh_out.stat().st_mtime_ns
    again = batch.run("clean", takes, out, engine="ray", workers=2, progress=False, steps=STEPS,
                      checkpoint=checkpoint)
    assert again["summary"]["skipped"] == 3 and again["summary"]["failed"] == 1 and again["summary"]["done"] == 0

    # a crash: one output lost, one take written but never recorded -> both are done again, the rest skipped
    (out / "six.npz").unlink()
    rep = json.loads((out / batch.REPORT).read_text())
    rep["takes"]["sub/amass.npz"]["status"] = "pending"
    (out / batch.REPORT).write_text(json.dumps(rep))
    third = batch.run("clean", takes, out, engine="ray", workers=2, progress=False, steps=STEPS,
                      checkpoint=checkpoint)
    status = {k: r["status"] for k, r in third["takes"].items()}
    assert status == {"six.npz": "done", "sub/amass.npz": "done", "sub/take.bvh": "skipped", "broken.npz": "failed"}
    assert bvh_out.stat().st_mtime_ns == stamp
    assert _same_file(local_out / "six.npz", out / "six.npz")

    # other options into the same folder: refused before any work
    with pytest.raises(ValueError, match="another run"):
        batch.run("clean", takes, out, engine="ray", progress=False, steps=STEPS + 1, checkpoint=checkpoint)


def test_shards_of_a_slurm_array_give_the_same_outputs(local_run, takes, checkpoint, ray_session, tmp_path):
    _, local_out, _ = local_run
    reports = [batch.run("clean", takes, tmp_path, engine="ray", shard=(i, 3), progress=False, steps=STEPS,
                         checkpoint=checkpoint) for i in range(3)]
    assert sorted(rel for r in reports for rel in r["takes"]) == ["broken.npz", "six.npz", "sub/amass.npz",
                                                                  "sub/take.bvh"]
    assert all((tmp_path / batch.report_name((i, 3))).is_file() for i in range(3))
    for rel in OUTPUTS:
        assert _same_file(local_out / rel, tmp_path / rel), rel


def test_complete_keeps_a_bvh_body_and_puts_the_hands_beside_it(takes, checkpoint, ray_session, tmp_path):
    report = batch.run("complete", takes / "sub", tmp_path, engine="ray", progress=False, steps=2,
                       checkpoint=checkpoint, missing="left_hand,right_hand")
    assert {k: r["status"] for k, r in report["takes"].items()} == {"amass.npz": "done", "take.bvh": "done"}
    src, res = bvh.read(takes / "sub" / "take.bvh"), bvh.read(tmp_path / "take.bvh")
    assert np.array_equal(res.motion, src.motion)  # the body was observed: the BVH's motion comes back bit for bit
    side = np.load(tmp_path / "take.smplx.npz")
    assert side["left_hand_pose"].shape == (FRAMES, 45) and np.abs(side["left_hand_pose"]).max() > 0
    assert side["left_hand_pose_hypotheses"].shape == (1, FRAMES, 45)


def test_takes_seeds_and_options_are_checked_before_any_work(takes, tmp_path):
    base, found = batch.find_takes(str(takes / "**" / "*.npz"), tmp_path)
    assert base == takes and [f.relative_to(base).as_posix() for f in found] == \
        ["broken.npz", "six.npz", "sub/amass.npz"]
    inner = takes / "sub" / "cleaned"  # an output folder inside the input folder is not read as input
    inner.mkdir()
    (inner / "x.npz").write_bytes(b"")
    assert [f.name for f in batch.find_takes(takes / "sub", inner)[1]] == ["amass.npz", "take.bvh"]
    inner.joinpath("x.npz").unlink()
    inner.rmdir()
    with pytest.raises(ValueError, match="must differ"):
        batch.run("clean", takes, takes, progress=False)
    with pytest.raises(TypeError, match="unknown option"):
        batch.run("clean", takes, tmp_path, progress=False, missing="left_hand")
    with pytest.raises(ValueError, match="needs missing"):
        batch.run("complete", takes, tmp_path, progress=False)
    with pytest.raises(ValueError, match="no takes"):
        batch.run("clean", str(takes / "*.bvh"), tmp_path, progress=False)
    assert not (tmp_path / batch.REPORT).exists()
    parser = cli.build_parser()
    a = parser.parse_args(["batch", "complete", "--input", "x", "--output", "y", "--missing", "left_hand",
                           "--shard", "2/3", "--engine", "ray"])
    assert (a.task, a.shard, a.engine, a.missing) == ("complete", (2, 3), "ray", "left_hand")
    for bad in ("3/3", "x/2", "1"):
        with pytest.raises(SystemExit):
            parser.parse_args(["batch", "clean", "--input", "x", "--output", "y", "--shard", bad])
    # a take's seed depends on its path and the batch seed, not on the order takes are scheduled in
    assert batch.take_seed(0, "a.bvh") == batch.take_seed(0, "a.bvh") != batch.take_seed(0, "b.bvh")
    assert batch.take_seed(0, "a.bvh") != batch.take_seed(1, "a.bvh")
