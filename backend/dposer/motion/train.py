"""Training the motion prior (``dposer motion-train``): masked diffusion over windows of the motion corpus.

    OMP_NUM_THREADS=1 nohup dposer motion-train --out ~/.cache/dposer/motion/run \
        > ~/.cache/dposer/motion/train.log 2>&1 &
    dposer motion-train --out ~/.cache/dposer/motion/run --resume      # go on after a stop
    torchrun --nproc_per_node 2 -m dposer motion-train --out RUN          # several processes (DDP)

Each sample is a window of a training take (mirrored left/right with probability 1/2) with a random mask (see
:func:`dposer.motion.masks.random_mask`). The loss is the squared error of the predicted clean residual on the
missing cells. ``OUT/last.safetensors`` (resumable: raw and EMA weights, optimiser, RNG) is written every
``ckpt_seconds``; ``OUT/motion.safetensors`` holds the EMA weights alone. ``OUT/log.jsonl`` has the validation
record: the fill error of the EMA network against the interpolation on fixed validation windows.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..spec import layout
from ..core.torch_rotations import axis_angle_to_quaternion
from . import corpus, masks
from .checkpoint import read_motion, save_motion
from .model import MotionConfig, MotionNet, alpha_bar, count_parameters, finish, prepare, sample


@dataclass
class MotionTrainConfig:
    net: MotionConfig = field(default_factory=MotionConfig)
    steps: int = 200000
    batch: int = 32
    lr: float = 5e-4
    warmup: int = 300
    ema: float = 0.999
    grad_clip: float = 1.0
    val_every: int = 500
    ckpt_seconds: float = 180.0
    val_windows: int = 48
    other_share: float = 0.0  # share of training windows from takes outside Bandai Namco (see Windows)
    speed: tuple = (1.0, 1.0)  # training windows play at a random speed in this range (see Windows)

    def to_dict(self) -> dict:
        return asdict(self)


def _mirror(rot: np.ndarray) -> np.ndarray:
    """Left-right mirror of (F, 22, 3): joints swap sides, (x, y, z) -> (x, -y, -z)."""
    names = layout.JOINT_NAMES[:22]
    perm = [names.index("right" + n[4:]) if n.startswith("left") else
            names.index("left" + n[5:]) if n.startswith("right") else i for i, n in enumerate(names)]
    return rot[:, perm] * np.array([1.0, -1.0, -1.0], np.float32)


class Windows:
    """Takes of one split as quaternions, with their mirror images; random windows of W frames.

    ``other_share`` of the windows come from takes outside Bandai Namco (other studios, AMASS): Bandai holds most
    of the frames, and a prior that only knows its studio's style fills other studios' takes no better than SLERP
    (docs/model_card.md). ``speed`` (lo, hi) plays each window at a random speed in that range (log-uniform;
    quaternion lerp between the frames around each sample time), so the prior sees the same motion faster and
    slower: takes come at 24-240 fps and people move at many tempi."""

    def __init__(self, split: str, frames: int, path=None, mirror: bool = True, other_share: float = 0.0,
                 speed: tuple[float, float] = (1.0, 1.0)):
        hi = max(speed)
        need = int(np.ceil((frames - 1) * hi)) + 1  # source frames a window needs at the fastest speed
        named = [(n, r) for n, r in corpus.load(split, path) if len(r) >= need]
        if not named:
            raise ValueError(f"no {split} take has {need} frames")
        takes = [r for _, r in named]
        other = np.array([not n.startswith("bandai") for n, _ in named])
        if mirror:
            takes = takes + [_mirror(r) for r in takes]
            other = np.r_[other, other]
        rot = torch.from_numpy(np.concatenate(takes))
        self.quat = axis_angle_to_quaternion(rot)
        lens = np.array([len(r) for r in takes])
        starts = np.r_[0, np.cumsum(lens)[:-1]]
        firsts = [s + np.arange(n - need + 1) for s, n in zip(starts, lens)]
        self.first = np.concatenate(firsts)  # window starts
        from_other = np.concatenate([np.full(len(f), o) for f, o in zip(firsts, other)])
        share = other_share if from_other.any() and not from_other.all() else 0.0
        # sampling weight per window start: the other sources together get `share` of the windows
        w = np.where(from_other, share / max(1, from_other.sum()), (1 - share) / max(1, (~from_other).sum()))
        self.p = None if share == 0.0 else w / w.sum()
        self.frames, self.speed = frames, (float(min(speed)), float(hi))

    def batch(self, n: int, gen: torch.Generator) -> torch.Tensor:
        if self.p is None:
            pick = torch.randint(len(self.first), (n,), generator=gen).numpy()
        else:
            u = torch.rand(n, generator=gen, dtype=torch.float64).numpy()
            pick = np.minimum(np.searchsorted(np.cumsum(self.p), u), len(self.first) - 1)
        lo, hi = self.speed
        if hi == lo == 1.0:
            idx = self.first[pick][:, None] + np.arange(self.frames)[None]
            return self.quat[torch.from_numpy(idx)]
        s = np.exp(np.log(lo) + (np.log(hi) - np.log(lo)) * torch.rand(n, generator=gen, dtype=torch.float64).numpy())
        t = np.arange(self.frames)[None] * s[:, None]  # source time (frames) of each sample
        k = np.floor(t).astype(np.int64)
        a = torch.from_numpy(t - k).float()[..., None]
        q0 = self.quat[torch.from_numpy(self.first[pick][:, None] + k)]
        q1 = self.quat[torch.from_numpy(self.first[pick][:, None] + k + 1)]
        q1 = torch.where((q0 * q1).sum(-1, keepdim=True) < 0, -q1, q1)
        q = q0 * (1 - a[..., None]) + q1 * a[..., None]
        return q / q.norm(dim=-1, keepdim=True)

def lr_at(step: int, cfg: MotionTrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * p)))


def residual_scale(win: Windows, gen: torch.Generator, n: int = 512) -> float:
    """RMS of the true residual over the interpolation on missing cells of random masked windows."""
    q = win.batch(n, gen)
    m = masks.random_mask(n, win.frames, gen)
    x6, b6, _ = prepare(q, m)
    return float(((x6 - b6)[m] ** 2).mean().sqrt())


def loss_fn(net, q, m, scale: float, gen: torch.Generator):
    x6, b6, _ = prepare(q, m)
    r0 = (x6 - b6) / scale * m[..., None]
    t = torch.rand(len(q), generator=gen)
    ab = alpha_bar(t)[:, None, None, None]
    eps = torch.randn(r0.shape, generator=gen)
    r_t = (ab.sqrt() * r0 + (1 - ab).sqrt() * eps) * m[..., None]
    pred = net(r_t, b6, m, t)
    err = (((pred - r0) ** 2).sum(-1) * m).sum((1, 2)) / m.sum((1, 2)).clamp(min=1)  # per window
    # windows with a joint missing throughout (its base is the identity, its residual large) weigh less, so the
    # gaps' small residuals lead the training
    w = torch.where(m.all(1).any(-1), 0.2, 1.0)
    return (err * w).sum() / w.sum()


@torch.no_grad()
def validate(net, val: dict, scale: float, steps: int = 10) -> dict:
    """Mean geodesic degrees of the filled cells, the network's and the interpolation's, per mask kind."""
    out = {}
    for kind, (q, m) in val.items():
        x6, b6, turn = prepare(q, m)
        r = sample(net, b6, m, scale, steps=steps)
        truth = finish(x6, torch.zeros_like(x6), turn)
        errs = []
        for resid in (r, torch.zeros_like(r)):
            rel = finish(b6, resid, turn).transpose(-1, -2) @ truth
            cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
            errs.append(float(torch.rad2deg(torch.acos(cos))[m].mean()))
        out[kind] = {"fill": round(errs[0], 3), "slerp": round(errs[1], 3), "ratio": round(errs[0] / errs[1], 4)}
    out["mean_ratio"] = round(float(np.mean([v["ratio"] for v in out.values()])), 4)
    return out


def validation_set(win: Windows, n: int, frames: int) -> dict:
    """Fixed validation windows: gaps of 8 / 15 / 30 frames over the whole body, the left leg and the right arm."""
    gen = torch.Generator().manual_seed(12345)
    q = win.batch(n, gen)
    out = {}
    for part in ("body", "left_leg", "right_arm"):
        for gap in (8, 15, 30):
            out[f"{part}_{gap}"] = (q, masks.gap_mask(n, frames, gap, masks.part_joints(part)))
    return out


def train(out_dir, cfg: MotionTrainConfig | None = None, resume: bool = False, corpus_path=None, seed: int = 0,
          command: str = "", log=print) -> Path:
    cfg = cfg or MotionTrainConfig()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = 0
    if distributed:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = dist.get_rank()
    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    last = out_dir / "last.safetensors"
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed * 1000 + rank)
    train_w = Windows("train", cfg.net.frames, corpus_path, other_share=cfg.other_share, speed=tuple(cfg.speed))
    val = validation_set(Windows("val", cfg.net.frames, corpus_path, mirror=False), cfg.val_windows, cfg.net.frames)
    net = MotionNet(cfg.net)
    ema = MotionNet(cfg.net)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.01)
    step, wall_before = 0, 0.0
    if resume and last.exists():
        tensors, meta = read_motion(last)
        if json.loads(meta["net_config"]) != cfg.net.to_dict():
            raise ValueError(f"{last}: its network {meta['net_config']} differs from the config's {cfg.net}")
        net.load_state_dict({k[len("train.raw."):]: v for k, v in tensors.items() if k.startswith("train.raw.")})
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        opt_state = {int(k.split(".")[2]): {} for k in tensors if k.startswith("train.opt.")}
        for k, v in tensors.items():
            if k.startswith("train.opt."):
                _, _, i, name = k.split(".", 3)
                opt_state[int(i)][name] = v
        sd = opt.state_dict()
        sd["state"] = opt_state
        opt.load_state_dict(sd)
        gen.set_state(tensors["train.rng.gen"])
        torch.set_rng_state(tensors["train.rng.torch"])
        scale = float(meta["resid_scale"])
        step = int(meta["step"])
        wall_before = float(json.loads(meta["info"]).get("wall_seconds", 0.0))
        log(f"resumed at step {step}")
    else:
        ema.load_state_dict(net.state_dict())
        scale = residual_scale(train_w, torch.Generator().manual_seed(7))
    ema.eval()
    model = torch.nn.parallel.DistributedDataParallel(net) if distributed else net
    info = {"command": command, "seed": seed, "config": cfg.to_dict(), "parameters": count_parameters(net),
            "data": "motion corpus train split (Bandai Namco dataset 2, AMASS, other-studio BVH): see "
                    "dposer.motion.corpus", "rate": corpus.RATE}
    log(f"{count_parameters(net)} parameters, {len(train_w.first)} training windows, residual scale {scale:.4f}")
    t0, t_ckpt = time.time(), time.time()

    def save():
        if rank != 0:
            return
        extra = {f"train.raw.{k}": v.detach().clone() for k, v in net.state_dict().items()}
        for i, st in opt.state_dict()["state"].items():
            for name, v in st.items():
                extra[f"train.opt.{i}.{name}"] = torch.as_tensor(v).clone()
        extra["train.rng.gen"] = gen.get_state()
        extra["train.rng.torch"] = torch.get_rng_state()
        info["wall_seconds"] = wall_before + time.time() - t0
        save_motion(last, ema, scale, info, extra_tensors=extra, extra_meta={"step": str(step)})
        save_motion(out_dir / "motion.safetensors", ema, scale, info | {"step": step})

    net.train()
    while step < cfg.steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        q = train_w.batch(cfg.batch, gen)
        m = masks.random_mask(cfg.batch, cfg.net.frames, gen)
        loss = loss_fn(model, q, m, scale, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        decay = min(cfg.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pn in zip(ema.parameters(), net.parameters()):
                pe.lerp_(pn, 1 - decay)
        if rank == 0 and step % cfg.val_every == 0:
            v = validate(ema, val, scale)
            rec = {"step": step, "loss": round(loss.item(), 5), "val": v, "seconds": round(time.time() - t0, 1)}
            with open(out_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            info["val"] = v
            log(f"step {step} loss {loss.item():.4f} val ratio {v['mean_ratio']:.3f} "
                + " ".join(f"{k}:{x['ratio']:.2f}" for k, x in v.items() if isinstance(x, dict))
                + f" ({time.time() - t0:.0f} s)")
        if time.time() - t_ckpt > cfg.ckpt_seconds or step == cfg.steps:
            save()
            t_ckpt = time.time()
    save()
    return out_dir / "motion.safetensors"
