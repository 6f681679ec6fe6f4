"""A client's request line of the JSON-lines protocol (docs/protocol.md): the add-on's backends write these."""
from __future__ import annotations

import json
from typing import Any


def to_jsonable(v: Any) -> Any:
    """NumPy arrays/scalars -> lists and Python numbers, recursively (NumPy is imported only if present)."""
    if isinstance(v, dict):
        return {str(k): to_jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_jsonable(x) for x in v]
    if hasattr(v, "tolist") and callable(v.tolist):  # numpy arrays and scalars
        return v.tolist()
    return v


def encode_request(rid, op: str, args: dict | None = None) -> bytes:
    """One request line. NaN/Infinity raise ValueError here (the protocol rejects them)."""
    msg = {"id": rid, "op": op}
    if args:
        msg["args"] = to_jsonable(args)
    try:
        return json.dumps(msg, allow_nan=False, separators=(",", ":")).encode("utf-8") + b"\n"
    except ValueError as e:
        raise ValueError(f"request {rid!r} ({op}) holds NaN or infinite numbers: {e}") from None
