"""Files in and out, safely: atomic writes that never replace an input, npz reading without pickle, and the
user's SMPL-X model files read without running any code they hold.

Every command that writes goes through :func:`atomic_write` (or :func:`save_npz`): the output is written to a
temporary file in the same folder and renamed over the destination only when complete, so a killed run leaves
either the old file or the new one, never a truncated one.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """Input pose data is malformed (wrong shape, NaN, missing keys, not an npz file...)."""


class OutputError(ValueError):
    """An output path that cannot be written safely (missing folder, or it is one of the inputs)."""


# ---------------------------------------------------------------------------------------------------------
# Writing

def npz_path(path) -> Path:
    """The file numpy's ``savez`` writes for ``path``: it appends ``.npz`` when the name lacks it."""
    p = Path(path)
    return p if p.name.endswith(".npz") else p.with_name(p.name + ".npz")


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)  # symlinks and hard links too
    return a.resolve() == b.resolve()


def check_output(path, inputs=(), npz: bool = False) -> Path:
    """The file that will be written for ``path`` (with ``.npz`` appended like numpy when ``npz``), checked
    before any work: its folder exists, it is not a folder, and it is none of ``inputs``."""
    final = npz_path(path) if npz else Path(path)
    folder = final.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {final}: the folder {folder} does not exist")
    if final.is_dir():
        raise OutputError(f"cannot write {final}: it is a folder")
    for inp in inputs:
        if inp is not None and _same_file(final, Path(inp)):
            raise OutputError(f"refusing to write {final}: it is the input file {inp}, which would be lost; "
                              "choose another output name")
    return final


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path, inputs=()):
    """``with atomic_write(path, inputs) as f: f.write(...)``: a binary file in ``path``'s folder, renamed over
    ``path`` when the block ends without error (deleted otherwise). ``path`` is checked with :func:`check_output`."""
    final = check_output(path, inputs)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_npz(path, arrays: dict, inputs=()) -> Path:
    """Write ``arrays`` to ``path`` (``.npz`` appended when missing) atomically; returns the file written."""
    final = check_output(path, inputs, npz=True)
    with atomic_write(final, inputs) as f:
        np.savez(f, **arrays)
    return final


def write_text(path, text: str, inputs=()) -> Path:
    final = check_output(path, inputs)
    with atomic_write(final, inputs) as f:
        f.write(text.encode("utf-8"))
    return final


# ---------------------------------------------------------------------------------------------------------
# Reading npz files

class Npz(Mapping):
    """An npz file read lazily and without pickle: a member is decompressed only when it is used, and a member
    holding Python objects is refused (never unpickled) with a :class:`DataError` that names it."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        if not zipfile.is_zipfile(self.path):
            raise DataError(f"{self.path}: not an npz file (an npz is a zip archive of numpy arrays, as "
                            "numpy.savez writes; BVH, FBX, text and .npy files are not read here)")
        try:
            self._f = np.load(self.path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - a damaged archive
            raise DataError(f"{self.path}: not a readable npz file: {e}") from None

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._f.files:
            raise KeyError(key)
        try:
            return self._f[key]
        except ValueError as e:
            if "allow_pickle" in str(e) or "Object arrays" in str(e):
                raise DataError(f"{self.path}: '{key}' holds Python objects (pickled data), which are never "
                                "loaded: save plain numeric arrays") from None
            raise DataError(f"{self.path}: '{key}' is not a readable array: {e}") from None
        except Exception as e:  # noqa: BLE001 - damaged member (zlib, zip, truncated)
            raise DataError(f"{self.path}: '{key}' is not a readable array: {e}") from None

    def __iter__(self):
        return iter(self._f.files)

    def __len__(self) -> int:
        return len(self._f.files)

    def close(self) -> None:
        self._f.close()


# ---------------------------------------------------------------------------------------------------------
# The user's SMPL-X model files

# The arrays the `smplx` package reads from an SMPL-X model file (SMPL, SMPL+H and SMPL-X layers). The released
# files also hold pickled dicts (joint2num, part2num) that nothing uses: they are never read.
SMPLX_MODEL_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights",
                    "hands_componentsl", "hands_componentsr", "hands_meanl", "hands_meanr", "lmk_faces_idx",
                    "lmk_bary_coords", "dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords")
_SMPLX_REQUIRED = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights")

# Globals a model .pkl may name: numpy's array reconstruction, and the bytes decoder of protocol-2 pickles (the
# same short list torch's weights-only unpickler admits). Nothing else is ever imported or called.
_PKL_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _ArraysOnly(pickle.Unpickler):
    """Unpickler that builds numpy arrays and plain containers and refuses every other global (nothing runs)."""

    def find_class(self, module, name):
        if (module, name) in _PKL_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def smplx_model_file(model_path, gender: str = "neutral") -> Path:
    """The SMPL-X model file for a folder (``DIR/smplx/SMPLX_G.npz``, ``DIR/SMPLX_G.npz`` or ``.pkl``) or a file."""
    p = Path(model_path)
    if p.is_file():
        return p
    name = f"SMPLX_{gender.upper()}"
    tried = [p / sub / f"{name}.{ext}" for ext in ("npz", "pkl") for sub in ("smplx", ".")]
    for cand in tried:
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"no SMPL-X model file found: tried {', '.join(map(str, tried))}")


def read_smplx_model(path) -> dict[str, np.ndarray]:
    """The numeric arrays of an SMPL-X model file (.npz or .pkl), read without running any code in it."""
    path = Path(path)
    if path.suffix == ".pkl":
        try:
            with open(path, "rb") as fh:
                raw = _ArraysOnly(fh, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError) as e:
            raise DataError(f"{path}: refused to load this SMPL-X model file ({e}); only numpy arrays are "
                            "accepted, nothing in the file was run. Use the .npz release of the model") from None
        if not isinstance(raw, dict):
            raise DataError(f"{path}: not an SMPL-X model file (expected a dict of arrays)")
        get = raw.get
    else:
        npz = Npz(path)
        get = lambda k: npz[k] if k in npz else None  # noqa: E731 - only the keys smplx needs are read
    out = {}
    for key in SMPLX_MODEL_KEYS:
        a = get(key)
        if a is None:
            continue
        a = np.asarray(a)
        if not isinstance(a, np.ndarray) or a.dtype == object or not np.issubdtype(a.dtype, np.number):
            raise DataError(f"{path}: '{key}' must be a numeric array, got {type(a).__name__} "
                            f"{getattr(a, 'dtype', '')}; nothing in the file was run")
        out[key] = a
    missing = [k for k in _SMPLX_REQUIRED if k not in out]
    if missing:
        raise DataError(f"{path}: not an SMPL-X model file: missing {', '.join(missing)}")
    return out
