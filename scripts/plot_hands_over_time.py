"""docs/images/hands_over_time.png: one finger joint's angle over the AMASS finger take's frames 300-600 (the part
the finger dynamics were not fitted on) for the real right hand, Complete's best estimate and one hypothesis
(right hand given the body and the left hand, clip completion at 120 fps).

    DPOSER_DATA=../shared/data python scripts/plot_hands_over_time.py [--output docs/images/hands_over_time.png]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

import dposer
from dposer.formats import data
from dposer.spec import layout

JOINT = "right_index2"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", default=str(Path(__file__).resolve().parents[1] / "docs/images/hands_over_time.png"))
    ap.add_argument("--hypothesis", type=int, default=0, help="which of the 5 hypotheses to draw (default 0)")
    a = ap.parse_args()
    take = data.load_finger_take(os.environ.get("DPOSER_DATA")).subset(np.arange(300, 601))
    fps = float(take.extras.get("framerate", 120.0))
    truth = take.to_dict()
    pose = {k: v for k, v in truth.items() if k != "right_hand_pose"}
    res = dposer.complete(dposer.load_prior(), pose, "right_hand", hypotheses=5, seed=0, clip=True, fps=fps)
    sl = layout.joint_vector_slice(JOINT)
    sl = slice(sl.start - layout.PART_SLICES["right_hand"].start, sl.stop - layout.PART_SLICES["right_hand"].start)
    t = np.arange(len(take)) / fps

    def angle(h):
        return np.degrees(np.linalg.norm(np.asarray(h)[:, sl], axis=1))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=110)
    ax.plot(t, angle(truth["right_hand_pose"]), color="black", lw=2.0, label="real right hand (hidden from Complete)")
    ax.plot(t, angle(res["right_hand_pose"]), color="tab:blue", lw=2.0, label="best estimate (Complete writes it)")
    ax.plot(t, angle(res["right_hand_pose_hypotheses"][a.hypothesis]), color="tab:orange", lw=1.2,
            label=f"hypothesis {a.hypothesis + 1} of 5 (preview)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"{JOINT} angle (deg)")
    ax.set_title("Right hand given body + left hand, AMASS finger take frames 300-600 (120 fps)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    out = Path(a.output)
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
