"""The add-on package: imports without bpy or torch, and the extension zip build_addon.py makes."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))



def test_package_imports_without_bpy_or_torch():
    import subprocess

    code = ("import sys; import blender_dposer, blender_dposer.rig_math, blender_dposer.rig_profile, "
            "blender_dposer.embedded_backend as eb; eb.EmbeddedBackend.available(); "
            "bad = [m for m in sys.modules if m in ('bpy', 'torch') or m.startswith('dposer.') and "
            "not m.startswith('dposer.spec')]; assert not bad, bad; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    import blender_dposer

    if "bpy" not in sys.modules:
        with pytest.raises(RuntimeError, match="bpy"):
            blender_dposer.register()


def test_build_addon_zip(tmp_path):
    import importlib.util
    import zipfile

    spec = importlib.util.spec_from_file_location("build_addon", REPO / "build_addon.py")
    build_addon = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_addon)
    manifest = build_addon.read_manifest()
    assert build_addon.check_manifest(manifest) == []
    assert manifest["id"] == "blender_dposer" and manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert manifest["blender_version_min"] == "4.2.0" and set(manifest["permissions"]) == {"files", "network"}
    out = build_addon.build(tmp_path)
    assert out.name == f"blender_dposer-{manifest['version']}.zip"
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
    assert {"blender_manifest.toml", "__init__.py", "rig_math.py", "retarget.py", "bundled.py", "backend_client.py",
            "installer.py", "install_ops.py"} <= set(names)
    assert not any(n.endswith(".pyc") or "__pycache__" in n for n in names)
    # the backend: the rooms of dposer that run in Blender and the default checkpoint; no training or evaluation
    backend = {n for n in names if "/" in n}
    assert all(n.startswith("backend/dposer/") for n in backend)
    rooms = {n.split("/")[2] for n in backend}
    assert rooms == {"__init__.py", "official_normalizers.json", "spec", "core", "tasks", "formats", "serve",
                     "motion", "weights"}, rooms
    # the motion prior's inference (the server's fill op) travels; its corpus, training, benchmark and commands not
    assert {"backend/dposer/motion/filling.py", "backend/dposer/motion/interp.py", "backend/dposer/motion/prior.py",
            "backend/dposer/motion/take.py"} <= backend
    assert not {f"backend/dposer/motion/{m}.py" for m in ("bench", "cli", "corpus", "train")} & backend
    spec_modules = {f"backend/dposer/spec/{p.name}" for p in (REPO / "backend" / "dposer" / "spec").glob("*.py")}
    assert spec_modules <= backend and "backend/dposer/weights/default.safetensors" in backend
    assert not any(n.endswith((".npz", ".pkl", ".pt", ".ckpt")) or "torch/" in n for n in names)
    slim = build_addon.build(tmp_path / "slim", backend=None)
    with zipfile.ZipFile(slim) as z:
        slim_backend = {n for n in z.namelist() if "/" in n}
    assert slim_backend == {"backend/dposer/__init__.py", "backend/dposer/tasks/__init__.py",
                            "backend/dposer/tasks/channel_clean.py"} | spec_modules
    bad = dict(manifest, tagline="x" * 65 + ".", id="_bad", permissions={"subprocess": "x"})
    assert len(build_addon.check_manifest(bad)) == 4
