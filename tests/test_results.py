"""dposer.core.results.TaskResult: typed fields, and its dict view (the pose keys, then the hypotheses, then the
extras, in that order)."""
import json

import numpy as np
import pytest

from dposer.spec import layout
from dposer.core.results import TaskResult
from dposer.serve.server import jsonable


def _pose(n=2):
    return layout.vectors_to_dict(np.arange(n * layout.DIM, dtype=np.float32).reshape(n, layout.DIM) / 1e3)


def test_reads_as_a_dict_in_key_order():
    hyp = layout.vectors_to_dict(np.zeros((3, 2, layout.DIM), np.float32), keys=layout.KEY_SLICES)
    res = TaskResult(_pose(), hypotheses=hyp, scores=np.zeros((3, 2)))
    assert list(res) == list(layout.POSE_KEYS) + [f"{k}_hypotheses" for k in layout.KEY_SLICES] + ["scores"]
    assert res["body_pose"] is res.pose["body_pose"] and res["right_hand_pose_hypotheses"].shape == (3, 2, 45)
    assert "scores" in res and "repaired" not in res and res.get("repaired") is None and len(res) == 12
    with pytest.raises(KeyError):
        res["target_error"]


def test_clean_shape_and_mutation_as_batch_and_cli_use_it():
    res = TaskResult({k: v for k, v in _pose().items() if k in ("global_orient", "body_pose")},
                     trans=np.zeros((2, 3)), repaired=[{"joint": "left_knee", "first": 0, "last": 1, "kind": "held"}],
                     cuts=np.zeros(0, np.int64), jitter_deg=np.float32(0.5))
    assert list(res) == ["global_orient", "body_pose", "trans", "repaired", "cuts", "jitter_deg"]
    repaired = res.pop("repaired")
    assert repaired[0]["joint"] == "left_knee" and res.repaired is None and "repaired" not in res
    res["repaired_joint"] = np.asarray([r["joint"] for r in repaired])
    res.setdefault("mocap_framerate", 30.0)
    res["body_pose"] = res["body_pose"] * 2
    assert list(res)[-2:] == ["repaired_joint", "mocap_framerate"] and res.extra["mocap_framerate"] == 30.0
    assert set(dict(res)) == set(res.keys())


def test_json_on_the_wire_equals_the_plain_dict():
    res = TaskResult(_pose(), target_error=np.ones((2, 1), np.float32))
    plain = {**_pose(), "target_error": np.ones((2, 1), np.float32)}
    assert json.dumps(jsonable(res)) == json.dumps(jsonable(plain))


def test_the_tasks_return_it(checkpoint):
    import dposer
    from dposer.tasks.pose_tasks import COMPLETE

    prior = dposer.load_prior(checkpoint)
    res = dposer.complete(prior, {"body_pose": np.zeros((1, 63), np.float32)}, "right_hand", hypotheses=2,
                          cfg=COMPLETE.with_(steps=2))
    assert isinstance(res, TaskResult) and res.hypotheses["right_hand_pose"].shape == (2, 1, 45)
    assert res.scores.shape == (2, 1) and res["right_hand_pose"] is res.pose["right_hand_pose"]
