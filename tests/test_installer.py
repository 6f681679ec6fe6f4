"""The PyTorch installer of the add-on (blender_dposer/installer.py, no bpy): which index, the pip steps, pip's
failure texts turned into advice, and real pip runs that fail or are cancelled (nothing left behind, a previous
install untouched). The full install in a fresh Blender is tests/blender/test_bpy_install.py."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from blender_dposer import installer as I  # noqa: E402
from blender_dposer.backend_client import BackendError, SubprocessBackend, exception_line  # noqa: E402


def test_choose_index():
    env = {}
    assert I.choose_index("AUTO", system="Linux", nvidia=False, environ=env) == I.CPU_INDEX
    assert I.choose_index("AUTO", system="Windows", nvidia=True, environ=env) == I.CUDA_INDEX
    assert I.choose_index("AUTO", system="Darwin", nvidia=False, environ=env) is None  # PyPI: CPU + MPS
    assert I.choose_index("CPU", system="Linux", environ=env) == I.CPU_INDEX
    assert I.choose_index("PIP", system="Linux", environ=env) is None
    assert I.choose_index("CPU", "https://mirror.example/simple", system="Linux", environ=env) == \
        "https://mirror.example/simple"
    with pytest.raises(ValueError, match="no CUDA build for macOS"):
        I.choose_index("CUDA", system="Darwin", environ=env)
    with pytest.raises(ValueError, match="unknown torch build"):
        I.choose_index("ROCM", system="Linux", environ=env)
    # the environment wins over the preferences (tests, studio deployment)
    assert I.choose_index("CUDA", "https://x", environ={I.ENV_INDEX: "config"}) is None
    assert I.choose_index("CPU", environ={I.ENV_INDEX: "https://y/simple"}) == "https://y/simple"
    assert I.default_spec({}, system="Linux", machine="x86_64") == I.TORCH_SPEC
    assert I.default_spec({}, system="Darwin", machine="x86_64") == I.INTEL_MAC_TORCH_SPEC
    assert I.default_spec({I.ENV_SPEC: "torch==2.5.1"}) == "torch==2.5.1"


def test_make_plan(tmp_path):
    plan = I.make_plan(sys.executable, str(tmp_path), build="CPU", extra_args="--proxy 'http://h:3128' --retries 1",
                       raw_progress=True, environ={})
    torch_step, extras_step = plan.steps
    assert plan.spec == I.TORCH_SPEC and plan.index == I.CPU_INDEX
    assert torch_step[-3:] == ["--index-url", I.CPU_INDEX, I.TORCH_SPEC]
    assert torch_step[:2] == ["--target", str(tmp_path / I.target_name()) + ".partial"]
    assert "--proxy" in torch_step and "http://h:3128" in torch_step and "raw" in torch_step
    assert "--no-deps" in extras_step and list(I.BACKEND_REQUIREMENTS) == extras_step[-2:]
    assert "--index-url" not in extras_step  # safetensors and roma come from pip's configured index
    assert "--only-binary=:all:" in torch_step  # an artist's machine never compiles anything
    # what the server needs besides torch/NumPy is in the package's own dependency list
    deps = {re.split(r"[<>=!~ ]", d)[0] for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
            ["dependencies"]}
    assert {re.split(r"[<>=!~ ]", r)[0] for r in I.BACKEND_REQUIREMENTS} <= deps
    with pytest.raises(ValueError, match="must name torch"):
        I.make_plan(sys.executable, str(tmp_path), "numpy", raw_progress=False, environ={})
    with pytest.raises(ValueError, match="pip options"):
        I.make_plan(sys.executable, str(tmp_path), extra_args="--proxy 'unclosed", raw_progress=False, environ={})
    assert I.pip_supports_raw_progress("/nonexistent/python") is False


@pytest.mark.parametrize("version, raw", [("24.2", True), ("25.0.1", True), ("24.1.2", False), ("23.2.1", False),
                                          ("not a version", False)])
def test_raw_progress_follows_the_pip_version(tmp_path, version, raw):
    """``--progress-bar raw`` is used exactly when the interpreter's pip is 24.2 or later (the first with it)."""
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\necho "pip {version} from /site-packages/pip (python 3.11)"\n')
    python.chmod(0o755)
    assert I.pip_supports_raw_progress(str(python)) is raw


def test_raw_progress_of_this_interpreter_matches_its_pip():
    import importlib.metadata

    major, minor = (int(x) for x in importlib.metadata.version("pip").split(".")[:2])
    assert I.pip_supports_raw_progress(sys.executable) is ((major, minor) >= (24, 2))


# pip's own lines, as printed on this machine (pip 26.3; see docs/user_guide.md, Troubleshooting)
PIP_TEXTS = {
    "network": ["Looking in indexes: http://127.0.0.1:9/simple",
                "WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after "
                "connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPConnection object at "
                "0x7f4849592a10>: Failed to establish a new connection: [Errno 111] Connection refused')': "
                "/simple/roma/",
                "ERROR: Could not find a version that satisfies the requirement roma (from versions: none)",
                "ERROR: No matching distribution found for roma"],
    "proxy": ["WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after "
              "connection broken by 'ProxyError('Cannot connect to proxy.', NewConnectionError('<pip._vendor."
              "urllib3.connection.HTTPSConnection object at 0x7f1a1de4db50>: Failed to establish a new connection: "
              "[Errno 111] Connection refused'))': /simple/roma/",
              "ERROR: No matching distribution found for roma"],
    "space": ["shutil.Error: [('/tmp/pip-target-dx3s4lx6/lib/python/setuptools-84.2.1.dist-info/RECORD', "
              "'/tmp/small/x/setuptools-84.2.1.dist-info/RECORD', \"[Errno 28] No space left on device: "
              "'/tmp/pip-target-dx3s4lx6/lib/python/setuptools-84.2.1.dist-info/RECORD'\")]"],
    "version": ["ERROR: Cannot install torch==0.0.0 because these package versions have conflicting dependencies.",
                "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/"
                "dependency-resolution/#dealing-with-dependency-conflicts"],
    "other": ["ERROR: something new"],
}


def test_explain_failure(tmp_path):
    plan = I.make_plan(sys.executable, str(tmp_path), "torch==0.0.0", build="CPU", raw_progress=False, environ={})
    said = {k: I.explain_failure(v, plan, 1) for k, v in PIP_TEXTS.items()}
    assert said["network"].startswith("no network: pip could not reach https://download.pytorch.org/whl/cpu")
    assert said["proxy"].startswith("pip could not get through the network proxy")
    assert said["space"].startswith(f"not enough disk space in {tmp_path}")
    assert said["version"].startswith("pip found no 'torch==0.0.0'")
    assert said["other"] == "pip failed (exit status 1): ERROR: something new"


def previous_install(tmp_path) -> Path:
    """A finished install as an earlier run left it."""
    d = tmp_path / I.target_name()
    d.mkdir()
    (d / I.MARKER).write_text(json.dumps({"spec": "torch==earlier"}))
    return d


def assert_nothing_left(plan, previous: Path):
    assert not os.path.exists(plan.partial) and not os.path.exists(plan.tmp)
    assert I.installed_dir(plan.user_dir) == str(previous) and I.install_info(plan.user_dir)["spec"] == "torch==earlier"


def _zipped_pip(tmp_path) -> str:
    """This Python's installed pip zipped as a wheel holds it, for where Debian strips ensurepip's ``_bundled`` pip
    wheel: pip then runs from a zip on PYTHONPATH exactly as from ensurepip's wheel."""
    import zipfile

    import pip

    site = Path(pip.__file__).resolve().parents[1]
    wheel = tmp_path / f"pip-{pip.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for top in [site / "pip", *site.glob(f"pip-{pip.__version__}.dist-info")]:
            for f in top.rglob("*"):
                if f.is_file() and "__pycache__" not in f.parts:
                    z.write(f, f.relative_to(site).as_posix())
    return str(wheel)


def test_pip_runs_from_a_zipped_pip(tmp_path):
    """The stand-in for a stripped ensurepip wheel runs pip from the zip itself, not from this Python's pip."""
    wheel = _zipped_pip(tmp_path)
    out = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": wheel}).stdout
    assert out.startswith("pip ") and f"from {wheel}" in out, out


@pytest.mark.parametrize("pip_from", ["installed", "ensurepip wheel"])
def test_pip_failure_leaves_the_previous_install(tmp_path, monkeypatch, pip_from):
    """An unreachable index (real pip, connection refused; the machine's pip configuration switched off so that
    no local wheel folder or mirror answers): the message says 'no network', the log has pip's lines, the partial
    folder and pip's temporary folder are gone, the earlier install is untouched. Also with pip run from
    ensurepip's wheel, as for a Blender whose Python has no pip installed (where the wheel is stripped, this
    Python's pip zipped the same way)."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # pip loads no configuration file
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(var, raising=False)
    previous = previous_install(tmp_path)
    wheel = None
    if pip_from != "installed":
        wheel = I.bundled_pip_wheel() or _zipped_pip(tmp_path)
    plan = I.make_plan(sys.executable, str(tmp_path), index_url="http://127.0.0.1:9/simple",
                       extra_args="--retries 1 --timeout 3", pip_path=wheel, environ={})
    t0 = time.monotonic()
    inst = I.Installer(plan).run(timeout=120)
    assert inst.state == "failed", inst.lines
    assert inst.message.startswith("PyTorch install failed: no network: pip could not reach http://127.0.0.1:9"), \
        inst.message
    assert plan.log_path in inst.message
    log = Path(plan.log_path).read_text()
    assert "Failed to establish a new connection" in log and "# exit status 1" in log
    assert f"# pip from {wheel or 'this Python'}" in log
    assert_nothing_left(plan, previous)
    print(f"failed install reported in {time.monotonic() - t0:.1f} s")


def test_cancel_kills_pip_and_cleans_up(tmp_path, monkeypatch):
    """Cancel while pip works (real pip, the machine's configuration): pip's process group is killed, nothing is
    left behind and the earlier install stays."""
    previous = previous_install(tmp_path)
    monkeypatch.setenv(I.ENV_INDEX, I.PIP_CONFIG)
    plan = I.make_plan(sys.executable, str(tmp_path))
    inst = I.Installer(plan).start()
    deadline = time.monotonic() + 60
    while not inst.lines and time.monotonic() < deadline:  # pip is up and talking
        inst.poll()
        time.sleep(0.05)
    assert inst.lines and inst.state == "running"
    proc = inst.proc
    inst.cancel()
    assert proc.poll() is not None
    assert inst.state == "cancelled" and inst.message.startswith("PyTorch install cancelled; nothing was changed")
    assert inst.poll() == [] and inst.state == "cancelled"
    assert_nothing_left(plan, previous)


def test_not_enough_space(tmp_path, monkeypatch):
    monkeypatch.setattr(I, "MIN_FREE_BYTES", 10**18)
    plan = I.make_plan(sys.executable, str(tmp_path), raw_progress=False, environ={})
    with pytest.raises(I.InstallError, match=r"not enough disk space .* GB free"):
        I.Installer(plan).start()
    assert not os.path.exists(plan.partial)


def test_backend_start_failure_names_its_cause():
    """A backend that dies at start-up: the first line of the error is the exception, e.g. a missing torch."""
    tb = ["Traceback (most recent call last):", '  File "x.py", line 1, in <module>', "    import torch",
          "ModuleNotFoundError: No module named 'torch'", ""]
    assert exception_line(tb) == "ModuleNotFoundError: No module named 'torch'"
    assert exception_line(["just a line", ""]) == "just a line" and exception_line([]) is None
    assert exception_line(["no exception here"], fallback=False) is None
    b = SubprocessBackend(command=[sys.executable, "-c", "import dposer_missing_module"]).start()
    with pytest.raises(BackendError) as e:
        b.wait_ready(timeout=30)
    first = e.value.message.splitlines()[0]
    assert first == ("during start-up: the backend process exited with status 1: ModuleNotFoundError: No module "
                     "named 'dposer_missing_module'"), first
    assert "last stderr lines:" in e.value.message and "Traceback" in e.value.message
    b.shutdown()
