"""Pose data: loaders for the shared DPoser-X files, AMASS and SMPL-X npz, and the fixed splits.

Every loader returns a :class:`PoseSet`: 256-D vectors in the layout of :mod:`dposer.spec.layout` (hands absolute,
left hand in its own convention) plus a per-dim ``present`` mask. Absent dims hold zeros.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..spec import layout
from .npz import DataError, Npz  # noqa: F401 - DataError is re-exported: dposer.formats.data.DataError

SPLITS_FILE = Path(__file__).resolve().parents[1] / "splits.json"




def data_root(path: str | os.PathLike | None = None) -> Path:
    """The shared data folder: ``path``, else env ``DPOSER_DATA``, else ``../shared/data`` beside the repo."""
    if path is None:
        path = os.environ.get("DPOSER_DATA")
    if path is None:
        here = Path(__file__).resolve()
        for cand in (here.parents[3] / ".." / "shared" / "data", Path.cwd() / ".." / "shared" / "data"):
            if cand.is_dir():
                return cand.resolve()
        raise FileNotFoundError("pose data not found: set DPOSER_DATA to the folder holding dposer_x/ (e.g. ../shared/data)")
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"DPOSER_DATA={p} is not a folder")
    return p


@dataclass
class PoseSet:
    vectors: np.ndarray  # (N, 256) float32
    present: np.ndarray  # (N, 256) bool
    extras: dict = field(default_factory=dict)  # global_orient, trans, betas, framerate ...

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def part_mask(self) -> np.ndarray:
        return layout.part_mask_from_dims(self.present)

    def subset(self, idx) -> "PoseSet":
        extras = {k: (v[idx] if isinstance(v, np.ndarray) and v.ndim and len(v) == len(self) else v)
                  for k, v in self.extras.items()}
        return PoseSet(self.vectors[idx], self.present[idx], extras)

    @staticmethod
    def concat(sets: list["PoseSet"]) -> "PoseSet":
        return PoseSet(np.concatenate([s.vectors for s in sets]), np.concatenate([s.present for s in sets]))

    def to_dict(self) -> dict[str, np.ndarray]:
        """The six SMPL-X keys (global_orient zeros unless known)."""
        return layout.vectors_to_dict(self.vectors, self.extras.get("global_orient"))


def mano_mean_hand(root: Path | None = None) -> np.ndarray:
    """The MANO relaxed mean right hand (45,), for converting mean-relative hands to absolute."""
    return np.load(data_root(root) / "dposer_x" / "mano_right_hands_mean.npz")["hands_mean"].astype(np.float32)


def _check(arr, name: str, width: int, max_abs: float | None = None) -> np.ndarray:
    """Every input array passes here: real numbers, shape (N, width) with N >= 1 (a single row may be 1-D),
    finite, and (for rotations, ``max_abs``) within a sane range. Returns float32 (N, width)."""
    arr = np.asarray(arr)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"'{name}' must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != width:
        raise DataError(f"'{name}' must have shape (N, {width}), got {tuple(np.shape(arr))}")
    if len(arr) == 0:
        raise DataError(f"'{name}' has 0 rows: nothing to work on")
    with np.errstate(over="ignore"):
        out = arr.astype(np.float32)
    if not np.isfinite(out).all():
        raise DataError(f"'{name}' contains NaN or infinite values (or numbers too large for float32)")
    if max_abs is not None and np.abs(out).max() > max_abs:
        raise DataError(f"'{name}' holds a rotation of {np.abs(out).max():.4g}: axis-angle values must be radians "
                        f"within +-{max_abs:.4g} (4 pi); degrees? multiply by pi/180")
    return out


def _limit(key: str) -> float | None:
    """The value range checked for a pose key: rotations (all but expression) are bounded."""
    return None if key == "expression" else layout.MAX_ROTATION


def _extras(d, n: int) -> dict:
    """Optional per-take arrays passed through with a result: ``trans`` (N, 3) and ``betas``, checked."""
    out = {}
    if "trans" in d:
        out["trans"] = _check(d["trans"], "trans", 3)
        if len(out["trans"]) != n:
            raise DataError(f"'trans' has {len(out['trans'])} rows but the poses have {n}")
    if "betas" in d:
        b = np.asarray(d["betas"])
        out["betas"] = _check(b, "betas", b.shape[-1] if b.ndim else 0)
        if b.ndim == 1:
            out["betas"] = out["betas"][0]
    for key in ("mocap_framerate", "mocap_frame_rate"):
        if key in d:
            f = np.asarray(d[key])
            if f.size != 1 or not (np.issubdtype(f.dtype, np.floating) or np.issubdtype(f.dtype, np.integer)) \
                    or not np.isfinite(f).all() or float(f.reshape(-1)[0]) <= 0:
                raise DataError(f"'{key}' must be one positive number (frames per second), got "
                                f"{f.dtype} array of shape {f.shape}")
            out["framerate"] = float(f.reshape(-1)[0])
    return out


def from_smplx_dict(d, hands: str = "absolute", mean_hand: np.ndarray | None = None) -> PoseSet:
    """Six-key SMPL-X dict (any subset of the keys present) -> PoseSet.

    ``hands='relative'`` adds the MANO mean hand (``mean_hand``, right convention; mirrored for the left) to
    convert mean-relative hands to absolute. ``expression`` may have fewer than 100 coefficients (zero-padded).
    """
    keys = [k for k in layout.POSE_KEYS if k in d and k != "global_orient"]
    if not keys:
        raise DataError(f"no pose keys found; expected any of {', '.join(layout.POSE_KEYS[1:])}, got {sorted(d.keys())}")
    n = None
    arrays = {}
    for k in keys:
        sl = layout.KEY_SLICES[k]
        width = sl.stop - sl.start
        raw = np.asarray(d[k])
        if k == "expression" and raw.ndim in (1, 2) and 0 < raw.shape[-1] < width:  # zero-pad to 100
            a = _check(raw, k, raw.shape[-1])
            a = np.concatenate([a, np.zeros((len(a), width - a.shape[1]), np.float32)], 1)
        else:
            a = _check(raw, k, width, _limit(k))
        if n is not None and len(a) != n:
            raise DataError(f"'{k}' has {len(a)} rows but other keys have {n}")
        n = len(a)
        arrays[k] = a
    vec = layout.dict_to_vectors(arrays)
    present = np.zeros((n, layout.DIM), bool)
    for k in arrays:
        present[:, layout.KEY_SLICES[k]] = True
    if hands == "relative":
        if mean_hand is None:
            mean_hand = mano_mean_hand()
        if "right_hand_pose" in arrays:
            vec[:, layout.KEY_SLICES["right_hand_pose"]] += mean_hand
        if "left_hand_pose" in arrays:
            vec[:, layout.KEY_SLICES["left_hand_pose"]] += layout.mirror_hand(mean_hand)
    elif hands != "absolute":
        raise DataError(f"hands must be 'absolute' or 'relative', got {hands!r}")
    extras = _extras(d, n)
    if "global_orient" in d:
        extras["global_orient"] = _check(d["global_orient"], "global_orient", 3, layout.MAX_ROTATION)
        if len(extras["global_orient"]) != n:
            raise DataError(f"'global_orient' has {len(extras['global_orient'])} rows but the poses have {n}")
    return PoseSet(vec, present, extras)


def from_amass(d) -> PoseSet:
    """AMASS npz (SMPL+H 156-D or SMPL-X 165-D ``poses``) -> PoseSet with trans, betas and framerate extras.

    AMASS hands are absolute (SMPL+H takes without finger data hold the mean hand as absolute rotations).
    """
    poses = np.asarray(d["poses"])
    if poses.ndim != 2 or poses.shape[1] not in (156, 165):
        raise DataError(f"AMASS 'poses' must be (F, 156) SMPL+H or (F, 165) SMPL-X, got {poses.shape}")
    poses = _check(poses, "poses", poses.shape[1], layout.MAX_ROTATION)
    n = len(poses)
    vec = np.zeros((n, layout.DIM), np.float32)
    present = np.zeros((n, layout.DIM), bool)
    body, jaw = layout.KEY_SLICES["body_pose"], layout.KEY_SLICES["jaw_pose"]
    hands = layout.HANDS
    vec[:, body] = poses[:, 3:66]  # AMASS columns: root 0:3, body 3:66, then (SMPL+H) hands or (SMPL-X) jaw, eyes, hands
    if poses.shape[1] == 156:
        vec[:, hands] = poses[:, 66:156]
        present[:, :hands.stop] = True
    else:  # SMPL-X: root, body, jaw, leye, reye, lhand, rhand
        vec[:, jaw] = poses[:, 66:69]
        vec[:, hands] = poses[:, 75:165]
        present[:, :jaw.stop] = True
    extras = {"global_orient": poses[:, :3].copy(), **_extras(d, n)}
    return PoseSet(vec, present, extras)


def load_pose_file(path: str | os.PathLike, hands: str = "absolute") -> PoseSet:
    """Load any supported npz: six-key SMPL-X, AMASS ``poses``, a body-only (``pose_body``/``pose_samples``
    of width 63) or hand-only (``hand_pose``/``pose_samples`` of width 45, right hand) file."""
    d = Npz(path)  # lazy: only the members used below are read
    if "poses" in d:
        return from_amass(d)
    if any(k in d for k in layout.POSE_KEYS[1:]):
        return from_smplx_dict(d, hands=hands)
    if "pose_body" in d:
        ps = from_smplx_dict({"body_pose": d["pose_body"]})
        if "root_orient" in d:
            ps.extras["global_orient"] = _check(d["root_orient"], "root_orient", 3, layout.MAX_ROTATION)
            if len(ps.extras["global_orient"]) != len(ps):
                raise DataError(f"'root_orient' has {len(ps.extras['global_orient'])} rows but 'pose_body' has {len(ps)}")
        return ps
    if "hand_pose" in d or "pose_samples" in d:
        a = np.asarray(d["hand_pose"] if "hand_pose" in d else d["pose_samples"])
        if a.ndim == 2 and a.shape[1] == 45:
            return from_smplx_dict({"right_hand_pose": a})
        if a.ndim == 2 and a.shape[1] == 63:
            return from_smplx_dict({"body_pose": a})
    raise DataError(f"{path}: unrecognised pose file; keys {sorted(d)}; expected the six SMPL-X keys, AMASS 'poses', "
                    "'pose_body' or a (N, 63) / (N, 45) 'pose_samples'/'hand_pose' array")


def load_task_input(path: str | os.PathLike, hands: str = "absolute") -> tuple[PoseSet, dict]:
    """(PoseSet, pose dict for a task) of a pose file: the dict holds ``global_orient`` and only the keys the file
    gives in full, so a task fills in the absent ones."""
    ps = load_pose_file(path, hands=hands)
    pose = {k: v for k, v in ps.to_dict().items()
            if k == "global_orient" or ps.present[:, layout.KEY_SLICES[k]].all()}
    return ps, pose


def file_fps(path: str | os.PathLike, ps: PoseSet) -> float | None:
    """A take's frame rate: AMASS ``mocap_framerate`` (read by the loader) or a six-key file's ``fps`` /
    ``mocap_framerate``; None when the file has none."""
    if "framerate" in ps.extras:
        return float(ps.extras["framerate"])
    with np.load(path, allow_pickle=False) as d:
        for key in ("fps", "mocap_framerate", "mocap_frame_rate"):
            if key in d.files and np.asarray(d[key]).size == 1:
                return float(np.asarray(d[key]).reshape(()))
    return None


# ---------------------------------------------------------------------------------------------------------
# The shared DPoser-X files and their fixed splits.

def _splits() -> dict:
    return json.loads(SPLITS_FILE.read_text())


def make_splits(root: Path | None = None) -> dict:
    """Build the split record (done once; the result is committed as splits.json)."""
    root = data_root(root) / "dposer_x"
    rng = np.random.default_rng(20261121)
    out = {"seed": 20261121, "notes": "indices into the files; *_drop = repeated rows of the 10k files (later "
           "copies, never used); *_val = 1000 unique rows; train = the rest; egobody split by index; hand test "
           "rows that also occur in hand_poses_10k are dropped"}
    files = {"body": ("body_poses_10k.npz", "body_pose"), "hand": ("hand_poses_10k.npz", "hand_pose"),
             "face": ("face_jaw_expression_10k.npz", None)}
    for name, (fname, key) in files.items():
        f = np.load(root / fname)
        rows = f[key] if key else np.concatenate([f["jaw_pose"], f["expression"]], 1)
        _, first = np.unique(rows, axis=0, return_index=True)
        out[f"{name}_drop"] = sorted(set(range(len(rows))) - set(first.tolist()))  # repeated rows
        out[f"{name}_val"] = sorted(rng.choice(np.sort(first), 1000, replace=False).tolist())
    perm = rng.permutation(500).tolist()
    out["egobody_train"], out["egobody_val"], out["egobody_test"] = sorted(perm[:300]), sorted(perm[300:350]), sorted(perm[350:])
    train_hands = {r.tobytes() for r in np.load(root / "hand_poses_10k.npz")["hand_pose"]}
    test_hands = np.load(root / "hand_samples_500.npz")["pose_samples"]
    out["hand_test_drop"] = [i for i, r in enumerate(test_hands) if r.tobytes() in train_hands]
    return out


def _dx(root, name):
    return np.load(data_root(root) / "dposer_x" / name, allow_pickle=False)


def load_part_set(part: str, split: str, root=None) -> PoseSet:
    """Body, hand or face data of the shared set for split 'train', 'val' or 'test'.

    Hands are returned in the right-hand slot (right-hand convention).
    """
    sp = _splits()
    if part == "body":
        key = "body_pose"
        if split == "test":
            return from_smplx_dict({key: _dx(root, "body_samples_500.npz")["pose_samples"]})
        a = _dx(root, "body_poses_10k.npz")["body_pose"]
        d = {key: a}
    elif part == "hand":
        key = "right_hand_pose"
        if split == "test":
            a = _dx(root, "hand_samples_500.npz")["pose_samples"]
            keep = np.setdiff1d(np.arange(len(a)), sp["hand_test_drop"])
            return from_smplx_dict({key: a[keep]})
        d = {key: _dx(root, "hand_poses_10k.npz")["hand_pose"]}
    elif part == "face":
        f = _dx(root, "face_samples_500.npz" if split == "test" else "face_jaw_expression_10k.npz")
        d = {"jaw_pose": f["jaw_pose"], "expression": f["expression"]}
        if split == "test":
            return from_smplx_dict(d)
    else:
        raise ValueError(f"part must be body, hand or face, got {part!r}")
    ps = from_smplx_dict(d)
    val = np.asarray(sp[f"{part}_val"])
    if split == "val":
        return ps.subset(val)
    if split == "train":
        return ps.subset(np.setdiff1d(np.arange(len(ps)), np.concatenate([val, sp[f"{part}_drop"]]).astype(int)))
    raise ValueError(f"split must be train, val or test, got {split!r}")


def load_wholebody_set(split: str, root=None) -> PoseSet:
    """EgoBody whole-body poses (hands converted from mean-relative to absolute) for a split."""
    d = dict(_dx(root, "wholebody_egobody_500.npz"))
    ps = from_smplx_dict(d, hands="relative", mean_hand=mano_mean_hand(root))
    return ps.subset(np.asarray(_splits()[f"egobody_{split}"]))


def load_gestures_clip(root=None) -> PoseSet:
    """The 240-frame AMASS HumanEva clip (body only, with root orientation)."""
    return load_pose_file(data_root(root) / "dposer_x" / "gestures_clip_240f.npz")


def load_amass_take(root=None) -> PoseSet:
    return load_pose_file(data_root(root) / "amass" / "amass_sample_smplh_500f.npz")


def load_finger_take(root=None) -> PoseSet:
    """The 601-frame AMASS SMPL+H take with real finger motion (120 fps): for measuring hand completion over a
    take, never for fitting or tuning."""
    return load_pose_file(data_root(root) / "amass" / "amass_sample_smplh_601f_fingers.npz")
