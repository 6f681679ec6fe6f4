"""dposer.formats.npz: outputs written atomically and never over an input; npz files and SMPL-X model files read without
pickle. The "malicious" files below would create a marker file if their pickle ran."""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dposer import cli
from dposer.formats import data, npz as io


class Boom:
    """Pickles to a call of ``open(marker, 'w')``: unpickling it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _take(path: Path, frames: int = 4) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, body_pose=rng.normal(0, 0.1, (frames, 63)).astype(np.float32),
             trans=np.zeros((frames, 3), np.float32))
    return path


# ---- item 1: never lose the user's file

@pytest.mark.parametrize("output", ["take.npz", "take", "link.npz", "./sub/../take.npz"])
def test_cli_refuses_an_output_that_is_the_input(tmp_path, checkpoint, capsys, output):
    take = _take(tmp_path / "take.npz")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.npz").symlink_to(take)
    before = take.read_bytes()
    rc = cli.main(["clean", "--checkpoint", checkpoint, "--input", str(take), "--output", str(tmp_path / output)])
    assert rc == 2 and "refusing to write" in capsys.readouterr().err
    assert take.read_bytes() == before


def test_cli_checks_the_output_folder_before_any_work(tmp_path, capsys):
    take = _take(tmp_path / "take.npz")
    # a checkpoint that does not exist: the folder error must come first (nothing was loaded or computed)
    rc = cli.main(["clean", "--checkpoint", str(tmp_path / "none.safetensors"), "--input", str(take),
                   "--output", str(tmp_path / "no" / "such" / "out.npz")])
    err = capsys.readouterr().err
    assert rc == 2 and "folder" in err and "does not exist" in err and "none.safetensors" not in err


def test_cli_says_which_file_it_wrote(tmp_path, checkpoint, capsys):
    take = _take(tmp_path / "take.npz")
    rc = cli.main(["clean", "--checkpoint", checkpoint, "--input", str(take), "--output", str(tmp_path / "clean"),
                   "--steps", "2"])
    out = capsys.readouterr().out
    assert rc == 0 and f"wrote {tmp_path / 'clean.npz'} " in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.npz", "take.npz"]  # no temporary left behind
    assert np.load(tmp_path / "clean.npz")["trans"].shape == (4, 3)


def test_kill_during_write_leaves_input_and_output_intact(tmp_path):
    """A process killed in the middle of writing leaves the input untouched, no partial output, and a previous
    output in place."""
    take = _take(tmp_path / "take.npz")
    old = _take(tmp_path / "out.npz", frames=2)
    take_bytes, old_bytes = take.read_bytes(), old.read_bytes()
    script = textwrap.dedent("""
        import sys, time
        from dposer.formats.npz import atomic_write
        with atomic_write(sys.argv[1], inputs=[sys.argv[2]]) as f:
            f.write(b"PK partial npz" * 100000)
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
    """)
    for out in (old, tmp_path / "fresh.npz"):
        proc = subprocess.Popen([sys.executable, "-c", script, str(out), str(take)], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert take.read_bytes() == take_bytes
        assert old.read_bytes() == old_bytes
        assert not (tmp_path / "fresh.npz").exists()
        leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("take.npz", "out.npz")]
        assert all(n.startswith(".") and n.endswith(".part") for n in leftovers), leftovers  # hidden temporaries


def test_save_npz_appends_the_suffix_like_numpy(tmp_path):
    assert io.save_npz(tmp_path / "a", {"x": np.zeros(2)}) == tmp_path / "a.npz"
    assert (tmp_path / "a.npz").is_file() and not (tmp_path / "a").exists()
    mask = os.umask(0o022)  # usual permissions (0o666 less the umask), not mkstemp's 0o600
    try:
        io.save_npz(tmp_path / "b", {"x": np.zeros(2)})
    finally:
        os.umask(mask)
    assert oct((tmp_path / "b.npz").stat().st_mode & 0o777) == oct(0o644)
    with pytest.raises(io.OutputError, match="refusing"):
        io.save_npz(tmp_path / "a", {"x": np.ones(2)}, inputs=[tmp_path / "a.npz"])


# ---- item 2: never run a model file's code

def test_malicious_npz_pose_file_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "ran"
    np.savez(tmp_path / "bad.npz", body_pose=np.array([Boom(marker)], dtype=object))
    with pytest.raises(data.DataError, match="Python objects"):
        data.load_pose_file(tmp_path / "bad.npz")
    assert not marker.exists()


def test_unused_npz_members_are_not_read(tmp_path):
    """Only the members a loader uses are read: an unused pickled member neither runs nor blocks the load."""
    marker = tmp_path / "ran"
    np.savez(tmp_path / "take.npz", body_pose=np.zeros((2, 63), np.float32),
             notes=np.array([Boom(marker)], dtype=object))
    assert len(data.load_pose_file(tmp_path / "take.npz")) == 2
    assert not marker.exists()


def _smplx_arrays():
    pytest.importorskip("smplx")
    from test_smplx import write_synthetic_smplx

    return write_synthetic_smplx


def test_malicious_smplx_npz_is_refused_before_smplx_sees_it(tmp_path):
    write = _smplx_arrays()
    path = write(tmp_path / "model")
    arrays = dict(np.load(path))
    marker = tmp_path / "ran"
    arrays["v_template"] = np.array([Boom(marker)], dtype=object)
    np.savez(path, **arrays)
    # the threat is real: the loader smplx uses (allow_pickle=True) runs it
    probe = tmp_path / "probe.npz"
    np.savez(probe, x=np.array([Boom(tmp_path / "ran_probe")], dtype=object))
    np.load(probe, allow_pickle=True)["x"]
    assert (tmp_path / "ran_probe").exists()

    from dposer.core.kinematics import SmplxSkeleton

    with pytest.raises(data.DataError, match="v_template"):
        SmplxSkeleton(str(tmp_path / "model"))
    assert not marker.exists()
    take = _take(tmp_path / "take.npz", 1)
    rc = cli.main(["fit", "--input", str(take), "--targets", str(_targets(tmp_path)), "--smplx-model",
                   str(tmp_path / "model"), "--output", str(tmp_path / "o.npz"), "--steps", "1"])
    assert rc == 2 and not marker.exists()


def _targets(tmp_path):
    p = tmp_path / "targets.json"
    p.write_text('{"left_wrist": [0.5, 1.2, 0.1]}')
    return p


def test_pickled_dicts_smplx_never_uses_are_skipped(tmp_path):
    """The released SMPL-X npz files hold pickled dicts (joint2num, part2num) nothing uses: never unpickled."""
    write = _smplx_arrays()
    path = write(tmp_path / "model")
    marker = tmp_path / "ran"
    np.savez(path, **dict(np.load(path)), joint2num=np.array([Boom(marker)], dtype=object))
    from dposer.core.kinematics import SmplxSkeleton

    SmplxSkeleton(str(tmp_path / "model"))
    assert not marker.exists()


def test_smplx_pkl_through_the_restricted_unpickler(tmp_path):
    write = _smplx_arrays()
    arrays = dict(np.load(write(tmp_path / "model")))
    good = tmp_path / "SMPLX_NEUTRAL.pkl"
    good.write_bytes(pickle.dumps(arrays, protocol=2))
    got = io.read_smplx_model(good)
    assert all(np.array_equal(got[k], arrays[k]) for k in got)
    marker = tmp_path / "ran"
    bad = tmp_path / "bad" / "SMPLX_NEUTRAL.pkl"
    bad.parent.mkdir()
    bad.write_bytes(pickle.dumps({**arrays, "weights": Boom(marker)}))
    with pytest.raises(data.DataError, match="builtins|open"):
        io.read_smplx_model(bad)
    assert not marker.exists()
    from dposer.core.kinematics import SmplxSkeleton

    SmplxSkeleton(str(good))  # a clean .pkl works end to end


def test_baseline_cache_is_read_weights_only(tmp_path):
    import torch

    from dposer.eval import baselines

    marker = tmp_path / "ran"
    bad = tmp_path / "cache.pt"
    torch.save({"chosen": Boom(marker)}, bad)
    with pytest.warns(UserWarning, match="ignoring baseline cache"):
        assert baselines.load_cache(bad) is None
    assert not marker.exists()
    good = tmp_path / "good.pt"
    baselines._save_cache({"w": torch.ones(2), "chosen": {"body": {"k": 2}}}, good)
    assert baselines.load_cache(good)["chosen"] == {"body": {"k": 2}}


def test_every_torch_load_is_weights_only():
    src = Path(__file__).resolve().parents[1] / "backend" / "dposer"
    calls = [(p.name, line.strip()) for p in src.rglob("*.py") for line in p.read_text().splitlines()
             if "torch.load(" in line and not line.strip().startswith("#")]
    assert calls and all("weights_only=True" in line for _, line in calls), calls
