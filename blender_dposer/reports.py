# SPDX-License-Identifier: GPL-3.0-or-later
"""What the artist sees of a job besides its keys: its progress (the panel's bar and the status bar) and, when it
fails, one reported line (the detail on the console). Needs bpy only through the objects it is given."""
from __future__ import annotations

import sys
import traceback

from .backend_client import BackendError
from .rig_profile import JobError
from .session import error_summary


def set_progress(context, factor: float | None, text: str = "") -> None:
    """A running job's progress (0-1; None: done) in the panel's bar and the status bar."""
    wm = context.window_manager
    if hasattr(wm, "dposer_progress"):
        wm.dposer_progress = -1.0 if factor is None else float(factor)
        wm.dposer_status = text
    ws = getattr(context, "workspace", None)
    if ws is not None:
        try:
            ws.status_text_set(None if factor is None else text)
        except (AttributeError, RuntimeError, TypeError):
            pass
    screen = getattr(context, "screen", None)
    if screen is not None:
        for area in screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def report_exception(op, e: BaseException) -> set:
    """Report a job's failure to the artist (one line; the detail goes to the console); the scene is unchanged."""
    if isinstance(e, (JobError, BackendError)):
        summary = error_summary(e)
        detail = e.message if isinstance(e, BackendError) else str(e)
    else:
        summary = f"{type(e).__name__}: {e}"
        detail = traceback.format_exc()
    print(f"DPoser error: {detail}", file=sys.stderr)
    op.report({"ERROR"}, f"DPoser: {summary}")
    return {"CANCELLED"}
