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
import os
import sys
import threading
import traceback
from collections.abc import Mapping
from typing import BinaryIO, Callable

from .. import __version__
# the protocol's table and the request checks are part of the server's interface (clients and tests read them here)
from ..spec.protocol import (LIMITS, MAX_FRAMES, MAX_LINE_BYTES, MAX_MESSAGE_CHARS, MAX_POSES,  # noqa: F401
                             MAX_QUEUE, MAX_WORK, OPS, PROGRESS_MESSAGES, PROTOCOL, TASK_OPS)
from .requests import RequestError, clip_text, jsonable, parse_line, request_id, validate, work  # noqa: F401


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
    if op == "vary" and a["clip"]:
        from ..tasks.vary_clip import vary_clip

        return vary_clip(prior, a["pose"], a["n"], strength=a["strength"], seed=a["seed"], lock=a["lock"], fps=a["fps"],
                         steps=a["steps"], **kw)
    if op == "vary":
        return tasks.vary(prior, a["pose"], a["n"], strength=a["strength"], seed=a["seed"], lock=a["lock"],
                          steps=a["steps"], **kw)
    if op == "refine":
        return tasks.refine(prior, a["pose"], strength=a["strength"], lock=a["lock"], seed=a["seed"], **kw)
    if op == "fit":
        return tasks.fit(prior, a["targets"], pose=a["pose"], free=a["free"], seed=a["seed"], **kw)
    if op == "sample":
        return sample(prior, a["n"], seed=a["seed"], sampler=a["sampler"], steps=a["steps"], **kw)
    if op == "fill":  # the motion prior (weights/motion.safetensors) when bundled, else SLERP / spline by probes
        from ..motion import filling

        progress(0, 1)
        out = filling.fill_clip(a["clip"], a["first"], a["last"], a["parts"], a["fps"], filling.bundled_prior(),
                                a["steps"])
        progress(1, 1)
        return out
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
