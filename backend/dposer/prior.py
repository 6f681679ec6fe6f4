"""A loaded pose prior: score network + normaliser + SDE, and its safetensors checkpoint format.

Checkpoint = one safetensors file. Tensors ``net.*`` (inference weights, EMA), ``normalizer.mean`` and
``normalizer.std`` (256,); metadata ``format`` = "dposer-prior/1", ``arch`` (the network class: "dposer-scorenet",
the default when absent, or an official DPoser-X architecture, see :mod:`dposer.official`), ``net_config`` (JSON)
and ``info`` (JSON: training command, data, metrics, or provenance). Training checkpoints add ``train.*`` tensors
(raw weights, optimiser, RNG). :func:`load_prior` also reads the authors' Lightning ``.ckpt`` files directly.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors import safe_open

from . import layout
from .model import NetConfig, ScoreNet
from .sde import alpha_sigma

FORMAT = "dposer-prior/1"
ARCH = "dposer-scorenet"
# bf16: about 1.6x the fp32 throughput for large batches on a CPU with native bfloat16 (AVX512-BF16/AMX), with a
# relative error of ~0.4 % in eps; opt-in (docs/benchmarks.md, speed). Without native support it is slower.
PRECISIONS = ("fp32", "bf16")
DEFAULT_CHECKPOINT = Path(__file__).with_name("weights") / "default.safetensors"


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
        v[:, 63:108] = layout.mirror_hand(v[:, 63:108])
        hands_v = np.concatenate([v[:, 63:108][p[:, 63]], v[:, 108:153][p[:, 108]]])
        mean = np.zeros(layout.DIM)
        std = np.ones(layout.DIM)
        for d in range(layout.DIM):
            col = v[p[:, d], d]
            if len(col) > 1:
                mean[d], std[d] = col.mean(), col.std()
        mean[63:108] = mean[108:153] = hands_v.mean(0)
        std[63:108] = std[108:153] = hands_v.std(0)
        return Normalizer(torch.tensor(mean, dtype=torch.float32), torch.tensor(np.maximum(std, min_std), dtype=torch.float32))

    def to(self, device) -> "Normalizer":
        return Normalizer(self.mean.to(device), self.std.to(device))

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        raw = torch.cat([raw[:, :63], layout.mirror_hand(raw[:, 63:108]), raw[:, 108:]], dim=1)
        return (raw - self.mean.to(raw)) / self.std.to(raw)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        raw = x * self.std.to(x) + self.mean.to(x)
        return torch.cat([raw[:, :63], layout.mirror_hand(raw[:, 63:108]), raw[:, 108:]], dim=1)


class Prior:
    """Trained prior on a device; eval mode, no gradients through the network.

    ``dim`` is the network's own vector size: 256 (whole body) or, for an official part model, 63 / 45 / 103. All
    methods take vectors of that size; part models also take 256-D whole-body vectors (what the solvers use).
    """

    def __init__(self, net: ScoreNet, normalizer: Normalizer, info: dict | None = None, device=None,
                 precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = torch.device(device or "cpu")
        self.precision = precision
        if precision == "bf16":
            # the matrices stored in bfloat16 once (autocast would convert them on every call, which made bf16
            # slower than fp32 at batch 1); norms and the rest stay float32, so the results are autocast's own
            net = copy.deepcopy(net)
            for module in net.modules():
                if isinstance(module, torch.nn.Linear):
                    module.to(torch.bfloat16)
        self.net = net.to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.normalizer = normalizer.to(self.device)
        self.info = info or {}
        self.dim = getattr(net, "dim", layout.DIM)

    def _autocast(self):
        return torch.autocast(self.device.type, torch.bfloat16, enabled=self.precision == "bf16")

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None = None, outputs=None,
            time_biases=None) -> torch.Tensor:
        """Network output: predicted noise of x_t (normalised space). With ``precision='bf16'`` the network's
        matrix products run in bfloat16 (autocast; inputs and output stay float32). ``outputs`` (the parts whose
        values the caller uses; the others may be skipped and hold garbage) and ``time_biases`` (from
        :meth:`time_biases`) are speed-ups that only the built-in network takes (:class:`dposer.model.ScoreNet`)."""
        kw = {}
        if isinstance(self.net, ScoreNet):
            kw = {"outputs": outputs, "time_biases": time_biases}
        with torch.no_grad(), self._autocast():
            return self.net(x_t, t, mask, **kw).float()

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None = None, outputs=None,
                time_biases=None) -> torch.Tensor:
        """One-step Tweedie estimate of x_0 from x_t (``outputs``, ``time_biases`` as in :meth:`eps`)."""
        a, s = alpha_sigma(t)
        return (x_t - s[:, None] * self.eps(x_t, t, mask, outputs, time_biases)) / a[:, None]

    def time_biases(self, t: torch.Tensor):
        """The network's per-layer time projections for the times t (m,), for :meth:`eps`; None when the network
        has no such shortcut (released-checkpoint architectures)."""
        if not isinstance(self.net, ScoreNet):
            return None
        with torch.no_grad(), self._autocast():
            return self.net.time_biases(t.to(self.device))

    def score(self, x_t, t, mask=None):
        return -self.eps(x_t, t, mask) / alpha_sigma(t)[1][:, None]

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        return self.normalizer.normalize(raw)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalizer.denormalize(x)


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

    from .io import atomic_write

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


def load_prior(path=None, device=None, precision: str = "fp32") -> Prior:
    """Load a prior; ``path=None`` loads the bundled default checkpoint. ``device``: 'cpu', 'cuda', 'auto' or None (cpu).
    ``precision``: 'fp32' (default) or 'bf16' (network products in bfloat16, see ``PRECISIONS``).

    ``path`` may also be an official DPoser-X Lightning ``.ckpt`` (converted on the fly, see :mod:`dposer.official`).
    """
    if device in (None, "auto"):
        device = "cuda" if device == "auto" and torch.cuda.is_available() else "cpu"
    from . import official

    if path is not None and official.is_lightning_file(path):
        return Prior(*official.convert(path), device=device, precision=precision)
    tensors, meta = read_checkpoint(path or DEFAULT_CHECKPOINT)
    arch = meta.get("arch", ARCH)
    if arch != ARCH and arch not in official.ARCHS:
        raise CheckpointError(f"{path}: unknown network architecture {arch!r} (written by a newer dposer?)")
    try:
        cfg = json.loads(meta["net_config"])
        net = ScoreNet(NetConfig(**cfg)) if arch == ARCH else official.build_net(arch, cfg)
        state = {k[4:]: v.float() for k, v in tensors.items() if k.startswith("net.")}
        net.load_state_dict(state)
        mean, std = tensors["normalizer.mean"], tensors["normalizer.std"]
        norm = Normalizer(mean, std) if arch == ARCH else official.build_normalizer(cfg["kind"], mean, std)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path or DEFAULT_CHECKPOINT}: checkpoint content does not match the network: {e}") from e
    return Prior(net, norm, json.loads(meta.get("info", "{}")), device, precision)
