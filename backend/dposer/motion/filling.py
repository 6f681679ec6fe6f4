"""Filling gaps of a take (``dposer fill``): the motion prior or the take's own motion where they prove themselves,
else the better free answer.

For each run of missing frames the candidates are SLERP, the cubic rotation spline, the *take match* (the
stretches of the take whose surroundings look most like the gap's, bent onto its edges: :mod:`dposer.motion.matching`)
and the motion prior when one is loaded. Each also fills *probe* gaps of the same shape placed in the observed
motion beside the real one (up to four, before and after), where the truth is known. The gap gets the answers' mean
weighted by their errors on the probes, the best one weighing most (:func:`probe_weights`; gaps without room for
two probes: SLERP, see FALLBACK). So a take unlike anything the prior learned, and unlike itself elsewhere, gets a
free answer. Cells outside the gap are never written: the output's other values are the input's, bit for bit.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..formats.npz import DataError, Npz, check_output, save_npz, write_text
from ..core.torch_rotations import quaternion_to_axis_angle
from . import interp, matching
from .take import stack
from .masks import part_joints

N_PROBES = 4
MIN_PROBES = 2  # fewer probes than this decide nothing: the gap gets the fallback
FREE = ("slerp", "spline")  # the free answers
# The answer when the probes cannot decide: SLERP. The cubic spline overshoots on long gaps (2 s gaps of the
# held-out takes: 21-58 deg against SLERP's 11-31, docs/benchmarks.md, fill), SLERP stays between the edges.
FALLBACK = "slerp"
SOFTNESS = 0.1  # an answer whose probe error is 10% above the best one's weighs 1/e of it (probe_weights)


def geodesic_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (degrees) between axis-angle rotations (..., 3)."""
    shape = a.shape[:-1]
    d = Rotation.from_rotvec(a.reshape(-1, 3)).inv() * Rotation.from_rotvec(b.reshape(-1, 3))
    return np.degrees(d.magnitude()).reshape(shape)


def probe_offsets(mask: np.ndarray, first: int, last: int) -> list[int]:
    """Shifts of the gap first..last (its mask pattern) into fully observed motion beside it (nearest first)."""
    n = len(mask)
    length = last - first + 1
    step = length + max(2, length // 4)
    joints = mask[first:last + 1].any(0)
    out = []
    for k in (1, 2, 3):
        for o in (-k * step, k * step):
            a, b = first + o, last + o
            if a >= 1 and b <= n - 2 and not mask[a - 1:b + 2][:, joints].any():
                out.append(o)
    return out[:N_PROBES]


def fill(rot: np.ndarray, mask: np.ndarray, fps: float, prior=None, steps: int = 10,
         check: bool = True, match: bool = True) -> tuple[np.ndarray, list]:
    """(filled (F, 22, 3) axis-angle, a record per gap) for a take ``rot`` (F, 22, 3) (root + 21 body joints)
    whose cells ``mask`` (F, 22) are to be filled. Without a prior the probes pick SLERP, the spline or the take
    match (``match=False``: not the take match). ``check=False`` takes the prior's answer wherever it fits, without
    probing (for measuring it)."""
    rot = np.asarray(rot, np.float64)
    mask = np.asarray(mask, bool)
    if rot.ndim != 3 or rot.shape[1:] != (22, 3) or mask.shape != rot.shape[:2]:
        raise DataError(f"fill needs rotations (F, 22, 3) and a mask (F, 22); got {rot.shape} and {mask.shape}")
    if (mask.all(0) & mask.any(0)).any():
        raise DataError("a joint to fill is missing on every frame: there is no motion around the gap to fill from")
    free = {kind: interp.fill(rot, mask, fps, kind) for kind in FREE}
    mats = matching.rotation_matrices(rot) if check and match else None
    out = rot.copy()
    out[mask] = free[FALLBACK][mask]
    records = []
    for first, last in interp._runs(mask.any(1)):
        rec = {"first": int(first), "last": int(last), "method": FALLBACK}
        records.append(rec)
        pattern = mask[first:last + 1]
        fits = prior is not None and prior.region_start(first, last, len(rot), fps) is not None
        offsets = probe_offsets(mask, first, last) if check else []
        jobs = [(mask, first, last)]
        for o in offsets:
            pm = mask.copy()
            pm[first + o:last + o + 1] |= pattern
            jobs.append((pm, first + o, last + o))
        answers = {k: [v[first:last + 1]] + [_interp_cells(rot, pm, fps, a, b, k) for pm, a, b in jobs[1:]]
                   for k, v in free.items()}
        if fits:
            answers["prior"] = _fill_windows(prior, rot, fps, jobs, steps)
        if check and match:
            matched = [matching.fill_gap(rot, pm, a, b, fps, mats) for pm, a, b in jobs]
            if all(m is not None for m in matched):
                answers["match"] = matched
        if not check:
            if fits:
                rec["method"] = "prior"
                out[first:last + 1][pattern] = answers["prior"][0][pattern]
            continue
        if len(offsets) < MIN_PROBES:
            rec["why"] = "too little observed motion beside the gap for probes"
            continue
        errs = {}
        for k, vals in answers.items():
            errs[k] = float(np.mean(np.concatenate(
                [geodesic_deg(v[pattern], rot[a:b + 1][pattern]) for v, (_, a, b) in zip(vals[1:], jobs[1:])])))
        rec.update(probes=len(offsets), probe_err={k: round(v, 3) for k, v in errs.items()})
        if not fits:
            rec["why"] = "no motion prior" if prior is None else "gap longer than the prior's windows"
        best = min(errs, key=lambda k: (errs[k], k != FALLBACK))  # ties go to the fallback
        rec["method"] = best
        weights = probe_weights(errs)
        rec["weights"] = {k: round(w, 3) for k, w in weights.items() if w > 0.001}
        out[first:last + 1][pattern] = matching.mean_rotation([answers[k][0][pattern] for k in weights],
                                                              list(weights.values()))
    return out, records


def probe_weights(errs: dict) -> dict:
    """Each answer's weight from its probe error: exp(-(error - best) / (SOFTNESS * best)), summing to 1. The
    answers' weighted mean beat the single best answer on the training-split takes (Bandai-2 validation 0.59x
    against 0.61x the better free answer, cgspeed 0.88x against 0.89x, ReActIdle 1.11x against 1.17x): a few
    probes measure each answer only roughly."""
    best = min(errs.values())
    w = {k: float(np.exp(-(e - best) / (SOFTNESS * best + 1e-6))) for k, e in errs.items()}
    total = sum(w.values())
    return {k: v / total for k, v in w.items()}


def _interp_cells(rot, mask, fps, first, last, kind: str) -> np.ndarray:
    """SLERP's or the spline's values (last - first + 1, 22, 3) on frames first..last under ``mask``."""
    out = rot[first:last + 1].copy()
    for j in np.flatnonzero(mask[first:last + 1].any(0)):
        out[:, j] = interp.fill_joint(rot[:, j], mask[:, j], fps, kind)[first:last + 1]
    return out


def _fill_windows(prior, rot, fps, jobs, steps) -> list[np.ndarray]:
    """The prior's fill (b - a + 1, 22, 3) of each job (mask, a, b), one batch."""
    quats, missing, starts = [], [], []
    for m, a, b in jobs:
        t0 = prior.region_start(a, b, len(rot), fps)
        q, mm = prior.window(rot, m, fps, t0)
        quats.append(q)
        missing.append(mm)
        starts.append(t0)
    qw = prior._run(quats, missing, steps)
    out = []
    for (m, a, b), t0, q in zip(jobs, starts, qw):
        qf = prior._at_frames(q, t0, np.arange(a, b + 1), fps)
        out.append(quaternion_to_axis_angle(qf).double().numpy())
    return out


# ---------------------------------------------------------------------------------------------------------
# Takes in files

def parse_frames(text: str, n: int) -> tuple[int, int]:
    """'A-B' (0-based, inclusive; 'A' alone = one frame) -> (A, B), checked against a take of n frames."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(text))
    if not m:
        raise DataError(f"--frames must be A-B with whole numbers, 0-based and inclusive (e.g. 120-150), got {text!r}")
    a, b = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
    try:
        check_frames(a, b, n)
    except DataError as e:
        raise DataError(f"--frames {text}: {e}") from None
    return a, b


def check_frames(a: int, b: int, n: int) -> None:
    """DataError unless frames a..b (0-based, inclusive) lie in a take of n frames with motion beside them."""
    if a < 0:
        raise DataError(f"the first frame {a} is before frame 0")
    if a > b:
        raise DataError(f"the first frame {a} is after the last {b}")
    if b >= n:
        raise DataError(f"the take has {n} frames (0-{n - 1})")
    if a == 0 and b == n - 1:
        raise DataError(f"frames {a}-{b} cover the whole take: there is no motion around the gap to fill from")


@dataclass
class Take:
    kind: str  # "amass", "smplx" (six keys), "pose_body" or "bvh"
    rot: np.ndarray  # (F, 22, 3) root + body axis-angle
    fps: float | None
    arrays: dict = field(default_factory=dict)  # the npz's members, as read
    has_root: bool = True
    conversion: dict | None = None


def _fps_of(arrays: dict) -> float | None:
    for key in ("mocap_framerate", "mocap_frame_rate", "fps"):
        if key in arrays and np.asarray(arrays[key]).size == 1:
            v = float(np.asarray(arrays[key]).reshape(()))
            if np.isfinite(v) and v > 0:
                return v
    return None


def _rows(a, name: str, width: int) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[1] != width or not np.issubdtype(a.dtype, np.number):
        raise DataError(f"'{name}' must be a (frames, {width}) numeric array, got {a.dtype} {a.shape}")
    if not np.isfinite(a).all():
        raise DataError(f"'{name}' holds NaN or infinite values")
    return a


def read_take(path) -> Take:
    """A six-key SMPL-X npz, an AMASS npz (``poses``), a ``pose_body``/``root_orient`` npz or a BVH take."""
    path = Path(path)
    if path.suffix.lower() == ".bvh":
        from ..formats.convert import convert_bvh

        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        conv = convert_bvh(path)
        return Take("bvh", stack(conv["global_orient"], conv["body_pose"]).astype(np.float64),
                    float(conv["mocap_framerate"]), {"trans": conv["trans"]}, True, conv)
    d = Npz(path)
    arrays = {k: d[k] for k in d}
    fps = _fps_of(arrays)
    if "poses" in arrays:
        p = _rows(arrays["poses"], "poses", np.asarray(arrays["poses"]).shape[-1])
        if p.shape[1] < 66:
            raise DataError(f"AMASS 'poses' needs at least 66 columns (root + body), got {p.shape[1]}")
        return Take("amass", p[:, :66].reshape(-1, 22, 3).astype(np.float64), fps, arrays)
    for body_key, root_key, kind in (("body_pose", "global_orient", "smplx"),
                                     ("pose_body", "root_orient", "pose_body")):
        if body_key in arrays:
            body = _rows(arrays[body_key], body_key, 63)
            has_root = root_key in arrays
            root = _rows(arrays[root_key], root_key, 3) if has_root else np.zeros((len(body), 3))
            if len(root) != len(body):
                raise DataError(f"'{root_key}' has {len(root)} rows but '{body_key}' has {len(body)}")
            return Take(kind, stack(root, body).astype(np.float64), fps, arrays, has_root)
    raise DataError(f"{path}: no body motion found; expected the SMPL-X keys (body_pose, global_orient), AMASS "
                    f"'poses' or 'pose_body'; the file has {sorted(arrays)}")


def _write_cells(arr: np.ndarray, filled: np.ndarray, mask: np.ndarray, first_joint: int = 0) -> np.ndarray:
    """A copy of ``arr`` (F, 3 * J) with joint columns of the masked cells set from ``filled`` (F, 22, 3)."""
    out = np.array(arr, copy=True)
    for j in range(22):
        rows = np.flatnonzero(mask[:, j])
        c = 3 * (j - first_joint)
        if len(rows) and c >= 0 and c + 3 <= out.shape[1]:
            out[rows, c:c + 3] = filled[rows, j].astype(out.dtype)
    return out


def _load_prior(checkpoint):
    """The motion prior of ``checkpoint``, else the bundled one, else None (the free answers only)."""
    from .checkpoint import DEFAULT
    from .prior import load_motion_prior

    return load_motion_prior(checkpoint) if (checkpoint or DEFAULT.is_file()) else None


@functools.lru_cache(maxsize=1)
def bundled_prior():
    """The bundled motion prior (``weights/motion.safetensors``), loaded once (the server keeps it); None when
    none is bundled."""
    return _load_prior(None)


def fill_range(rot: np.ndarray, first: int, last: int, parts="body", fps: float = 30.0, prior=None,
               steps: int = 10, trans: np.ndarray | None = None, has_root: bool = True) -> dict:
    """Fill frames first..last (0-based, inclusive) of the body joints ``parts`` of a take ``rot`` (F, 22, 3) with
    :func:`fill`; with the root among them, ``trans`` (F, 3) is filled on those frames too (a cubic spline through
    the frames around them). Returns rot (F, 22, 3), trans (as given when the root is not filled), mask (F, 22)
    and gaps (a record per gap); every cell outside the mask is the input's, bit for bit. DataError for frames or
    parts that fill nothing."""
    rot = np.asarray(rot, np.float64)
    n = len(rot)
    check_frames(first, last, n)
    try:
        joints = part_joints(parts).numpy()
    except ValueError as e:
        raise DataError(f"parts {parts!r}: {e}") from None
    if not has_root:
        joints[0] = False
    if not joints.any():
        raise DataError(f"parts {parts!r}: nothing to fill (the take has no root orientation)")
    mask = np.zeros((n, 22), bool)
    mask[first:last + 1] = joints
    filled, records = fill(rot, mask, fps, prior, steps)
    out_trans = trans
    if trans is not None and joints[0]:
        tr = _rows(trans, "trans", 3)
        out_trans = np.array(tr, copy=True)
        missing = np.zeros(n, bool)
        missing[first:last + 1] = True
        out_trans[missing] = interp.fill_linear(tr, missing, fps)[missing].astype(tr.dtype)
    return {"rot": filled, "trans": out_trans, "mask": mask, "gaps": records}


def fill_clip(clip: dict, first: int, last: int, parts="body", fps: float | None = None, prior=None,
              steps: int = 10) -> dict:
    """The server's ``fill``: frames first..last of a clip {global_orient (F, 3), body_pose (F, 63), trans (F, 3)}
    filled by :func:`fill_range`. Returns the filled rows first..last only: body_pose, global_orient and trans
    (those the clip has) and ``gaps`` (a record per gap, rows of the clip)."""
    body = np.asarray(clip["body_pose"])
    has_root = clip.get("global_orient") is not None
    root = np.asarray(clip["global_orient"]) if has_root else np.zeros((len(body), 3))
    done = fill_range(stack(root, body), first, last, parts, fps or 30.0, prior, steps, trans=clip.get("trans"),
                      has_root=has_root)
    rows = slice(first, last + 1)
    out = {"body_pose": done["rot"][rows, 1:].reshape(-1, 63)}
    if has_root:
        out["global_orient"] = done["rot"][rows, 0]
    if clip.get("trans") is not None:
        out["trans"] = np.asarray(done["trans"])[rows]
    out["gaps"] = done["gaps"]
    return out


def fill_file(inp, output, frames: str, parts: str = "body", fps: float | None = None, checkpoint=None,
              steps: int | None = None, log=print) -> dict:
    """``dposer fill``: fill frames A-B of ``parts`` of the take ``inp``; write the same format to ``output``."""
    inp = Path(inp)
    is_bvh = inp.suffix.lower() == ".bvh"
    if is_bvh and Path(output).suffix.lower() != ".bvh":
        raise DataError(f"a BVH take is written back as BVH: give an output ending in .bvh, got {output}")
    final = check_output(output, [inp], npz=not is_bvh)
    take = read_take(inp)
    a, b = parse_frames(frames, len(take.rot))
    rate = fps or take.fps
    if rate is None:
        rate = 30.0
        log("no frame rate in the file and no --fps: assuming 30 fps")
    trans_in = take.arrays.get("trans") if not is_bvh else None
    done = fill_range(take.rot, a, b, parts, rate, _load_prior(checkpoint), steps or 10, trans=trans_in,
                      has_root=take.has_root)
    filled, mask, records = done["rot"], done["mask"], done["gaps"]
    for r in records:
        probes = ", ".join(f"{k} {v:.2f}" for k, v in r.get("probe_err", {}).items())
        log(f"frames {r['first']}-{r['last']}: {r['method']}" + (f" (probe errors, deg: {probes})" if probes else "")
            + (f" ({r['why']})" if "why" in r else ""))
    if is_bvh:
        from ..formats import bvh, convert_back

        conv = take.conversion
        before = {"global_orient": conv["global_orient"], "body_pose": conv["body_pose"]}
        after = {"global_orient": _write_cells(conv["global_orient"], filled, mask),
                 "body_pose": _write_cells(conv["body_pose"], filled, mask, first_joint=1)}
        text = bvh.dumps(convert_back.apply_to_bvh(bvh.read(inp), json.loads(conv["bone_map"]), before, after))
        write_text(final, text, inputs=[inp])
    else:
        out = dict(take.arrays)
        if take.kind == "amass":
            out["poses"] = _write_cells(out["poses"], filled, mask)
        else:
            smplx = take.kind == "smplx"
            body_key, root_key = ("body_pose", "global_orient") if smplx else ("pose_body", "root_orient")
            out[body_key] = _write_cells(out[body_key], filled, mask, first_joint=1)
            if take.has_root:
                out[root_key] = _write_cells(out[root_key], filled, mask)
        if done["trans"] is not None:
            out["trans"] = done["trans"]
        save_npz(final, out, inputs=[inp])
    log(f"wrote {final}")
    return {"output": str(final), "gaps": records}
