"""blender_dposer.backend_client against a real ``python -m dposer.serve`` subprocess (tiny random-weight prior)
and the embedded backend: start-up, ping, progress then result, cancel, a killed process, start-up failures."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from blender_dposer import rig_math as rm  # noqa: E402
from blender_dposer.backend_client import BackendError, SubprocessBackend
from blender_dposer.embedded_backend import EmbeddedBackend, make_backend
from dposer.spec.messages import encode_request
from dposer.core.model import NetConfig, ScoreNet  # noqa: E402
from dposer.core.prior import Normalizer, save_prior  # noqa: E402

TIMEOUT = 60.0
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# a job that cannot end on its own while a test cancels or kills it: minutes of sampling on the tiny prior
LONG_SAMPLE = {"n": 1000, "steps": 2000, "sampler": "em"}


def start(checkpoint, **kw) -> SubprocessBackend:
    return SubprocessBackend(checkpoint=checkpoint, threads=1, env=ENV, startup_timeout=TIMEOUT, **kw).start()


@pytest.fixture(scope="module")
def backend(checkpoint):
    b = start(checkpoint)
    b.wait_ready()
    yield b
    b.shutdown()
    assert b.returncode == 0, b.stderr_tail()


def pump(b, until, timeout=TIMEOUT) -> list[dict]:
    """Drain poll() the way a modal operator's timer does, until ``until(messages)`` holds."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while not until(got):
        assert time.monotonic() < deadline, f"timed out; got {got[-5:]}\n{getattr(b, 'stderr_tail', lambda: '')()}"
        got.extend(b.poll())
        time.sleep(0.02)
    return got


def final_of(rid):
    return lambda msgs: any(m.get("id") == rid and m["type"] in ("result", "error") for m in msgs)


def request_pose():
    rng = np.random.default_rng(0)
    aa = np.zeros((2, 55, 3))
    aa[:, 1:22] = rng.normal(0, 0.3, (2, 21, 3))
    return rm.pose_dict_from_joints(aa, joints=rm.JOINT_NAMES[:22])  # body only: the hands are unobserved


def test_ready_ping_version(backend):
    assert backend.ready_info["protocol"] == 1 and backend.ready_info["type"] == "ready"
    assert backend.ping() == {"pong": True, "version": backend.ready_info["version"], "protocol": 1, "device": "cpu"}
    info = backend.version()
    assert "complete" in info["ops"] and info["limits"]["max_hypotheses"] == 32


def test_complete_progress_then_result(backend):
    pose = request_pose()
    rid = backend.submit("complete", {"pose": pose, "missing": "right_arm", "seed": 1})
    assert rid in backend.outstanding
    msgs = [m for m in pump(backend, final_of(rid)) if m.get("id") == rid]
    types = [m["type"] for m in msgs]
    assert types[-1] == "result" and set(types[:-1]) == {"progress"} and len(types) >= 2
    done = [m["done"] for m in msgs[:-1]]
    assert done == sorted(done) and done[-1] == msgs[0]["total"]
    result = msgs[-1]["result"]
    assert rid not in backend.outstanding
    assert np.asarray(result["left_hand_pose"]).shape == (2, 45)
    out = rm.joints_from_pose_dict(result)
    body = np.asarray(pose["body_pose"], dtype=np.float64).reshape(2, 21, 3)
    kept = [i for i, j in enumerate(rm.JOINT_NAMES[1:22]) if j not in ("right_collar", "right_shoulder",
                                                                        "right_elbow", "right_wrist")]
    np.testing.assert_array_equal(out[:, 1:22][:, kept], body[:, kept])  # observed joints come back exactly
    # the blocking helper gives the same seeded result, and reports progress through its callback
    seen = []
    again = backend.call("complete", {"pose": pose, "missing": "right_arm", "seed": 1}, on_progress=seen.append)
    assert again == result and seen and all(m["type"] == "progress" for m in seen)


def test_complete_hands_of_a_bvh_rig(backend):
    # CMU BVH drives index1 and thumb1 only: the other fingers (and the jaw) go as "missing" and are filled in
    from dposer.spec import bone_maps

    driven = list(bone_maps.CMU_BVH.bones)
    aa = np.zeros((1, 55, 3))
    aa[0, [rm.JOINT_INDEX[j] for j in driven]] = np.random.default_rng(3).normal(0, 0.2, (len(driven), 3))
    pose = rm.pose_dict_from_joints(aa, joints=driven)
    result = backend.call("complete", {"pose": pose, "missing": list(bone_maps.CMU_BVH.lacks), "seed": 0})
    out = rm.joints_from_pose_dict(result)
    idx = [rm.JOINT_INDEX[j] for j in driven if j != "pelvis"]
    np.testing.assert_array_equal(out[0, idx], aa[0, idx].astype(np.float32))
    filled = [rm.JOINT_INDEX[j] for j in bone_maps.CMU_BVH.lacks if j != "jaw"]
    assert np.abs(out[0, filled]).max() > 0


def test_errors_raise_and_the_backend_keeps_serving(backend):
    with pytest.raises(BackendError) as e:
        backend.call("complete", {"pose": {"body_pose": [[0.0] * 62]}})
    assert e.value.code == "invalid_args" and "63" in e.value.message
    with pytest.raises(BackendError) as e:
        backend.call("vary", {"pose": {"jaw_pose": [[0.1, 0, 0]]}, "n": 2, "lock": ["left_pinkie1"]})
    assert e.value.code == "unknown_name"
    with pytest.raises(ValueError, match="NaN"):  # caught before it is sent
        encode_request(1, "complete", {"pose": {"jaw_pose": [[float("nan"), 0, 0]]}})
    assert backend.ping()["pong"]


def test_cancel_running_request(backend):
    rid = backend.submit("sample", LONG_SAMPLE)
    pump(backend, lambda msgs: any(m.get("id") == rid and m["type"] == "progress" for m in msgs))
    cid = backend.cancel(rid)
    msgs = pump(backend, lambda msgs: final_of(rid)(msgs) and final_of(cid)(msgs))
    final = next(m for m in msgs if m.get("id") == rid and m["type"] in ("result", "error"))
    assert final["type"] == "error" and final["error"]["code"] == "cancelled"
    progress = [m for m in msgs if m.get("id") == rid and m["type"] == "progress"]
    assert all(m["done"] < m["total"] for m in progress)  # stopped part-way, not run to the end
    reply = next(m for m in msgs if m.get("id") == cid)
    assert reply["result"] == {"target": rid, "cancelled": True, "state": "running"}
    assert backend.outstanding == {}
    assert backend.ping()["pong"]


def test_killed_process_gives_a_clear_error(checkpoint):
    b = start(checkpoint)
    try:
        rid = b.submit("sample", LONG_SAMPLE)  # may be written before ready: it waits in the pipe
        pump(b, lambda msgs: any(m.get("id") == rid and m["type"] == "progress" for m in msgs))
        b.proc.kill()  # a crash / OOM kill mid-request
        msgs = pump(b, final_of(rid), timeout=20)
        final = next(m for m in msgs if m.get("id") == rid and m["type"] == "error")
        assert final["error"]["code"] == "backend_exited"
        assert "killed" in final["error"]["message"] and "SIGKILL" in final["error"]["message"]
        assert "'sample' request" in final["error"]["message"]
        assert not b.alive and b.returncode == -9
        with pytest.raises(BackendError) as e:
            b.call("ping")
        assert e.value.code == "backend_exited"
    finally:
        b.shutdown()


def test_startup_timeout():
    b = SubprocessBackend(command=[sys.executable, "-c", "import time; time.sleep(60)"], startup_timeout=0.5).start()
    with pytest.raises(BackendError) as e:
        b.wait_ready()
    assert e.value.code == "startup_timeout"
    assert b.proc.wait(10) == -9  # killed at the start-up timeout, not waited for (it sleeps 60 s)
    b.shutdown()


def test_startup_failures(tmp_path):
    # the process exits at once
    b = SubprocessBackend(command=[sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"])
    b.start()
    with pytest.raises(BackendError) as e:
        b.wait_ready()
    assert e.value.code == "backend_exited" and "status 3" in e.value.message and "boom" in e.value.message
    b.shutdown()
    # the real server with a missing checkpoint: its own start-up error line
    b = start(str(tmp_path / "missing.safetensors"))
    with pytest.raises(BackendError) as e:
        b.wait_ready()
    assert e.value.code == "checkpoint_error" and "not found" in e.value.message
    b.shutdown()
    assert b.returncode == 1
    with pytest.raises(BackendError) as e:
        SubprocessBackend().submit("ping")
    assert e.value.code == "not_started"


def test_embedded_matches_subprocess(backend, checkpoint):
    assert EmbeddedBackend.available()
    args = {"pose": request_pose(), "missing": "right_hand,left_arm", "hypotheses": 2, "seed": 7}
    emb = make_backend("embedded", checkpoint=checkpoint, threads=1)
    with emb:
        ready = emb.wait_ready()
        assert ready["protocol"] == 1 and ready["device"] == "cpu"
        assert emb.ping()["pong"]
        rid = emb.submit("complete", args)
        msgs = [m for m in pump(emb, final_of(rid)) if m.get("id") == rid]
        assert msgs[-1]["type"] == "result" and {m["type"] for m in msgs[:-1]} == {"progress"}
        assert msgs[-1]["result"] == backend.call("complete", args)  # same request and seed, same numbers
        # the same validation and error codes as the server
        with pytest.raises(BackendError) as e:
            emb.call("sample", {"n": 1, "stpes": 10})
        assert e.value.code == "invalid_args" and "stpes" in e.value.message
        rid = emb.submit("sample", LONG_SAMPLE)
        pump(emb, lambda msgs: any(m.get("id") == rid and m["type"] == "progress" for m in msgs))
        emb.cancel(rid)
        with pytest.raises(BackendError) as e:
            emb.wait(rid, timeout=TIMEOUT)
        assert e.value.code == "cancelled"
    with pytest.raises(BackendError):
        emb.submit("ping")


def test_subprocess_environment_drops_blender_python_paths(monkeypatch):
    monkeypatch.setenv("PYTHONHOME", "/blender/python")
    monkeypatch.setenv("PYTHONPATH", "/blender/scripts")
    b = SubprocessBackend(python="/opt/venv/bin/python", checkpoint="/x.safetensors", device="cuda", threads=2,
                          backend_path="/src/backend", env={"CUDA_VISIBLE_DEVICES": "0"})
    env = b._environment()
    assert "PYTHONHOME" not in env and env["PYTHONPATH"] == "/src/backend" and env["PYTHONUNBUFFERED"] == "1"
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env.get("PATH") == os.environ.get("PATH")
    assert b.command == ["/opt/venv/bin/python", "-u", "-m", "dposer.serve", "--device", "cuda",
                         "--checkpoint", "/x.safetensors", "--threads", "2"]
