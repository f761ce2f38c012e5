"""The demo's wall time alone and beside a second CPU-bound job (issue 23; docs/results.md,
"The demo on a busy machine").

Runs ``unilandmark demo`` in its own process, three ways:

- ``alone``: nothing else running, threads chosen by the run (``train.threads`` unset);
- ``busy``: beside a second job that keeps ``--busy-threads`` cores busy (a torch matrix
  product in a loop on that many threads, in its own process: what another training
  looks like), threads chosen by the run (it measures the busy cores and takes the free
  ones, ``core/cpu.py``);
- ``busy-forced``: the same second job, the demo forced to ``--forced-threads`` threads
  (``demo --threads``: what it did before it looked at the machine).

    OMP_NUM_THREADS= python benchmarks/demo_busy.py --json docs/results/demo_busy.json

Each demo writes into a temporary folder; the JSON holds the wall time of each run, the
threads the run chose (from its log), its last epoch's time and the machine.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import cpu_model, write_json  # noqa: E402

BUSY = ("import torch, time\n"
        "torch.set_num_threads({threads})\n"
        "a = torch.randn(1200, 1200)\n"
        "while True:\n"
        "    a = torch.tanh(a @ a)\n")


def run_demo(out: Path, threads: int | None, env: dict) -> dict:
    cmd = [sys.executable, "-m", "unilandmark", "demo", "--out", str(out)]
    if threads:
        cmd += ["--threads", str(threads)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"demo failed ({done.returncode}):\n{done.stderr[-2000:]}")
    log = done.stdout + done.stderr
    chose = re.search(r"training on (\d+) thread\(s\) instead of (\d+)", log)
    return {"seconds": round(seconds, 1), "command": " ".join(cmd[1:]),
            "threads_forced": threads,
            "lowered_threads_to": int(chose.group(1)) if chose else None}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--busy-threads", type=int, default=2,
                   help="threads of the second job (default 2: both cores of this machine)")
    p.add_argument("--forced-threads", type=int, default=2)
    p.add_argument("--runs", default="alone,busy,busy-forced")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.runs.split(","):
            busy = None
            if name.startswith("busy"):
                busy = subprocess.Popen([sys.executable, "-c",
                                         BUSY.format(threads=a.busy_threads)], env=env)
                time.sleep(3)  # the job is running before the demo looks at the machine
            try:
                threads = a.forced_threads if name == "busy-forced" else None
                results[name] = run_demo(Path(tmp) / name, threads, env)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            print(f"{name}: {results[name]['seconds']:.1f} s"
                  + (f" (lowered to {results[name]['lowered_threads_to']} thread(s))"
                     if results[name]["lowered_threads_to"] else ""), flush=True)
    out = {"benchmark": "demo_busy", "command": "python benchmarks/demo_busy.py "
           + " ".join(argv if argv is not None else sys.argv[1:]),
           "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "machine": {"cpu_model": cpu_model(), "cpu_count": os.cpu_count()},
           "busy_job": {"threads": a.busy_threads, "code": BUSY.format(threads=a.busy_threads)},
           "runs": results}
    if a.json:
        write_json(a.json, out)
    return out


if __name__ == "__main__":
    main()
