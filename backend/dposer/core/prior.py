"""A loaded pose prior: score network + normaliser + SDE on a device (:class:`Prior`), and :func:`load_prior`.

The checkpoint format and the normaliser are :mod:`dposer.core.checkpoint` (re-exported here); the official DPoser-X
networks and their Lightning files are :mod:`dposer.core.official`. This module imports both; neither imports it.
"""
from __future__ import annotations

import copy
import json
from typing import Sequence

import torch

from ..spec import layout
from . import official
from .checkpoint import (ARCH, DEFAULT_CHECKPOINT, FORMAT, CheckpointError, Normalizer, checkpoint_tensors,
    read_checkpoint, save_prior)
from .model import NetConfig, ScoreNet
from .sde import alpha_sigma

# bf16: about 1.6x the fp32 throughput for large batches on a CPU with native bfloat16 (AVX512-BF16/AMX), with a
# relative error of ~0.4 % in eps; opt-in (docs/benchmarks.md, speed). Without native support it is slower.
PRECISIONS = ("fp32", "bf16")


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
        :meth:`time_biases`) are speed-ups that only the built-in network takes (:class:`dposer.core.model.ScoreNet`)."""
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

    def denoiser(self, part_mask: torch.Tensor | None = None, used_dims: torch.Tensor | None = None,
                 ts: Sequence[float] | None = None) -> "_BoundDenoiser":
        """This prior as a :class:`dposer.core.denoiser.Denoiser` with its speed options bound (what the solvers call):
        ``part_mask`` (N, 4) as in :meth:`eps`; ``used_dims`` bool (256,), the dims whose denoised values the
        caller uses (the network skips the heads of the other parts); ``ts`` the times it will be called at (their
        time projections computed once, in one batched product; other times are computed as usual)."""
        return _BoundDenoiser(self, part_mask, used_dims, ts)

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


class _BoundDenoiser:
    """:meth:`Prior.denoise` with the part mask, the used parts and precomputed time projections bound."""

    def __init__(self, prior: Prior, part_mask, used_dims, ts):
        self.prior, self.part_mask = prior, part_mask
        self.outputs = None  # all parts
        if used_dims is not None and used_dims.shape[-1] == layout.DIM:
            self.outputs = tuple(bool(used_dims[layout.PART_SLICES[p]].any()) for p in layout.PARTS)
        self.rows: dict[float, dict] = {}  # t -> the time projections' (1, width) rows, per module and layer
        if ts is not None and len(ts):
            ts = torch.tensor(list(ts), dtype=torch.float32)
            biases = prior.time_biases(ts)
            if biases is not None:
                split = {name: [b.split(1) for b in layers] for name, layers in biases.items()}
                for k, t in enumerate(ts.tolist()):
                    self.rows.setdefault(t, {name: [rows[k] for rows in layers] for name, layers in split.items()})

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # the precomputed rows serve a batch at one time (a solver step); anything else is computed as usual
        biases = self.rows.get(float(t[0])) if self.rows and len(t) else None
        if biases is not None and len(t) > 1 and not bool((t == t[0]).all()):
            biases = None
        return self.prior.denoise(x_t, t, self.part_mask, outputs=self.outputs, time_biases=biases)


def load_prior(path=None, device=None, precision: str = "fp32") -> Prior:
    """Load a prior; ``path=None`` loads the bundled default checkpoint. ``device``: 'cpu', 'cuda', 'auto' or None (cpu).
    ``precision``: 'fp32' (default) or 'bf16' (network products in bfloat16, see ``PRECISIONS``).

    ``path`` may also be an official DPoser-X Lightning ``.ckpt`` (converted on the fly, see :mod:`dposer.core.official`).
    """
    if device in (None, "auto"):
        device = "cuda" if device == "auto" and torch.cuda.is_available() else "cpu"
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
