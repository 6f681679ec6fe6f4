"""Masked mixed training of the whole-body score network.

Part-only data (body, hand, face) is incomplete whole-body data: the network sees only the present parts and
the loss is taken only there. Whole-body samples get parts hidden at random (each with ``hide_prob``, at
least one kept) so the fusion learns cross-part dependencies; the loss covers only the visible parts (a hidden
part's noise cannot be predicted, so training on it would only teach the network to output zero there).
Multi-process via torchrun (DDP; gloo on CPU, nccl on GPU).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from ..formats import data
from ..spec import layout
from ..core.model import NetConfig, ScoreNet, count_parameters
from ..core.prior import Normalizer, read_checkpoint, save_prior
from ..core.sde import T_EPS, perturb


@dataclass
class TrainConfig:
    net: NetConfig = field(default_factory=NetConfig)
    steps: int = 20000
    batch: int = 512
    lr: float = 1e-3
    warmup: int = 500
    weight_decay: float = 0.0
    ema: float = 0.999
    grad_clip: float = 1.0
    mix: dict = field(default_factory=lambda: {"body": 0.25, "hand": 0.25, "face": 0.1, "wholebody": 0.2, "paired": 0.2})
    mirror_wholebody: bool = True
    hide_prob: float = 0.5
    val_every: int = 1000
    ckpt_every: int = 1000
    limit: int | None = None  # use at most this many rows per source (tiny configs / tests)
    # converted BVH body poses (a `dposer corpus` cache, e.g. ~/.cache/dposer/bandai2.npz): the "bvh_body" source
    bvh_body: str | None = None
    bvh_stride: int = 4  # every 4th frame of each take (consecutive 30 fps frames are near-duplicates)

    @staticmethod
    def load(path) -> "TrainConfig":
        d = json.loads(Path(path).read_text())
        net = NetConfig(**d.pop("net", {}))
        unknown = set(d) - set(TrainConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        return TrainConfig(net=net, **d)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["net"] = self.net.to_dict()
        return d


class TrainingData:
    """The four sources as tensors, and a seeded batch sampler with masks."""

    def __init__(self, split: str, limit: int | None = None, root=None, mirror_wholebody: bool = False,
                 bvh_body: str | None = None, bvh_stride: int = 4):
        wholebody = data.load_wholebody_set(split, root)
        if mirror_wholebody:  # left-right mirror images double the joint data; the mirrored face is approximate, so hidden
            present = wholebody.present.copy()
            present[:, layout.PART_SLICES["face"]] = False
            wholebody = data.PoseSet.concat([wholebody, data.PoseSet(layout.mirror_pose(wholebody.vectors), present)])
        self.sources = {
            "body": data.load_part_set("body", split, root),
            "hand": data.load_part_set("hand", split, root),
            "face": data.load_part_set("face", split, root),
            "wholebody": wholebody,
        }
        if bvh_body and split == "train":  # converted BVH takes: body only, and their mirror images
            from .corpus import load_body

            body = load_body(bvh_body, bvh_stride)
            vec = np.zeros((len(body), layout.DIM), np.float32)
            vec[:, layout.PART_SLICES["body"]] = body
            vec = np.concatenate([vec, layout.mirror_pose(vec)])
            present = np.zeros(vec.shape, bool)
            present[:, layout.PART_SLICES["body"]] = True
            self.sources["bvh_body"] = data.PoseSet(vec, present)
        if limit:
            self.sources = {k: v.subset(np.arange(min(limit, len(v)))) for k, v in self.sources.items()}
        self.vec = {k: torch.from_numpy(v.vectors) for k, v in self.sources.items()}
        self.present = {k: torch.from_numpy(v.present) for k, v in self.sources.items()}

    def all(self) -> data.PoseSet:
        return data.PoseSet.concat(list(self.sources.values()))

    def _paired(self, c: int, gen: torch.Generator):
        """Whole-body rows built from independent body, hand, hand and face draws."""
        def pick(name):
            return self.vec[name][torch.randint(len(self.vec[name]), (c,), generator=gen)]
        v = pick("body") + pick("face")
        left, right = layout.PART_SLICES["left_hand"], layout.PART_SLICES["right_hand"]
        v[:, left] = layout.mirrored_hand(pick("hand"), "right_hand")
        v[:, right] = pick("hand")[:, right]
        return v, torch.ones(c, 4, dtype=torch.bool)

    def batch(self, n: int, mix: dict, hide_prob: float, gen: torch.Generator):
        """Raw vectors (n, 256), visible part mask (n, 4) and loss dim mask (n, 256).

        Sources: body, hand, face (part-only rows), wholebody (EgoBody, parts hidden at random) and paired
        (independent part draws glued together, parts hidden at random). EgoBody is the only real joint data
        and has low-rank (PCA-12) hands; the paired rows keep the all-visible model from collapsing onto
        EgoBody's hands, at the price of diluting the body-hand correlation it learns from EgoBody.
        """
        names = list(mix)
        counts = [int(round(n * mix[k] / sum(mix.values()))) for k in names]
        counts[0] += n - sum(counts)
        vecs, pm = [], []
        for name, c in zip(names, counts):
            if name == "paired":
                v, p = self._paired(c, gen)
            else:
                idx = torch.randint(len(self.vec[name]), (c,), generator=gen)
                v = self.vec[name][idx].clone()
                p = torch.from_numpy(layout.part_mask_from_dims(self.present[name][idx].numpy()))
            if name == "hand":  # hand-only rows sit in the right slot; send half to the left slot, mirrored
                left = torch.rand(c, generator=gen) < 0.5
                v[left, layout.PART_SLICES["left_hand"]] = layout.mirrored_hand(v[left], "right_hand")
                v[left, layout.PART_SLICES["right_hand"]] = 0
                p[left, 1], p[left, 2] = True, False
            if name in ("wholebody", "paired") and hide_prob > 0:
                keep = torch.rand(c, 4, generator=gen) >= hide_prob
                keep[~keep.any(1)] = True
                p = p & keep
            vecs.append(v)
            pm.append(p)
        v, p = torch.cat(vecs), torch.cat(pm)
        return v, p, torch.from_numpy(layout.dims_from_part_mask(p.numpy()))


def masked_eps_loss(net, x0, part_mask, loss_mask, t, eps):
    x_t = perturb(x0, t, eps)
    pred = net(x_t, t, part_mask)
    lm = loss_mask.to(x0.dtype)
    return ((pred - eps) ** 2 * lm).sum() / lm.sum().clamp_min(1.0)


def lr_at(step: int, cfg: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg.warmup))
    return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * min(step, cfg.steps) / cfg.steps))


@torch.no_grad()
def validation_loss(net, norm: Normalizer, val: TrainingData, seed: int = 0, n_t: int = 4) -> dict:
    """eps-MSE on each validation source with fixed noise; 'hands_given_body' scores both hands of whole-body
    samples with the body visible, the number the fusion is for."""
    net.eval()
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name in val.vec:
        v = norm.normalize(val.vec[name])
        dm = val.present[name]
        if name == "hand":
            pm = torch.tensor([[False, False, True, False]]).expand(len(v), 4)
        else:
            pm = torch.from_numpy(layout.part_mask_from_dims(dm.numpy()))
        losses = []
        hgb = []
        for k in range(n_t):
            t = torch.full((len(v),), (k + 0.5) / n_t * (1 - T_EPS) + T_EPS)
            eps = torch.randn(v.shape, generator=gen)
            losses.append(masked_eps_loss(net, v, pm, dm, t, eps).item())
            if name == "wholebody":
                hand_dims = torch.zeros(layout.DIM, dtype=torch.bool)
                hand_dims[layout.HANDS] = True
                hgb.append(masked_eps_loss(net, v, pm, hand_dims.expand_as(dm), t, eps).item())
        out[name] = float(np.mean(losses))
        if hgb:
            out["hands_given_body"] = float(np.mean(hgb))
    out["mean"] = float(np.mean([out[k] for k in val.vec]))
    net.train()
    return out


def _opt_tensors(opt: torch.optim.Optimizer) -> dict:
    out = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"train.opt.{i}.{k}"] = torch.as_tensor(v).clone()
    return out


def _load_opt(opt: torch.optim.Optimizer, tensors: dict) -> None:
    sd = opt.state_dict()
    state = {}
    for key, v in tensors.items():
        if key.startswith("train.opt."):
            _, _, i, k = key.split(".", 3)
            state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def train(cfg: TrainConfig, out_dir, seed: int = 0, resume: bool = False, data_root=None,
          progress: bool = True, command: str = "", stop_at: int | None = None, init: str | None = None) -> dict:
    """Train; writes ``last.safetensors`` (resumable) and ``prior.safetensors`` (EMA) into ``out_dir``.

    ``stop_at`` ends this invocation after that step (with a checkpoint) without changing the schedule, so a
    long run can be done in time-boxed pieces with ``resume=True``. ``init`` starts from the (EMA) weights
    and normaliser of an existing prior checkpoint instead of random weights (fine-tuning; same widths).
    """
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = 0
    if distributed:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = dist.get_rank()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if "bvh_body" in cfg.mix and not cfg.bvh_body:
        raise ValueError("the mix has 'bvh_body' but the config names no bvh_body cache (make one: dposer corpus)")
    train_data = TrainingData("train", cfg.limit, data_root, mirror_wholebody=cfg.mirror_wholebody,
                              bvh_body=cfg.bvh_body and os.path.expanduser(cfg.bvh_body), bvh_stride=cfg.bvh_stride)
    val_data = TrainingData("val", cfg.limit, data_root)
    all_train = train_data.all()
    norm = Normalizer.fit(all_train.vectors, all_train.present)
    net = ScoreNet(cfg.net).to(device)
    if init and not (resume and (out_dir / "last.safetensors").exists()):
        from ..core.prior import load_prior

        start = load_prior(init)
        # dropout holds no weights: a fine-tune may change it
        if replace(start.net.cfg, dropout=cfg.net.dropout) != cfg.net:
            raise ValueError(f"--init {init}: its network {start.net.cfg} differs from the config's {cfg.net}")
        net.load_state_dict(start.net.state_dict())
        norm = start.normalizer

    ema = ScoreNet(cfg.net).to(device)
    ema.load_state_dict(net.state_dict())
    ema.eval()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed * 1000 + rank)
    step = 0
    wall_before = 0.0
    last = out_dir / "last.safetensors"
    if resume and last.exists():
        tensors, meta = read_checkpoint(last)
        # the normaliser is part of the run (an --init run keeps its starting checkpoint's): never refit it
        norm = Normalizer(tensors["normalizer.mean"].float(), tensors["normalizer.std"].float())
        net.load_state_dict({k[len("train.raw."):]: v for k, v in tensors.items() if k.startswith("train.raw.")})
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        _load_opt(opt, tensors)
        gen.set_state(tensors[f"train.rng.gen{rank}"] if f"train.rng.gen{rank}" in tensors else tensors["train.rng.gen0"])
        torch.set_rng_state(tensors["train.rng.torch"])
        step = int(meta["step"])
        info_before = json.loads(meta.get("info", "{}"))
        wall_before = info_before.get("wall_seconds", 0.0)
    model = torch.nn.parallel.DistributedDataParallel(net) if distributed else net
    norm_d = norm.to(device)
    log_path = out_dir / "log.jsonl"
    history = []
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress or rank != 0, desc="train", dynamic_ncols=True)
    t_start = time.time()
    info = {"command": command, "seed": seed, "config": cfg.to_dict(), "parameters": count_parameters(net), "init": init,
            "data": "DPoser-X shared sets (AMASS body, ReInterHand/HaMeR hands, WCPA face, EgoBody whole-body)"
                    + (f" + converted BVH bodies ({Path(cfg.bvh_body).name}: Bandai Namco Research Motion dataset 2, "
                       "CC BY-NC 4.0)" if cfg.bvh_body else "")}

    def save(final=False):
        if rank != 0:
            return
        extra = {f"train.raw.{k}": v.detach().cpu().clone() for k, v in net.state_dict().items()}
        extra.update(_opt_tensors(opt))
        extra["train.rng.gen0"] = gen.get_state()
        extra["train.rng.torch"] = torch.get_rng_state()
        info["wall_seconds"] = wall_before + time.time() - t_start
        save_prior(last, ema, norm, info, extra_tensors=extra, extra_meta={"step": str(step)})
        save_prior(out_dir / "prior.safetensors", ema, norm, info)

    net.train()
    end = min(cfg.steps, stop_at or cfg.steps)
    while step < end:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        raw, pm, lm = train_data.batch(cfg.batch, cfg.mix, cfg.hide_prob, gen)
        x0 = norm.normalize(raw).to(device)
        t = (torch.rand(len(x0), generator=gen) * (1 - T_EPS) + T_EPS).to(device)
        eps = torch.randn(x0.shape, generator=gen).to(device)
        loss = masked_eps_loss(model, x0, pm.to(device), lm.to(device), t, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        decay = min(cfg.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pn in zip(ema.parameters(), net.parameters()):
                pe.lerp_(pn, 1 - decay)
            for be, bn in zip(ema.buffers(), net.buffers()):
                be.copy_(bn)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % cfg.val_every == 0 or step == cfg.steps:
            if rank == 0:
                val = validation_loss(ema, norm_d, val_data)
                rec = {"step": step, "train_loss": loss.item(), "val": val, "seconds": time.time() - t_start}
                history.append(rec)
                with open(log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                info["val"] = val
                bar.write(f"step {step}: train {loss.item():.4f} val {val['mean']:.4f} "
                          f"hands|body {val.get('hands_given_body', float('nan')):.4f}")
        if step % cfg.ckpt_every == 0 or step == end:
            save()
    bar.close()
    if distributed:
        dist.barrier()
    return {"history": history, "out": str(out_dir)}
