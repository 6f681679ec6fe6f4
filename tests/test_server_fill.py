"""The server's ``fill`` op through a real ``python -m dposer.serve`` subprocess, on a real take (the HumanEva
gestures clip): its rows are what :func:`dposer.motion.filling.fill` gives for the same gap, every value outside
the filled cells is the request's, and malformed fill requests get clear errors while the server keeps serving."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import needs_data

FIRST, LAST = 100, 129


@pytest.fixture(scope="module")
def take(data_root):
    d = np.load(data_root / "dposer_x" / "gestures_clip_240f.npz")
    body, root = d["pose_body"].astype(np.float32), d["root_orient"].astype(np.float32)
    trans = np.cumsum(np.full((len(body), 3), 0.01), 0).astype(np.float32)
    return {"global_orient": root.tolist(), "body_pose": body.tolist(), "trans": trans.tolist()}


def serve(checkpoint, requests: list[dict]) -> dict:
    """Send ``requests`` to a server subprocess, read until each has its final reply, then shut it down; the final
    replies by id (shutdown's as 'bye')."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "dposer.serve", "--threads", "1", "--checkpoint", checkpoint],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        proc.stdin.write(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
        proc.stdin.flush()
        replies, want = {}, {r["id"] for r in requests} | {"bye"}
        while set(replies) != want:
            if set(replies) == want - {"bye"} and not proc.stdin.closed:
                proc.stdin.write(b'{"id": "bye", "op": "shutdown"}\n')
                proc.stdin.close()
            line = proc.stdout.readline()
            assert line, f"the server closed stdout; replies so far: {sorted(replies)}"
            m = json.loads(line)
            if m["type"] in ("result", "error"):
                replies[m["id"]] = m
        assert proc.wait(60) == 0
        return replies
    finally:
        if proc.poll() is None:
            proc.kill()


@needs_data
def test_fill_returns_what_filling_fill_gives_and_refuses_malformed_requests(checkpoint, take):
    from dposer.motion import filling
    from dposer.motion.take import stack
    from dposer.spec.skeleton import body_motion_joints

    parts = "left_leg,right_arm"
    n = len(take["body_pose"])
    good = {"clip": take, "first": FIRST, "last": LAST, "parts": parts, "fps": 30.0}
    bad = {
        "after": ({**good, "first": LAST + 1}, "invalid_args"),
        "beyond": ({**good, "last": n}, "invalid_args"),
        "whole": ({**good, "first": 0, "last": n - 1}, "invalid_args"),
        "hands": ({**good, "parts": "left_hand"}, "unknown_name"),
        "tail": ({**good, "parts": ["left_leg", "tail"]}, "unknown_name"),
        "no-body": ({**good, "clip": {"global_orient": take["global_orient"]}}, "invalid_args"),
        "no-clip": ({"first": FIRST, "last": LAST}, "invalid_args"),
        "text-frame": ({**good, "first": "100"}, "invalid_args"),
        "fps": ({**good, "fps": 0}, "invalid_args"),
        "ragged": ({**good, "clip": {"body_pose": take["body_pose"][:5] + [[0.0] * 62]}}, "invalid_args"),
    }
    requests = [{"id": rid, "op": "fill", "args": args} for rid, (args, _) in bad.items()]
    requests += [{"id": "fill", "op": "fill", "args": good}, {"id": "alive", "op": "ping"},
                 {"id": "root", "op": "fill", "args": {**good, "parts": "body", "first": 60, "last": 69}}]
    replies = serve(checkpoint, requests)
    for rid, (_, code) in bad.items():
        m = replies[rid]
        assert m["type"] == "error" and m["error"]["code"] == code, (rid, m)
        assert m["error"]["message"]
    assert replies["alive"]["result"]["pong"] is True and replies["bye"]["result"] == {"shutdown": True}

    rot = stack(np.asarray(take["global_orient"]), np.asarray(take["body_pose"])).astype(np.float64)
    mask = np.zeros((n, 22), bool)
    mask[FIRST:LAST + 1] = body_motion_joints(parts)
    expected, gaps = filling.fill(rot, mask, 30.0, filling.bundled_prior())
    res = replies["fill"]["result"]
    body = np.asarray(res["body_pose"])
    assert body.shape == (LAST - FIRST + 1, 63)
    assert np.array_equal(body, expected[FIRST:LAST + 1, 1:].reshape(-1, 63))
    assert np.array_equal(np.asarray(res["global_orient"]), rot[FIRST:LAST + 1, 0])  # the root is not in the parts
    assert np.array_equal(np.asarray(res["trans"]), np.asarray(take["trans"])[FIRST:LAST + 1])
    assert res["gaps"] == json.loads(json.dumps(gaps))
    sent = np.asarray(take["body_pose"])[FIRST:LAST + 1]
    cols = np.repeat(mask[FIRST, 1:], 3)
    assert np.array_equal(body[:, ~cols], sent[:, ~cols]) and not np.array_equal(body[:, cols], sent[:, cols])

    # the whole body: the root orientation and the translation are filled on those frames too
    res = replies["root"]["result"]
    assert not np.array_equal(np.asarray(res["global_orient"]), rot[60:70, 0])
    trans = np.asarray(res["trans"])
    assert not np.array_equal(trans, np.asarray(take["trans"])[60:70])
    assert np.allclose(trans, np.asarray(take["trans"])[60:70], atol=1e-5)  # a straight line stays one
