# SPDX-License-Identifier: GPL-3.0-or-later
"""Install PyTorch for the add-on with Blender's own Python, into a folder of the add-on's user directory. No bpy.

The extension zip carries the ``dposer`` package and its default checkpoint; PyTorch (190 MB for the CPU build,
several GB for CUDA, one build per platform and Python) is the one thing it cannot carry. :class:`Installer` runs
``python -m pip install --target <folder>.partial ...`` as a child process of Blender (never the system Python,
never admin rights: the folder is the user's), reads pip's output lines for progress, writes them to a log, and
on success replaces ``<folder>`` with the finished one (so a failed or cancelled install leaves the previous one
intact). The operator (:mod:`.install_ops`) drives it from a modal timer; tests call :meth:`Installer.run`.

Two pip steps:

1. ``<torch spec>`` from the chosen index (PyTorch's CPU or CUDA index, or pip's own configuration), with its
   dependencies (sympy, networkx, jinja2, ...; none of them NumPy);
2. ``safetensors`` and ``roma`` from pip's configured index, **without dependencies**: roma's only other one is
   NumPy, which Blender ships (a second NumPy in the folder would shadow Blender's own in the backend).

Which build (:func:`choose_index`): on macOS PyPI's (Apple silicon: CPU + MPS); elsewhere PyTorch's CUDA index when
an NVIDIA driver is present (``nvidia-smi`` found), else PyTorch's CPU index. ``DPOSER_TORCH_SPEC`` and
``DPOSER_PIP_INDEX`` (a URL, or ``config`` = no index option: pip's own configuration, e.g. an offline wheel
folder) override the preferences, for tests and studio deployment.
"""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import platform
import queue
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

TORCH_SPEC = "torch==2.13.0"
INTEL_MAC_TORCH_SPEC = "torch==2.2.2"  # PyPI's last torch for macOS x86_64
# what dposer.serve.server imports besides torch and NumPy (pyproject.toml's dependencies; scipy and tqdm are for the
# command line and training only)
BACKEND_REQUIREMENTS = ("safetensors>=0.4", "roma>=1.4")
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CUDA_INDEX = "https://download.pytorch.org/whl/cu128"
ENV_SPEC = "DPOSER_TORCH_SPEC"
ENV_INDEX = "DPOSER_PIP_INDEX"
PIP_CONFIG = "config"  # DPOSER_PIP_INDEX value: no index option, pip's own configuration
BUILDS = ("AUTO", "CPU", "CUDA", "PIP")
MARKER = "dposer-install.json"
LOG_NAME = "install_backend.log"
# the CPU build is 880 MB installed (2.13.0+cpu, Linux, measured); pip --target unpacks into a temporary folder
# first and then copies, so twice that is needed for a moment. CUDA builds need several GB more.
MIN_FREE_BYTES = 2_000_000_000


def target_name(version_info=sys.version_info) -> str:
    """Folder name per Python minor version: torch wheels are ABI-tagged (cp311 for Blender 4.2-5.0, cp313 5.1+)."""
    return f"pytorch-cp{version_info[0]}{version_info[1]}"


def installed_dir(user_dir: str) -> str | None:
    """The finished install in ``user_dir`` (its marker file written), else None. Does not import torch."""
    d = os.path.join(user_dir, target_name())
    return d if os.path.isfile(os.path.join(d, MARKER)) else None


def install_info(user_dir: str) -> dict | None:
    d = installed_dir(user_dir)
    if d is None:
        return None
    try:
        with open(os.path.join(d, MARKER), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is installed (its ``nvidia-smi`` tool is on PATH, or the Linux kernel module is loaded)."""
    return shutil.which("nvidia-smi") is not None or os.path.exists("/proc/driver/nvidia/version")


def choose_index(build: str = "AUTO", index_url: str = "", *, system: str | None = None,
                 nvidia: bool | None = None, environ=os.environ) -> str | None:
    """The ``--index-url`` for torch, or None for pip's own configuration (PyPI unless configured otherwise).

    ``build``: AUTO (match the machine), CPU, CUDA, PIP (pip's configuration). ``index_url`` (a preference) and
    ``$DPOSER_PIP_INDEX`` override it (``config`` = pip's configuration)."""
    env = environ.get(ENV_INDEX, "").strip()
    if env:
        return None if env.lower() == PIP_CONFIG else env
    if index_url.strip():
        return index_url.strip()
    if build not in BUILDS:
        raise ValueError(f"unknown torch build {build!r}; expected one of {BUILDS}")
    system = system or platform.system()
    if build == "PIP" or system == "Darwin":
        if build == "CUDA":
            raise ValueError("PyTorch has no CUDA build for macOS; choose Auto or CPU")
        return None
    if build == "AUTO":
        build = "CUDA" if (has_nvidia_gpu() if nvidia is None else nvidia) else "CPU"
    return CUDA_INDEX if build == "CUDA" else CPU_INDEX


def default_spec(environ=os.environ, *, system: str | None = None, machine: str | None = None) -> str:
    env = environ.get(ENV_SPEC, "").strip()
    if env:
        return env
    if (system or platform.system()) == "Darwin" and (machine or platform.machine()) in ("x86_64", "AMD64"):
        return INTEL_MAC_TORCH_SPEC
    return TORCH_SPEC


@dataclass
class Plan:
    """What :class:`Installer` runs: ``steps`` are pip argument lists (after ``python -m pip install``)."""

    python: str
    user_dir: str
    spec: str
    index: str | None
    steps: list = field(default_factory=list)
    pip_path: str | None = None  # pip's wheel on PYTHONPATH when this Python has no pip installed

    @property
    def target(self) -> str:
        return os.path.join(self.user_dir, target_name())

    @property
    def partial(self) -> str:
        return self.target + ".partial"

    @property
    def tmp(self) -> str:
        """pip's temporary folder (TMPDIR): in the user folder, so the space check covers it and a cancelled
        install leaves nothing behind in the system's temp folder."""
        return os.path.join(self.user_dir, "pip-tmp")

    @property
    def log_path(self) -> str:
        return os.path.join(self.user_dir, LOG_NAME)

    @property
    def where(self) -> str:
        return self.index or "pip's configured index"


def bundled_pip_wheel() -> str | None:
    """The pip wheel that ``ensurepip`` carries. A Python without pip installed runs pip from it (a wheel on
    PYTHONPATH imports like a folder: ``PYTHONPATH=pip-X.whl python -m pip``), so nothing is installed into
    Blender's own folder, which may not be writable."""
    spec = importlib.util.find_spec("ensurepip")
    if spec is None or not spec.origin:
        return None
    hits = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), "_bundled", "pip-*.whl")))
    return hits[-1] if hits else None


def pip_supports_raw_progress(python: str, pip_path: str | None = None) -> bool:
    """pip >= 24.2 prints ``Progress <done> of <total>`` lines with ``--progress-bar raw`` (checked in pip's
    source: 24.2 has it, 23.2 does not)."""
    try:
        out = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True, timeout=60,
                             env=child_env(pip_path=pip_path), creationflags=_no_window()).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    m = re.match(r"pip (\d+)\.(\d+)", out)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (24, 2)


def make_plan(python: str, user_dir: str, spec: str = "", build: str = "AUTO", index_url: str = "",
              extra_args: str = "", *, raw_progress: bool | None = None, pip_path: str | None = None,
              environ=os.environ) -> Plan:
    """The pip steps. ``python``: this process's interpreter (Blender's). ``spec``: the torch requirement (empty =
    ``$DPOSER_TORCH_SPEC`` or the pinned default); ``extra_args``: more pip options for both steps (e.g.
    ``--proxy http://host:3128``), shell-quoted. ``pip_path``: default: None when pip is importable here, else
    :func:`bundled_pip_wheel`."""
    spec = spec.strip() or default_spec(environ)
    if not spec.lower().startswith("torch"):
        raise ValueError(f"the torch requirement must name torch, got {spec!r} (e.g. 'torch==2.13.0')")
    index = choose_index(build, index_url, environ=environ)
    try:
        extra = shlex.split(extra_args, posix=os.name != "nt")
    except ValueError as e:
        raise ValueError(f"pip options {extra_args!r}: {e}") from None
    if pip_path is None and importlib.util.find_spec("pip") is None:
        pip_path = bundled_pip_wheel()
    if raw_progress is None:
        raw_progress = pip_supports_raw_progress(python, pip_path)
    plan = Plan(python=python, user_dir=user_dir, spec=spec, index=index, pip_path=pip_path)
    common = ["--target", plan.partial, "--only-binary=:all:", "--no-input", "--disable-pip-version-check",
              "--no-warn-script-location", "--progress-bar", "raw" if raw_progress else "off", *extra]
    plan.steps = [[*common, *(["--index-url", index] if index else []), spec],
                  [*common, "--no-deps", *BACKEND_REQUIREMENTS]]
    return plan


def child_env(tmp: str | None = None, pip_path: str | None = None) -> dict:
    """pip's environment: Blender's PYTHONHOME/PYTHONPATH dropped; pip's user configuration kept (proxies,
    mirrors), except options that contradict ``--target`` (``user``, ``require-virtualenv``); ``tmp`` as the
    temporary folder; ``pip_path`` (pip's wheel) as the only PYTHONPATH entry."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
    env.update(PYTHONNOUSERSITE="1", PYTHONUNBUFFERED="1", PIP_USER="0", PIP_REQUIRE_VIRTUALENV="0",
               PYTHONIOENCODING="utf-8")
    if tmp:
        env.update(TMPDIR=tmp, TEMP=tmp, TMP=tmp)
    if pip_path:
        env["PYTHONPATH"] = pip_path
    return env


def _no_window() -> int:
    return getattr(subprocess, "CREATE_NO_WINDOW", 0) if os.name == "nt" else 0


# pip's own error texts -> what the artist should do. Checked in this order (a network failure ends in "no
# matching distribution" too). {where} = the index, {spec} = the torch requirement, {dir} = the install folder.
FAILURES = (
    (("no space left on device", "errno 28", "not enough free space"),
     "not enough disk space in {dir}: PyTorch needs about 2 GB (CPU build) or several GB (CUDA); free some "
     "space and click Install Backend again"),
    (("proxyerror", "cannot connect to proxy", "407 proxy authentication", "tunnel connection failed"),
     "pip could not get through the network proxy: set it in Preferences > Add-ons > DPoser > pip options "
     "(--proxy http://user:password@host:port) or in pip's configuration"),
    (("certificate verify failed", "sslerror", "ssl: "),
     "a TLS/certificate error while contacting {where}: a company proxy that inspects HTTPS needs its "
     "certificate in pip's configuration (--cert), set in the pip options"),
    (("failed to establish a new connection", "temporary failure in name resolution", "name or service not known",
      "getaddrinfo failed", "network is unreachable", "connection refused", "connecttimeouterror",
      "read timed out", "nodename nor servname"),
     "no network: pip could not reach {where}; connect to the internet (or set a reachable index in the "
     "preferences) and click Install Backend again"),
    (("no matching distribution found", "could not find a version that satisfies", "resolutionimpossible"),
     "pip found no '{spec}' (with its dependencies) for this Python ({python}) and platform on {where}: check "
     "the PyTorch version and build in the preferences"),
    (("invalid requirement",), "'{spec}' is not a valid pip requirement (example: torch==2.13.0)"),
    (("no module named pip",),
     "this Python has neither pip nor ensurepip's copy of it; reinstall Blender from blender.org or use an "
     "existing Python (Preferences > Add-ons > DPoser > Existing Python)"),
    (("winerror 206", "filename or extension is too long"),
     "a file path in {dir} is too long for Windows: enable long paths (Windows Settings > System > For "
     "developers > Enable long paths, or the LongPathsEnabled policy) and click Install Backend again"),
    (("permission denied", "errno 13", "access is denied"),
     "no permission to write {dir}; check the folder's permissions (no admin rights are needed)"),
)


def explain_failure(lines: list[str], plan: Plan, returncode: int | None) -> str:
    """One sentence for the status bar from pip's output (the full output is in the log)."""
    text = "\n".join(lines[-200:]).lower()
    fields = dict(where=plan.where, spec=plan.spec, dir=plan.user_dir,
                  python=".".join(map(str, sys.version_info[:2])))
    for needles, message in FAILURES:
        if any(n in text for n in needles):
            return message.format(**fields)
    errors = [ln.strip() for ln in lines if ln.lstrip().startswith("ERROR:")]
    last = errors[-1] if errors else next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
    return f"pip failed (exit status {returncode}): {last}" if last else f"pip failed (exit status {returncode})"


class InstallError(Exception):
    pass


class Installer:
    """One install: :meth:`start`, then :meth:`poll` until :attr:`state` is ``done`` / ``failed`` /
    ``cancelled`` (or :meth:`run` to block). :attr:`progress` (0-1), :attr:`status` (pip's current line, short)
    and :attr:`message` (the outcome) are for the UI. A reader thread feeds pip's lines into a queue; everything
    else happens on the caller's thread."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.state = "new"
        self.progress = 0.0
        self.status = ""
        self.message = ""
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None
        self._step = -1
        self._lines: queue.Queue = queue.Queue()
        self._log = None
        self._started_at = 0.0
        self._phase_text = "Downloading"

    # -- life cycle ------------------------------------------------------------------------------------------
    def start(self) -> "Installer":
        p = self.plan
        os.makedirs(p.user_dir, exist_ok=True)
        free = shutil.disk_usage(p.user_dir).free
        if free < MIN_FREE_BYTES:
            raise InstallError(f"not enough disk space in {p.user_dir}: {free / 1e9:.1f} GB free, PyTorch needs "
                               f"about {MIN_FREE_BYTES / 1e9:.1f} GB (CPU build)")
        _remove(p.partial)
        _remove(p.tmp)
        os.makedirs(p.tmp)
        self._log = open(p.log_path, "w", encoding="utf-8")
        self._log.write(f"# DPoser: install PyTorch {time.strftime('%Y-%m-%d %H:%M:%S')}\n# python {p.python}\n"
                        f"# into {p.target}\n# index {p.where}\n# pip from {p.pip_path or 'this Python'}\n")
        self._started_at = time.monotonic()
        self.state = "running"
        self._next_step()
        return self

    def _next_step(self) -> None:
        self._step += 1
        cmd = [self.plan.python, "-m", "pip", "install", *self.plan.steps[self._step]]
        self._write_log(f"$ {' '.join(shlex.quote(c) for c in cmd)}")
        kw = {"start_new_session": True} if os.name != "nt" else {}
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, env=child_env(self.plan.tmp, self.plan.pip_path),
                                         cwd=self.plan.user_dir,
                                         creationflags=_no_window(), **kw)
        except OSError as e:
            self._fail(f"cannot run {self.plan.python}: {e}")
            return
        threading.Thread(target=self._read, args=(self.proc,), name="dposer-pip", daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for raw in proc.stdout:  # type: ignore[union-attr]
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        self._lines.put(None)  # end of this step's output

    def poll(self) -> list[str]:
        """Take pip's new lines (non-blocking), update progress and state; returns the lines."""
        new = []
        while self.state == "running":
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._step_ended()
                continue
            new.append(line)
            self._take(line)
        return new

    def run(self, timeout: float | None = None, on_line=None) -> "Installer":
        """Start if needed and block until the end (the ``execute()`` path, scripts and tests)."""
        if self.state == "new":
            self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.state == "running":
            for line in self.poll():
                if on_line is not None:
                    on_line(line)
            if deadline is not None and time.monotonic() > deadline:
                self.cancel(f"timed out after {timeout:g} s")
            time.sleep(0.05)
        return self

    def cancel(self, why: str = "cancelled") -> None:
        """Stop pip and remove the partial folder; a previous install stays as it was."""
        if self.state != "running":
            return
        self._kill()
        self.state = "cancelled"
        self.message = f"PyTorch install {why}; nothing was changed (log: {self.plan.log_path})"
        self._cleanup()

    # -- internals -------------------------------------------------------------------------------------------
    def _take(self, line: str) -> None:
        self.lines.append(line)
        self._write_log(line)
        s = line.strip()
        m = re.match(r"Progress (\d+) of (\d+)", s)
        if m:  # --progress-bar raw: bytes of the current download
            done, total = int(m.group(1)), int(m.group(2))
            if total > 1_000_000:
                self._set(0.1 + 0.5 * done / total, f"{self._phase_text} {done / 1e6:.0f}/{total / 1e6:.0f} MB")
            return
        if s.startswith(("Collecting ", "Processing ", "Downloading ", "Using cached ", "Obtaining ")):
            self._phase_text = _short(s, 60)
            self._set(max(self.progress, min(0.1, self.progress + 0.01)), self._phase_text)
        elif s.startswith("Installing collected packages:"):
            names = s.split(":", 1)[1].strip()
            if self._step == 0:
                self._set(0.65, f"Installing {_short(names, 50)} (unpacking PyTorch takes a minute or more)")
            else:
                self._set(0.95, f"Installing {_short(names, 50)}")
        elif s.startswith("Successfully installed"):
            self._set(0.9 if self._step == 0 else 0.99, _short(s, 80))

    def _set(self, progress: float, status: str) -> None:
        self.progress = max(self.progress, min(1.0, progress))
        self.status = status

    def _step_ended(self) -> None:
        assert self.proc is not None
        rc = self.proc.wait()
        self._write_log(f"# exit status {rc}")
        if rc != 0:
            self._fail(explain_failure(self.lines, self.plan, rc))
        elif self._step + 1 < len(self.plan.steps):
            self._next_step()
        else:
            self._finish()

    def _finish(self) -> None:
        p = self.plan
        try:
            with open(os.path.join(p.partial, MARKER), "w", encoding="utf-8") as f:
                json.dump({"spec": p.spec, "index": p.index, "python": p.python,
                           "python_version": ".".join(map(str, sys.version_info[:3])),
                           "installed": time.strftime("%Y-%m-%d %H:%M:%S"),
                           "seconds": round(time.monotonic() - self._started_at, 1)}, f, indent=1)
            old = p.target + ".old"
            _remove(old)
            if os.path.exists(p.target):
                os.replace(p.target, old)
            os.replace(p.partial, p.target)
            _remove(old)
            _remove(p.tmp)
        except OSError as e:
            self._fail(f"could not move the finished install into place ({e}); if the embedded backend has "
                       "loaded PyTorch, restart Blender and try again")
            return
        self.state = "done"
        self.progress = 1.0
        version = next((ln.split("torch-", 1)[1].split()[0] for ln in self.lines
                        if ln.startswith("Successfully installed") and "torch-" in ln), p.spec)
        self.message = (f"PyTorch {version} installed in {time.monotonic() - self._started_at:.0f} s "
                        f"({p.target})")
        self._close_log()

    def _fail(self, message: str) -> None:
        self.state = "failed"
        self.message = f"PyTorch install failed: {message} (log: {self.plan.log_path})"
        self._cleanup()

    def _kill(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            if os.name != "nt":
                os.killpg(proc.pid, signal.SIGKILL)  # pip and anything it started
            else:
                proc.kill()
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def _cleanup(self) -> None:
        self._write_log(f"# {self.state}: {self.message}")
        self._close_log()
        _remove(self.plan.partial)
        _remove(self.plan.tmp)

    def _write_log(self, line: str) -> None:
        if self._log is not None:
            self._log.write(line + "\n")
            self._log.flush()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


def _remove(path: str) -> None:
    """rmtree that survives read-only files and, on Windows, a virus scanner holding a DLL for a moment."""
    def retry(func, p, _exc):
        try:
            os.chmod(p, stat.S_IRWXU)
            func(p)
        except OSError:
            pass

    for _ in range(5):
        if not os.path.lexists(path):
            return
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=retry)
        else:
            shutil.rmtree(path, onerror=retry)
        if not os.path.lexists(path):
            return
        time.sleep(0.5)
