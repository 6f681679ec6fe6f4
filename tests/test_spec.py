"""dposer.spec: the torch-free layer under everything. ``import dposer`` and the whole spec work in a Python without
torch, and each operation's declaration is what the server, the command line and the add-on use."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_dposer_and_spec_import_without_torch():
    code = ("import sys; sys.modules['torch'] = None  # any 'import torch' now raises ImportError\n"
            "import dposer, dposer.spec.layout, dposer.spec.skeleton, dposer.spec.rotations, dposer.spec.bone_maps, "
            "dposer.spec.protocol, dposer.spec.messages, dposer.spec.operations, dposer.formats.convert\n"
            "print(dposer.__version__, sorted(dposer.__all__)[:2])\n"
            "try:\n    dposer.load_prior\nexcept ImportError:\n    print('model needs torch')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[1] == "model needs torch", out.stdout


def test_server_checks_come_from_the_declarations():
    from dposer.serve import requests
    from dposer.spec.operations import OPERATIONS

    assert list(requests.ARGS) == list(OPERATIONS)
    for op, args in OPERATIONS.items():
        assert list(requests.ARGS[op]) == list(args), op
        for name, a in args.items():
            default = requests.ARGS[op][name][1]
            assert default is requests.REQUIRED if a.required else default == (
                list(a.default) if isinstance(a.default, tuple) else a.default), (op, name)
    _, _, out = requests.validate({"id": 1, "op": "refine", "args": {"pose": {"body_pose": [[0.0] * 63]}}})
    assert out["strength"] == OPERATIONS["refine"]["strength"].default
    with pytest.raises(requests.RequestError, match=r"\(0.0, 1.0\]"):
        requests.validate({"id": 1, "op": "refine", "args": {"pose": {"body_pose": [[0.0] * 63]}, "strength": 0}})


def test_command_line_options_come_from_the_declarations(capsys):
    from dposer.cli import build_parser
    from dposer.spec.operations import arg

    a = build_parser().parse_args(["refine", "--input", "x.npz", "--output", "y.npz"])
    assert a.strength == arg("refine", "strength").default and a.seed == arg("refine", "seed").default
    a = build_parser().parse_args(["clean", "--input", "x.npz", "--output", "y.npz", "--lock", "head,neck"])
    assert a.strength == arg("clean", "strength").default and a.lock == ["head", "neck"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["refine", "--input", "x.npz", "--output", "y.npz", "--strength", "0"])
    assert "must be in (0.0, 1.0], got 0" in capsys.readouterr().err


def test_addon_params_are_the_declarations():
    from blender_dposer import params as P
    from dposer.spec.operations import arg
    from dposer.spec.protocol import MAX_HYPOTHESES

    assert P.REFINE_STRENGTH == arg("refine", "strength") and P.CLEAN_STRENGTH == arg("clean", "strength")
    assert P.VARY_STRENGTH == arg("vary", "strength")
    assert (P.HYPOTHESES.default, P.HYPOTHESES.hi) == (arg("complete", "hypotheses").default, MAX_HYPOTHESES)
    assert (P.VARY_COUNT.default, P.VARY_COUNT.lo) == (arg("vary", "n").default, arg("vary", "n").lo)
    with pytest.raises(ValueError, match=r"strength must be in \(0, 1\], got 0"):
        P.REFINE_STRENGTH.check(0)
