import math

import torch

from dposer.core import torch_rotations as R


def _aa(n=200, seed=0, max_angle=math.pi * 0.999):
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1)
    return axis * torch.rand(n, 1, generator=g, dtype=torch.float64) * max_angle


def test_round_trips():
    aa = _aa()
    assert torch.allclose(R.matrix_to_axis_angle(R.axis_angle_to_matrix(aa)), aa, atol=1e-8)
    assert torch.allclose(R.quaternion_to_axis_angle(R.axis_angle_to_quaternion(aa)), aa, atol=1e-8)
    assert torch.allclose(R.rot6d_to_axis_angle(R.axis_angle_to_rot6d(aa)), aa, atol=1e-8)
    m = R.axis_angle_to_matrix(aa)
    assert torch.allclose(R.quaternion_to_matrix(R.matrix_to_quaternion(m)), m, atol=1e-10)


def test_quaternion_convention_is_wxyz():
    q = R.axis_angle_to_quaternion(torch.tensor([[math.pi / 2, 0.0, 0.0]], dtype=torch.float64))
    assert torch.allclose(q, torch.tensor([[math.cos(math.pi / 4), math.sin(math.pi / 4), 0, 0]], dtype=torch.float64))
    # an unnormalised, negated quaternion is the same rotation
    assert torch.allclose(R.quaternion_to_axis_angle(-3 * q), torch.tensor([[math.pi / 2, 0.0, 0.0]], dtype=torch.float64))


def test_canonical_axis_angle():
    aa = torch.tensor([[1.5 * math.pi, 0, 0], [0, 2 * math.pi + 0.1, 0]], dtype=torch.float64)
    c = R.canonical_axis_angle(aa)
    assert torch.allclose(c, torch.tensor([[-0.5 * math.pi, 0, 0], [0, 0.1, 0]], dtype=torch.float64), atol=1e-9)
    assert (c.norm(dim=-1) <= math.pi + 1e-9).all()
    assert torch.allclose(R.axis_angle_to_matrix(c), R.axis_angle_to_matrix(aa), atol=1e-9)


def test_geodesic_distance():
    a = _aa(seed=1, max_angle=1.0)
    assert R.geodesic_distance(a, a).abs().max() < 1e-6
    z = torch.zeros(1, 3, dtype=torch.float64)
    b = torch.tensor([[0, 0, 0.7]], dtype=torch.float64)
    assert abs(R.geodesic_distance(z, b).item() - 0.7) < 1e-9
    assert abs(R.geodesic_degrees(z, b).item() - math.degrees(0.7)) < 1e-7
    # symmetric and invariant to the 2*pi ambiguity
    c = torch.tensor([[0, 0, 0.7 - 2 * math.pi]], dtype=torch.float64)
    assert R.geodesic_distance(b, c).item() < 1e-6


def test_6d_accepts_non_orthonormal_input():
    r6 = torch.randn(10, 6, dtype=torch.float64)
    m = R.rot6d_to_matrix(r6)
    assert torch.allclose(m @ m.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(10, 3, 3), atol=1e-9)
    assert torch.allclose(torch.linalg.det(m), torch.ones(10, dtype=torch.float64))
