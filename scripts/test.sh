#!/usr/bin/env bash
# Set up and run every test: the backend and add-on suite in .venv, then the add-on in real headless Blender
# (bpy wheels 5.0.1 and 4.2 LTS, each in its own venv, plus a bare bpy-only venv per version in which
# tests/blender/test_bpy_install.py installs the extension zip and PyTorch as an artist would). This is the
# README's test command; .ci/run calls it.
set -uo pipefail
cd "$(dirname "$0")/.."
# In CI the licensed test data must be there: without it most tests would skip and the run would look green.
data="${DPOSER_DATA:-$(cd .. && pwd)/shared/data}"
if [ "${CI:-}" = "true" ] && [ ! -f "$data/dposer_x/body_poses_10k.npz" ]; then
    echo "scripts/test.sh: DPOSER_DATA=$data has no dposer_x/body_poses_10k.npz: the test data is required in CI" >&2
    exit 1
fi
fail=0
run_pytest() {  # pytest exit code 5 means no test ran: that is a failure too
    "$@"
    local rc=$?
    if [ "$rc" -eq 5 ]; then echo "scripts/test.sh: no tests ran in: $*" >&2; rc=1; fi
    [ "$rc" -eq 0 ] || fail=1
}
python3 -m venv .venv && . .venv/bin/activate \
  && pip install -q torch==2.13.0 && pip install -q -e '.[dev,smplx,ray]' || exit 1
run_pytest python -m pytest -q -rs
deactivate
bash scripts/setup_blender_venvs.sh 50 42 50-bare 42-bare || exit 1
for v in 50 42; do
    echo "== Blender add-on tests, bpy venv .venv-bpy$v"
    run_pytest ".venv-bpy$v/bin/python" -m pytest -q -rs tests/blender
done
exit "$fail"
