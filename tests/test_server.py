"""The JSON-lines server (``python -m dposer.serve``) through a real subprocess, with a tiny random-weight prior."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from dposer.spec import layout
from dposer.core.model import NetConfig, ScoreNet
from dposer.core.prior import Normalizer, save_prior
from dposer.serve.server import MAX_FRAMES, MAX_LINE_BYTES, MAX_POSES

TIMEOUT = 30.0
FINAL = ("result", "error")


# A task that cannot end on its own while a test cancels it: minutes of work on the tiny prior, within MAX_WORK
LONG = {"n": 1000, "steps": 2000, "sampler": "em"}


class Client:
    """A server subprocess; a reader thread parses every stdout line (each must be JSON) into a queue."""

    def __init__(self, *args: str):
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "dposer.serve", "--threads", "1", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.lines: queue.Queue = queue.Queue()
        self.bad_lines: list[bytes] = []
        self.stderr: list[bytes] = []
        self.pending: list[dict] = []  # messages read but not yet claimed
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.bad_lines.append(line)
        self.lines.put(None)

    def write(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, rid, op, args=None, **extra) -> None:
        msg = {"id": rid, "op": op, **({} if args is None else {"args": args}), **extra}
        self.write(json.dumps(msg).encode() + b"\n")

    def next(self, timeout=TIMEOUT) -> dict:
        msg = self.lines.get(timeout=timeout)
        assert msg is not None, f"server closed stdout; stderr:\n{self.err()}"
        return msg

    def take(self, pred, timeout=TIMEOUT) -> dict:
        """The first message (pending or new) satisfying ``pred``; others stay pending."""
        for i, m in enumerate(self.pending):
            if pred(m):
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            m = self.next(max(0.01, deadline - time.monotonic()))
            if pred(m):
                return m
            self.pending.append(m)

    def final(self, rid, timeout=TIMEOUT) -> tuple[dict, list[dict]]:
        """(final reply, progress messages before it) of request ``rid``."""
        progress = []
        while True:
            m = self.take(lambda m: m.get("id") == rid and m.get("type") in FINAL + ("progress",), timeout)
            if m["type"] == "progress":
                progress.append(m)
            else:
                return m, progress

    def call(self, rid, op, args=None, timeout=TIMEOUT) -> dict:
        self.send(rid, op, args)
        return self.final(rid, timeout)[0]

    def ready(self) -> dict:
        m = self.next(60)
        assert m["type"] == "ready", m
        return m

    def err(self) -> str:
        return b"".join(self.stderr).decode(errors="replace")[-3000:]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def server(checkpoint):
    c = Client("--checkpoint", checkpoint)
    c.ready_msg = c.ready()
    yield c
    c.close()
    assert not c.bad_lines, f"non-JSON lines on stdout: {c.bad_lines[:3]}"


def _rand(rng, *shape) -> list:
    """float32-representable random numbers as JSON-ready lists (so a float32 round trip is exact)."""
    return rng.normal(0, 0.3, shape).astype(np.float32).astype(np.float64).tolist()


def test_ready_and_ping(server):
    assert server.ready_msg == {"id": None, "type": "ready", "protocol": 1, "version": server.ready_msg["version"],
                                "device": "cpu"}
    r = server.call("p1", "ping")
    assert r["type"] == "result" and r["result"]["pong"] is True and r["result"]["protocol"] == 1
    v = server.call(7, "version")["result"]
    assert v["protocol"] == 1 and v["limits"]["max_poses"] == MAX_POSES and "complete" in v["ops"]


def test_complete_round_trip_and_progress(server):
    rng = np.random.default_rng(0)
    n, k = 2, 3
    pose = {"global_orient": _rand(rng, n, 3), "body_pose": _rand(rng, n, 63), "right_hand_pose": _rand(rng, n, 45)}
    server.send("c1", "complete", {"pose": pose, "missing": ["left_arm"], "hypotheses": k, "seed": 1})
    r, progress = server.final("c1")
    assert r["type"] == "result", r
    res = r["result"]
    # progress: before the result, throttled, increasing, ends at total
    assert 1 <= len(progress) <= 20
    done = [p["done"] for p in progress]
    assert done == sorted(done) and progress[-1]["done"] == progress[-1]["total"]
    shapes = {"global_orient": (n, 3), "body_pose": (n, 63), "left_hand_pose": (n, 45), "right_hand_pose": (n, 45),
              "jaw_pose": (n, 3), "expression": (n, 100), "scores": (k, n)}
    for key, shape in shapes.items():
        assert np.asarray(res[key]).shape == shape, key
    for key, sl in layout.KEY_SLICES.items():
        assert np.asarray(res[f"{key}_hypotheses"]).shape == (k, n, sl.stop - sl.start), key
    # observed joints come back exactly (float32 values survive the JSON round trip bit for bit)
    free = layout.dim_mask("left_arm")[:63]
    body_in, body_out = np.asarray(pose["body_pose"]), np.asarray(res["body_pose"])
    assert np.array_equal(body_out[:, ~free], body_in[:, ~free])
    assert not np.array_equal(body_out[:, free], body_in[:, free])
    assert np.array_equal(np.asarray(res["right_hand_pose"]), np.asarray(pose["right_hand_pose"]))
    assert np.array_equal(np.asarray(res["global_orient"]), np.asarray(pose["global_orient"]))
    hyp = np.asarray(res["body_pose_hypotheses"])
    assert np.allclose(hyp.mean(0), body_out, atol=1e-5)  # the best estimate: the mean of the hypotheses
    assert all(np.array_equal(hyp[i][:, ~free], body_in[:, ~free]) for i in range(k))
    scores = np.asarray(res["scores"])
    assert (np.diff(scores, axis=0) >= 0).all()  # ranked best first


def test_every_task_op(server):
    rng = np.random.default_rng(1)
    one = {"body_pose": _rand(rng, 1, 63)}
    cases = {
        "sample": ({"n": 2, "steps": 4, "seed": 3}, {"body_pose": (2, 63), "expression": (2, 100)}),
        "vary": ({"pose": one, "n": 3, "strength": 0.5, "steps": 4, "lock": "left_arm"}, {"body_pose": (3, 63)}),
        "refine": ({"pose": {"body_pose": _rand(rng, 2, 63)}, "strength": 0.2}, {"body_pose": (2, 63)}),
        "fit": ({"targets": {"left_wrist": [0.5, 1.2, 0.1], "right_wrist": [[-0.5, 1.2, 0.1]]}, "pose": one},
                {"body_pose": (1, 63), "target_error": (1, 2)}),
        "clean": ({"clip": {"body_pose": _rand(rng, 5, 63), "trans": _rand(rng, 5, 3)}, "strength": 0.5, "lock": ["head"]},
                  {"body_pose": (5, 63), "trans": (5, 3)}),
    }
    for op, (args, shapes) in cases.items():
        r = server.call(f"op-{op}", op, args)
        assert r["type"] == "result", (op, r)
        for key, shape in shapes.items():
            assert np.asarray(r["result"][key]).shape == shape, (op, key)
    # vary keeps locked joints exactly; clean passes trans through and drops absent keys
    r = server.call("vary-lock", "vary", {"pose": one, "n": 2, "strength": 0.8, "steps": 4, "lock": ["left_arm"]})
    dims = layout.names_to_dims("left_arm")
    assert np.array_equal(np.asarray(r["result"]["body_pose"])[:, dims], np.repeat(np.asarray(one["body_pose"])[:, dims], 2, 0))
    clip = cases["clean"][0]["clip"]
    r = server.call("clean2", "clean", {"clip": clip})
    assert np.array_equal(np.asarray(r["result"]["trans"]), np.asarray(clip["trans"]))
    assert "left_hand_pose" not in r["result"]
    # fit: a pose of N rows with single targets (broadcast to N by the server)
    r = server.call("fitN", "fit", {"targets": {"left_wrist": [0.5, 1.2, 0.1]}, "pose": {"body_pose": _rand(rng, 3, 63)}})
    assert r["type"] == "result", r
    assert np.asarray(r["result"]["target_error"]).shape == (3, 1)


def test_cancel_running_and_queued(server):
    server.send("long", "sample", LONG)
    first = server.take(lambda m: m.get("id") == "long", timeout=60)
    assert first["type"] == "progress", first  # running
    # the server answers while a task runs, refuses a duplicate id, and queues the next task
    assert server.call("ping-during", "ping")["result"]["pong"] is True
    r = server.call("long", "sample", {"n": 1})
    assert r["type"] == "error" and r["error"]["code"] == "duplicate_id"
    server.send("queued", "sample", {"n": 1, "steps": 3})
    c = server.call("cq", "cancel", {"target": "queued"})
    assert c["result"] == {"target": "queued", "cancelled": True, "state": "queued"}
    q, qprog = server.final("queued")
    assert q["type"] == "error" and q["error"]["code"] == "cancelled" and not qprog
    c = server.call("cl", "cancel", {"target": "long"})
    assert c["result"] == {"target": "long", "cancelled": True, "state": "running"}
    r, progress = server.final("long")
    assert r["type"] == "error" and r["error"]["code"] == "cancelled", r
    assert all(p["done"] < p["total"] for p in [first, *progress])  # stopped part-way, not run to the end
    c = server.call("cu", "cancel", {"target": "long"})  # it has answered: nothing to cancel
    assert c["result"]["cancelled"] is False
    assert server.call("ping-after", "ping")["result"]["pong"] is True
    # the id is free again once its request has answered
    assert server.call("long", "sample", {"n": 1, "steps": 2})["type"] == "result"


def _malformed() -> list[tuple[bytes, object, str]]:
    """(line, expected reply id, expected error code)."""
    rng = np.random.default_rng(3)
    body = _rand(rng, 1, 63)
    one = {"body_pose": body}
    cases: list[tuple[bytes, object, str]] = []

    def add(obj, rid, code):
        cases.append(((obj if isinstance(obj, bytes) else json.dumps(obj).encode()), rid, code))

    # not JSON / not an object
    for raw in [b"{", b"}", b"nope", b"{'id': 1, 'op': 'ping'}", b'{"id": 1, "op": "ping",}', b"[1, 2", b'{"id": 1 "op": "ping"}',
                b"\xff\xfe\x00", b"\xc3\x28", b"", b"   ", b"\t", b"[" * 100000 + b"]" * 100000, b'{"id": 01}',
                b'{"id": 1, "op": "ping"} trailing', b'{"id": 1, "op": "ping"}{"id": 2}', b'{"id": "\\ud800x", "op": 5']:
        add(raw, None, "parse_error")
    for v in ["str", 123, None, True, [], [{"id": 1, "op": "ping"}], 1.5]:
        add(v, None, "invalid_request")
    # id missing or of the wrong type
    for bad_id in [1.5, True, False, None, [1], {"a": 1}, "x" * 300, 2**70]:
        add({"id": bad_id, "op": "ping"}, None, "invalid_request")
    add({"op": "ping"}, None, "invalid_request")
    # op missing, wrong type, unknown; unknown top-level fields; args not an object
    add({"id": 1}, 1, "invalid_request")
    for op in [5, None, True, ["ping"], {"op": "ping"}]:
        add({"id": 2, "op": op}, 2, "invalid_request")
    for op in ["completee", "", "PING", "Complete", "denoise", "hello", "load_model", "__init__", "run_task"]:
        add({"id": f"op-{op}", "op": op}, f"op-{op}", "unknown_op")
    for extra in [{"params": {}}, {"v": 1}, {"ID": 3}]:
        add({"id": 3, "op": "ping", **extra}, 3, "invalid_request")
    for args in [[], "x", 5, True, [{"n": 1}]]:
        add({"id": 4, "op": "sample", "args": args}, 4, "invalid_request")
    # NaN / Infinity / overflow anywhere (the id is still read)
    nan_lines = [
        b'{"id": 5, "op": "sample", "args": {"n": NaN}}',
        b'{"id": 5, "op": "sample", "args": {"n": 1, "seed": Infinity}}',
        b'{"id": 5, "op": "clean", "args": {"clip": {"body_pose": [[0.1, 0.2]]}, "strength": -Infinity}}',
        b'{"id": 5, "op": "refine", "args": {"pose": {"body_pose": [1e999]}}}',
        b'{"id": 5, "op": "ping", "args": {"x": -1e400}}',
        b'{"id": 5, "op": "fit", "args": {"targets": {"left_wrist": [NaN, 0, 0]}}}',
    ]
    for line in nan_lines:
        add(line, 5, "non_finite")
    for key, width in [("body_pose", 63), ("left_hand_pose", 45), ("right_hand_pose", 45), ("jaw_pose", 3),
                       ("expression", 100), ("global_orient", 3)]:
        for const in ["NaN", "Infinity", "-Infinity", "1e309"]:
            row = ", ".join(["0.0"] * (width - 1) + [const])
            add(f'{{"id": "nan-{key}-{const}", "op": "complete", "args": {{"pose": {{"body_pose": {json.dumps(body)}, "{key}": [[{row}]]}}}}}}'
                .encode() if key != "body_pose" else
                f'{{"id": "nan-{key}-{const}", "op": "refine", "args": {{"pose": {{"{key}": [[{row}]]}}}}}}'.encode(),
                f"nan-{key}-{const}", "non_finite")
    add({"id": 6, "op": "refine", "args": {"pose": {"body_pose": [[1e38] * 62 + [1e39]]}}}, 6, "non_finite")  # float32 overflow
    # unknown / misspelt argument names
    for op, args in [("ping", {"x": 1}), ("version", {"verbose": True}), ("shutdown", {"now": True}),
                     ("complete", {"pose": one, "hypothesis": 2}), ("complete", {"pose": one, "missng": []}),
                     ("clean", {"clip": one, "strenght": 0.5}), ("vary", {"pose": one, "n": 2, "seeds": 1}),
                     ("refine", {"pose": one, "locks": []}), ("fit", {"targets": {}, "target": {}}),
                     ("sample", {"n": 1, "num": 2}), ("cancel", {"target": 1, "id": 2}), ("sample", {"N": 1})]:
        rid = f"arg-{op}-{len(cases)}"
        add({"id": rid, "op": op, "args": args}, rid, "invalid_args")
    # missing required arguments
    for op, args in [("complete", {}), ("clean", {}), ("vary", {"pose": one}), ("vary", {"n": 2}), ("refine", {}),
                     ("fit", {}), ("sample", {}), ("cancel", {}), ("sample", None), ("complete", {"pose": None})]:
        rid = f"req-{op}-{len(cases)}"
        add({"id": rid, "op": op, **({} if args is None else {"args": args})}, rid, "invalid_args")
    # wrong types and out-of-range values
    bad_values = {
        ("complete", "hypotheses"): ([2.5, -1, 0, True, "2", None, [2], 2.0], {"pose": one}),
        ("complete", "seed"): ([-1, 1.5, "0", True, 2**64], {"pose": one}),
        ("clean", "strength"): (["high", -0.1, 1.5, True, None, [0.5]], {"clip": {"body_pose": _rand(rng, 3, 63)}}),
        ("vary", "n"): ([0, -3, 2.5, "4", False], {"pose": one}),
        ("vary", "strength"): ([1.01, -1, "low"], {"pose": one, "n": 2}),
        ("vary", "steps"): ([0, 1.5, "10"], {"pose": one, "n": 2}),
        ("refine", "strength"): ([0, 0.0, 2, "x"], {"pose": one}),
        ("sample", "n"): ([0, -1, 1.5, "1", True, None], {}),
        ("sample", "steps"): ([0, -10, 3.3, "100"], {"n": 1}),
        ("sample", "sampler"): (["ddpm", "DDIM", 1, None, ["ddim"]], {"n": 1}),
        ("cancel", "target"): ([1.5, True, None, [1], {"id": 1}, "t" * 300], {}),
        ("complete", "missing"): ([5, True, {"left_arm": 1}, [1, 2], ["left_arm", None]], {"pose": one}),
        ("clean", "parts"): ([0, [["body"]], False], {"clip": {"body_pose": _rand(rng, 3, 63)}}),
    }
    for (op, arg), (values, base) in bad_values.items():
        for i, v in enumerate(values):
            rid = f"type-{op}-{arg}-{i}"
            add({"id": rid, "op": op, "args": {**base, arg: v}}, rid, "invalid_args")
    # limits
    for op, args in [("complete", {"pose": one, "hypotheses": 33}), ("vary", {"pose": one, "n": 1001}),
                     ("sample", {"n": 1001}), ("sample", {"n": 10**9}), ("sample", {"n": 1, "steps": 2001}),
                     ("vary", {"pose": one, "n": 2, "steps": 5000}),
                     ("complete", {"pose": {"body_pose": [[0.0] * 63] * (MAX_POSES + 1)}}),
                     ("refine", {"pose": {"jaw_pose": [[0.0] * 3] * (MAX_POSES + 1)}}),
                     ("fit", {"targets": {"left_wrist": [[0.0] * 3] * (MAX_POSES + 1)}}),
                     ("clean", {"clip": {"jaw_pose": [[0.0] * 3] * (MAX_FRAMES + 1)}})]:
        rid = f"limit-{op}-{len(cases)}"
        add({"id": rid, "op": op, "args": args}, rid, "limit_exceeded")
    # pose/clip shapes and contents
    bad_poses = [
        {"body_pose": [[0.0] * 62]}, {"body_pose": [[0.0] * 64]}, {"body_pose": [0.0] * 64},
        {"body_pose": [[0.0] * 63, [0.0] * 62]}, {"body_pose": [[0.0] * 63, 0.0]}, {"body_pose": [0.0, [0.0] * 63]},
        {"body_pose": []}, {"body_pose": [[]]}, {"body_pose": [[[0.0] * 63]]}, {"body_pose": None},
        {"body_pose": {"0": 1}}, {"body_pose": "zeros"}, {"body_pose": 0.0}, {"body_pose": [["0"] * 63]},
        {"body_pose": [[True] * 63]}, {"body_pose": [[None] * 63]}, {"body_pose": [[0.0] * 62 + [False]]},
        {"body_pose": [[0.0] * 62 + [{}]]}, {"left_hand_pose": [[0.0] * 44]}, {"right_hand_pose": [[0.0] * 63]},
        {"jaw_pose": [[0.0] * 4]}, {"expression": [[0.0] * 101]}, {"expression": [[]]},
        {"body_pose": body, "global_orient": [[0.0] * 4]}, {"body_pose": body, "global_orient": [[0.0] * 3] * 2},
        {"body_pose": [[0.0] * 63] * 2, "jaw_pose": [[0.0] * 3] * 3}, {"global_orient": [[0.0] * 3]}, {},
        {"betas": [[0.0] * 10]}, {"body_pose": body, "hand_pose": [[0.0] * 45]}, {"body_pose": body, "trans": [[0.0] * 3]},
        {"Body_pose": body}, [[0.0] * 63], "pose", 7,
    ]
    for i, p in enumerate(bad_poses):
        for op in ("complete", "refine"):
            rid = f"pose-{op}-{i}"
            add({"id": rid, "op": op, "args": {"pose": p}}, rid, "invalid_args")
    add({"id": "vary-rows", "op": "vary", "args": {"pose": {"body_pose": [[0.0] * 63] * 2}, "n": 2}}, "vary-rows", "invalid_args")
    for i, clip in enumerate([{"body_pose": [[0.0] * 63] * 2}, {"body_pose": body}, {"body_pose": [[0.0] * 63] * 3,
                              "trans": [[0.0] * 3] * 2}, {"body_pose": [[0.0] * 63] * 3, "trans": [[0.0] * 2] * 3}]):
        add({"id": f"clip-{i}", "op": "clean", "args": {"clip": clip}}, f"clip-{i}", "invalid_args")
    # unknown joint / part / group names
    names = ["left_pinkie1", "tail", "Left_Arm", "left_arm,bogus", ["left_arm", "wings"], "pelvis_", "hand", " spine9"]
    for i, nm in enumerate(names):
        add({"id": f"name-m{i}", "op": "complete", "args": {"pose": one, "missing": nm}}, f"name-m{i}", "unknown_name")
        add({"id": f"name-l{i}", "op": "vary", "args": {"pose": one, "n": 2, "lock": nm}}, f"name-l{i}", "unknown_name")
    add({"id": "name-p", "op": "clean", "args": {"clip": {"body_pose": [[0.0] * 63] * 3}, "parts": "bodyy"}}, "name-p", "unknown_name")
    add({"id": "name-r", "op": "refine", "args": {"pose": one, "lock": ["left_eye"]}}, "name-r", "unknown_name")
    add({"id": "name-f", "op": "fit", "args": {"targets": {"left_wrist": [0, 1, 0]}, "free": "wings"}}, "name-f", "unknown_name")
    for j in ["left_wristt", "LEFT_WRIST", "hand", ""]:
        add({"id": f"joint-{j}", "op": "fit", "args": {"targets": {j: [0.0, 1.0, 0.0]}}}, f"joint-{j}", "unknown_name")
    # fit targets of the wrong form
    for i, t in enumerate([{}, [], "left_wrist", {"left_wrist": [0.0, 1.0]}, {"left_wrist": [[0.0, 1.0, 0.0, 1.0]]},
                           {"left_wrist": [[0.0, 1.0, 0.0]] * 2, "right_wrist": [[0.0, 1.0, 0.0]] * 3},
                           {"left_wrist": "up"}, {"left_wrist": None}, {"left_wrist": [True, 0, 0]}]):
        add({"id": f"target-{i}", "op": "fit", "args": {"targets": t}}, f"target-{i}", "invalid_args")
    add({"id": "target-rows", "op": "fit", "args": {"targets": {"left_wrist": [[0.0, 1.0, 0.0]] * 3},
                                                    "pose": {"body_pose": [[0.0] * 63] * 2}}}, "target-rows", "invalid_args")
    return cases


def test_malformed_requests(server):
    cases = _malformed()
    assert len(cases) >= 200
    # send everything from a thread (the reader thread keeps stdout drained), then check the replies in order
    writer = threading.Thread(target=lambda: [server.write(line + b"\n") for line, _, _ in cases])
    writer.start()
    for line, rid, code in cases:
        m = server.next()
        assert m["type"] == "error", (line[:200], m)
        assert m["id"] == rid, (line[:200], m)
        assert m["error"]["code"] == code, (line[:200], m)
        assert isinstance(m["error"]["message"], str) and m["error"]["message"]
    writer.join()
    # an oversized line is skipped and answered; the server keeps serving
    big = b'{"id": 9, "op": "ping", "args": {"pad": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}}\n'
    server.write(big)
    m = server.next()
    assert m["type"] == "error" and m["id"] is None and m["error"]["code"] == "line_too_long"
    assert server.call("alive", "ping")["result"]["pong"] is True
    assert server.proc.poll() is None
    assert not server.pending


def test_shutdown_exits_zero(checkpoint):
    c = Client("--checkpoint", checkpoint)
    try:
        c.ready()
        # shutdown cancels the running and the queued tasks (each answers 'cancelled'), replies, exits 0
        c.send("run", "sample", LONG)
        assert c.take(lambda m: m.get("id") == "run", timeout=60)["type"] == "progress"  # running
        c.send("wait", "sample", {"n": 1})
        c.send("bye", "shutdown")
        for rid in ("wait", "run"):
            r = c.final(rid)[0]
            assert r["type"] == "error" and r["error"]["code"] == "cancelled", r
        r = c.final("bye")[0]
        assert r == {"id": "bye", "type": "result", "result": {"shutdown": True}}
        assert c.proc.wait(20) == 0
    finally:
        c.close()


def test_eof_cancels_work_and_exits(checkpoint):
    """An orphaned server (stdin closed: the client is gone) stops its work at once instead of finishing it."""
    c = Client("--checkpoint", checkpoint)
    try:
        assert c.ready()["protocol"] == 1
        c.send(1, "sample", LONG)
        c.send(2, "sample", {"n": 2, "steps": 3})
        first = c.take(lambda m: m.get("id") == 1 and m["type"] == "progress", 60)  # running
        c.proc.stdin.close()
        (r1, progress), r2 = c.final(1), c.final(2)[0]
        assert r1["type"] == "error" and r1["error"]["code"] == "cancelled", r1
        assert all(p["done"] < p["total"] for p in [first, *progress])  # stopped part-way, not run to the end
        assert r2["type"] == "error" and r2["error"]["code"] == "cancelled", r2
        assert c.proc.wait(20) == 0
        assert c.lines.get(timeout=5) is None  # stdout closed, nothing else written
    finally:
        c.close()


def test_internal_errors_keep_serving():
    """In process: a task that fails unexpectedly answers 'internal' (message only; the traceback goes to stderr,
    as docs/protocol.md says) and the server goes on."""
    import io

    from dposer.serve.server import Server

    class BrokenPrior:
        device, info = "cpu", {}

    lines = [{"id": 1, "op": "sample", "args": {"n": 2}}, {"id": 2, "op": "ping"},
             {"id": 3, "op": "complete", "args": {"pose": {"jaw_pose": [0.1, 0.2, 0.3]}}}, {"id": 4, "op": "ping"}]
    r, w = os.pipe()
    os.write(w, b"".join(json.dumps(m).encode() + b"\n" for m in lines))
    out = io.BytesIO()
    server = Server(BrokenPrior(), os.fdopen(r, "rb"), out)
    t = threading.Thread(target=server.serve)
    t.start()
    deadline = time.monotonic() + TIMEOUT
    while len(out.getvalue().splitlines()) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.close(w)  # EOF only once every reply is in
    t.join(TIMEOUT)
    replies = [json.loads(x) for x in out.getvalue().splitlines()]
    assert replies[0]["type"] == "ready"
    by_id = {m["id"]: m for m in replies[1:]}
    assert len(replies) == 5 and by_id[2]["result"]["pong"] and by_id[4]["result"]["pong"]
    for rid in (1, 3):
        assert by_id[rid]["type"] == "error" and by_id[rid]["error"]["code"] == "internal", by_id[rid]
        assert "AttributeError" in by_id[rid]["error"]["message"]
        assert set(by_id[rid]["error"]) == {"code", "message"}


def test_bad_checkpoint_reports_and_exits(tmp_path):
    c = Client("--checkpoint", str(tmp_path / "missing.safetensors"))
    try:
        m = c.next(60)
        assert m["type"] == "error" and m["id"] is None and m["error"]["code"] == "checkpoint_error"
        assert c.proc.wait(20) == 1
    finally:
        c.close()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_unavailable_reports_and_exits(checkpoint):
    c = Client("--checkpoint", checkpoint, "--device", "cuda")
    try:
        m = c.next(60)
        assert m["type"] == "error" and m["error"]["code"] == "device_unavailable"
        assert c.proc.wait(20) == 1
    finally:
        c.close()


# ---- limits: echoed text, work per request, the queue, huge numbers

def test_error_replies_do_not_echo_huge_input(server):
    from dposer.serve.server import MAX_MESSAGE_CHARS

    big = "x" * 1_000_000
    cases = [
        ({"id": 1, "op": big}, "unknown_op"),
        ({"id": 2, "op": "ping", "args": {big: 1}}, "invalid_args"),
        ({"id": 3, "op": "complete", "args": {"pose": {"jaw_pose": [0, 0, 0]}, "missing": big}}, "unknown_name"),
        ({"id": 4, "op": "complete", "args": {"pose": {"jaw_pose": [0, 0, 0]}, "missing": [big] * 8}}, "unknown_name"),
        ({"id": 5, "op": "fit", "args": {"targets": {big: [0, 0, 0]}}}, "unknown_name"),
        ({"id": 6, "op": "complete", "args": {"pose": {"jaw_pose": [0, 0, 0], big: [1]}}}, "invalid_args"),
        ({"id": 7, "op": "ping", big: 1}, "invalid_request"),
    ]
    for msg, code in cases:
        server.write(json.dumps(msg).encode() + b"\n")
        m = server.next()
        assert m["error"]["code"] == code, m["error"]["message"][:300]
        assert len(json.dumps(m)) < MAX_MESSAGE_CHARS + 200, len(json.dumps(m))


def test_huge_numbers_are_validation_errors(server):
    huge = 10 ** 400  # 401 digits: an integer Python's json reads but no double holds
    cases = [({"strength": huge}, "clean", "invalid_args"), ({"seed": huge}, "complete", "invalid_args"),
             ({"hypotheses": huge}, "complete", "limit_exceeded"), ({"strength": -huge}, "refine", "invalid_args")]
    pose = {"body_pose": [[0.0] * 63] * 3}
    for args, op, code in cases:
        key = "clip" if op == "clean" else "pose"
        m = server.call(f"h-{op}", op, {key: pose, **args})
        assert m["type"] == "error" and m["error"]["code"] == code, m
        assert len(m["error"]["message"]) < 200, m["error"]["message"]
    m = server.call("h-pose", "complete", {"pose": {"jaw_pose": [[huge, 0, 0]]}})
    assert m["error"]["code"] == "non_finite", m


def test_work_per_request_is_bounded(server):
    from dposer.serve import server as srv
    from dposer.serve.server import MAX_WORK

    rows = [[0.0] * 63] * MAX_POSES
    m = server.call("w1", "complete", {"pose": {"body_pose": rows}, "hypotheses": 32})  # 1000 x 32 x 100
    assert m["error"]["code"] == "limit_exceeded" and f"{MAX_WORK:,}" in m["error"]["message"], m
    srv.validate({"id": 1, "op": "sample", "args": {"n": 1000, "steps": 2000}})  # 2 M: allowed
    srv.validate({"id": 1, "op": "clean", "args": {"clip": {"body_pose": [[0.0] * 63] * MAX_FRAMES}}})  # the bound
    with pytest.raises(srv.RequestError, match="limit is"):
        srv.validate({"id": 1, "op": "complete", "args": {"pose": {"body_pose": rows[:800]}, "hypotheses": 31}})


def test_version_reports_the_limits(server):
    from dposer.serve import server as srv

    assert server.call("v", "version")["result"]["limits"] == srv.LIMITS
    assert srv.LIMITS["max_work"] == srv.MAX_WORK and srv.LIMITS["max_queue"] == srv.MAX_QUEUE


def test_queue_is_bounded(checkpoint):
    from dposer.serve.server import MAX_QUEUE

    c = Client("--checkpoint", checkpoint)
    try:
        c.ready()
        c.send("run", "sample", {"n": 1000, "steps": 2000, "sampler": "em"})
        c.take(lambda m: m.get("id") == "run" and m["type"] == "progress", 60)  # running, not queued
        for i in range(MAX_QUEUE + 1):
            c.send(f"q{i}", "sample", {"n": 1, "steps": 2})
        m = c.final(f"q{MAX_QUEUE}")[0]
        assert m["type"] == "error" and m["error"]["code"] == "limit_exceeded" and "queued" in m["error"]["message"]
        assert c.call("p", "ping")["result"]["pong"] is True
    finally:
        c.close()


def test_protocol_doc_matches_the_server():
    """docs/protocol.md lists every limit with the server's value, and promises no field the server never sends."""
    from pathlib import Path

    from dposer.serve import server as srv

    doc = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    limits = doc[doc.index("## 5. Limits"):doc.index("## 6.")]
    for key, value in srv.LIMITS.items():
        assert f"`{key}`" in limits and f"{value:,}" in limits, key
    assert "`traceback`" not in doc  # error replies carry code and message only (the traceback goes to stderr)
    assert "/work/" not in doc and "blender.md" not in doc  # no links outside the repository
