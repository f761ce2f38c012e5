"""Peak memory and wall time of ``unilandmark predict`` on a CT-sized volume.

A synthetic CT (default 512 x 512 x 400 voxels of 0.5 mm, int16 Hounsfield-like values: an
ellipsoid of 40 HU soft tissue in -1000 HU air, a few 1000 HU spheres whose centres are
the landmarks, Gaussian noise of 10 HU; filled slice by slice so that no full-size float
array is made) is written as ``.nii.gz`` into a work folder. A small CT volume model is
trained in this process on a few small phantoms drawn the same way (``--train-spacing``
mm voxels, landmarks and pose varied per phantom): a ``volume`` stage (``modality: ct``,
4 mm network voxels, a 64^3 input, ``unet3d`` width 8) and, where the ``volume-patch``
stage kind validates (``load_config``; skipped with the reason otherwise), a
full-resolution ``volume-patch`` stage (24^3 voxels at each volume's own spacing). It
trains for a few steps only: its accuracy is NOT the point (the JSON says so), the memory
and time of prediction are. ``--checkpoint`` takes a model instead of training one.

Then the real command line is run as a subprocess, ``unilandmark predict VOLUME
--checkpoint MODEL --out CSV --device cpu`` with ``OMP_NUM_THREADS=--threads`` (2), once
on one small training phantom (the fixed cost: Python, torch, the model) and once on the
CT-sized volume. Its peak resident memory is its ``ru_maxrss`` (KiB on Linux) from
``os.wait4``, taken in a small launcher process that starts it (``LAUNCHER``: Linux keeps
a process's peak RSS across exec, so a child forked straight from this process, over 1 GB
after training, would report at least that), with ``getrusage(RUSAGE_CHILDREN)`` of the
launcher beside it; the wall time is measured around the process (start-up and reading
included). Also reported: the volume's size on disk and in memory as int16 and float32.

    OMP_NUM_THREADS=2 python benchmarks/volume_memory.py   # the full size (about 5 min)
    OMP_NUM_THREADS=1 python benchmarks/volume_memory.py --size 128 128 100 \\
        --threads 1 --json /tmp/volume_memory_small.json   # a smoke run (about 1 min)

Output (``--json``, default ``docs/results/volume_memory.json``): ``{"command", "argv",
"date", "machine", "settings", "volume": {"size", "spacing_mm", "voxels",
"bytes_on_disk", "bytes_int16", "bytes_float32"}, "model": {"checkpoint", "stages",
"note"}, "runs": [{"what", "volume", "wall_s", "peak_rss_kib", "peak_rss_mib", "rc",
"rusage_children_kib", "mean_error_mm"}], "peak_rss_over_int16",
"peak_rss_minus_fixed_mib", "total_s"}``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import cpu_model, machine  # noqa: E402
from unilandmark.core.atomic import atomic_write_text
from unilandmark.core.errors import InputError
from unilandmark.core.jsontext import json_text
from unilandmark.core.world import VolumeGeometry
from unilandmark.imageio.volume import write_volume
from unilandmark.training.config import load_config
from unilandmark.training.fit import fit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "docs" / "results" / "volume_memory.json"
DOMAIN = "ct"
AIR, TISSUE, BONE, NOISE = -1000.0, 40.0, 1000.0, 10.0
#: landmark spheres: centres as fractions of the ellipsoid's semi-axes (x, y, z), LPS
SPHERES = ((0.45, 0.0, 0.1), (-0.45, 0.0, 0.1), (0.0, -0.5, 0.3), (0.0, 0.35, -0.4))
SPHERE_NAMES = ("left sphere", "right sphere", "anterior sphere", "posterior sphere")
SPHERE_RADIUS_MM = 8.0
#: the ellipsoid's semi-axes as fractions of the field of view's half-extent
FILL = 0.8
COARSE = {"kind": "volume", "spacing": 4.0, "modality": "ct"}
INPUT_SIZE = (64, 64, 64)
MODEL = {"name": "unet3d", "width": 8, "depth": 3}
PATCH = {"kind": "volume-patch", "patch_size": 24, "spacing": None, "sigma": 1.5,
         "jitter_mm": 8.0}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, nargs=3, default=[512, 512, 400],
                   metavar=("X", "Y", "Z"), help="voxels of the CT-sized volume")
    p.add_argument("--spacing", type=float, default=0.5, help="mm per voxel (isotropic)")
    p.add_argument("--checkpoint", help="a volume model to use instead of training one")
    p.add_argument("--phantoms", type=int, default=8, help="small training phantoms")
    p.add_argument("--train-spacing", type=float, default=2.0,
                   help="mm per voxel of the training phantoms (same field of view)")
    p.add_argument("--epochs", type=int, default=6, help="coarse-stage epochs (batch 4)")
    p.add_argument("--patch-epochs", type=int, default=1, help="patch-stage epochs (batch 8)")
    p.add_argument("--no-patch", action="store_true", help="train the coarse stage only")
    p.add_argument("--threads", type=int, default=2,
                   help="OMP_NUM_THREADS of the predict subprocess (and torch threads here)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", help="working folder, kept (default: a temporary one, removed)")
    p.add_argument("--json", default=str(DEFAULT_JSON), help="write the results here")
    args = p.parse_args(argv)
    if min(args.size) < 16:
        p.error("--size: at least 16 voxels per side")
    return args


def machine_info() -> dict:
    info = machine()
    model = cpu_model()
    mem = ""
    try:
        mem = next(line.split(":", 1)[1].strip() for line in
                   Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    info.update({"cpu_model": model, "cpu_count": os.cpu_count(),
                 "cpus_usable": len(os.sched_getaffinity(0))
                 if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                 "memory_total": mem, "platform": platform.platform(),
                 "numpy": np.__version__})
    return info


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


# -- the phantom ---------------------------------------------------------------------------
def centred_geometry(size, spacing: float) -> VolumeGeometry:
    """Identity direction, the field of view centred on world (0, 0, 0) (float32-exact)."""
    size = np.asarray(size)
    origin = (-(size - 1) / 2 * spacing).astype(np.float32).astype(np.float64)
    return VolumeGeometry(size=tuple(int(v) for v in size), spacing=(spacing,) * 3,
                          origin=tuple(origin))


def phantom_layout(fov_mm: np.ndarray, rng: np.random.Generator | None) -> tuple:
    """(semi-axes (3,), centre (3,), sphere centres (K, 3)) in world mm; ``rng`` varies
    them (size +-5 %, centre +-10 mm, spheres +-5 mm), None gives the reference layout."""
    semi = FILL * fov_mm / 2
    centre = np.zeros(3)
    offsets = np.zeros((len(SPHERES), 3))
    if rng is not None:
        semi = semi * rng.uniform(0.95, 1.05, 3)
        centre = rng.uniform(-10, 10, 3)
        offsets = rng.uniform(-5, 5, (len(SPHERES), 3))
    spheres = centre + np.array(SPHERES) * semi + offsets
    return semi, centre, spheres


def write_phantom(path: Path, size, spacing: float, layout: tuple,
                  rng: np.random.Generator) -> tuple[VolumeGeometry, np.ndarray]:
    """An int16 CT phantom filled slice by slice (float32 slices only); returns its
    geometry and the landmarks (sphere centres, world LPS mm)."""
    geometry = centred_geometry(size, spacing)
    semi, centre, spheres = layout
    nx, ny, nz = geometry.size
    origin = np.array(geometry.origin)
    x = (origin[0] + spacing * np.arange(nx, dtype=np.float32))[None, :]
    y = (origin[1] + spacing * np.arange(ny, dtype=np.float32))[:, None]
    array = np.empty((nz, ny, nx), dtype=np.int16)
    r2 = SPHERE_RADIUS_MM ** 2
    for k in range(nz):
        z = origin[2] + spacing * k
        inside = ((x - centre[0]) / semi[0]) ** 2 + ((y - centre[1]) / semi[1]) ** 2 \
            <= 1 - ((z - centre[2]) / semi[2]) ** 2
        plane = np.where(inside, np.float32(TISSUE), np.float32(AIR))
        for s in spheres:
            dz2 = (z - s[2]) ** 2
            if dz2 < r2:
                plane[(x - s[0]) ** 2 + (y - s[1]) ** 2 <= r2 - dz2] = BONE
        plane += rng.normal(0.0, NOISE, plane.shape).astype(np.float32)
        array[k] = np.clip(np.round(plane), -32768, 32767).astype(np.int16)
    write_volume(path, array, geometry)
    return geometry, spheres


def write_training_phantoms(folder: Path, n: int, fov_mm: np.ndarray, spacing: float,
                            seed: int) -> Path:
    """``n`` small phantoms and their long volume-csv table (world LPS)."""
    size = np.maximum(np.round(fov_mm / spacing).astype(int), 16)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", "landmark", "x", "y", "z", "frame", "name"])
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        rid = f"ct_{i:03d}"
        _, spheres = write_phantom(folder / "images" / f"{rid}.nii.gz", size, spacing,
                                   phantom_layout(fov_mm, rng), rng)
        for k, (p, name) in enumerate(zip(spheres, SPHERE_NAMES, strict=True)):
            w.writerow([rid, k + 1, *(repr(float(v)) for v in p), "world-lps", name])
    table = folder / "landmarks.csv"
    atomic_write_text(table, buf.getvalue())
    return table


# -- the model -----------------------------------------------------------------------------
def train_model(table: Path, work: Path, args) -> tuple[Path, list[dict]]:
    train = {"batch_size": 4, "seed": args.seed, "threads": args.threads,
             "cache_dir": str(work / "cache")}
    coarse = {"name": "ct-coarse", "out_dir": str(work / "coarse"), "stage": dict(COARSE),
              "model": dict(MODEL),
              "domains": [{"name": DOMAIN, "dataset": "volume-csv", "root": str(table),
                           "options": {"images": str(table.parent / "images")},
                           "train_split": "all", "val_split": None,
                           "input_size": list(INPUT_SIZE), "sigma": 1.5}],
              "train": {**train, "epochs": args.epochs}}
    stages = []
    t0 = time.perf_counter()
    best = fit(load_config(data=coarse), overwrite=True, progress=False,
               log=lambda *_: None).best_path
    stages.append({"stage": coarse["stage"], "model": MODEL, "epochs": args.epochs,
                   "input_size": list(INPUT_SIZE), "train_s": round(time.perf_counter() - t0, 1)})
    if args.no_patch:
        return Path(best), stages
    patch = {"name": "ct-patch", "out_dir": str(work / "patch"),
             "stage": {**PATCH, "previous": str(best)}, "model": dict(MODEL),
             "train": {**train, "batch_size": 8, "epochs": args.patch_epochs}}
    try:
        config = load_config(data=patch)
    except InputError as err:
        stages.append({"stage": patch["stage"], "status": "skipped", "reason": str(err)})
        print(f"patch stage skipped: {str(err).splitlines()[0]}", flush=True)
        return Path(best), stages
    t0 = time.perf_counter()
    best = fit(config, overwrite=True, progress=False, log=lambda *_: None).best_path
    stages.append({"stage": patch["stage"], "model": MODEL, "epochs": args.patch_epochs,
                   "train_s": round(time.perf_counter() - t0, 1)})
    return Path(best), stages


# -- the measurement -------------------------------------------------------------------------
def cli() -> list[str]:
    found = shutil.which("unilandmark")
    return [found] if found else [sys.executable, "-m", "unilandmark"]


#: a small process that starts the command and reports its rusage. Needed because Linux
#: keeps a process's peak RSS across exec (``signal->maxrss``), and a child forked from
#: this process (over 1 GB after training) would start with this process's RSS as its
#: peak; a child of this fresh, small launcher starts with the launcher's few MiB.
LAUNCHER = r"""
import json, os, resource, subprocess, sys, time
command, log = json.loads(sys.argv[1]), sys.argv[2]
with open(log, "wb") as fh:
    t0 = time.perf_counter()
    child = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "wall_s": wall,
                  "maxrss_kib": usage.ru_maxrss, "user_s": usage.ru_utime,
                  "system_s": usage.ru_stime,
                  "children_maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def measure_predict(volume: Path, checkpoint: Path, out: Path, threads: int) -> dict:
    """Run ``unilandmark predict`` as a subprocess (through :data:`LAUNCHER`); its wall
    time and peak RSS."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [*cli(), "predict", str(volume), "--checkpoint", str(checkpoint), "--out",
               str(out), "--device", "cpu"]
    log = out.with_suffix(".log")
    done = subprocess.run([sys.executable, "-c", LAUNCHER, json.dumps(command), str(log)],
                          env=env, capture_output=True, text=True, check=True)
    r = json.loads(done.stdout.strip().splitlines()[-1])
    text = log.read_text(errors="replace")
    return {"command": " ".join(shlex.quote(c) for c in command),
            "omp_num_threads": threads, "rc": r["rc"], "wall_s": round(r["wall_s"], 2),
            "peak_rss_kib": int(r["maxrss_kib"]),
            "peak_rss_mib": round(r["maxrss_kib"] / 1024, 1),
            "rusage_children_kib": int(r["children_maxrss_kib"]),
            "user_s": round(r["user_s"], 2), "system_s": round(r["system_s"], 2),
            "output_tail": text[-600:] if r["rc"] else None}


def mean_error(out: Path, truth: np.ndarray) -> float | None:
    """Mean world distance (mm) of a prediction CSV's points from ``truth`` (K, 3)."""
    if not out.is_file():
        return None
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    cols = next(((a, b, c) for a, b, c in (("x_mm", "y_mm", "z_mm"),
                                           ("world_x", "world_y", "world_z"))
                 if rows and a in rows[0]), None)
    if cols is None:
        return None
    pred = np.array([[float(r[c]) for c in cols] for r in rows])
    if pred.shape != truth.shape:
        return None
    return float(np.linalg.norm(pred - truth, axis=1).mean())


def main(argv=None) -> dict:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="volume_memory_")
        args.work = tmp.name
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    size = np.array(args.size)
    fov = size * args.spacing

    t0 = time.perf_counter()
    big = work / "ct_volume.nii.gz"
    rng = np.random.default_rng([args.seed, 10_000])
    geometry, truth = write_phantom(big, size, args.spacing, phantom_layout(fov, None), rng)
    write_s = time.perf_counter() - t0
    voxels = int(np.prod(size))
    volume = {"size": [int(v) for v in size], "spacing_mm": args.spacing, "voxels": voxels,
              "field_of_view_mm": fov.tolist(), "bytes_on_disk": big.stat().st_size,
              "bytes_int16": voxels * 2, "bytes_float32": voxels * 4,
              "mib_on_disk": round(big.stat().st_size / 2**20, 1),
              "mib_int16": round(voxels * 2 / 2**20, 1),
              "mib_float32": round(voxels * 4 / 2**20, 1), "write_s": round(write_s, 1),
              "landmarks_world_lps": truth}
    print(f"wrote {big.name}: {size.tolist()} voxels, {volume['mib_on_disk']} MiB on disk, "
          f"{volume['mib_int16']} MiB as int16 ({write_s:.0f} s)", flush=True)

    small_dir = work / "phantoms"
    table = write_training_phantoms(small_dir, max(2, args.phantoms), fov, args.train_spacing,
                                    args.seed)
    if args.checkpoint:
        checkpoint, stages = Path(args.checkpoint), [{"given": str(args.checkpoint)}]
    else:
        checkpoint, stages = train_model(table, work / "model", args)
        print(f"trained {checkpoint} ({sum(s.get('train_s', 0) for s in stages):.0f} s)",
              flush=True)

    small = sorted((small_dir / "images").glob("*.nii.gz"))[0]
    with open(table, newline="", encoding="utf-8") as fh:
        small_truth = np.array([[float(r[c]) for c in "xyz"] for r in csv.DictReader(fh)
                                if r["image"] == small.name.removesuffix(".nii.gz")])
    runs = []
    for what, path, gt in (("small phantom (fixed cost)", small, small_truth),
                           ("CT-sized volume", big, truth)):
        out = work / f"pred_{len(runs)}.csv"
        run = {"what": what, "volume": path.name, **measure_predict(path, checkpoint, out,
                                                                     args.threads)}
        run["mean_error_mm"] = mean_error(out, gt)
        runs.append(run)
        print(f"{what}: rc {run['rc']}, {run['wall_s']:.1f} s, peak RSS "
              f"{run['peak_rss_mib']:.0f} MiB", flush=True)
        if run["rc"]:
            print(run["output_tail"], flush=True)
    payload = {
        "benchmark": "volume_memory", "command": command_line(), "argv": sys.argv[1:],
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {"threads": args.threads, "seed": args.seed,
                     "phantoms": max(2, args.phantoms), "train_spacing_mm": args.train_spacing,
                     "epochs": args.epochs, "patch_epochs": args.patch_epochs,
                     "no_patch": args.no_patch,
                     "phantom": {"air_hu": AIR, "tissue_hu": TISSUE, "bone_hu": BONE,
                                 "noise_hu": NOISE, "sphere_radius_mm": SPHERE_RADIUS_MM,
                                 "ellipsoid_fill": FILL},
                     "measure": "ru_maxrss (KiB on Linux, the peak resident set) of the "
                                "predict process from os.wait4 in a small launcher process "
                                "(LAUNCHER: Linux keeps a peak RSS across exec, so a child "
                                "of this large process would inherit its RSS); "
                                "rusage_children_kib: getrusage(RUSAGE_CHILDREN) there"},
        "volume": volume,
        "model": {"checkpoint": str(checkpoint) if tmp is None or args.checkpoint else None,
                  "stages": stages,
                  "note": "trained a few steps on small CT phantoms: its accuracy is not the "
                          "point of this benchmark (mean_error_mm is shown for information "
                          "only); the peak memory and the time of predict are"},
        "runs": runs,
        "total_s": round(time.perf_counter() - t_start, 1)}
    if len(runs) == 2 and runs[1]["rc"] == 0:
        payload["peak_rss_over_int16"] = round(runs[1]["peak_rss_kib"] * 1024 /
                                               volume["bytes_int16"], 2)
        payload["peak_rss_minus_fixed_mib"] = round(runs[1]["peak_rss_mib"] -
                                                    runs[0]["peak_rss_mib"], 1)
    if args.json:
        atomic_write_text(args.json, json_text(payload))
        print(f"wrote {args.json}")
    if tmp is not None:
        tmp.cleanup()
    return payload


if __name__ == "__main__":
    main()
