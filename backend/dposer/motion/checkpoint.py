"""The motion prior's checkpoint: one safetensors file (``net.*`` weights, metadata ``format`` =
"dposer-motion/1", ``net_config``, ``resid_scale``, ``info``). Training checkpoints add ``train.*`` tensors."""
from __future__ import annotations

import json
from pathlib import Path

import torch

FORMAT = "dposer-motion/1"
DEFAULT = Path(__file__).resolve().parents[1] / "weights" / "motion.safetensors"


def save_motion(path, net, resid_scale: float, info: dict | None = None, dtype=torch.float32,
                extra_tensors: dict | None = None, extra_meta: dict | None = None) -> None:
    from safetensors.torch import save

    from ..formats.npz import atomic_write

    tensors = {f"net.{k}": v.detach().to(dtype).contiguous().cpu() for k, v in net.state_dict().items()}
    tensors.update(extra_tensors or {})
    meta = {"format": FORMAT, "net_config": json.dumps(net.cfg.to_dict()), "resid_scale": repr(float(resid_scale)),
            "info": json.dumps(info or {})}
    meta.update(extra_meta or {})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(save(tensors, metadata=meta))


def read_motion(path) -> tuple[dict, dict]:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from ..core.checkpoint import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"motion prior checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors file: {e}") from e
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a dposer motion prior (format={meta.get('format')!r}, expected {FORMAT!r})")
    return tensors, meta
