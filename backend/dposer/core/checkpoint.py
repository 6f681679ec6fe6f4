"""The prior's checkpoint format and its normaliser (no network code, no inference).

Checkpoint = one safetensors file. Tensors ``net.*`` (inference weights, EMA), ``normalizer.mean`` and
``normalizer.std`` (256,); metadata ``format`` = "dposer-prior/1", ``arch`` (the network class: "dposer-scorenet",
the default when absent, or an official DPoser-X architecture, see :mod:`dposer.core.official`), ``net_config`` (JSON)
and ``info`` (JSON: training command, data, metrics, or provenance). Training checkpoints add ``train.*`` tensors
(raw weights, optimiser, RNG). Loading a checkpoint into a :class:`dposer.core.prior.Prior` is :func:`dposer.core.prior.load_prior`
(it also reads the authors' Lightning ``.ckpt`` files through :mod:`dposer.core.official`).

Imports: :mod:`dposer.core.official` and :mod:`dposer.core.prior` both build on this module; it imports neither.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from ..spec import layout
from .model import ScoreNet

FORMAT = "dposer-prior/1"
ARCH = "dposer-scorenet"
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "weights" / "default.safetensors"


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or not a dposer prior."""


class Normalizer:
    """Per-dim z-score in 256-D with the left hand mirrored into right-hand convention first."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        self.mean = torch.as_tensor(mean, dtype=torch.float32)
        self.std = torch.as_tensor(std, dtype=torch.float32)

    @staticmethod
    def fit(vectors: np.ndarray, present: np.ndarray, min_std: float = 1e-2) -> "Normalizer":
        """Statistics over present dims; both hands pooled in right-hand convention."""
        v = vectors.astype(np.float64).copy()
        p = present.copy()
        left, right = layout.PART_SLICES["left_hand"], layout.PART_SLICES["right_hand"]
        v[:, left] = layout.mirror_hand(v[:, left])
        hands_v = np.concatenate([v[:, left][p[:, left.start]], v[:, right][p[:, right.start]]])
        mean = np.zeros(layout.DIM)
        std = np.ones(layout.DIM)
        for d in range(layout.DIM):
            col = v[p[:, d], d]
            if len(col) > 1:
                mean[d], std[d] = col.mean(), col.std()
        mean[left] = mean[right] = hands_v.mean(0)
        std[left] = std[right] = hands_v.std(0)
        return Normalizer(torch.tensor(mean, dtype=torch.float32), torch.tensor(np.maximum(std, min_std), dtype=torch.float32))

    def to(self, device) -> "Normalizer":
        return Normalizer(self.mean.to(device), self.std.to(device))

    @staticmethod
    def _mirror_left_hand(raw: torch.Tensor) -> torch.Tensor:
        left = layout.PART_SLICES["left_hand"]
        return torch.cat([raw[:, :left.start], layout.mirror_hand(raw[:, left]), raw[:, left.stop:]], dim=1)

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        raw = self._mirror_left_hand(raw)
        return (raw - self.mean.to(raw)) / self.std.to(raw)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return self._mirror_left_hand(x * self.std.to(x) + self.mean.to(x))


def checkpoint_tensors(net: ScoreNet, normalizer: Normalizer, dtype=torch.float32) -> dict[str, torch.Tensor]:
    out = {f"net.{k}": v.detach().to(dtype).contiguous().cpu() for k, v in net.state_dict().items()}
    out["normalizer.mean"] = normalizer.mean.float().cpu()
    out["normalizer.std"] = normalizer.std.float().cpu()
    return out


def save_prior(path, net: ScoreNet, normalizer: Normalizer, info: dict | None = None, dtype=torch.float32,
               extra_tensors: dict | None = None, extra_meta: dict | None = None) -> None:
    tensors = checkpoint_tensors(net, normalizer, dtype)
    tensors.update(extra_tensors or {})
    meta = {"format": FORMAT, "arch": getattr(net, "arch", ARCH), "net_config": json.dumps(net.cfg.to_dict()),
            "info": json.dumps(info or {})}
    meta.update(extra_meta or {})
    from safetensors.torch import save

    from ..formats.npz import atomic_write

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(save(tensors, metadata=meta))


def read_checkpoint(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a dposer safetensors file, with clear errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        hint = (" (it looks like a pickle/Lightning .ckpt: official DPoser-X weights load through load_prior or "
                "'dposer import-official')") if path.suffix in (".ckpt", ".pt", ".pth") else ""
        raise CheckpointError(f"{path}: not a valid safetensors file{hint}: {e}") from e
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a dposer prior checkpoint (metadata format={meta.get('format')!r}, expected {FORMAT!r})")
    return tensors, meta
