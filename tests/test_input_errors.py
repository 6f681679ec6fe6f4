"""Every bad input gives a clear message, never a traceback: the CLI's arguments, the pose
files' contents (dposer.formats.data's checks, shared by the CLI, the Python API and the server) and missing extras."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dposer
from dposer import cli
from dposer.formats import data


def _run(capsys, *argv) -> tuple[int, str]:
    rc = cli.main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


def _usage_error(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        cli.main(list(argv))
    assert e.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["sample", "--n", "0"], "--n: must be >= 1, got 0"),
    (["sample", "--steps", "-4"], "--steps: must be >= 1, got -4"),
    (["sample", "--steps", "0"], "--steps: must be >= 1, got 0"),  # was silently 100/120
    (["sample", "--n", "x"], "'x' is not an integer"),
    (["clean", "--input", "i.npz", "--strength", "5"], "--strength: must be in [0.0, 1.0], got 5"),
    (["clean", "--input", "i.npz", "--strength", "nan"], "--strength: must be in [0.0, 1.0], got nan"),
    (["clean", "--input", "i.npz", "--steps", "0"], "--steps: must be >= 1"),
    (["refine", "--input", "i.npz", "--strength", "0"], "--strength: must be in (0.0, 1.0]"),
    (["vary", "--input", "i.npz", "--n", "0"], "--n: must be >= 1"),
    (["complete", "--input", "i.npz", "--missing", "right_hand", "--hypotheses", "0"], "--hypotheses: must be >= 1"),
])
def test_argument_validation(capsys, argv, message):
    assert message in _usage_error(capsys, *argv, "--output", "o.npz")


def test_version_and_defaults_in_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"dposer {dposer.__version__}"
    with pytest.raises(SystemExit):
        cli.main(["clean", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 0.5)" in text and "(default: fp32)" in text and "(default: None)" not in text


def _pose_file(tmp_path, name="in.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


BODY = np.zeros((3, 63), np.float32)


@pytest.mark.parametrize("arrays, message", [
    ({"body_pose": np.zeros((0, 63))}, "0 rows"),
    ({"body_pose": BODY.astype(np.complex64)}, "real numbers"),
    ({"body_pose": np.full((3, 63), 1e6)}, r"rotation of 1e\+06"),
    ({"body_pose": BODY, "trans": np.full((3, 3), np.nan)}, "'trans' contains NaN"),
    ({"body_pose": BODY, "trans": np.zeros((3, 4))}, r"'trans' must have shape \(N, 3\)"),
    ({"body_pose": BODY, "trans": np.zeros((2, 3))}, "'trans' has 2 rows"),
    ({"poses": np.zeros((3, 156)), "mocap_framerate": np.array([120.0, 60.0])}, "'mocap_framerate' must be one"),
    ({"poses": np.zeros((0, 156))}, "0 rows"),
])
def test_bad_pose_files_are_named(tmp_path, capsys, checkpoint, arrays, message):
    path = _pose_file(tmp_path, **arrays)
    with pytest.raises(data.DataError, match=message):
        data.load_pose_file(path)
    for cmd in (["complete", "--missing", "right_hand"], ["refine"]):
        rc, text = _run(capsys, *cmd, "--checkpoint", checkpoint, "--input", path, "--output", str(tmp_path / "o"))
        assert rc == 2 and "Traceback" not in text, text
        assert "error:" in text


def test_array_valued_framerate_of_one_number_is_read(tmp_path):
    ps = data.load_pose_file(_pose_file(tmp_path, poses=np.zeros((3, 156)), mocap_framerate=np.array([120.0])))
    assert ps.extras["framerate"] == 120.0


def test_a_bvh_is_cleaned_into_a_bvh_and_a_broken_one_is_named(tmp_path, capsys, checkpoint):
    bvh = tmp_path / "take.bvh"
    bvh.write_text("HIERARCHY\nROOT Hips\n{\n}\nMOTION\nFrames: 1\n")
    rc, text = _run(capsys, "clean", "--checkpoint", checkpoint, "--input", str(bvh), "--output", str(tmp_path / "o"))
    assert rc == 2 and "must end in .bvh" in text
    rc, text = _run(capsys, "clean", "--input", str(bvh), "--output", str(tmp_path / "o.bvh"))
    assert rc == 2 and "joint 'Hips' has no OFFSET" in text and not (tmp_path / "o.bvh").exists()


def test_api_errors_are_clear(checkpoint):
    prior = dposer.load_prior(checkpoint)
    with pytest.raises(ValueError, match="names must be a comma-separated string or a list"):
        dposer.complete(prior, {"body_pose": BODY}, None)
    with pytest.raises(ValueError, match="0 rows"):
        dposer.fit(prior, {"left_wrist": np.zeros((0, 3))})
    with pytest.raises(ValueError, match="trans"):
        dposer.clean(prior, {"body_pose": BODY, "trans": np.full((3, 3), np.nan)})
    with pytest.raises(ValueError, match="real numbers"):
        dposer.refine(prior, {"body_pose": BODY + 0j})


def test_fit_with_an_empty_target(tmp_path, capsys, checkpoint):
    targets = tmp_path / "t.json"
    targets.write_text(json.dumps({"left_wrist": []}))
    rc, text = _run(capsys, "fit", "--checkpoint", checkpoint, "--targets", str(targets), "--output",
                    str(tmp_path / "o"))
    assert rc == 2 and "left_wrist" in text and "Traceback" not in text


def test_missing_extra_names_the_install_command(tmp_path):
    """Without matplotlib, `dposer bench` and `--image` say which extra to install, before any work."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["matplotlib"] = None  # as if the 'plot' extra were not installed
        from dposer import cli
        assert cli.main(["bench", "quick", "--checkpoint", "missing.safetensors"]) == 2
        assert cli.main(["sample", "--n", "1", "--output", {str(tmp_path / 's')!r}, "--image", {str(tmp_path / 'p.png')!r},
                         "--checkpoint", "missing.safetensors"]) == 2
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("pip install 'blender-dposer[plot]'") == 2, proc.stderr
    assert "Traceback" not in proc.stderr
