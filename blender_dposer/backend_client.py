# SPDX-License-Identifier: GPL-3.0-or-later
"""Clients for the DPoser backend, protocol v1 (docs/protocol.md). No bpy, no torch.

Two backends with one interface:

- :class:`SubprocessBackend` starts ``python -m dposer.serve`` in a chosen interpreter (the recommended default:
  any torch/CUDA build, no ABI coupling with Blender's Python, a crash does not take Blender down). A reader thread
  parses stdout lines into a :class:`queue.Queue`; a second thread keeps the last stderr lines (and optionally a
  log file).
- :class:`~.embedded_backend.EmbeddedBackend` (:mod:`.embedded_backend`) imports ``dposer`` into Blender's own
  Python (advanced option; only when importable) and serves requests through the backend's own
  :class:`dposer.serve.server.Server`, so validation, error codes, progress throttling and cancellation are exactly
  the subprocess's.

Use from Blender (blender.md 4.3-4.5): ``submit()`` a task in ``invoke``, then drain :meth:`poll` from the modal
operator's timer on the main thread (``progress`` / ``result`` / ``error`` messages, matched by ``id``), ``cancel()``
on Esc; :meth:`call` is the blocking helper for ``execute()`` paths and tests. Never touch bpy from the threads.

Messages are the protocol's dicts: ``{"id", "type": "ready"|"progress"|"result"|"error", ...}``. The client adds
errors of its own (``id`` of the affected request, or None) with codes:

- ``backend_exited``: the process died (crash, kill, out of memory) - every outstanding request gets one, and the
  message holds the exit status and the last stderr lines;
- ``startup_timeout``: no ``ready`` line within ``startup_timeout`` seconds (the process is killed);
- ``protocol_mismatch``: the server speaks another protocol version (the process is stopped);
- ``not_started`` / ``closed``: a request on a backend that was not started or was shut down.
"""
from __future__ import annotations

import collections
import itertools
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterable, Sequence

from dposer.spec.messages import encode_request
from dposer.spec.protocol import FINAL_TYPES, PROTOCOL, TASK_OPS


class BackendError(Exception):
    """A request failed: ``code`` is the protocol's (or the client's) error code."""

    def __init__(self, code: str, message: str, rid=None, traceback: str | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.id = rid
        self.traceback = traceback

    @classmethod
    def from_reply(cls, msg: dict) -> "BackendError":
        err = msg.get("error") or {}
        return cls(err.get("code", "unknown"), err.get("message", "unknown error"), msg.get("id"), err.get("traceback"))


_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt))(: .*)?$")


def exception_line(lines: Sequence[str], fallback: bool = True) -> str | None:
    """The last line that looks like a Python exception (``ModuleNotFoundError: No module named 'torch'``), else
    (``fallback``) the last non-empty line, else None."""
    stripped = [ln.strip() for ln in lines if ln.strip()]
    for ln in reversed(stripped):
        if _EXCEPTION_LINE.match(ln):
            return ln
    return stripped[-1] if stripped and fallback else None


def _error(rid, code: str, message: str) -> dict:
    return {"id": rid, "type": "error", "error": {"code": code, "message": message}}


class _Backend:
    """Shared request bookkeeping: ids, the inbox, poll() and call()."""

    def __init__(self, startup_timeout: float):
        self.startup_timeout = float(startup_timeout)
        self._inbox: queue.Queue = queue.Queue()
        self._stash: list[dict] = []  # messages taken off the inbox by call() for other requests
        self._outstanding: dict[Any, str] = {}  # id -> op, until the final reply
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._started_at: float | None = None
        self.ready_info: dict | None = None  # the ready line, once received
        self.startup_error: BackendError | None = None
        self._dead = False
        self._closed = False

    # -- subclass hooks ----------------------------------------------------------------------------------------
    def _write(self, rid, op: str, args: dict | None) -> None:
        raise NotImplementedError

    def _check_alive(self) -> list[dict]:
        """Synthesised messages when the backend died or timed out (called from poll)."""
        return []

    # -- state -------------------------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._started_at is not None

    @property
    def ready(self) -> bool:
        return self.ready_info is not None

    @property
    def alive(self) -> bool:
        return self.started and not self._dead and not self._closed

    @property
    def outstanding(self) -> dict:
        """{id: op} of requests without a final reply yet."""
        with self._lock:
            return dict(self._outstanding)

    # -- requests ----------------------------------------------------------------------------------------------
    def new_id(self) -> str:
        return f"dp{next(self._ids)}"

    def submit(self, op: str, args: dict | None = None, rid=None) -> Any:
        """Send a request without waiting; returns its id. Replies arrive through :meth:`poll` / :meth:`wait`."""
        rid = self.new_id() if rid is None else rid
        if not self.started:
            raise BackendError("not_started", "the backend was not started", rid)
        if self._closed:
            raise BackendError("closed", "the backend was shut down", rid)
        if self._dead:
            raise BackendError("backend_exited", self._death_message(), rid)
        with self._lock:
            if op in TASK_OPS and rid in self._outstanding:
                raise BackendError("duplicate_id", f"a request with id {rid!r} is still outstanding", rid)
            self._outstanding[rid] = op
        try:
            self._write(rid, op, args)
        except BaseException:
            with self._lock:
                self._outstanding.pop(rid, None)
            raise
        return rid

    def ping(self, timeout: float = 10.0) -> dict:
        return self.call("ping", timeout=timeout)

    def version(self, timeout: float = 10.0) -> dict:
        return self.call("version", timeout=timeout)

    def cancel(self, target) -> Any:
        """Ask the backend to cancel request ``target`` (non-blocking); returns the cancel request's id. The target
        still gets exactly one final reply (``error`` with code ``cancelled``, or its ``result`` if it finished)."""
        return self.submit("cancel", {"target": target})

    # -- replies -----------------------------------------------------------------------------------------------
    def _take(self, msg: dict) -> dict:
        if msg.get("type") == "ready":
            self._on_ready(msg)
        elif msg.get("type") == "error" and msg.get("id") is None and not self.ready and self.startup_error is None:
            self.startup_error = BackendError.from_reply(msg)  # the server's own start-up error line
        elif msg.get("type") in FINAL_TYPES:
            with self._lock:
                self._outstanding.pop(msg.get("id"), None)
        return msg

    def _on_ready(self, msg: dict) -> None:
        self.ready_info = msg

    def poll(self, max_messages: int | None = None) -> list[dict]:
        """All messages available now, without blocking (for a modal operator's timer). Also reports a dead or
        timed-out backend as ``error`` messages for the requests it leaves unanswered."""
        out: list[dict] = []
        with self._lock:
            while self._stash and (max_messages is None or len(out) < max_messages):
                out.append(self._stash.pop(0))
        while max_messages is None or len(out) < max_messages:
            try:
                out.append(self._take(self._inbox.get_nowait()))
            except queue.Empty:
                break
        if max_messages is None or len(out) < max_messages:
            out.extend(self._take(m) for m in self._check_alive())
        return out

    def _next(self, deadline: float | None) -> dict | None:
        """Next message (stash first), waiting until ``deadline``; None on timeout."""
        with self._lock:
            if self._stash:
                return self._stash.pop(0)
        while True:
            for m in self._check_alive():
                self._inbox.put(m)
            wait = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if wait <= 0:
                return None
            try:
                return self._take(self._inbox.get(timeout=wait))
            except queue.Empty:
                continue

    def wait(self, rid, timeout: float | None = None, on_progress: Callable[[dict], None] | None = None) -> dict:
        """Block until request ``rid``'s final reply; returns the result object or raises :class:`BackendError`.
        Other requests' messages stay queued for :meth:`poll`. ``on_progress`` gets each progress message."""
        deadline = None if timeout is None else time.monotonic() + timeout
        held: list[dict] = []
        try:
            while True:
                m = self._next(deadline)
                if m is None:
                    raise BackendError("timeout", f"no reply to request {rid!r} within {timeout} s", rid)
                if m.get("id") == rid and m.get("type") == "progress":
                    if on_progress is not None:
                        on_progress(m)
                    continue
                if m.get("id") == rid and m.get("type") in FINAL_TYPES:
                    if m["type"] == "error":
                        raise BackendError.from_reply(m)
                    return m["result"]
                held.append(m)
        finally:
            with self._lock:
                self._stash[:0] = held

    def call(self, op: str, args: dict | None = None, timeout: float | None = None,
             on_progress: Callable[[dict], None] | None = None) -> dict:
        """Send a request and block until its result (raises :class:`BackendError` on an error reply). Waits for
        start-up first (within ``startup_timeout``)."""
        if not self.ready:
            self.wait_ready()
        return self.wait(self.submit(op, args), timeout, on_progress)

    def wait_ready(self, timeout: float | None = None) -> dict:
        """Block until the backend's ``ready`` line; raises :class:`BackendError` on a start-up failure."""
        if self.ready:
            return self.ready_info  # type: ignore[return-value]
        if not self.started:
            raise BackendError("not_started", "the backend was not started")
        deadline = time.monotonic() + (self.startup_timeout if timeout is None else timeout)
        held = []
        try:
            while not self.ready:
                if self.startup_error is not None:
                    raise self.startup_error
                m = self._next(deadline)
                if m is None:
                    if self.startup_error is not None:
                        raise self.startup_error
                    raise BackendError("startup_timeout", "the backend did not become ready in time")
                if m.get("type") == "ready":
                    continue
                if m.get("id") is None and m.get("type") == "error":
                    self.startup_error = self.startup_error or BackendError.from_reply(m)
                    continue
                held.append(m)
        finally:
            with self._lock:
                self._stash[:0] = held
        return self.ready_info  # type: ignore[return-value]

    def _death_message(self) -> str:
        return "the backend is not running"

    # -- context manager ---------------------------------------------------------------------------------------
    def __enter__(self):
        if not self.started:
            self.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def start(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def shutdown(self, timeout: float = 5.0) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class SubprocessBackend(_Backend):
    """The backend as a child process: ``<python> -u -m dposer.serve [--checkpoint ...] [--device ...]``.

    ``python``: the backend interpreter (a venv/conda python with dposer and torch installed); default this
    process's own. ``command``: a complete command line instead (e.g. ``["conda", "run", "-n", "dp", "python", "-m",
    "dposer.serve"]``). ``backend_path``: prepended to PYTHONPATH (a source checkout's ``backend/`` folder).
    The child's environment is this process's minus PYTHONHOME/PYTHONPATH (Blender's would break another
    interpreter), plus PYTHONUNBUFFERED=1 and ``env``. ``log_path``: a file that receives the child's stderr.
    """

    def __init__(self, python: str | None = None, checkpoint: str | None = None, device: str = "cpu",
                 threads: int | None = None, *, command: Sequence[str] | None = None,
                 backend_path: str | None = None, env: dict | None = None, cwd: str | None = None,
                 startup_timeout: float = 120.0, log_path: str | None = None, stderr_lines: int = 200):
        super().__init__(startup_timeout)
        if command is None:
            command = [python or sys.executable, "-u", "-m", "dposer.serve", "--device", device]
            if checkpoint:
                command += ["--checkpoint", str(checkpoint)]
            if threads:
                command += ["--threads", str(int(threads))]
        self.command = [str(c) for c in command]
        self.backend_path = backend_path
        self.extra_env = dict(env or {})
        self.cwd = cwd
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        self._stderr_thread: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self._eof = threading.Event()
        self.returncode: int | None = None

    def _environment(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
        env["PYTHONUNBUFFERED"] = "1"
        if self.backend_path:
            env["PYTHONPATH"] = str(self.backend_path)
        env.update({k: str(v) for k, v in self.extra_env.items()})
        return env

    def start(self) -> "SubprocessBackend":
        """Start the process (non-blocking: the ``ready`` line arrives through poll()/wait_ready())."""
        if self.started:
            return self
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if os.name == "nt" else 0
        try:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=self._environment(), cwd=self.cwd,
                                         creationflags=flags)
        except OSError as e:
            raise BackendError("startup_failed", f"cannot start the backend ({' '.join(self.command)}): {e}") from e
        self._started_at = time.monotonic()
        threading.Thread(target=self._read_stdout, name="dposer-client-stdout", daemon=True).start()
        self._stderr_thread = threading.Thread(target=self._read_stderr, name="dposer-client-stderr", daemon=True)
        self._stderr_thread.start()
        return self

    # -- threads (no bpy here) ---------------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
                if not isinstance(msg, dict):
                    raise ValueError("not an object")
            except ValueError:
                text = line.decode("utf-8", "replace").rstrip()
                self._stderr.append(f"[stdout, not protocol] {text}")
                self._inbox.put({"id": None, "type": "log", "line": text})
                continue
            self._inbox.put(msg)
        self._eof.set()

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        log = None
        try:
            if self.log_path:
                log = open(self.log_path, "ab")
            for line in self.proc.stderr:
                if log is not None:
                    log.write(line)
                    log.flush()
                self._stderr.append(line.decode("utf-8", "replace").rstrip())
        finally:
            if log is not None:
                log.close()

    def stderr_tail(self, n: int = 20) -> str:
        """The last ``n`` stderr lines of the backend (for error reports and a "Copy details" button)."""
        return "\n".join(list(self._stderr)[-n:])

    # -- hooks -------------------------------------------------------------------------------------------------
    def _write(self, rid, op: str, args: dict | None) -> None:
        data = encode_request(rid, op, args)
        assert self.proc is not None and self.proc.stdin is not None
        with self._write_lock:
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                # the process is gone: the final error comes from _check_alive
                pass

    def _on_ready(self, msg: dict) -> None:
        if msg.get("protocol") != PROTOCOL:
            self.startup_error = BackendError(
                "protocol_mismatch", f"the backend speaks protocol {msg.get('protocol')!r}, this add-on needs "
                f"{PROTOCOL}: update the backend or the add-on")
            self._inbox.put(_error(None, "protocol_mismatch", self.startup_error.message))
            self.kill()
            return
        self.ready_info = msg

    def _exit_description(self) -> str:
        rc = self.returncode
        if rc is None:
            return "the backend closed its output"
        if rc < 0:
            import signal

            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            return f"the backend process was killed ({name}, exit status {rc})"
        return f"the backend process exited with status {rc}"

    def cause(self) -> str | None:
        """The backend's own reason from its stderr: the last exception line of a traceback (e.g.
        ``ModuleNotFoundError: No module named 'torch'``); after an exit with an error status and no traceback, its
        last non-empty line."""
        lines = list(self._stderr)
        line = exception_line(lines, fallback=False)
        if line is None and self.returncode is not None and self.returncode > 0:
            line = exception_line(lines)
        return line

    def _death_message(self) -> str:
        """First line: how it ended and why (for the status bar); then the last stderr lines (for the console)."""
        tail = self.stderr_tail(20)
        cause = self.cause()
        return self._exit_description() + (f": {cause}" if cause else "") + \
            (f"\nlast stderr lines:\n{tail}" if tail else "")

    def _check_alive(self) -> list[dict]:
        if self._dead or self._closed or self.proc is None:
            return []
        out = []
        if not self.ready and self.startup_error is None and self._started_at is not None \
                and time.monotonic() - self._started_at > self.startup_timeout and not self._eof.is_set():
            self.startup_error = BackendError(
                "startup_timeout", f"the backend did not report ready within {self.startup_timeout:g} s "
                f"({' '.join(self.command)}); it was stopped")
            self.kill()
            out.append(_error(None, "startup_timeout", self.startup_error.message))
        if not self._eof.is_set() or not self._inbox.empty():
            return out
        # stdout closed and every line consumed: the process is gone (or going)
        try:
            self.returncode = self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=1.0)
        self._dead = True
        message = self._death_message()
        if not self.ready and self.startup_error is None:
            self.startup_error = BackendError("backend_exited", "during start-up: " + message)
            out.append(_error(None, "backend_exited", self.startup_error.message))
        with self._lock:
            pending = list(self._outstanding.items())
        for rid, op in pending:
            out.append(_error(rid, "backend_exited", f"'{op}' request {rid!r} failed: {message}"))
        return out

    # -- stopping ----------------------------------------------------------------------------------------------
    def kill(self) -> None:
        """Hard stop (e.g. after the 2 s cancel grace); outstanding requests then get ``backend_exited``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Polite stop: ``shutdown`` request, wait, then terminate/kill. Safe to call twice."""
        if self.proc is None or self._closed:
            self._closed = True
            return
        if self.proc.poll() is None and not self._dead:
            try:
                self._write(self.new_id(), "shutdown", None)
                self.proc.stdin.close()  # type: ignore[union-attr]
            except (OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.returncode = self.proc.returncode
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                if stream is not None and self._eof.is_set():
                    stream.close()
            except OSError:
                pass
        self._closed = True


def messages_for(messages: Iterable[dict], rid) -> list[dict]:
    """The messages about request ``rid`` (helper for modal operators that run one request)."""
    return [m for m in messages if m.get("id") == rid]
