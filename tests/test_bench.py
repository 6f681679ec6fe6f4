"""The benchmark suite: `dposer bench quick` produces every table with finite rows (CI), and its helpers."""
import numpy as np
import pytest

from dposer.eval import bench
from conftest import needs_data


def test_bootstrap_interval_brackets_the_mean():
    x = np.random.default_rng(0).normal(5.0, 1.0, 400)
    lo, hi = bench.bootstrap_ci(x, 500)
    assert lo < x.mean() < hi and hi - lo < 0.5


def test_write_section_replaces_only_its_block(tmp_path):
    md = tmp_path / "b.md"
    md.write_text("# B\n\nintro\n\n<!-- bench:a -->\nold\n<!-- /bench:a -->\n\ntail\n")
    bench.write_section(md, "a", "| x |", "dposer bench a")
    bench.write_section(md, "b", "| y |", "dposer bench b")
    text = md.read_text()
    assert "old" not in text and "| x |" in text and "intro" in text and "tail" in text
    assert text.index("<!-- bench:a -->") < text.index("<!-- bench:b -->")


@needs_data
def test_bench_quick_produces_every_table_with_finite_rows(data_root, tmp_path, monkeypatch):
    import dposer

    monkeypatch.setenv("DPOSER_CACHE", str(tmp_path))
    out = bench.run_quick(dposer.load_prior(), data_root)  # raises on any nan / inf in a table row
    assert set(out) == set(bench.BENCHES)
    for name, body in out.items():
        assert sum(ln.startswith("|") for ln in body.splitlines()) >= 3, name
    completion = out["completion"]
    for label in bench.LABELS.values():
        assert label in completion, label
    for case in ("left_leg", "right_arm", "trunk", "hands_given_body", "pinky_ring_given_hand"):
        assert f"**{case}**" in completion
    assert "Masked whole-body training vs independent parts" in completion
    assert "near-copies of training poses vs novel poses" in completion
    assert "denoise, t" in completion and "adam, t" in completion  # both optimisers in every prior's tuning
    assert bench.ADAM_LABEL in out["steps"]
    assert "real: held-out val split" in out["generation"] and "self-penetration" in out["generation"]
    for row in ("Bandai Namco dataset-1", "Tuning takes", "**ours**", "median-5 + Gaussian", "Butterworth"):
        assert row in out["clean"], row
    assert "uniform" in out["schedule"] and "Gaussian conditional" in out["steps"]
    assert "pose-it/s" in out["speed"] and "matmul" in out["speed"]


@needs_data
def test_nearest_training_hand_distance_is_zero_for_training_rows(data_root):
    """A test case built from training rows has every hand at distance 0 from the pool; real test hands are not."""
    import dataclasses

    case = next(c for c in bench.completion_cases("test", 20, data_root) if c.name == "pinky_ring_given_hand")
    d = bench.nearest_training_hand_mm(case)
    assert d.shape == (20,) and (d > 0).all()
    copy = dataclasses.replace(case, truth=case.train_pool[:20])
    assert np.allclose(bench.nearest_training_hand_mm(copy), 0, atol=1e-3)
