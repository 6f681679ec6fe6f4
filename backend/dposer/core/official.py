"""The authors' released DPoser-X weights (Hugging Face ``Moon-bow/DPoser-X``, code ``moonbow721/DPoser-X``, MIT).

Reproduces the official networks exactly (spec: ``docs/official_weights.md`` and the format document it cites):

- :class:`TimeFC`: the part network (body 63, hand 45, face 103 = [jaw 3 | expression 100]) and, with other sizes,
  the whole-body fusion MLP (``MaskFC``, 4096 -> 256). Time label tau = 999 t in float32; the output is divided by the
  VE sigma table at index trunc(tau).
- :class:`WholeBodyNet`: the whole-body ``Finetune`` model: the three frozen part nets (one hand net for both hands)
  plus the fusion MLP over their first-layer features, added through ``output_linear``.
- :class:`PartNet`: a released part model as a prior. On its own D-dim vector it is the official network; on the
  256-D whole-body vector that every solver uses it runs on its slice(s) (the hand model on both hands, the left
  one mirrored by the normaliser) and treats the parts it does not model as unit Gaussian in normalised space.

Reading a Lightning ``.ckpt`` never runs its pickle: :func:`read_lightning_checkpoint` uses torch's weights-only
unpickler, which admits tensors and plain containers, plus inert stand-ins for the few harmless objects a real file
holds (an ``ml_collections`` ConfigDict of hyper-parameters and numpy float64 learning rates). Anything else is
refused. :func:`convert` takes the EMA weights (the ones every official tester uses), ignores the body-model
buffers, and pairs the network with the official z-score normaliser (embedded in ``official_normalizers.json``).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..spec import layout
from .checkpoint import CheckpointError, Normalizer, save_prior
from .sde import alpha_sigma

ARCH_PART = "official-timefc"
ARCH_WHOLEBODY = "official-wholebody"
ARCHS = (ARCH_PART, ARCH_WHOLEBODY)
KIND_DIMS = {"body": 63, "hand": 45, "face": 103, "wholebody": layout.DIM}
HUB_REPO = "Moon-bow/DPoser-X"
HUB_FILES = {"body": "body/BaseMLP/last.ckpt", "hand": "hand/BaseMLP/last.ckpt", "face": "face/BaseMLP/last.ckpt",
             "wholebody": "wholebody/mixed/last.ckpt"}
LICENCE = ("DPoser-X code: MIT (moonbow721/DPoser-X). The released weights were trained on AMASS, hand and face "
           "research data sets whose licences allow non-commercial research use only.")
NORMALIZERS_FILE = Path(__file__).resolve().parents[1] / "official_normalizers.json"

# Where each part model works in the 256-D vector. The hand model serves both hands (the left one arrives mirrored
# into right-hand convention); its own 45-D vectors are right hands, so their statistics are the right-hand slice.
SERVES = {"body": (layout.PART_SLICES["body"],),
          "hand": (layout.PART_SLICES["left_hand"], layout.PART_SLICES["right_hand"]),
          "face": (layout.PART_SLICES["face"],)}
OWN_SLICE = {"body": layout.PART_SLICES["body"], "hand": layout.PART_SLICES["right_hand"],
             "face": layout.PART_SLICES["face"]}


# ------------------------------------------------------------------------------------------------ networks

def ve_sigmas(n: int = 1000) -> torch.Tensor:
    """The VE sigma table every official network divides by: exp(linspace(ln 50, ln 0.01, n)), float64 then f32."""
    return torch.exp(torch.linspace(math.log(50.0), math.log(0.01), n, dtype=torch.float64)).float()


def time_label(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(tau, sigma index): tau = 999 t in float32, index = trunc(tau) of that float32 value (not of 999 t in f64)."""
    tau = t.float() * 999
    return tau, tau.long()


def sinusoidal_embedding(tau: torch.Tensor, dim: int) -> torch.Tensor:
    """[sin(tau f_i) ..., cos(tau f_i) ...], f_i = exp(-i ln(10000) / (dim/2 - 1)); the official operation order."""
    half = dim // 2
    step = math.log(10000) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=tau.device) * -step)
    args = tau[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class TimeFC(nn.Module):
    """The official TimeFC (and MaskFC): time-conditioned MLP, two residual blocks, GroupNorm(32), SiLU, output
    divided by the VE sigma table. Parameter names and registration order match the official state dict.
    Dropout (p = 0.1, train mode only) is left out: this module is only used for inference."""

    def __init__(self, d_in: int, hidden: int = 1024, embed: int = 512, d_out: int | None = None):
        super().__init__()
        self.embed = embed
        self.register_buffer("sigmas", ve_sigmas())
        self.pre_dense = nn.Linear(d_in, hidden)
        self.pre_dense_t = nn.Linear(embed, hidden)
        self.pre_gnorm = nn.GroupNorm(32, hidden)
        self.shared_time_embed = nn.Sequential(nn.Linear(embed, embed), nn.SiLU())
        for b in (1, 2):
            for k in (1, 2):
                setattr(self, f"b{b}_dense{k}", nn.Linear(hidden, hidden))
                setattr(self, f"b{b}_dense{k}_t", nn.Linear(embed, hidden))
                setattr(self, f"b{b}_gnorm{k}", nn.GroupNorm(32, hidden))
        self.post_dense = nn.Linear(hidden, d_out or d_in)

    def _layer(self, prefix: str, suffix: str, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """SiLU(GroupNorm(dense(h) + dense_t(temb))) of the layer ``{prefix}dense{suffix}`` (e.g. pre_, b1_ + 2)."""
        dense = getattr(self, f"{prefix}dense{suffix}")
        dense_t = getattr(self, f"{prefix}dense{suffix}_t")
        gnorm = getattr(self, f"{prefix}gnorm{suffix}")
        return nn.functional.silu(gnorm(dense(h) + dense_t(temb)))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tau, idx = time_label(t)
        temb = self.shared_time_embed(sinusoidal_embedding(tau, self.embed))
        h = self._layer("pre_", "", x, temb)
        for b in (1, 2):
            h = h + self._layer(f"b{b}_", "2", self._layer(f"b{b}_", "1", h, temb), temb)
        return self.post_dense(h) / self.sigmas[idx][:, None]


@dataclass
class OfficialConfig:
    kind: str  # body, hand, face or wholebody

    def to_dict(self) -> dict:
        return asdict(self)


def _gaussian_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Exact noise prediction for unit-Gaussian data in normalised space: sigma_t / (alpha_t^2 + sigma_t^2) x_t."""
    a, s = alpha_sigma(t.float())
    return (s / (a * a + s * s))[:, None] * x


class PartNet(TimeFC):
    """A released part model (body, hand or face) as a prior network.

    ``forward(x, t, mask=None)``: x of the model's own dimension gives the official output; x of 256 dims runs the
    model on the slice(s) it serves and a unit-Gaussian answer elsewhere. ``mask`` is ignored (as officially).
    """
    arch = ARCH_PART

    def __init__(self, cfg: OfficialConfig):
        if cfg.kind not in SERVES:
            raise ValueError(f"part kind must be one of {', '.join(SERVES)}, got {cfg.kind!r}")
        super().__init__(KIND_DIMS[cfg.kind])
        self.cfg = cfg
        self.dim = KIND_DIMS[cfg.kind]

    def forward(self, x: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[-1] == self.dim:
            return super().forward(x, t)
        if x.shape[-1] != layout.DIM:
            raise ValueError(f"official {self.cfg.kind} model: expected {self.dim} or {layout.DIM} dims, "
                             f"got {x.shape[-1]}")
        slices = SERVES[self.cfg.kind]
        own = super().forward(torch.cat([x[:, sl] for sl in slices]), t.repeat(len(slices)))
        out = _gaussian_eps(x, t)
        for sl, part in zip(slices, own.split(x.shape[0])):
            out[:, sl] = part
        return out


class WholeBodyNet(nn.Module):
    """The official whole-body ``Finetune`` model over [body | left hand | right hand | face] (256-D).

    ``forward(x, t, mask=None)``: mask (N, 4) bools for body, left hand, right hand, face; a hidden part is zeroed
    at the input (its output columns are still computed). out = concat(part nets) + output_linear(MaskFC(features)),
    features = the part nets' first Linear (``pre_dense``) of each slice.
    """
    arch = ARCH_WHOLEBODY
    dim = layout.DIM

    def __init__(self, cfg: OfficialConfig | None = None):
        super().__init__()
        self.cfg = cfg or OfficialConfig("wholebody")
        self.base_model = nn.ModuleDict({"body_model": TimeFC(63), "hand_model": TimeFC(45), "face_model": TimeFC(103)})
        self.mask_fc = TimeFC(4 * 1024, hidden=512, embed=256, d_out=layout.DIM)
        self.output_linear = nn.Linear(layout.DIM, layout.DIM)

    def forward(self, x: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        parts = [x[:, layout.PART_SLICES[p]] for p in layout.PARTS]
        if mask is not None:
            m = mask.to(x.dtype)
            parts = [p * m[:, i : i + 1] for i, p in enumerate(parts)]
        b = self.base_model
        nets = (b["body_model"], b["hand_model"], b["hand_model"], b["face_model"])
        base = torch.cat([net(p, t) for net, p in zip(nets, parts)], dim=1)
        features = torch.cat([net.pre_dense(p) for net, p in zip(nets, parts)], dim=1)
        return base + self.output_linear(self.mask_fc(features, t))


def build_net(arch: str, cfg: dict) -> nn.Module:
    cfg = OfficialConfig(**cfg)
    if arch == ARCH_WHOLEBODY and cfg.kind == "wholebody":
        return WholeBodyNet(cfg)
    if arch == ARCH_PART and cfg.kind in SERVES:
        return PartNet(cfg)
    raise ValueError(f"architecture {arch!r} does not take kind {cfg.kind!r}")


# ------------------------------------------------------------------------------------------------ normaliser

def official_normalizer_vectors() -> tuple[torch.Tensor, torch.Tensor]:
    """The official whole-body z-score statistics (256,): body | hand | hand | jaw | expression (MIT, see the file)."""
    d = json.loads(NORMALIZERS_FILE.read_text())
    parts = ("body", "hand", "hand", "jaw", "expression")
    mean = torch.tensor([v for p in parts for v in d[p]["mean"]], dtype=torch.float32)
    std = torch.tensor([v for p in parts for v in d[p]["std"]], dtype=torch.float32)
    return mean, std


class PartNormalizer(Normalizer):
    """The official whole-body normaliser on 256-D vectors (left hand mirrored); on a part model's own vectors its
    slice of the statistics (the hand model's own vectors are right hands: no mirroring)."""

    def __init__(self, mean, std, kind: str):
        super().__init__(mean, std)
        self.kind = kind

    def to(self, device) -> "PartNormalizer":
        return PartNormalizer(self.mean.to(device), self.std.to(device), self.kind)

    def _own(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        if v.shape[-1] == layout.DIM:
            return None
        sl = OWN_SLICE[self.kind]
        if v.shape[-1] != sl.stop - sl.start:
            raise ValueError(f"official {self.kind} normaliser: expected {sl.stop - sl.start} or {layout.DIM} dims, "
                             f"got {v.shape[-1]}")
        return self.mean[sl].to(v), self.std[sl].to(v)

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        own = self._own(raw)
        return super().normalize(raw) if own is None else (raw - own[0]) / own[1]

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        own = self._own(x)
        return super().denormalize(x) if own is None else x * own[1] + own[0]


def build_normalizer(kind: str, mean: torch.Tensor, std: torch.Tensor) -> Normalizer:
    return Normalizer(mean, std) if kind == "wholebody" else PartNormalizer(mean, std, kind)


# ------------------------------------------------------------------------------------------------ reading .ckpt

class _Inert:
    """Stand-in for the harmless non-tensor objects of a real Lightning file: the ``ml_collections`` ConfigDict of
    hyper-parameters, numpy float64 learning rates and their dtype. Accepts any arguments and state, keeps and runs
    nothing."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __repr__(self):
        return "<ignored>"


# The only globals admitted beyond torch's weights-only defaults (tensors, storages, OrderedDict, _codecs.encode...),
# each mapped to the inert stand-in: the named module is never imported, nothing it defines is called.
INERT_GLOBALS = (
    "ml_collections.config_dict.config_dict.ConfigDict",
    "numpy.core.multiarray.scalar",   # numpy 1.x (the authors' environment)
    "numpy._core.multiarray.scalar",  # numpy 2.x
    "numpy.dtype",
)


def _refused(path: Path, what: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: refused to load: its pickle references {what}, which an official DPoser-X checkpoint does not "
        f"contain. The file was not executed. Accepted are tensors, plain containers and, as inert stand-ins that "
        f"run nothing, {', '.join(INERT_GLOBALS)}.")


def _unpickler_reason(e: Exception) -> str:
    """The weights-only unpickler's own reason, without torch's generic advice around it (which suggests
    weights_only=False, exactly what must not be done with an untrusted file)."""
    skip = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [ln.replace("WeightsUnpickler error:", "").strip() for ln in str(e).splitlines()]
    return " ".join(ln for ln in lines if ln and not ln.startswith(skip)) or type(e).__name__


def read_lightning_checkpoint(path) -> dict:
    """The top-level dict of a Lightning ``.ckpt`` through torch's weights-only unpickler (never plain pickle)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    ser = torch.serialization
    if not hasattr(ser, "get_unsafe_globals_in_checkpoint"):
        raise CheckpointError(f"{path}: reading official DPoser-X checkpoints needs torch >= 2.6 "
                              f"(have {torch.__version__})")
    allowed = [(_Inert, name) for name in INERT_GLOBALS]
    try:
        with ser.safe_globals(allowed):
            if zipfile.is_zipfile(path):  # name the offending globals up front (static scan, nothing runs)
                unsafe = ser.get_unsafe_globals_in_checkpoint(str(path))
                if unsafe:
                    raise _refused(path, ", ".join(sorted(unsafe)))
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _unpickler_reason(e)
        if any(w in reason for w in ("GLOBAL", "global", "function", "Can only")):
            raise _refused(path, f"something outside the allowed set ({reason})") from e
        raise CheckpointError(f"{path}: not a readable PyTorch/Lightning checkpoint: {reason}") from e
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch/Lightning checkpoint: {e}") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "model_ema" not in ckpt:
        raise CheckpointError(f"{path}: not a DPoser-X Lightning checkpoint (needs 'state_dict' and 'model_ema')")
    return ckpt


def detect_kind(model_state: dict) -> str:
    if any(k.startswith("base_model.") for k in model_state):
        return "wholebody"
    w = model_state.get("pre_dense.weight")
    d = None if w is None else w.shape[1]
    kinds = {v: k for k, v in KIND_DIMS.items()}
    if d in kinds and d != layout.DIM:
        return kinds[d]
    extra = " (the face-shape model is not supported)" if d == 100 else ""
    raise CheckpointError(f"not a known DPoser-X model: input dim {d}{extra}")


def _trainable(name: str) -> bool:
    """Names that have an EMA shadow: every parameter except the frozen part nets of the whole-body model and its
    ``zero_linear`` (an alias of ``output_linear``, listed once by ``parameters()``)."""
    return name.split(".")[-1] != "sigmas" and not name.startswith(("base_model.", "zero_linear."))


def inference_state(ckpt: dict, weights: str = "ema") -> tuple[str, dict[str, torch.Tensor]]:
    """(kind, state dict of our network) from a Lightning checkpoint dict. ``weights='ema'`` (the official
    inference weights) or 'raw' (the online weights, for checks only)."""
    sd = ckpt["state_dict"]
    model = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    kind = detect_kind(model)
    names = [k for k in model if _trainable(k)]
    if weights == "ema":
        shadows = ckpt["model_ema"].get("shadow_params") if isinstance(ckpt["model_ema"], dict) else None
        if not isinstance(shadows, (list, tuple)) or len(shadows) != len(names):
            n = len(shadows) if isinstance(shadows, (list, tuple)) else None
            raise CheckpointError(f"EMA has {n} shadow tensors, the {kind} model has {len(names)} trainable ones")
        for name, s in zip(names, shadows):
            if not isinstance(s, torch.Tensor) or s.shape != model[name].shape:
                raise CheckpointError(f"EMA shadow for {name}: shape {getattr(s, 'shape', None)}, "
                                      f"expected {tuple(model[name].shape)}")
            model[name] = s
    elif weights != "raw":
        raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
    state = {k: v.detach().float().clone() for k, v in model.items() if not k.startswith("zero_linear.")}
    return kind, state


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def convert(path, kind: str | None = None, weights: str = "ema") -> tuple[nn.Module, Normalizer, dict]:
    """(network, normaliser, provenance info) of an official DPoser-X ``.ckpt``; ``kind`` checks the detected one."""
    path = Path(path)
    ckpt = read_lightning_checkpoint(path)
    try:
        found, state = inference_state(ckpt, weights)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from e
    if kind is not None and kind != found:
        raise CheckpointError(f"{path}: --kind {kind} given, but the file holds the {found} model")
    cfg = OfficialConfig(found)
    net = WholeBodyNet(cfg) if found == "wholebody" else PartNet(cfg)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the official {found} network: {e}") from e
    info = {
        "source": "official DPoser-X release (Lightning checkpoint), converted by dposer import-official",
        "kind": found, "dim": KIND_DIMS[found], "weights": weights,
        "file": path.name, "sha256": _file_sha256(path),
        "hub": f"{HUB_REPO}/{HUB_FILES[found]}",
        "normalizer": "official z-score: " + json.loads(NORMALIZERS_FILE.read_text())["source"],
        "licence": LICENCE,
    }
    for key, value in (("pytorch_lightning_version", ckpt.get("pytorch-lightning_version")),
                       ("epoch", ckpt.get("epoch")), ("global_step", ckpt.get("global_step")),
                       ("ema_num_updates", ckpt["model_ema"].get("num_updates"))):
        if isinstance(value, (int, str)):
            info[key] = value
    return net, build_normalizer(found, *official_normalizer_vectors()), info


def is_lightning_file(path) -> bool:
    """A pickle-based PyTorch file (by suffix or zip signature) rather than safetensors."""
    path = Path(path)
    if path.suffix in (".ckpt", ".pt", ".pth"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def import_official(path, out, kind: str | None = None) -> dict:
    """Convert an official ``.ckpt`` to our safetensors format at ``out``; returns the provenance info."""
    net, norm, info = convert(path, kind)
    save_prior(out, net, norm, info)
    return info


# ------------------------------------------------------------------------------------------------ download

MANUAL = ("Download the files by hand from https://huggingface.co/{repo} ({files}), put them anywhere (e.g. "
          "~/dposer-x/<hub path>) and use them directly (--checkpoint path/to/last.ckpt) or convert them once with "
          "'dposer import-official path/to/last.ckpt --out body.safetensors'. See docs/official_weights.md.")


def _check_hub_reachable(endpoint: str, timeout: float) -> None:
    """One request with a short timeout (proxy settings respected), so that no network fails in seconds instead of
    after huggingface_hub's retries. An HTTP error status still means the hub answered."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/api/models/{HUB_REPO}", method="HEAD"),
                               timeout=timeout).close()
    except urllib.error.HTTPError:
        pass
    except (OSError, ValueError) as e:
        raise OSError(f"{endpoint} is not reachable: {getattr(e, 'reason', e)}") from e


def download_official(out_dir, kinds=tuple(HUB_FILES), timeout: float = 10.0, convert_to_safetensors: bool = True,
                      log=print) -> dict[str, Path]:
    """Fetch the released checkpoints from the hub into ``out_dir`` (hub paths kept) and, by default, convert each
    to ``out_dir/dposer-x-<kind>.safetensors``. Needs the optional ``huggingface_hub`` (extra ``official``) and
    network; fails fast with instructions for a manual download otherwise. Returns kind -> usable checkpoint."""
    manual = MANUAL.format(repo=HUB_REPO, files=", ".join(HUB_FILES[k] for k in kinds))
    try:
        import huggingface_hub
    except ImportError:
        raise CheckpointError("downloading needs huggingface_hub (pip install 'blender-dposer[official]'). "
                              + manual) from None
    try:
        _check_hub_reachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/"), timeout)
    except OSError as e:
        raise CheckpointError(f"cannot reach the Hugging Face hub ({e}). " + manual) from e
    out_dir = Path(out_dir)
    result = {}
    for kind in kinds:
        try:
            ckpt = huggingface_hub.hf_hub_download(HUB_REPO, HUB_FILES[kind], local_dir=str(out_dir),
                                                   etag_timeout=timeout)
        except Exception as e:  # noqa: BLE001 - any hub/network failure gets the same advice
            raise CheckpointError(f"could not download {HUB_REPO}/{HUB_FILES[kind]} "
                                  f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). " + manual) from e
        log(f"downloaded {HUB_FILES[kind]} -> {ckpt}")
        result[kind] = Path(ckpt)
        if convert_to_safetensors:
            target = out_dir / f"dposer-x-{kind}.safetensors"
            import_official(ckpt, target, kind)
            log(f"converted -> {target}")
            result[kind] = target
    return result
