"""The protocol table is written once (backend/dposer/protocol.py) and used by both ends: the server imports it, and
the add-on's copy (blender_dposer/protocol.py; the add-on must not import dposer, which imports torch) is the same
file."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BACKEND = REPO / "backend" / "dposer" / "protocol.py"
ADDON = REPO / "blender_dposer" / "protocol.py"


def test_addon_copy_is_identical():
    assert ADDON.read_text() == BACKEND.read_text(), (
        "blender_dposer/protocol.py differs from backend/dposer/protocol.py: edit the backend's, then "
        "cp backend/dposer/protocol.py blender_dposer/protocol.py")


def test_protocol_module_imports_nothing():
    tree = ast.parse(BACKEND.read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_both_ends_use_the_table():
    from blender_dposer import backend_client, protocol
    from dposer import server

    assert server.PROTOCOL == backend_client.PROTOCOL == protocol.PROTOCOL
    assert server.TASK_OPS is __import__("dposer.protocol").protocol.TASK_OPS
    assert backend_client.TASK_OPS is protocol.TASK_OPS and backend_client.FINAL_TYPES is protocol.FINAL_TYPES
    assert server.LIMITS["max_poses"] == protocol.MAX_POSES and server.OPS == protocol.OPS
