"""Reading the server's requests: a JSON line -> (id, op, arguments with defaults), every value strictly checked
against the operations' declarations (:mod:`dposer.spec.operations`) and the protocol's limits
(:mod:`dposer.spec.protocol`), with the error code and message a client gets back (docs/protocol.md); and the
replies' values as JSON (:func:`jsonable`).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from ..spec import layout, skeleton
from ..spec.operations import OPERATIONS, Arg
from ..spec.protocol import MAX_ECHO_CHARS, MAX_FRAMES, MAX_ID_CHARS, MAX_POSES, MAX_SEED, MAX_WORK, OPS, TASK_OPS

WIDTHS = {"global_orient": 3, "body_pose": 63, "left_hand_pose": 45, "right_hand_pose": 45, "jaw_pose": 3,
          "expression": 100, "trans": 3}
POSE_KEYS = tuple(layout.POSE_KEYS)


class RequestError(Exception):
    """A request that cannot be served; becomes an error reply with ``code``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------------------
# Parsing and validation (pure functions, no torch).

class _NonFinite:
    """Placeholder the parser leaves where a NaN/Infinity (or an overflowing number) was."""


def parse_line(raw: bytes) -> tuple[Any, str | None]:
    """Decode one request line (bytes, without newline) to a JSON value.

    Returns (value, problem): ``problem`` names the first NaN/Infinity/overflowing number found (such numbers are
    replaced by a placeholder), so that the caller can still read the request's id before rejecting it.
    """
    problems: list[str] = []

    def constant(name):
        problems.append(f"{name} is not allowed: every number must be finite")
        return _NonFinite()

    def number(text):
        value = float(text)
        if not math.isfinite(value):
            problems.append(f"number {text[:40]} overflows a double: every number must be finite")
            return _NonFinite()
        return value

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestError("parse_error", f"request is not valid UTF-8: {e}") from None
    if not text.strip():
        raise RequestError("parse_error", "empty line: expected one JSON object per line")
    try:
        value = json.loads(text, parse_constant=constant, parse_float=number)
    except RecursionError:
        raise RequestError("parse_error", "request is nested too deeply") from None
    except (ValueError, TypeError) as e:
        raise RequestError("parse_error", f"request is not valid JSON: {e}") from None
    return value, (problems[0] if problems else None)


def clip_text(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def _keys(keys: list) -> str:
    """Unknown keys/names from a request, quoted within MAX_ECHO_CHARS."""
    return clip_text(repr([clip_text(str(k), 40) for k in keys[:10]]) + (f" and {len(keys) - 10} more" if len(keys) > 10 else ""))


def _desc(v: Any) -> str:
    """Short JSON-ish description of a value for error messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean {'true' if v else 'false'}"
    if isinstance(v, int):
        digits = len(str(abs(v))) if abs(v) < 10 ** 60 else 61
        return f"number {v!r}" if digits <= 60 else f"an integer of more than 60 digits"
    if isinstance(v, float):
        return f"number {v!r}"
    if isinstance(v, str):
        return f"string {json.dumps(v[:40])}{'...' if len(v) > 40 else ''}"
    if isinstance(v, list):
        return f"array of length {len(v)}"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _is_number(v) -> bool:
    return type(v) in (int, float)


def check_id(v) -> str | int:
    if type(v) is int:
        if not -MAX_SEED - 1 <= v <= MAX_SEED:
            raise RequestError("invalid_request", "'id' integer must fit in 64 bits")
        return v
    if type(v) is str:
        if len(v) > MAX_ID_CHARS:
            raise RequestError("invalid_request", f"'id' string is longer than {MAX_ID_CHARS} characters")
        return v
    raise RequestError("invalid_request", f"'id' must be a string or an integer, got {_desc(v)}")


def _int(lo: int, hi: int, limit: bool = False) -> Callable:
    def check(name, v):
        if type(v) is not int:
            raise RequestError("invalid_args", f"'{name}' must be an integer, got {_desc(v)}")
        if v > hi and limit:
            raise RequestError("limit_exceeded", f"'{name}' is {_desc(v)}, the limit is {hi}")
        if not lo <= v <= hi:
            raise RequestError("invalid_args", f"'{name}' must be in [{lo}, {hi}], got {_desc(v)}")
        return v
    return check


def _float(lo: float, hi: float, lo_open: bool = False) -> Callable:
    def check(name, v):
        if not _is_number(v):
            raise RequestError("invalid_args", f"'{name}' must be a number, got {_desc(v)}")
        try:
            v = float(v)
        except OverflowError:  # an integer too large for a double
            raise RequestError("invalid_args", f"'{name}' must be in [{lo}, {hi}], got {_desc(v)}") from None
        if not ((lo < v) if lo_open else (lo <= v)) or v > hi:
            raise RequestError("invalid_args", f"'{name}' must be in {'(' if lo_open else '['}{lo}, {hi}], got {v}")
        return v
    return check


def _bool(name, v):
    if type(v) is not bool:
        raise RequestError("invalid_args", f"'{name}' must be true or false, got {_desc(v)}")
    return v


def _choice(*options) -> Callable:
    def check(name, v):
        if type(v) is not str or v not in options:
            raise RequestError("invalid_args", f"'{name}' must be one of {', '.join(map(repr, options))}, got {_desc(v)}")
        return v
    return check


def _string_or_strings(name, v) -> None:
    """Refuse anything but a string or an array of strings."""
    if isinstance(v, list):
        bad = [x for x in v if type(x) is not str]
        if bad:
            raise RequestError("invalid_args", f"'{name}' must be an array of strings, found {_desc(bad[0])}")
    elif type(v) is not str:
        raise RequestError("invalid_args", f"'{name}' must be a string or an array of strings, got {_desc(v)}")


def _names(name, v):
    """Part/group/joint names: a comma-separated string or an array of strings, checked against the layout."""
    _string_or_strings(name, v)
    try:
        layout.names_to_dims(v)
    except ValueError as e:
        raise RequestError("unknown_name", f"'{name}': {e}") from None
    return v


def _body_names(name, v):
    """Names of the root and body joints a motion holds (dposer.spec.skeleton.body_motion_joints)."""
    _string_or_strings(name, v)
    try:
        if not skeleton.body_motion_joints(v).any():
            raise RequestError("invalid_args", f"'{name}' names no joint")
    except ValueError as e:
        raise RequestError("unknown_name", f"'{name}': {e}") from None
    return v


def _target_id(name, v):
    try:
        return check_id(v)
    except RequestError as e:
        raise RequestError("invalid_args", f"'{name}' must be a request id: {e.message}") from None


def to_matrix(v, name: str, width: int, max_rows: int, min_width: int | None = None) -> np.ndarray:
    """A JSON array of numbers (one row) or of equal-length rows -> float32 (R, width), strictly checked."""
    if not isinstance(v, list):
        raise RequestError("invalid_args", f"'{name}' must be an array of numbers or of rows, got {_desc(v)}")
    if not v:
        raise RequestError("invalid_args", f"'{name}' is empty")
    rows = v if isinstance(v[0], list) else [v]
    if len(rows) > max_rows:
        raise RequestError("limit_exceeded", f"'{name}' has {len(rows)} rows, the limit is {max_rows}")
    lo = width if min_width is None else min_width
    want = f"{width}" if min_width is None else f"{min_width} to {width}"
    n0 = None
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise RequestError("invalid_args", f"'{name}' mixes numbers and rows (row {i} is {_desc(row)})")
        if n0 is None:
            n0 = len(row)
            if not lo <= n0 <= width:
                raise RequestError("invalid_args", f"'{name}' rows must have {want} numbers, got {n0}")
        elif len(row) != n0:
            raise RequestError("invalid_args", f"'{name}' is ragged: row {i} has {len(row)} numbers, row 0 has {n0}")
        for x in row:
            if type(x) is not float and type(x) is not int:
                raise RequestError("invalid_args", f"'{name}' row {i} holds {_desc(x)}; expected numbers")
    try:
        a64 = np.array(rows, dtype=np.float64)
    except (OverflowError, ValueError) as e:
        raise RequestError("non_finite", f"'{name}' holds a number too large for a double: {e}") from None
    with np.errstate(over="ignore"):
        a = a64.astype(np.float32)
    if not np.isfinite(a).all():
        raise RequestError("non_finite", f"'{name}' holds a number that is not a finite float32")
    return a


def to_pose(v, name: str, max_rows: int, extra_keys: tuple = ()) -> dict[str, np.ndarray]:
    """A pose/clip object {SMPL-X key: rows} -> dict of float32 arrays with equal row counts."""
    if not isinstance(v, dict):
        raise RequestError("invalid_args", f"'{name}' must be an object with SMPL-X keys, got {_desc(v)}")
    allowed = POSE_KEYS + extra_keys
    unknown = [k for k in v if k not in allowed]
    if unknown:
        raise RequestError("invalid_args", f"'{name}' has unknown key(s) {_keys(unknown)}; allowed: {', '.join(allowed)}")
    if not any(k in v for k in POSE_KEYS[1:]):
        raise RequestError("invalid_args", f"'{name}' needs at least one of {', '.join(POSE_KEYS[1:])}")
    out, rows = {}, None
    for k in allowed:
        if k not in v:
            continue
        a = to_matrix(v[k], f"{name}.{k}", WIDTHS[k], max_rows, min_width=1 if k == "expression" else None)
        if rows is not None and len(a) != rows:
            raise RequestError("invalid_args", f"'{name}.{k}' has {len(a)} rows but the other keys have {rows}")
        rows = len(a)
        out[k] = a
    return out


def _rows(pose: dict) -> int:
    return len(next(iter(pose.values())))


def _pose_arg(max_rows: int, extra_keys: tuple = ()):
    def check(name, v):
        return to_pose(v, name, max_rows, extra_keys)
    return check


def _targets(name, v):
    if not isinstance(v, dict):
        raise RequestError("invalid_args", f"'{name}' must be an object {{joint name: [x, y, z] or rows}}, got {_desc(v)}")
    if not v:
        raise RequestError("invalid_args", f"'{name}' needs at least one joint")
    unknown = [j for j in v if j not in layout.JOINT_INDEX]
    if unknown:
        raise RequestError("unknown_name", f"unknown target joint(s) {_keys(unknown)}; use SMPL-X joint names such as "
                           "'left_wrist'")
    return {j: to_matrix(p, f"{name}.{j}", 3, MAX_POSES) for j, p in v.items()}


REQUIRED = object()


def _checker(a: Arg) -> Callable:
    """The request check of a declared argument (dposer.spec.operations)."""
    if a.kind == "int":
        return _int(a.lo, a.top, limit=a.limit is not None)
    if a.kind == "float":
        return _float(a.lo, a.hi, lo_open=a.lo_open)
    if a.kind == "bool":
        return _bool
    if a.kind == "choice":
        return _choice(*a.choices)
    if a.kind == "names":
        return _names
    if a.kind == "body_names":
        return _body_names
    if a.kind in ("pose", "clip"):
        return _pose_arg(a.rows, ("trans",) if a.kind == "clip" else ())
    if a.kind == "targets":
        return _targets
    if a.kind == "id":
        return _target_id
    raise ValueError(f"argument {a.name}: unknown kind {a.kind!r}")


def _request_default(a: Arg):
    if a.required:
        return REQUIRED
    return list(a.default) if a.kind == "names" and isinstance(a.default, tuple) else a.default


# op -> {arg: (checker, default)}, from the operations' declarations
ARGS: dict[str, dict[str, tuple]] = {op: {name: (_checker(a), _request_default(a)) for name, a in args.items()}
                                     for op, args in OPERATIONS.items()}


def _cross_checks(op: str, a: dict) -> None:
    if op == "vary" and not a["clip"] and _rows(a["pose"]) != 1:
        raise RequestError("invalid_args", f"vary takes one pose (1 row), got {_rows(a['pose'])}; use n for more, "
                           "or clip=true for a take")
    if op == "vary" and a["clip"] and _rows(a["pose"]) < 2:
        raise RequestError("invalid_args",
                           f"vary with clip=true takes a take of at least 2 frames, got {_rows(a['pose'])}")
    if op == "complete" and not a["clip"] and _rows(a["pose"]) > MAX_POSES:
        raise RequestError("limit_exceeded", f"'pose' has {_rows(a['pose'])} rows, the limit is {MAX_POSES} "
                           f"(with clip=true, {MAX_FRAMES} frames)")
    if op == "clean" and _rows(a["clip"]) < 3:
        raise RequestError("invalid_args", f"'clip' needs at least 3 frames, got {_rows(a['clip'])}")
    if op == "fill":
        rows = _rows(a["clip"])
        if "body_pose" not in a["clip"]:
            raise RequestError("invalid_args", "fill needs 'clip.body_pose' (and 'clip.global_orient' to fill the root)")
        if a["first"] > a["last"] or a["last"] >= rows or (a["first"] == 0 and a["last"] == rows - 1):
            raise RequestError("invalid_args", f"fill: frames {a['first']}-{a['last']} must lie inside the clip's "
                               f"{rows} rows with a frame before or after them (first <= last < {rows})")
    if op == "fit":
        counts = {f"targets.{j}": len(t) for j, t in a["targets"].items()}
        if a["pose"] is not None:
            counts["pose"] = _rows(a["pose"])
        n = max(counts.values())
        bad = {k: c for k, c in counts.items() if c not in (1, n)}
        if bad:
            raise RequestError("invalid_args", f"fit rows must be 1 or {n}; got {clip_text(str(bad))}")
    if op in TASK_OPS:
        units = work(op, a)
        if units > MAX_WORK:
            raise RequestError("limit_exceeded", f"{op} asks for {units:,} units of work (poses x hypotheses x "
                               f"iterations), the limit is {MAX_WORK:,}: split it into smaller requests")


def work(op: str, a: dict) -> int:
    """Work of a validated task request: poses x hypotheses x solver iterations (or sampler steps)."""
    from ..tasks.pose_tasks import CLEAN, COMPLETE, FIT, REFINE

    if op == "complete":
        return _rows(a["pose"]) * a["hypotheses"] * COMPLETE.steps
    if op == "clean":
        return _rows(a["clip"]) * CLEAN.steps
    if op == "vary" and a["clip"]:
        from ..tasks.vary_clip import anchor_frames, ddim_steps

        return a["n"] * len(anchor_frames(_rows(a["pose"]), a["fps"] or 30.0)) * ddim_steps(a["steps"], a["strength"])
    if op == "vary":
        return a["n"] * max(2, round(a["steps"] * a["strength"])) + COMPLETE.steps
    if op == "refine":
        return _rows(a["pose"]) * REFINE.steps
    if op == "fit":
        rows = [len(t) for t in a["targets"].values()] + ([_rows(a["pose"])] if a["pose"] is not None else [])
        return max(rows) * FIT.steps
    if op == "sample":
        steps = a["steps"] if a["steps"] is not None else (1000 if a["sampler"] == "em" else 100)
        return a["n"] * steps
    return 0


def validate(msg: Any) -> tuple[str | int, str, dict]:
    """Check a decoded request; returns (id, op, args with defaults) or raises RequestError.

    The id is checked first so that later errors can carry it (see :func:`request_id`).
    """
    if not isinstance(msg, dict):
        raise RequestError("invalid_request", f"a request must be a JSON object, got {_desc(msg)}")
    if "id" not in msg:
        raise RequestError("invalid_request", "request has no 'id'")
    rid = check_id(msg["id"])
    unknown = [k for k in msg if k not in ("id", "op", "args")]
    if unknown:
        raise RequestError("invalid_request", f"unknown request field(s) {_keys(unknown)}; a request has id, op, args")
    if "op" not in msg:
        raise RequestError("invalid_request", "request has no 'op'")
    op = msg["op"]
    if type(op) is not str:
        raise RequestError("invalid_request", f"'op' must be a string, got {_desc(op)}")
    if op not in ARGS:
        raise RequestError("unknown_op", f"unknown op {json.dumps(clip_text(op, 60))}; ops: {', '.join(OPS)}")
    args = msg.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise RequestError("invalid_request", f"'args' must be an object, got {_desc(args)}")
    spec = ARGS[op]
    unknown = [k for k in args if k not in spec]
    if unknown:
        hint = f"; {op} takes {', '.join(spec)}" if spec else f"; {op} takes no arguments"
        raise RequestError("invalid_args", f"unknown argument(s) {_keys(unknown)} for {op}{hint}")
    out = {}
    for name, (check, default) in spec.items():
        if name in args and not (args[name] is None and default is None):
            out[name] = check(name, args[name])
        elif default is REQUIRED:
            raise RequestError("invalid_args", f"{op} needs argument '{name}'")
        else:
            out[name] = default
    _cross_checks(op, out)
    return rid, op, out


def request_id(msg: Any):
    """The request's id if it can be read (a valid str/int id), else None."""
    if isinstance(msg, dict):
        try:
            return check_id(msg.get("id"))
        except RequestError:
            return None
    return None


def jsonable(v):
    """numpy arrays and scalars -> lists and Python numbers, recursively; a mapping (a task's
    :class:`dposer.core.results.TaskResult`) -> a dict with the same keys in the same order."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v
