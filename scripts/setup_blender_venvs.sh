#!/usr/bin/env bash
# Create the headless-Blender test venvs (bpy from PyPI = Blender as a Python module, Python 3.11):
#
#   .venv-bpy50   bpy 5.0.1  (slotted actions, no Action.fcurves)
#   .venv-bpy42   bpy 4.2.x LTS (legacy Action.fcurves)
#
# each with torch 2.13.0 (the local CPU wheel in PIP_FIND_LINKS when there is one), pytest and this repo
# installed editable (so the add-on's embedded backend can import dposer). The targets 50-bare and 42-bare make
# .venv-bpy50-bare / .venv-bpy42-bare: bpy alone (no torch, no dposer, no pytest), the "fresh Blender" in which
# tests/blender/test_bpy_install.py installs the extension zip and lets the add-on pip-install PyTorch like an
# artist would. Idempotent: a venv whose marker file matches the wanted versions is skipped. Then run, e.g.:
#
#   .venv-bpy50/bin/python -m pytest -q tests/blender
#   .venv-bpy42/bin/python -m pytest -q tests/blender
#
# Usage: scripts/setup_blender_venvs.sh [50] [42] [45] [50-bare] [42-bare]   (default: 50 42; 45 = optional
#        .venv-bpy45, bpy 4.5 LTS, the slotted-actions API that still has the legacy Action.fcurves proxy)
# Environment:
#   PYTHON311        the Python 3.11 interpreter to build the venvs from (default: python3.11)
#   BPY_WHEEL_DIR    a cache folder for the ~400-500 MB bpy wheels (default: /tmp/bpywheels); a wheel found there
#                    is used, otherwise it is downloaded into it with `pip download`
#   BPY50_VERSION    default 5.0.1
#   BPY42_VERSION    default 4.2.23 (the latest 4.2 LTS wheel on PyPI; 4.2.0 works too)
#   BPY45_VERSION    default 4.5.15
#   TORCH_VERSION    default 2.13.0
#   FORCE=1          rebuild even when the marker says the venv is ready
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON311:-python3.11}"
WHEELS="${BPY_WHEEL_DIR:-/tmp/bpywheels}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
declare -A BPY_VERSION=([50]="${BPY50_VERSION:-5.0.1}" [42]="${BPY42_VERSION:-4.2.23}" [45]="${BPY45_VERSION:-4.5.15}")

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(50 42)

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
    echo "error: $PY is not Python 3.11 (the bpy 4.2-5.0 wheels are cp311); set PYTHON311" >&2
    exit 2
fi

bpy_wheel() {  # $1 = version -> path of the wheel (downloaded into the cache when missing)
    local ver="$1" whl
    mkdir -p "$WHEELS"
    whl="$(ls "$WHEELS"/bpy-"$ver"-cp311-cp311-*.whl 2>/dev/null | head -n1 || true)"
    if [ -z "$whl" ]; then
        echo "downloading bpy $ver into $WHEELS ..." >&2
        "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
            --platform manylinux_2_28_x86_64 -d "$WHEELS" "bpy==$ver" >&2
        whl="$(ls "$WHEELS"/bpy-"$ver"-cp311-cp311-*.whl | head -n1)"
    fi
    echo "$whl"
}

for t in "${targets[@]}"; do
    bare=0
    case "$t" in *-bare) bare=1 ;; esac
    ver="${BPY_VERSION[${t%-bare}]:-}"
    if [ -z "$ver" ]; then
        echo "error: unknown target '$t' (expected 50, 42, 45, 50-bare or 42-bare)" >&2
        exit 2
    fi
    venv="$ROOT/.venv-bpy$t"
    marker="$venv/.dposer-setup"
    want="bpy==$ver torch==$TORCH_VERSION numpy<2"
    [ "$bare" = 1 ] && want="bpy==$ver numpy<2 (bare)"
    if [ "${FORCE:-0}" != 1 ] && [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ] && [ -x "$venv/bin/python" ]; then
        echo ".venv-bpy$t: ready ($want), skipped"
        continue
    fi
    start=$(date +%s)
    whl="$(bpy_wheel "$ver")"
    echo ".venv-bpy$t: creating with $want ..."
    rm -rf "$venv"
    "$PY" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    if [ "$bare" = 1 ]; then
        # what Blender itself ships: bpy (with its NumPy 1.x), no torch, no dposer
        "$venv/bin/python" -m pip install --quiet "$whl" "numpy<2"
        "$venv/bin/python" -c 'import bpy, importlib.util as u; print("  bpy", bpy.app.version_string, "| torch",
            u.find_spec("torch"), "| dposer", u.find_spec("dposer"))'
        echo "$want" > "$marker"
        echo ".venv-bpy$t: done in $(( $(date +%s) - start )) s"
        continue
    fi
    # one resolve. numpy<2: Blender 4.2-5.0 bundle NumPy 1.x (the 5.0 wheel pins it, the 4.2 wheel does not);
    # dposer needs numpy>=1.24, so pip settles on 1.26.x
    "$venv/bin/python" -m pip install --quiet "torch==$TORCH_VERSION" "$whl" "numpy<2" pytest -e "$ROOT"
    "$venv/bin/python" - <<'EOF'
import bpy, torch, numpy, dposer, pytest
print("  bpy", bpy.app.version_string, "| torch", torch.__version__, "| numpy", numpy.__version__,
      "| dposer", dposer.__version__)
EOF
    echo "$want" > "$marker"
    echo ".venv-bpy$t: done in $(( $(date +%s) - start )) s"
done
