"""JSON-lines server: ``python -m dposer.serve [--checkpoint PATH] [--device cpu|cuda|auto]``.

One request per line on stdin, replies as JSON lines on stdout (and only there: everything else the process prints
goes to stderr). The prior is loaded once at start and kept warm; long tasks run one at a time on a worker thread,
so ``ping`` and ``cancel`` are answered while a task runs. The protocol (version :data:`PROTOCOL`) is documented in
``docs/protocol.md``.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
import threading
import traceback
from collections.abc import Mapping
from typing import Any, BinaryIO, Callable

import numpy as np

from .. import __version__
from ..spec import layout
from ..spec.protocol import (CONTROL_OPS, LIMITS, MAX_ECHO_CHARS, MAX_FRAMES, MAX_HYPOTHESES, MAX_ID_CHARS,
    MAX_LINE_BYTES, MAX_MESSAGE_CHARS, MAX_N, MAX_POSES, MAX_QUEUE, MAX_SEED, MAX_STEPS, MAX_WORK, OPS,
    PROGRESS_MESSAGES, PROTOCOL, TASK_OPS)

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


def _names(name, v):
    """Part/group/joint names: a comma-separated string or an array of strings, checked against the layout."""
    if isinstance(v, list):
        bad = [x for x in v if type(x) is not str]
        if bad:
            raise RequestError("invalid_args", f"'{name}' must be an array of strings, found {_desc(bad[0])}")
    elif type(v) is not str:
        raise RequestError("invalid_args", f"'{name}' must be a string or an array of strings, got {_desc(v)}")
    try:
        layout.names_to_dims(v)
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


_seed = _int(0, MAX_SEED)
REQUIRED = object()

# op -> {arg: (checker, default)}
ARGS: dict[str, dict[str, tuple]] = {
    "ping": {},
    "version": {},
    "shutdown": {},
    "cancel": {"target": (_target_id, REQUIRED)},
    "complete": {"pose": (_pose_arg(MAX_FRAMES), REQUIRED), "missing": (_names, []),
                 "hypotheses": (_int(1, MAX_HYPOTHESES, limit=True), 1), "seed": (_seed, 0),
                 "clip": (_bool, False), "fps": (_float(1.0, 1000.0), None)},
    "clean": {"clip": (_pose_arg(MAX_FRAMES, ("trans",)), REQUIRED), "strength": (_float(0.0, 1.0), 0.5),
              "parts": (_names, "body"), "lock": (_names, []), "seed": (_seed, 0)},
    "vary": {"pose": (_pose_arg(MAX_POSES), REQUIRED), "n": (_int(1, MAX_N, limit=True), REQUIRED),
             "strength": (_float(0.0, 1.0), 0.3), "seed": (_seed, 0), "lock": (_names, []),
             "steps": (_int(1, MAX_STEPS, limit=True), 50)},
    "refine": {"pose": (_pose_arg(MAX_POSES), REQUIRED), "strength": (_float(0.0, 1.0, lo_open=True), 0.3),
               "lock": (_names, []), "seed": (_seed, 0)},
    "fit": {"targets": (_targets, REQUIRED), "pose": (_pose_arg(MAX_POSES), None), "free": (_names, "body,hands"),
            "seed": (_seed, 0)},
    "sample": {"n": (_int(1, MAX_N, limit=True), REQUIRED), "seed": (_seed, 0), "sampler": (_choice("ddim", "em"), "ddim"),
               "steps": (_int(1, MAX_STEPS, limit=True), None)},
}


def _cross_checks(op: str, a: dict) -> None:
    if op == "vary" and _rows(a["pose"]) != 1:
        raise RequestError("invalid_args", f"vary takes one pose (1 row), got {_rows(a['pose'])}; use n for more")
    if op == "complete" and not a["clip"] and _rows(a["pose"]) > MAX_POSES:
        raise RequestError("limit_exceeded", f"'pose' has {_rows(a['pose'])} rows, the limit is {MAX_POSES} "
                           f"(with clip=true, {MAX_FRAMES} frames)")
    if op == "clean" and _rows(a["clip"]) < 3:
        raise RequestError("invalid_args", f"'clip' needs at least 3 frames, got {_rows(a['clip'])}")
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


# ---------------------------------------------------------------------------------------------------------
# The server.

def error_reply(rid, code: str, message: str) -> dict:
    """An error reply; the message is cut to MAX_MESSAGE_CHARS (it may quote the request)."""
    return {"id": rid, "type": "error", "error": {"code": code, "message": clip_text(message, MAX_MESSAGE_CHARS)}}


class Job:
    def __init__(self, rid, op: str, args: dict):
        self.id, self.op, self.args = rid, op, args
        self.cancel = threading.Event()


class Server:
    """Serve requests from ``inp`` (binary, line based) to ``out`` (binary) with one loaded prior."""

    def __init__(self, prior, inp: BinaryIO, out: BinaryIO, checkpoint: str | None = None):
        self.prior = prior
        self.inp, self.out = inp, out
        self.checkpoint = checkpoint
        self.write_lock = threading.Lock()
        self.cond = threading.Condition()
        self.queue: collections.deque[Job] = collections.deque()
        self.running: Job | None = None
        self.stopping = False
        self.worker = threading.Thread(target=self._work, name="dposer-worker", daemon=True)

    # -- output ------------------------------------------------------------------------------------------------
    def send(self, obj: dict) -> None:
        try:
            data = json.dumps(obj, allow_nan=False, separators=(",", ":"))
        except ValueError:  # a non-finite number in a result
            obj = {"id": obj.get("id"), "type": "error",
                   "error": {"code": "non_finite_result", "message": "the result holds NaN or infinite values"}}
            data = json.dumps(obj)
        with self.write_lock:
            try:
                self.out.write(data.encode("utf-8") + b"\n")
                self.out.flush()
            except (BrokenPipeError, OSError, ValueError):  # the client is gone
                os._exit(0)

    def error(self, rid, code: str, message: str) -> None:
        self.send(error_reply(rid, code, message))

    def result(self, rid, result: dict) -> None:
        self.send({"id": rid, "type": "result", "result": result})

    @property
    def device(self) -> str:
        return str(self.prior.device)

    def info(self) -> dict:
        import torch

        return {"version": __version__, "protocol": PROTOCOL, "device": self.device, "torch": torch.__version__,
                "cuda": torch.cuda.is_available(), "checkpoint": self.checkpoint or "default",
                "checkpoint_info": jsonable(self.prior.info), "ops": list(OPS), "limits": dict(LIMITS)}

    # -- input -------------------------------------------------------------------------------------------------
    def read_line(self) -> bytes | None:
        """Next line without its newline; None at EOF; raises RequestError for an oversized line (skipped)."""
        line = self.inp.readline(MAX_LINE_BYTES + 1)
        if not line:
            return None
        if line.endswith(b"\n"):
            return line[:-1].rstrip(b"\r")
        if len(line) <= MAX_LINE_BYTES:  # last line without newline
            return line
        while True:  # skip the rest of the oversized line
            chunk = self.inp.readline(1 << 20)
            if not chunk or chunk.endswith(b"\n"):
                break
        raise RequestError("line_too_long", f"request line is longer than {MAX_LINE_BYTES} bytes")

    def serve(self) -> int:
        self.worker.start()
        self.send({"id": None, "type": "ready", "protocol": PROTOCOL, "version": __version__, "device": self.device})
        while True:
            try:
                raw = self.read_line()
            except RequestError as e:
                self.error(None, e.code, e.message)
                continue
            if raw is None:  # EOF: the client is gone (or done): cancel the work and exit
                self.stop(cancel=True)
                return 0
            if self.handle(raw) == "shutdown":
                return 0

    def handle(self, raw: bytes) -> str | None:
        msg = None
        try:
            msg, problem = parse_line(raw)
            if problem is not None:
                raise RequestError("non_finite", problem)
            rid, op, args = validate(msg)
            if op == "ping":
                self.result(rid, {"pong": True, "version": __version__, "protocol": PROTOCOL, "device": self.device})
            elif op == "version":
                self.result(rid, self.info())
            elif op == "cancel":
                self.result(rid, self.cancel(args["target"]))
            elif op == "shutdown":
                self.stop(cancel=True)
                self.result(rid, {"shutdown": True})
                return "shutdown"
            else:
                self.submit(Job(rid, op, args))
        except RequestError as e:
            self.error(request_id(msg), e.code, e.message)
        except Exception as e:  # noqa: BLE001 - the server keeps serving
            traceback.print_exc(file=sys.stderr)
            self.error(request_id(msg), "internal", f"{type(e).__name__}: {e}")
        return None

    # -- jobs --------------------------------------------------------------------------------------------------
    def _active(self, rid) -> Job | None:
        if self.running is not None and self.running.id == rid:
            return self.running
        return next((j for j in self.queue if j.id == rid), None)

    def submit(self, job: Job) -> None:
        with self.cond:
            if self._active(job.id) is not None:
                raise RequestError("duplicate_id", f"a request with id {json.dumps(job.id)} is still queued or running")
            if len(self.queue) >= MAX_QUEUE:
                raise RequestError("limit_exceeded", f"{len(self.queue)} tasks are already queued (the limit is "
                                   f"{MAX_QUEUE}): wait for results or cancel some")
            self.queue.append(job)
            self.cond.notify()

    def cancel(self, target) -> dict:
        with self.cond:
            if self.running is not None and self.running.id == target:
                self.running.cancel.set()
                return {"target": target, "cancelled": True, "state": "running"}
            job = next((j for j in self.queue if j.id == target), None)
            if job is not None:
                self.queue.remove(job)
        if job is not None:
            self.error(target, "cancelled", "cancelled before it started")
            return {"target": target, "cancelled": True, "state": "queued"}
        return {"target": target, "cancelled": False, "state": "unknown"}

    def stop(self, cancel: bool, timeout: float = 10.0) -> None:
        """Stop the worker. ``cancel``: queued requests answer 'cancelled' and the running task is cancelled
        (waiting at most ``timeout`` s for its answer); else the queue is worked off first (EOF)."""
        with self.cond:
            self.stopping = True
            queued = list(self.queue) if cancel else []
            if cancel:
                self.queue.clear()
                if self.running is not None:
                    self.running.cancel.set()
            self.cond.notify_all()
        for job in queued:
            self.error(job.id, "cancelled", "cancelled: the server is shutting down")
        if self.worker.is_alive():
            self.worker.join(timeout if cancel else None)

    def _work(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self.stopping:
                    self.cond.wait()
                if not self.queue:  # stopping and nothing left
                    return
                job = self.running = self.queue.popleft()
            reply = self._run(job)
            with self.cond:  # the id is free again before its final reply is written
                self.running = None
            self.send(reply)

    def _progress(self, job: Job) -> Callable[[int, int], None]:
        from ..core.solver import Cancelled

        last = [0]

        def progress(done: int, total: int) -> None:
            if job.cancel.is_set():  # also stops ops without a cancel callback (sample)
                raise Cancelled(f"cancelled at step {done} of {total}")
            if total <= 0:
                return
            bucket = min(PROGRESS_MESSAGES, done * PROGRESS_MESSAGES // total)
            if bucket > last[0]:
                last[0] = bucket
                self.send({"id": job.id, "type": "progress", "done": int(done), "total": int(total)})
        return progress

    def _run(self, job: Job) -> dict:
        """Run a task; returns its final reply (result or error)."""
        from ..formats.data import DataError
        from ..core.prior import CheckpointError
        from ..core.solver import Cancelled

        def error(code, message):
            return error_reply(job.id, code, message)

        try:
            if job.cancel.is_set():
                raise Cancelled("cancelled before it started")
            out = run_task(self.prior, job.op, job.args, self._progress(job), job.cancel.is_set)
            return {"id": job.id, "type": "result", "result": jsonable(out)}
        except Cancelled as e:
            return error("cancelled", str(e) or "cancelled")
        except DataError as e:
            return error("invalid_data", str(e))
        except CheckpointError as e:
            return error("checkpoint_error", str(e))
        except ValueError as e:
            return error("invalid_args", str(e))
        except MemoryError as e:
            return error("out_of_memory", f"out of memory: {e}")
        except Exception as e:  # noqa: BLE001 - the server keeps serving
            import torch

            traceback.print_exc(file=sys.stderr)  # the traceback goes to stderr only
            if isinstance(e, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
                return error("out_of_memory", str(e))
            return error("internal", f"{type(e).__name__}: {e}")


def run_task(prior, op: str, a: dict, progress: Callable, cancel: Callable) -> Mapping:
    """Run one validated task request on ``prior``."""
    from ..tasks import pose_tasks as tasks
    from ..core.sampling import sample

    kw = {"progress": progress, "cancel": cancel}
    if op == "complete":
        return tasks.complete(prior, a["pose"], a["missing"], hypotheses=a["hypotheses"], seed=a["seed"],
                              clip=a["clip"], fps=a["fps"], **kw)
    if op == "clean":
        return tasks.clean(prior, a["clip"], strength=a["strength"], parts=a["parts"], lock=a["lock"], seed=a["seed"], **kw)
    if op == "vary":
        return tasks.vary(prior, a["pose"], a["n"], strength=a["strength"], seed=a["seed"], lock=a["lock"],
                          steps=a["steps"], **kw)
    if op == "refine":
        return tasks.refine(prior, a["pose"], strength=a["strength"], lock=a["lock"], seed=a["seed"], **kw)
    if op == "fit":
        return tasks.fit(prior, a["targets"], pose=a["pose"], free=a["free"], seed=a["seed"], **kw)
    if op == "sample":
        return sample(prior, a["n"], seed=a["seed"], sampler=a["sampler"], steps=a["steps"], **kw)
    raise RequestError("unknown_op", f"unknown op {op!r}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dposer.serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="prior checkpoint (.safetensors, or an official DPoser-X .ckpt); default: the bundled one")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="default: cpu")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: faster network on CPUs with native bfloat16 (see docs/benchmarks.md)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice, at most 8)")
    a = p.parse_args(argv)

    # stdout carries protocol lines only: keep a private handle on it and send everything else to stderr
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr

    def fail(code: str, message: str) -> int:
        out.write(json.dumps({"id": None, "type": "error", "error": {"code": code, "message": message}}).encode() + b"\n")
        out.flush()
        print(f"dposer.serve: {message}", file=sys.stderr)
        return 1

    import torch

    from ..core.prior import CheckpointError, load_prior

    torch.set_num_threads(max(1, a.threads) if a.threads else min(8, torch.get_num_threads()))
    if a.device == "cuda" and not torch.cuda.is_available():
        return fail("device_unavailable", "--device cuda was asked for but CUDA is not available")
    try:
        prior = load_prior(a.checkpoint, a.device, a.precision)
    except CheckpointError as e:
        return fail("checkpoint_error", str(e))
    except Exception as e:  # noqa: BLE001
        traceback.print_exc(file=sys.stderr)
        return fail("startup_failed", f"{type(e).__name__}: {e}")
    server = Server(prior, sys.stdin.buffer, out, a.checkpoint)
    code = server.serve()
    out.flush()
    sys.stderr.flush()
    if server.worker.is_alive():  # a task that did not stop in time: do not wait for it
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
