"""The optional `smplx` path of ``SmplxSkeleton``, on a tiny synthetic model file in SMPL-X format.

The real SMPL-X model files are licensed and not redistributed, so ``write_synthetic_smplx`` builds a stand-in with
the same keys and shapes: vertex j (j < 55) sits exactly at joint j of ``skeleton.rest_joints()``, the joint
regressor picks those vertices, and each vertex is skinned rigidly to one joint. The SMPL-X forward pass on that
file must then reproduce our built-in forward kinematics joint for joint, which pins down that both agree on the
joint order, parents, hand slots and jaw.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

smplx = pytest.importorskip("smplx")

from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS  # noqa: E402

from dposer.spec import layout  # noqa: E402
from dposer.core import kinematics as skeleton  # noqa: E402
from dposer.core.torch_rotations import axis_angle_to_matrix  # noqa: E402

J = layout.NUM_JOINTS  # 55
NUM_SHAPE = 300  # SMPL-X keeps 300 shape dirs, then 100 expression dirs, in one `shapedirs` array
NUM_EXPR = 100
NUM_POSE_BASIS = (J - 1) * 9  # 486
NUM_BETAS = 10


def write_synthetic_smplx(folder, seed: int = 0, shape_scale: float = 0.01) -> Path:
    """Write ``folder/smplx/SMPLX_NEUTRAL.npz``, a tiny rigid SMPL-X-format model; return its path.

    ``smplx.create(folder, model_type='smplx', ...)`` loads it (``create`` looks in ``folder/smplx``).
    smplx always picks some extra keypoints by fixed vertex index (nose, eyes, ears, toes, heels, fingertips, up to
    index 9929), so the mesh has just enough vertices for those; the ones past the 55 joint vertices hang rigidly off
    joint ``k % 55`` with a small offset. Shape dirs are random (``shape_scale``) on all vertices; expression dirs
    are random only on the non-joint vertices, so expression moves the mesh but never the joints. Pose dirs are zero.
    """
    rng = np.random.default_rng(seed)
    n_verts = max(SMPLX_VERTEX_IDS["smplx"].values()) + 1 + 16
    owner = np.arange(n_verts) % J  # joint each vertex is skinned to
    rest = skeleton.rest_joints().astype(np.float64)
    v_template = rest[owner].copy()
    v_template[J:] += rng.uniform(-0.02, 0.02, size=(n_verts - J, 3))

    shapedirs = np.zeros((n_verts, 3, NUM_SHAPE + NUM_EXPR), dtype=np.float32)
    shapedirs[:, :, :NUM_SHAPE] = shape_scale * rng.standard_normal((n_verts, 3, NUM_SHAPE))
    shapedirs[J:, :, NUM_SHAPE:] = shape_scale * rng.standard_normal((n_verts - J, 3, NUM_EXPR))

    weights = np.zeros((n_verts, J), dtype=np.float32)
    weights[np.arange(n_verts), owner] = 1.0
    j_regressor = np.zeros((J, n_verts), dtype=np.float32)
    j_regressor[np.arange(J), np.arange(J)] = 1.0

    kintree = np.stack([np.asarray(layout.PARENTS), np.arange(J)]).astype(np.int64)
    kintree[0, 0] = np.iinfo(np.uint32).max  # as in the released files; smplx resets the root's parent to -1
    faces = np.stack([np.arange(0, n_verts - 2), np.arange(1, n_verts - 1), np.arange(2, n_verts)], 1).astype(np.uint32)
    n_lmk = 51  # the static face landmarks of SMPL-X
    lmk_faces_idx = rng.integers(0, len(faces), size=n_lmk).astype(np.int64)
    lmk_bary = rng.dirichlet(np.ones(3), size=n_lmk).astype(np.float32)
    n_dyn = 79  # dynamic contour landmarks: 79 yaw bins x 17 points
    dyn_faces_idx = rng.integers(0, len(faces), size=(n_dyn, 17)).astype(np.int64)
    dyn_bary = rng.dirichlet(np.ones(3), size=(n_dyn, 17)).astype(np.float32)

    eye45 = np.eye(45, dtype=np.float32)
    data = dict(
        v_template=v_template.astype(np.float32),
        f=faces,
        shapedirs=shapedirs,
        posedirs=np.zeros((n_verts, 3, NUM_POSE_BASIS), dtype=np.float32),
        J_regressor=j_regressor,
        kintree_table=kintree,
        weights=weights,
        hands_componentsl=eye45, hands_componentsr=eye45.copy(),
        hands_meanl=rng.normal(0, 0.1, 45).astype(np.float32),  # ignored with flat_hand_mean=True
        hands_meanr=rng.normal(0, 0.1, 45).astype(np.float32),
        lmk_faces_idx=lmk_faces_idx, lmk_bary_coords=lmk_bary,
        dynamic_lmk_faces_idx=dyn_faces_idx, dynamic_lmk_bary_coords=dyn_bary,
    )
    path = Path(folder) / "smplx" / "SMPLX_NEUTRAL.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **data)
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return write_synthetic_smplx(tmp_path_factory.mktemp("smplx_models"))


@pytest.fixture(scope="module")
def skel(model_file):
    return skeleton.SmplxSkeleton(str(model_file.parent.parent), gender="neutral")


def _random_input(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    vec = 0.4 * torch.randn(n, layout.DIM, generator=g)
    vec[:, layout.KEY_SLICES["expression"]] = torch.randn(n, NUM_EXPR, generator=g)
    root = 0.8 * torch.randn(n, 3, generator=g)
    return vec, root


def _rigid_vertices(model_file, aa: torch.Tensor) -> torch.Tensor:
    """Reference mesh for zero betas and expression: each vertex follows its joint's global rigid motion."""
    v = torch.as_tensor(np.load(model_file)["v_template"])
    owner = torch.arange(v.shape[0]) % J
    rest = torch.as_tensor(skeleton.rest_joints())
    local = axis_angle_to_matrix(aa)
    glob = [None] * J
    for j, p in enumerate(layout.PARENTS):
        glob[j] = local[:, j] if p < 0 else glob[p] @ local[:, j]
    glob = torch.stack(glob, 1)  # (N, 55, 3, 3)
    joints = skeleton.forward_kinematics(aa)
    return joints[:, owner] + (glob[:, owner] @ (v - rest[owner]).unsqueeze(-1)).squeeze(-1)


def test_synthetic_file_loads_like_a_real_one(model_file):
    m = smplx.create(model_path=str(model_file.parent.parent), model_type="smplx", gender="neutral", ext="npz",
                     use_pca=False, flat_hand_mean=True, num_expression_coeffs=100, num_betas=10)
    assert m.num_betas == NUM_BETAS and m.num_expression_coeffs == NUM_EXPR
    assert m.parents.tolist() == [-1] + list(layout.PARENTS[1:])
    with torch.no_grad():
        out = m()
    assert np.allclose(out.joints[0, :J].numpy(), skeleton.rest_joints(), atol=1e-6)


def test_smplx_joints_match_builtin_fk(skel):
    assert skel.model.num_expression_coeffs == NUM_EXPR and skel.model.num_betas == NUM_BETAS
    vec, root = _random_input(6, seed=1)
    with torch.no_grad():
        joints = skel(vec, root)
        joints_no_root = skel(vec)
    ours = skeleton.forward_kinematics(skeleton.full_pose(vec, root))
    assert joints.shape == (6, J, 3)
    assert torch.allclose(joints, ours, atol=1e-5), (joints - ours).abs().max()
    ours_no_root = skeleton.joints_from_vector(vec)
    assert torch.allclose(joints_no_root, ours_no_root, atol=1e-5), (joints_no_root - ours_no_root).abs().max()


@pytest.mark.parametrize("part", ["body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose"])
def test_each_part_lands_on_the_same_joints(skel, model_file, part):
    """One part at a time, so a swapped hand slot or misplaced jaw shows up by name."""
    vec, _ = _random_input(3, seed=2)
    only = torch.zeros_like(vec)
    sl = layout.KEY_SLICES[part]
    only[:, sl] = vec[:, sl]
    with torch.no_grad():
        joints = skel(only)
    ours = skeleton.joints_from_vector(only)
    assert torch.allclose(joints, ours, atol=1e-5), (part, (joints - ours).abs().max())
    # Leaf joints (jaw, finger tips) move no joint, so check the rigidly skinned mesh as well.
    with torch.no_grad():
        _, verts = skel(only, return_vertices=True)
    ref = _rigid_vertices(model_file, skeleton.full_pose(only))
    assert torch.allclose(verts, ref, atol=1e-5), (part, (verts - ref).abs().max())
    rest = torch.as_tensor(np.load(model_file)["v_template"])
    moved = (verts - rest).norm(dim=-1).amax(0) > 1e-4
    owner = torch.arange(verts.shape[1]) % J
    parts = {"body_pose": range(1, 22), "left_hand_pose": range(25, 40), "right_hand_pose": range(40, 55),
             "jaw_pose": [layout.JOINT_INDEX["jaw"]]}[part]
    own = torch.isin(owner, torch.as_tensor(list(parts)))
    own[:J] = False  # a joint's own vertex sits on the joint, so it stays put when only that joint rotates
    assert moved[own].all()  # every vertex hanging off the part's joints moved


def test_smplx_model_file_path_also_works(model_file):
    sk = skeleton.SmplxSkeleton(str(model_file))
    vec, root = _random_input(2, seed=3)
    with torch.no_grad():
        joints = sk(vec, root)
    assert torch.allclose(joints, skeleton.forward_kinematics(skeleton.full_pose(vec, root)), atol=1e-5)


def test_return_vertices(skel, model_file):
    vec, root = _random_input(4, seed=4)
    n_verts = np.load(model_file)["v_template"].shape[0]
    with torch.no_grad():
        joints, verts = skel(vec, root, return_vertices=True)
        _, verts_neutral = skel(torch.cat([vec[:, :156], torch.zeros(4, NUM_EXPR)], 1), root, return_vertices=True)
    assert joints.shape == (4, J, 3)
    assert verts.shape == (4, n_verts, 3)
    ref = _rigid_vertices(model_file, skeleton.full_pose(vec, root))
    assert torch.allclose(verts_neutral, ref, atol=1e-5), (verts_neutral - ref).abs().max()
    # Vertex j is rigidly bound to joint j and sits on it at rest, so it follows the joint exactly.
    assert torch.allclose(verts[:, :J], joints, atol=1e-5)
    # Expression reaches the mesh (its dirs live on the non-joint vertices only).
    assert (verts[:, J:] - verts_neutral[:, J:]).abs().max() > 1e-3
    assert torch.allclose(verts[:, :J], verts_neutral[:, :J], atol=1e-6)


def test_betas_are_passed_through(skel, model_file):
    shapedirs = np.load(model_file)["shapedirs"]
    vec = torch.zeros(3, layout.DIM)
    betas = torch.randn(3, NUM_BETAS, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        rest = skel(vec)
        shaped = skel(vec, betas=betas)
    assert torch.allclose(rest[0], torch.as_tensor(skeleton.rest_joints()), atol=1e-6)
    assert (shaped - rest).abs().max() > 1e-3
    # At zero pose the joints are exactly the shaped joint vertices: rest + shapedirs[:, :, :10] @ betas.
    expected = torch.as_tensor(skeleton.rest_joints()) + torch.einsum(
        "jck,nk->njc", torch.as_tensor(shapedirs[:J, :, :NUM_BETAS]), betas)
    assert torch.allclose(shaped, expected, atol=1e-5)
    # And shape still composes with pose: posed joints are FK over the shaped skeleton's offsets.
    vec, root = _random_input(3, seed=6)
    with torch.no_grad():
        posed = skel(vec, root, betas=betas)
    par = torch.as_tensor([max(p, 0) for p in layout.PARENTS])
    for i in range(3):
        offsets = expected[i] - torch.where(torch.arange(J)[:, None] == 0, torch.zeros(3), expected[i][par])
        ours = skeleton.forward_kinematics(skeleton.full_pose(vec[i : i + 1], root[i : i + 1]), offsets)
        assert torch.allclose(posed[i : i + 1], ours, atol=1e-5), (posed[i] - ours[0]).abs().max()


def test_fit_on_a_user_smplx_model(tmp_path):
    """dposer.fit solves through the user's SMPL-X model (here the synthetic one) when given as the skeleton."""
    import dposer
    from dposer.tasks.pose_tasks import fit

    write_synthetic_smplx(tmp_path)
    body = skeleton.SmplxSkeleton(str(tmp_path))
    prior = dposer.load_prior()
    truth = torch.zeros(2, 256)
    truth[:, :63] = torch.from_numpy(dposer.sample(prior, 2, seed=0)["body_pose"])  # plausible poses
    with torch.no_grad():
        joints = body(truth)
    names = ["left_wrist", "right_wrist", "left_ankle", "right_ankle", "head"]
    targets = {n: joints[:, layout.JOINT_INDEX[n]].numpy() for n in names}
    res = fit(prior, targets, free="body", skeleton=body)
    assert res["target_error"].max() < 0.01
