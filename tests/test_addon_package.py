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

    code = ("import sys; import blender_dposer, blender_dposer.rig_math, blender_dposer.bone_maps, "
            "blender_dposer.backend_client as bc; bc.EmbeddedBackend.available(); "
            "bad = [m for m in ('bpy', 'torch', 'dposer') if m in sys.modules]; "
            "assert not bad, bad; print('ok')")
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
    assert {"blender_manifest.toml", "__init__.py", "rig_math.py", "retarget.py", "rotations.py", "smplx_skeleton.py",
            "bone_maps.py", "backend_client.py", "installer.py", "install_ops.py"} <= set(names)
    assert not any(n.endswith(".pyc") or "__pycache__" in n for n in names)
    # the backend: the dposer package (every module of backend/dposer) and the default checkpoint, nothing else
    backend = {n for n in names if "/" in n}
    assert all(n.startswith("backend/dposer/") for n in backend)
    modules = {f"backend/dposer/{p.name}" for p in (REPO / "backend" / "dposer").glob("*.py")}
    assert modules <= backend and "backend/dposer/weights/default.safetensors" in backend
    assert not any(n.endswith((".npz", ".pkl", ".pt", ".ckpt")) or "torch/" in n for n in names)
    slim = build_addon.build(tmp_path / "slim", backend=None)
    with zipfile.ZipFile(slim) as z:
        assert not any("/" in n for n in z.namelist())
    bad = dict(manifest, tagline="x" * 65 + ".", id="_bad", permissions={"subprocess": "x"})
    assert len(build_addon.check_manifest(bad)) == 4
