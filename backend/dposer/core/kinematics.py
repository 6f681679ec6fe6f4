"""Batched forward kinematics in torch on the built-in SMPL-X-shaped skeleton (:mod:`dposer.spec.skeleton`:
its rest offsets, frame and proportions). With a user's own SMPL-X model files, ``SmplxSkeleton`` gives the same
joints from the `smplx` package instead.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..spec import layout
from ..spec import skeleton as spec_skeleton
from ..spec.skeleton import REST_OFFSETS
from .torch_rotations import axis_angle_to_matrix


def rest_joints() -> np.ndarray:
    """(55, 3) float32 joint positions of the rest (zero) pose."""
    return spec_skeleton.rest_joints(dtype=np.float32)


def _depth_levels() -> list[np.ndarray]:
    depth = np.zeros(layout.NUM_JOINTS, dtype=int)
    for j, p in enumerate(layout.PARENTS):
        depth[j] = depth[p] + 1 if p >= 0 else 0
    return [np.nonzero(depth == d)[0] for d in range(depth.max() + 1)]


_LEVELS = _depth_levels()
_PARENTS = np.asarray(layout.PARENTS)


def full_pose(vec: torch.Tensor, global_orient: torch.Tensor | None = None) -> torch.Tensor:
    """256-D whole-body vectors (N, 256) -> per-joint axis-angle (N, 55, 3); eyes at zero."""
    n = vec.shape[0]
    out = vec.new_zeros(n, layout.NUM_JOINTS, 3)
    if global_orient is not None:
        out[:, 0] = global_orient
    key = layout.KEY_SLICES  # joint rows: body 1-21, jaw 22, left fingers 25-39, right fingers 40-54
    out[:, 1:22] = vec[:, key["body_pose"]].reshape(n, 21, 3)
    out[:, 22] = vec[:, key["jaw_pose"]]
    out[:, 25:40] = vec[:, key["left_hand_pose"]].reshape(n, 15, 3)
    out[:, 40:55] = vec[:, key["right_hand_pose"]].reshape(n, 15, 3)
    return out


def forward_kinematics(rotations: torch.Tensor, offsets: torch.Tensor | np.ndarray | None = None,
                       translation: torch.Tensor | None = None) -> torch.Tensor:
    """Joint positions (N, 55, 3) from local rotations, either axis-angle (N, 55, 3) or matrices (N, 55, 3, 3).

    Vectorised over the batch and over each level of the kinematic tree.
    """
    if rotations.shape[-1] == 3 and rotations.dim() == 3:
        rotations = axis_angle_to_matrix(rotations)
    if offsets is None:
        offsets = REST_OFFSETS
    offsets = torch.as_tensor(offsets, dtype=rotations.dtype, device=rotations.device)
    # per-joint lists, one batched product per tree level: no writes into a whole (N, 55, ...) tensor per level,
    # whose copies (and their backward) were most of the time
    glob, pos = [None] * layout.NUM_JOINTS, [None] * layout.NUM_JOINTS
    for level in _LEVELS:
        if _PARENTS[level[0]] < 0:
            g, p = rotations[:, level], offsets[level].expand(rotations.shape[0], -1, -1)
        else:
            glob_par = torch.stack([glob[j] for j in _PARENTS[level]], 1)
            g = glob_par @ rotations[:, level]
            p = torch.stack([pos[j] for j in _PARENTS[level]], 1) + (glob_par @ offsets[level].unsqueeze(-1)).squeeze(-1)
        for j, gj, pj in zip(level, g.unbind(1), p.unbind(1)):
            glob[j], pos[j] = gj, pj
    pos = torch.stack(pos, 1)
    if translation is not None:
        pos = pos + translation.unsqueeze(1)
    return pos


def joints_from_vector(vec: torch.Tensor, global_orient: torch.Tensor | None = None) -> torch.Tensor:
    """Joint positions (N, 55, 3) of 256-D pose vectors on the built-in skeleton."""
    return forward_kinematics(full_pose(vec, global_orient))


class SmplxSkeleton:
    """Forward kinematics (and mesh) from the user's own SMPL-X model file through the `smplx` package.

    Hands are absolute (``flat_hand_mean=True``), matching the pose vector's convention. ``model_path`` is a folder
    holding ``smplx/SMPLX_<GENDER>.npz`` (or ``.pkl``), or the model file itself. The `smplx` package would load it
    with pickle enabled (code in the file would run), so the file is read here without pickle
    (:func:`dposer.formats.npz.read_smplx_model`: numeric arrays only) and `smplx` is given a clean copy of those arrays.
    """

    def __init__(self, model_path: str, gender: str = "neutral", num_expression_coeffs: int = 100,
                 num_betas: int = 10):
        import tempfile

        from ..formats.npz import read_smplx_model, smplx_model_file

        try:
            import smplx
        except ImportError as e:  # pragma: no cover - depends on the optional extra
            raise ImportError("SmplxSkeleton needs the optional 'smplx' package: pip install 'blender-dposer[smplx]'") from e
        arrays = read_smplx_model(smplx_model_file(model_path, gender))
        with tempfile.TemporaryDirectory(prefix="dposer-smplx-") as tmp:
            clean = Path(tmp) / f"SMPLX_{gender.upper()}.npz"
            np.savez(clean, **arrays)  # numeric arrays only: nothing for smplx's pickle-enabled load to run
            self.model = smplx.create(str(clean), model_type="smplx", gender=gender, use_pca=False,
                                      flat_hand_mean=True, num_expression_coeffs=num_expression_coeffs,
                                      num_betas=num_betas, ext="npz")

    def __call__(self, vec: torch.Tensor, global_orient: torch.Tensor | None = None,
                 betas: torch.Tensor | None = None, return_vertices: bool = False):
        n = vec.shape[0]
        m = self.model
        zeros3 = vec.new_zeros(n, 3)
        kwargs = dict(
            global_orient=global_orient if global_orient is not None else zeros3,
            **{k: vec[:, layout.KEY_SLICES[k]] for k in ("body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose")},
            leye_pose=zeros3, reye_pose=zeros3,
            expression=vec[:, layout.KEY_SLICES["expression"]][:, :m.num_expression_coeffs],
            betas=betas if betas is not None else vec.new_zeros(n, m.num_betas),
        )
        out = m(**kwargs)
        joints = out.joints[:, : layout.NUM_JOINTS]
        return (joints, out.vertices) if return_vertices else joints
