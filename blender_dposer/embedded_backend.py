# SPDX-License-Identifier: GPL-3.0-or-later
"""The embedded backend: ``dposer`` served inside Blender's own Python (the advanced option), with the same
interface as :class:`.backend_client.SubprocessBackend`; and :func:`make_backend`, which picks one of the two."""
from __future__ import annotations

import importlib.util
import json
import queue
import threading
import time

from dposer.spec.messages import encode_request
from dposer.spec.protocol import PROTOCOL

from .backend_client import SubprocessBackend, _Backend, _error


class _QueueWriter:
    """A binary 'stdout' for an in-process dposer Server: each line it writes is parsed into the inbox."""

    def __init__(self, inbox: queue.Queue):
        self.inbox = inbox
        self._buf = b""

    def write(self, data: bytes) -> int:
        self._buf += data
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            if line.strip():
                self.inbox.put(json.loads(line))
        return len(data)

    def flush(self) -> None:
        pass


class EmbeddedBackend(_Backend):
    """The backend inside this Python process (Blender's): ``import dposer`` and serve through
    :class:`dposer.serve.server.Server`, so replies are exactly the subprocess's. The model loads on a thread at
    :meth:`start`; tasks run on the server's worker thread. Blender's UI stays responsive; torch shares the process
    (mind the Windows TBB clash and NumPy pins of blender.md 4.2/4.6). ``threads`` sets torch's CPU threads for the
    whole process."""

    def __init__(self, checkpoint: str | None = None, device: str = "cpu", threads: int | None = None,
                 startup_timeout: float = 120.0):
        super().__init__(startup_timeout)
        self.checkpoint = checkpoint
        self.device = device
        self.threads = threads
        self.server = None
        self._loader: threading.Thread | None = None

    @staticmethod
    def available() -> bool:
        """Whether ``dposer`` is importable here (checked without importing it, so torch is not loaded)."""
        return importlib.util.find_spec("dposer") is not None

    def start(self) -> "EmbeddedBackend":
        if self.started:
            return self
        if not self.available():
            raise BackendError("startup_failed", "the 'dposer' package is not importable in this Python; use the "
                               "subprocess backend with a Python that has it")
        self._started_at = time.monotonic()
        self._loader = threading.Thread(target=self._load, name="dposer-embedded-load", daemon=True)
        self._loader.start()
        return self

    def _load(self) -> None:
        try:
            import torch

            from dposer.serve import server as srv
            from dposer.core.prior import CheckpointError, load_prior

            if self.threads:
                torch.set_num_threads(max(1, int(self.threads)))
            if self.device == "cuda" and not torch.cuda.is_available():
                self._inbox.put(_error(None, "device_unavailable", "device 'cuda' was asked for but CUDA is not available"))
                return
            try:
                prior = load_prior(self.checkpoint, self.device)
            except CheckpointError as e:
                self._inbox.put(_error(None, "checkpoint_error", str(e)))
                return
            if srv.PROTOCOL != PROTOCOL:
                self._inbox.put(_error(None, "protocol_mismatch", f"the backend speaks protocol {srv.PROTOCOL}, "
                                       f"this add-on needs {PROTOCOL}"))
                return
            server = srv.Server(prior, None, _QueueWriter(self._inbox), self.checkpoint)
            server.worker.start()
            self.server = server
            server.send({"id": None, "type": "ready", "protocol": srv.PROTOCOL, "version": srv.__version__,
                         "device": server.device})
        except Exception as e:  # noqa: BLE001 - reported as a start-up error
            self._inbox.put(_error(None, "startup_failed", f"{type(e).__name__}: {e}"))

    def _write(self, rid, op: str, args: dict | None) -> None:
        if self.server is None:
            self.wait_ready()
        assert self.server is not None
        if self.server.handle(encode_request(rid, op, args)[:-1]) == "shutdown":
            self._closed = True

    def _check_alive(self) -> list[dict]:
        if not self.ready and self.startup_error is None and self._started_at is not None \
                and time.monotonic() - self._started_at > self.startup_timeout:
            self.startup_error = BackendError("startup_timeout", f"the embedded backend did not load within "
                                              f"{self.startup_timeout:g} s")
            return [_error(None, "startup_timeout", self.startup_error.message)]
        return []

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel queued and running tasks (they answer ``cancelled``) and stop the worker thread."""
        if self.server is not None and not self._closed:
            self.server.stop(cancel=True, timeout=timeout)
        self._closed = True

    def kill(self) -> None:
        self.shutdown(timeout=2.0)


def make_backend(mode: str = "subprocess", **kwargs) -> _Backend:
    """``mode``: 'subprocess' (default) or 'embedded'; kwargs go to the class."""
    if mode == "subprocess":
        return SubprocessBackend(**kwargs)
    if mode == "embedded":
        return EmbeddedBackend(**kwargs)
    raise ValueError(f"unknown backend mode {mode!r}; expected 'subprocess' or 'embedded'")
