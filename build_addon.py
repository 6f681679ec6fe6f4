#!/usr/bin/env python3
"""Build the Blender extension zip: ``dist/blender_dposer-<version>.zip``, manifest at the zip root.

    python build_addon.py                       # build (stdlib only: zipfile + tomllib)
    python build_addon.py --without-backend     # the add-on and dposer.spec only, for a Python that has dposer
    python build_addon.py --validate            # build, then validate with Blender's own extension tooling
                                                # (needs a Python with the bpy wheel, $BLENDER_EXT or --blender)
    python build_addon.py --blender-ext PATH    # ... with that blender_ext.py
    python build_addon.py --blender BLENDER     # ... with ``BLENDER --command extension validate``

What it does (blender.md section 3.4):

1. Reads ``blender_dposer/blender_manifest.toml``, the single source of the version, and checks the fields that
   Blender's validator enforces (blender.md 3.1): required keys, ``id`` a Python identifier without leading/
   trailing/double underscores, ``tagline`` at most 64 characters and not ending in punctuation, semver
   ``version``, ``type``, SPDX ``license`` list, ``permissions`` keys.
2. Collects ``blender_dposer/`` without caches, dotfiles, tests, zips and ``.blend1`` backups, and refuses
   anything that must not be in the add-on's own folder: torch, model checkpoints, pose data (``.npz``/``.pkl``),
   a copy of the ``dposer`` package.
3. Adds the backend under ``backend/dposer/`` in the zip (so the installed extension holds
   ``<extension>/backend/dposer``, found by the add-on with default preferences): the rooms of the ``dposer``
   package that run in Blender (``BACKEND_RUNTIME``: spec, core, tasks, formats, serve and the motion prior's
   inference; pure Python, MIT) and the default checkpoint ``weights/default.safetensors`` (non-commercial
   research licence, docs/model_card.md), plus ``weights/motion.safetensors`` when one is there. Nothing else: no
   training, evaluation or benchmark code (``BACKEND_LEFT_OUT``), no command line, no torch (the Install Backend
   button installs it), no pose data, no other checkpoints. ``--without-backend`` bundles only ``dposer.spec``, the
   torch-free layer the add-on itself imports.
4. Writes a reproducible zip (sorted entries, fixed timestamps) and prints its size and SHA-256.

Validating with Blender's tooling (no Blender binary needed): the ``bpy`` wheel from PyPI ships the extension CLI
at ``site-packages/bpy/<ver>/scripts/addons_core/bl_pkg/cli/blender_ext.py``, which runs under plain Python
3.11+. In CI::

    python3.11 -m venv /tmp/bpy42 && /tmp/bpy42/bin/pip install bpy==4.2.0
    /tmp/bpy42/bin/python build_addon.py --validate      # finds blender_ext.py inside that bpy

or point ``--blender-ext`` (or the ``BLENDER_EXT`` environment variable) at the file, or use a Blender binary
with ``--blender``. Validation runs ``blender_ext.py validate <zip>`` (``blender --command extension validate
<zip>``); any failure exits non-zero. The same CLI can also build the zip itself
(``blender_ext.py build --source-dir blender_dposer --output-dir dist``), which is the way to go once the add-on
bundles platform wheels (``--split-platforms``).
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SOURCE = ROOT / "blender_dposer"
MANIFEST = SOURCE / "blender_manifest.toml"
BACKEND = ROOT / "backend" / "dposer"
BACKEND_ARC = "backend/dposer"  # where the add-on looks for it (preferences.BUNDLED_BACKEND)
BACKEND_SUFFIXES = (".py", ".json")
# what of dposer runs in Blender (the add-on's dposer.spec and the backend server with its tasks, and the motion
# prior's inference that the server's fill op runs); training (train/), evaluation and benchmarks (eval/), the
# command line and the training configs stay out of the zip, and so do the motion room's corpus, training, benchmark
# and commands (BACKEND_LEFT_OUT; tests/test_import_graph.py holds that the rest imports none of them)
BACKEND_RUNTIME = ("__init__.py", "official_normalizers.json", "spec", "core", "tasks", "formats", "serve", "motion")
BACKEND_LEFT_OUT = ("motion/bench.py", "motion/bench_limbs.py", "motion/cli.py", "motion/corpus.py", "motion/train.py")
BACKEND_SPEC = ("__init__.py", "spec", "tasks/__init__.py", "tasks/channel_clean.py")  # --without-backend: the
# torch-free modules the add-on imports (the spec and the channel cleaner Clean runs on unmapped bones)
BACKEND_CHECKPOINT = "weights/default.safetensors"
MOTION_CHECKPOINT = "weights/motion.safetensors"  # bundled when present (none is trained yet): fill then uses it

REQUIRED = ("schema_version", "id", "name", "tagline", "version", "type", "maintainer", "license",
            "blender_version_min")
PERMISSIONS = {"files", "network", "clipboard", "camera", "microphone"}
EXCLUDED_DIRS = {"__pycache__", "tests", ".git", ".pytest_cache"}
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".zip", ".orig", ".rej")
FORBIDDEN_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors", ".npz", ".npy", ".pkl", ".onnx")
FORBIDDEN_PARTS = ("torch", "dposer")  # a folder named like this inside the add-on
ZIP_TIME = (2024, 1, 1, 0, 0, 0)


def read_manifest(path: Path = MANIFEST) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            return _read_manifest_minimal(path)
    with open(path, "rb") as f:
        return tomllib.load(f)


def _read_manifest_minimal(path: Path) -> dict:
    """Top-level ``key = "string"`` and ``key = ["a", "b"]`` lines only (enough for the checks below)."""
    out: dict = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):  # tables ([permissions], [build]) are not read
            break
        m = re.match(r'^(\w+)\s*=\s*"([^"]*)"', line)
        if m:
            out[m.group(1)] = m.group(2)
        m = re.match(r"^(\w+)\s*=\s*\[(.*)\]", line)
        if m:
            out[m.group(1)] = re.findall(r'"([^"]*)"', m.group(2))
    return out


def check_manifest(m: dict) -> list[str]:
    """Problems Blender's validator would report (a subset, checked without bpy)."""
    problems = [f"missing required field '{k}'" for k in REQUIRED if k not in m]
    pid = m.get("id", "")
    if pid and (not pid.isidentifier() or pid.startswith("_") or pid.endswith("_") or "__" in pid):
        problems.append(f"id {pid!r} must be a Python identifier without leading/trailing/double underscores")
    tagline = m.get("tagline", "")
    if len(tagline) > 64:
        problems.append(f"tagline is {len(tagline)} characters, at most 64 are allowed")
    if tagline and not tagline[-1].isalnum() and tagline[-1] not in ")]}":
        problems.append("tagline must not end in punctuation")
    if "version" in m and not re.fullmatch(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.\-+]*)?", str(m["version"])):
        problems.append(f"version {m['version']!r} is not semantic (X.Y.Z)")
    if m.get("type") not in (None, "add-on", "theme"):
        problems.append(f"type must be 'add-on' or 'theme', got {m.get('type')!r}")
    lic = m.get("license")
    if lic is not None and (not isinstance(lic, list) or not lic or not all(str(x).startswith("SPDX:") for x in lic)):
        problems.append("license must be a non-empty list of 'SPDX:...' strings")
    perms = m.get("permissions", {})
    if isinstance(perms, dict):
        bad = set(perms) - PERMISSIONS
        if bad:
            problems.append(f"unknown permission(s) {sorted(bad)}; allowed: {sorted(PERMISSIONS)}")
        for k, reason in perms.items():
            if not isinstance(reason, str) or not reason or reason[-1] in ".!?;:," or len(reason) > 64:
                problems.append(f"permission reason for '{k}' must be a short text (<= 64) without final punctuation")
    for key in ("blender_version_min", "blender_version_max"):
        if key in m and not re.fullmatch(r"\d+\.\d+\.\d+", str(m[key])):
            problems.append(f"{key} must be X.Y.Z, got {m[key]!r}")
    return problems


def collect(source: Path = SOURCE) -> list[Path]:
    """Files to package, relative to ``source``; raises SystemExit on forbidden content."""
    files, forbidden = [], []
    for dirpath, dirnames, filenames in os.walk(source):
        rel_dir = Path(dirpath).relative_to(source)
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS and not d.startswith("."))
        for d in dirnames:
            if d.lower() in FORBIDDEN_PARTS:
                forbidden.append(str(rel_dir / d) + "/")
        for name in sorted(filenames):
            rel = rel_dir / name
            if name.startswith(".") or name.endswith(EXCLUDED_SUFFIXES) or re.search(r"\.blend\d+$", name):
                continue
            if name.lower().endswith(FORBIDDEN_SUFFIXES) or name.lower().startswith("torch"):
                forbidden.append(str(rel))
                continue
            files.append(rel)
    if forbidden:
        raise SystemExit("refusing to package (licensing guard: no torch, checkpoints, pose data or backend in the "
                         f"add-on): {', '.join(forbidden)}")
    if Path("__init__.py") not in files or Path("blender_manifest.toml") not in files:
        raise SystemExit("the add-on needs __init__.py and blender_manifest.toml at its root")
    return files


def collect_backend(backend: Path = BACKEND, parts: tuple[str, ...] = BACKEND_RUNTIME,
                    checkpoint: bool = True) -> list[Path]:
    """The ``dposer`` package's files to bundle, relative to ``backend``: the ``.py``/``.json`` files of ``parts``
    (top-level files and subpackages) and, with ``checkpoint``, the default checkpoint. Raises SystemExit when a
    part, the server or the checkpoint is missing."""
    files = []
    for part in parts:
        if (backend / part).is_file():
            files.append(Path(part))
            continue
        if not (backend / part).is_dir():
            raise SystemExit(f"the backend to bundle lacks {backend / part}")
        for dirpath, dirnames, filenames in os.walk(backend / part):
            rel_dir = Path(dirpath).relative_to(backend)
            dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS and not d.startswith("."))
            files += [rel_dir / n for n in sorted(filenames) if n.endswith(BACKEND_SUFFIXES) and not n.startswith(".")
                      and (rel_dir / n).as_posix() not in BACKEND_LEFT_OUT]
    if checkpoint:
        files.append(Path(BACKEND_CHECKPOINT))
        if (backend / MOTION_CHECKPOINT).is_file():
            files.append(Path(MOTION_CHECKPOINT))
        for need in ("serve/server.py", BACKEND_CHECKPOINT):
            if not (backend / need).is_file():
                raise SystemExit(f"the backend to bundle lacks {backend / need}")
    return files


def build(out_dir: Path, source: Path = SOURCE, backend: Path | None = BACKEND) -> Path:
    """Write the zip (atomically); ``backend=None``: the add-on with only the torch-free ``dposer.spec`` layer it
    imports (its backend Python must have dposer)."""
    manifest = read_manifest(source / "blender_manifest.toml")
    problems = check_manifest(manifest)
    if problems:
        raise SystemExit("blender_manifest.toml: " + "; ".join(problems))
    entries = [(rel.as_posix(), source / rel) for rel in collect(source)]
    root = BACKEND if backend is None else backend
    rels = collect_backend(root, BACKEND_SPEC, checkpoint=False) if backend is None else collect_backend(backend)
    entries += [(f"{BACKEND_ARC}/{rel.as_posix()}", root / rel) for rel in rels]
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for arc, path in sorted(entries):
            info = zipfile.ZipInfo(arc, date_time=ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, path.read_bytes())
    tmp.replace(out)
    return out


def size_summary(zip_path: Path) -> str:
    """Compressed and unpacked sizes: the add-on, the bundled backend code, the checkpoint."""
    parts = {"add-on": [0, 0], "backend code": [0, 0], "checkpoint": [0, 0]}
    with zipfile.ZipFile(zip_path) as z:
        for i in z.infolist():
            key = ("checkpoint" if i.filename.endswith(".safetensors") else
                   "backend code" if i.filename.startswith(BACKEND_ARC + "/") else "add-on")
            parts[key][0] += i.compress_size
            parts[key][1] += i.file_size
    return ", ".join(f"{k} {c / 1e6:.2f} MB ({u / 1e6:.2f} MB unpacked)" for k, (c, u) in parts.items() if u)


def find_blender_ext() -> str | None:
    """blender_ext.py from $BLENDER_EXT or from a bpy wheel importable by this Python (not imported)."""
    env = os.environ.get("BLENDER_EXT")
    if env:
        return env
    spec = importlib.util.find_spec("bpy")
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or []) or [os.path.dirname(spec.origin or "")]
    for root in roots:
        hits = sorted(glob.glob(os.path.join(root, "*", "scripts", "addons_core", "bl_pkg", "cli", "blender_ext.py")))
        if hits:
            return hits[-1]
    return None


def validate(zip_path: Path, blender_ext: str | None, blender: str | None) -> int:
    if blender:
        cmd = [blender, "--factory-startup", "--command", "extension", "validate", str(zip_path)]
    else:
        if blender_ext is None:
            print("validate: no blender_ext.py found (install the bpy wheel in this Python, set BLENDER_EXT, or "
                  "pass --blender-ext/--blender)", file=sys.stderr)
            return 2
        cmd = [sys.executable, blender_ext, "validate", str(zip_path)]
    print("validate:", " ".join(cmd))
    return subprocess.call(cmd)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "dist"), help="output folder (default: dist/)")
    p.add_argument("--validate", action="store_true", help="validate the zip with Blender's extension CLI")
    p.add_argument("--blender-ext", default=None, help="path to blender_ext.py (implies --validate)")
    p.add_argument("--blender", default=None, help="a Blender binary for 'extension validate' (implies --validate)")
    p.add_argument("--without-backend", action="store_true",
                   help="bundle only dposer.spec, no backend or checkpoint (the backend Python must have them)")
    a = p.parse_args(argv)
    validating = a.validate or a.blender_ext or a.blender
    blender_ext = (a.blender_ext or find_blender_ext()) if validating and not a.blender else None
    if validating and not a.blender and blender_ext is None:  # say so before building anything
        print("--validate needs Blender's extension tool, which this Python does not have: run it with a Python "
              "that has the bpy wheel (e.g. python3.11 -m venv /tmp/bpy42 && /tmp/bpy42/bin/pip install bpy==4.2.0), "
              "set BLENDER_EXT to blender_ext.py, or pass --blender-ext/--blender", file=sys.stderr)
        return 2
    out = build(Path(a.out), backend=None if a.without_backend else BACKEND)
    data = out.read_bytes()
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
    print(f"{out}  {len(data)} bytes  {len(names)} files  sha256 {hashlib.sha256(data).hexdigest()}")
    print(f"  {size_summary(out)}")
    if validating:
        rc = validate(out, blender_ext, a.blender)
        if rc:
            print(f"validation failed (exit status {rc})", file=sys.stderr)
            return rc
        print("validation passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
