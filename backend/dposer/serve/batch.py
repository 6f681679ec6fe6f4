"""Clean or complete a folder of takes from one call, on this machine or a Ray cluster (``dposer batch``).

    dposer batch clean --input capture_day/ --output cleaned/ --workers 2
    dposer batch complete --input 'takes/**/*.npz' --output done/ --missing left_hand,right_hand --engine ray

    >>> report = dposer.serve.batch.run("clean", "capture_day/", "cleaned/", workers=2, strength=0.5)

Every take is processed on its own by one function, :func:`process_take` (load -> task -> write), which both
engines run: ``local`` in worker processes of this machine (``concurrent.futures`` with spawn; torch threads per
worker = cores // workers), ``ray`` as Ray tasks (the optional ``ray`` extra; ``ray.init()`` on a local cluster, or
``ray_address`` for a real one; one GPU per take when the cluster has GPUs). Each worker process loads the prior once
and keeps it for the takes it runs. A take's seed comes from the seed and the take's relative path, never from the
order it was scheduled in, so both engines give the same outputs.

Inputs: six-key SMPL-X npz, AMASS npz (``poses``) and BVH (read through :func:`dposer.formats.convert.convert_bvh`).
Outputs mirror the input names below ``output`` (relative paths kept): npz in -> npz out; BVH in -> BVH out on
the take's own skeleton (:mod:`dposer.formats.convert_back`) plus ``<name>.smplx.npz`` beside it, the full SMPL-X result
(what the BVH has no joints for, e.g. completed hands, lives only there). Complete solves each take as a clip
(``clip=True``) at the take's frame rate.

``<output>/batch_report.json`` (written atomically, after every take) lists every take: status (done / failed /
skipped / pending), error message, frames, what was repaired (clean: the cleaner's ``repaired`` entry when it
gives one) and how far the body moved, seconds, the worker (host:pid) and whether the take loaded the prior. A take
that fails is reported and the batch goes on. A re-run into the same folder skips the takes already done (a take
counts as done only once its outputs were written atomically and the report recorded it), so an interrupted batch
resumes where it stopped; takes of earlier runs that this run does not name stay in the report (``other_takes``).
``shard=(i, n)`` runs one slice of the takes with its own report, for the tasks of a Slurm array.
"""
from __future__ import annotations

import datetime
import glob
import hashlib
import json
import os
import socket
import sys
import time
from pathlib import Path, PurePosixPath

import numpy as np

TASKS = ("clean", "complete")
ENGINES = ("local", "ray")
REPORT = "batch_report.json"
SUFFIXES = (".npz", ".bvh")
# Task options and their defaults (the single-take commands' defaults).
COMMON = {"checkpoint": None, "device": None, "precision": "fp32", "hands": "absolute", "seed": 0, "steps": None}
OPTIONS = {"clean": {**COMMON, "strength": 0.5, "parts": "body", "lock": ()},
           "complete": {**COMMON, "missing": None, "hypotheses": 1, "combine": "mean", "fps": None}}


# ---------------------------------------------------------------------------------------------------------
# One take

_PRIORS: dict = {}  # one prior per worker process, kept between the takes it runs


def _prior(checkpoint, device, precision, rec: dict):
    key = (checkpoint, device, precision)
    rec["prior_loaded"] = key not in _PRIORS  # True once per worker process (its first take)
    if key not in _PRIORS:
        from ..core.prior import load_prior

        _PRIORS.clear()
        _PRIORS[key] = load_prior(checkpoint, device, precision)
    return _PRIORS[key]


def take_seed(seed: int, rel: str) -> int:
    """The seed of one take: from the batch seed and the take's relative path (not from scheduling order)."""
    digest = hashlib.sha256(f"{seed}:{rel}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def output_names(rel: str) -> list[str]:
    """Relative output paths of the take at relative path ``rel`` (first the one that mirrors its name)."""
    p = PurePosixPath(rel)
    if p.suffix.lower() == ".bvh":
        return [rel, str(p.with_name(p.stem + ".smplx.npz"))]
    return [rel]


def _load(path: Path, hands: str):
    """(pose dict for the task, PoseSet, fps or None, conversion or None) of an npz or BVH take."""
    from ..formats import data

    if path.suffix.lower() == ".bvh":
        from ..formats.convert import convert_bvh

        conv = convert_bvh(path)
        ps = data.from_smplx_dict({k: conv[k] for k in ("global_orient", "body_pose", "trans")})
        pose = {"global_orient": conv["global_orient"], "body_pose": conv["body_pose"]}
        return pose, ps, float(conv["mocap_framerate"]), conv
    ps, pose = data.load_task_input(path, hands)
    return pose, ps, data.file_fps(path, ps), None


def _change_deg(before: np.ndarray, after: np.ndarray) -> dict:
    """Mean and max rotation change (degrees) of the body joints between two (F, 63) arrays."""
    from scipy.spatial.transform import Rotation

    d = Rotation.from_rotvec(before.reshape(-1, 3)).inv() * Rotation.from_rotvec(after.reshape(-1, 3))
    deg = np.degrees(d.magnitude())
    return {"mean": round(float(deg.mean()), 4), "max": round(float(deg.max()), 4)}


def _plain(x):
    """JSON-ready copy of a task's report entry (numpy scalars and arrays become numbers and lists)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def _run_task(task: str, pose: dict, fps, seed: int, o: dict, rec: dict) -> tuple[dict, object]:
    """(result arrays, what was repaired or None) of one take."""
    from ..tasks import pose_tasks as tasks

    prior = _prior(o["checkpoint"], o["device"], o["precision"], rec)
    if task == "clean":
        cfg = None if o["steps"] is None else tasks.CLEAN.with_(steps=o["steps"])
        res = tasks.clean(prior, pose, strength=o["strength"], parts=o["parts"], lock=tuple(o["lock"]), seed=seed,
                          cfg=cfg)
        repaired = res.pop("repaired", None)  # the cleaner's list of repairs, when it gives one
        if repaired is not None:  # plain arrays in the npz (no pickled objects)
            for key in ("joint", "first", "last", "kind"):
                res[f"repaired_{key}"] = np.asarray([r[key] for r in repaired])
        return res, repaired
    cfg = None if o["steps"] is None else tasks.COMPLETE.with_(steps=o["steps"])
    res = tasks.complete(prior, pose, o["missing"], hypotheses=o["hypotheses"], seed=seed, cfg=cfg,
                         combine=o["combine"], clip=True, fps=o["fps"] or fps)
    return res, None


def _clean_bvh(src: Path, paths: list[Path], strength: float) -> dict:
    """Clean a BVH take in its own channels (:mod:`dposer.formats.bvh_channels`; strength 0 changes nothing) and write
    the BVH (untouched values as written) and, beside it, an npz with the repairs and, where the take converts,
    its cleaned SMPL-X pose. Returns the report fields of the take."""
    from ..formats import bvh, bvh_channels
    from ..formats import npz as io
    from ..tasks import channel_clean

    take = bvh.read(src)
    if strength > 0:
        new, changed, rep = bvh_channels.clean_take(take)
    else:
        new, changed, rep = take, np.zeros(take.motion.shape, bool), channel_clean.Report(np.zeros((0, 0), bool))
    text = bvh_channels.motion_text(bvh_channels.read_text(src), new.motion, changed)
    names = [take.joints[k].name for k in bvh_channels.rotation_bones(take)]
    repaired = [{"joint": names[b], "first": a, "last": e, "kind": kind} for kind, b, a, e in rep.events]
    side = {f"repaired_{k}": np.asarray([r[k] for r in repaired]) for k in ("joint", "first", "last", "kind")}
    side |= {"jitter_deg": np.float64(rep.jitter_deg), "smoothed": np.bool_(rep.smoothed),
             "mocap_framerate": np.float64(take.fps)}
    try:
        from ..formats.convert import convert_bvh

        conv = convert_bvh(text)
        side |= {k: conv[k] for k in ("global_orient", "body_pose", "trans")}
        side["convert_skeleton"] = np.asarray(conv["skeleton"])
    except Exception as e:  # noqa: BLE001 - the BVH is the output; the SMPL-X copy is extra
        side["convert_error"] = np.asarray(f"{type(e).__name__}: {e}")
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    io.save_npz(paths[1], side, inputs=[src])
    io.write_text(paths[0], text, inputs=[src])
    q0, q1 = bvh_channels.rotations(take), bvh_channels.rotations(new)
    deg = np.degrees(2 * np.arccos(np.clip(np.abs(np.einsum("fbk,fbk->fb", q0, q1)), 0, 1)))
    return {"frames": take.num_frames, "fps": take.fps, "repaired": repaired,
            "change_deg": {"mean": round(float(deg.mean()), 4), "max": round(float(deg.max()), 4)}}


def process_take(job: dict) -> dict:
    """Load one take, run the task, write its outputs atomically; never raises for a bad take. Returns the
    take's report record. ``job``: task, source (path), rel (relative path), output (folder), options, seed,
    threads. Run by both engines."""
    import torch

    t0 = time.perf_counter()
    rec = {"status": "failed", "outputs": output_names(job["rel"]), "frames": None, "fps": None, "seed": job["seed"],
           "error": None, "worker": f"{socket.gethostname()}:{os.getpid()}"}
    try:
        torch.set_num_threads(job["threads"])
        from ..formats import npz as io

        src, out_dir, o = Path(job["source"]), Path(job["output"]), job["options"]
        if job["task"] == "clean" and src.suffix.lower() == ".bvh":
            rec.update(_clean_bvh(src, [out_dir / r for r in rec["outputs"]], o["strength"]), status="done")
            rec["seconds"] = round(time.perf_counter() - t0, 3)
            return rec
        pose, ps, fps, conv = _load(src, o["hands"])
        rec.update(frames=len(ps), fps=fps)
        res, repaired = _run_task(job["task"], pose, fps, job["seed"], o, rec)
        if job["task"] == "clean":
            rec["repaired"] = _plain(repaired)
            rec["change_deg"] = _change_deg(pose["body_pose"], res["body_pose"]) if "body_pose" in pose else None
        for k in ("trans", "betas"):  # passed through, as the single-take commands do
            if k in ps.extras and k not in res:
                res[k] = ps.extras[k]
        if fps is not None:
            res.setdefault("mocap_framerate", np.float64(o.get("fps") or fps))
        paths = [out_dir / r for r in rec["outputs"]]
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        if conv is None:
            io.save_npz(paths[0], res, inputs=[src])
        else:
            from ..formats import bvh, convert_back

            for k in ("skeleton", "unit", "bone_map", "fit_error_deg_mean", "fit_error_deg_max"):
                res[f"convert_{k}"] = np.asarray(conv[k])
            text = bvh.dumps(convert_back.apply_to_bvh(bvh.read(src), json.loads(conv["bone_map"]), pose, res))
            io.save_npz(paths[1], res, inputs=[src])  # written only once both are ready: the npz, then the BVH
            io.write_text(paths[0], text, inputs=[src])
        rec["status"] = "done"
    except Exception as e:  # noqa: BLE001 - a bad take is reported, the batch goes on
        rec["error"] = f"{type(e).__name__}: {e}"
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    return rec


# ---------------------------------------------------------------------------------------------------------
# The batch

def find_takes(inputs, output) -> tuple[Path, list[Path]]:
    """(base folder, take files) for a folder (searched recursively), a glob pattern (``**`` allowed) or one file.
    Files under ``output`` are left out; relative paths are taken from the base folder."""
    out = Path(output).resolve()
    spec = str(inputs)
    if any(c in spec for c in "*?["):
        parts = Path(spec).parts
        fixed = [p for p in parts[:next(i for i, p in enumerate(parts) if any(c in p for c in "*?["))]]
        base = Path(*fixed) if fixed else Path(".")
        files = [Path(f) for f in glob.glob(spec, recursive=True)]
    else:
        p = Path(spec)
        if not p.exists():
            raise FileNotFoundError(f"input not found: {p}")
        base, files = (p, list(p.rglob("*"))) if p.is_dir() else (p.parent, [p])
    if base.resolve() == out:
        raise ValueError(f"the output folder must differ from the input folder ({out}): outputs mirror the input "
                         "names and would replace the takes")
    takes = sorted((f for f in files if f.is_file() and f.suffix.lower() in SUFFIXES
                    and out not in f.resolve().parents), key=lambda f: f.relative_to(base).as_posix())
    if not takes:
        raise ValueError(f"no takes (.npz or .bvh files) found in {spec}")
    return base, takes


def task_options(task: str, options: dict) -> dict:
    """The task's options with defaults filled in, checked before any take runs."""
    from ..spec import layout

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    unknown = set(options) - set(OPTIONS[task])
    if unknown:
        raise TypeError(f"unknown option(s) for batch {task}: {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(OPTIONS[task])}")
    o = {**OPTIONS[task], **options}
    if o["checkpoint"] is not None:
        if not Path(o["checkpoint"]).is_file():
            raise FileNotFoundError(f"checkpoint not found: {o['checkpoint']}")
        o["checkpoint"] = str(Path(o["checkpoint"]).resolve())
    if task == "clean":
        if not 0.0 <= o["strength"] <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {o['strength']}")
        o["lock"] = [o["lock"]] if isinstance(o["lock"], str) else list(o["lock"] or ())
        layout.names_to_dims(o["parts"])
        layout.names_to_dims(o["lock"])
    else:
        if not o["missing"]:
            raise ValueError("batch complete needs missing= (part/group/joint names, e.g. 'left_hand,right_hand')")
        layout.names_to_dims(o["missing"])
        if o["hypotheses"] < 1:
            raise ValueError(f"hypotheses must be >= 1, got {o['hypotheses']}")
    if o["steps"] is not None and o["steps"] < 1:
        raise ValueError(f"steps must be >= 1, got {o['steps']}")
    return o


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _previous(path: Path, task: str, options: dict) -> dict:
    """The takes of an earlier run's report in the same folder ({} when there is none)."""
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text())
        takes = {**old.get("other_takes", {}), **old["takes"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: unreadable batch report ({e}); delete it to start the batch afresh") from None
    if old.get("task") != task or old.get("options") != options:
        raise ValueError(f"{path.parent} holds a batch report of another run ({old.get('task')} with "
                         f"{old.get('options')}); use another output folder, or delete {path.name} to start afresh")
    return takes


def _failed(job: dict, error: BaseException) -> dict:
    return {"status": "failed", "outputs": output_names(job["rel"]), "frames": None, "fps": None, "seed": job["seed"],
            "error": f"{type(error).__name__}: {error}", "seconds": None}


def report_name(shard: tuple[int, int] | None = None) -> str:
    """The report's file name: ``batch_report.json``, or one per shard (shards run at once must not share one)."""
    return REPORT if shard is None else f"batch_report.shard{shard[0]}of{shard[1]}.json"


def run(task: str, inputs, output, engine: str = "local", workers: int | None = None, threads: int | None = None,
        ray_address: str | None = None, gpus_per_take: float | None = None, shard: tuple[int, int] | None = None,
        progress: bool = True, **options) -> dict:
    """Run ``task`` ('clean' or 'complete') on every take of ``inputs`` (a folder, a glob or one file) into the
    folder ``output``; returns the report (also in ``<output>/batch_report.json``).

    ``engine``: 'local' (``workers`` processes, default one per core) or 'ray' (a local Ray cluster, or
    ``ray_address``; an already initialised Ray is used as it is). ``threads``: torch threads per take (default
    cores // workers; a Ray task asks for that many CPUs and ``gpus_per_take`` GPUs, default 1 when the cluster has
    GPUs). ``options``: the task's, as :data:`OPTIONS` lists them (e.g. strength=, parts=, lock=, missing=,
    hypotheses=, seed=, steps=, checkpoint=, device=, precision=). Takes already done in an earlier run into the same
    folder are skipped. ``shard=(i, n)`` runs only every n-th take from the i-th (0-based, in sorted path order),
    with its own report ``batch_report.shard<i>of<n>.json``: one shard per task of a Slurm array. Ctrl-C stops the
    batch after recording what finished (KeyboardInterrupt is re-raised).
    """
    from ..formats import npz as io

    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    opts = task_options(task, options)
    cores = os.cpu_count() or 1
    workers = workers or cores
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    threads = threads or max(1, cores // workers)
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"the output must be a folder, got the file {out}")
    base, takes = find_takes(inputs, out)
    rels = [t.relative_to(base).as_posix() for t in takes]
    names = [n for r in rels for n in output_names(r)]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ValueError(f"two takes would write the same output: {', '.join(clash)}")
    if shard is not None:
        i, n = shard
        if not 0 <= i < n:
            raise ValueError(f"shard {i}/{n}: need 0 <= i < n")
        takes, rels = takes[i::n], rels[i::n]
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / report_name(shard)
    previous = _previous(report_path, task, opts)

    records, jobs = {}, []
    for src, rel in zip(takes, rels):
        old = previous.get(rel)
        if old and old.get("status") in ("done", "skipped") and all((out / n).is_file() for n in old["outputs"]):
            records[rel] = {**old, "status": "skipped"}
            continue
        records[rel] = {"status": "pending", "outputs": output_names(rel)}
        jobs.append({"task": task, "source": str(src.resolve()), "rel": rel, "output": str(out.resolve()),
                     "options": opts, "seed": take_seed(opts["seed"], rel), "threads": threads})
    others = {rel: rec for rel, rec in previous.items() if rel not in records}  # earlier runs' other takes
    report = {"task": task, "options": opts, "input": str(inputs), "output": str(out), "shard": shard, "engine": engine,
              "workers": workers, "threads": threads, "started": _now(), "updated": None, "finished": False,
              "summary": {}, "takes": records, "other_takes": others}
    t0 = time.perf_counter()

    def write():
        counts = {s: sum(r["status"] == s for r in records.values()) for s in ("done", "failed", "skipped", "pending")}
        frames = sum(r.get("frames") or 0 for r in records.values() if r["status"] == "done")
        report["summary"] = {"takes": len(records), **counts, "frames_done": frames,
                             "seconds": round(time.perf_counter() - t0, 2)}
        report["updated"] = _now()
        io.write_text(report_path, json.dumps(report, indent=1))

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(records), initial=len(records) - len(jobs), desc=f"batch {task}", unit="take",
                   dynamic_ncols=True, file=sys.stderr)
    failed = 0

    def finished(job: dict, rec: dict) -> None:
        nonlocal failed
        records[job["rel"]] = rec
        failed += rec["status"] == "failed"
        write()
        if bar is not None:
            bar.set_postfix(done=sum(r["status"] == "done" for r in records.values()), failed=failed)
            bar.update(1)

    write()
    try:
        if jobs:
            runner = _run_local if engine == "local" else _run_ray
            runner(jobs, finished, workers=workers, threads=threads, address=ray_address, gpus=gpus_per_take)
        report["finished"] = True
    finally:
        write()
        if bar is not None:
            bar.close()
    return report


def _run_local(jobs: list[dict], finished, workers: int, **_) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ex = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {ex.submit(process_take, job): job for job in jobs}
        for fut in as_completed(futures):
            try:
                rec = fut.result()
            except Exception as e:  # noqa: BLE001 - the worker process died (out of memory, killed)
                rec = _failed(futures[fut], e)
            finished(futures[fut], rec)
    finally:  # Ctrl-C: drop the takes not started; the ones running were interrupted with this process group
        ex.shutdown(wait=True, cancel_futures=True)


def _run_ray(jobs: list[dict], finished, threads: int, address: str | None, gpus: float | None, **_) -> None:
    try:
        import ray
    except ImportError:
        raise ImportError("--engine ray needs Ray, which is not installed: pip install 'blender-dposer[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address)
    try:
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        if gpus:  # a take on a GPU runs there unless a device was named
            jobs = [{**j, "options": {**j["options"], "device": j["options"]["device"] or "cuda"}} for j in jobs]
        remote = ray.remote(num_cpus=threads, num_gpus=gpus)(process_take)
        refs = {remote.remote(job): job for job in jobs}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    try:
                        rec = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - the worker died (out of memory, node lost)
                        rec = _failed(refs[ref], e)
                    finished(refs[ref], rec)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started:
            ray.shutdown()
