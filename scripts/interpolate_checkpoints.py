"""Interpolate the weights of two priors of the same network and normaliser (a fine-tune and its start):
(1 - alpha) * A + alpha * B, written as a new checkpoint. An experiment of docs/model_card.md (v1 / v2, alpha 0.5).

    python scripts/interpolate_checkpoints.py A.safetensors B.safetensors --alpha 0.5 --out mix.safetensors
"""
import argparse

import torch

from dposer.core.checkpoint import save_prior
from dposer.core.prior import load_prior


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--alpha", type=float, default=0.5, help="weight of B (default 0.5)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    a, b = load_prior(args.a), load_prior(args.b)
    if a.net.cfg != b.net.cfg:
        raise SystemExit(f"different networks: {a.net.cfg} vs {b.net.cfg}")
    if not (torch.equal(a.normalizer.mean, b.normalizer.mean) and torch.equal(a.normalizer.std, b.normalizer.std)):
        raise SystemExit("different normalisers: only a fine-tune and its start can be interpolated")
    sa, sb = a.net.state_dict(), b.net.state_dict()
    a.net.load_state_dict({k: (1 - args.alpha) * sa[k].float() + args.alpha * sb[k].float() for k in sa})
    info = {"interpolation": f"{1 - args.alpha} x {args.a} + {args.alpha} x {args.b}"}
    save_prior(args.out, a.net, a.normalizer, info)


if __name__ == "__main__":
    main()
