"""The protocol table is written once (backend/dposer/spec/protocol.py) and used by both ends: the server and the
add-on's client import the same module."""
from __future__ import annotations

import ast
from pathlib import Path

PROTOCOL_FILE = Path(__file__).resolve().parents[1] / "backend" / "dposer" / "spec" / "protocol.py"


def test_protocol_module_imports_nothing():
    tree = ast.parse(PROTOCOL_FILE.read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_both_ends_use_the_table():
    from blender_dposer import backend_client
    from dposer.serve import server
    from dposer.spec import protocol

    assert server.PROTOCOL == backend_client.PROTOCOL == protocol.PROTOCOL
    assert server.TASK_OPS is protocol.TASK_OPS
    assert backend_client.TASK_OPS is protocol.TASK_OPS and backend_client.FINAL_TYPES is protocol.FINAL_TYPES
    assert server.LIMITS["max_poses"] == protocol.MAX_POSES and server.OPS == protocol.OPS
