"""GU2Net training speed against the authors' implementation, side by side in one run.

The same model (the published universal GU2Net: head, hand and chest = 19, 37, 6
landmarks; width 64, global width 128, dilations 1, 2, 5, 2, 1), the same input, batch and
thread count, the same optimiser (Adam, lr 1e-4, weight decay 1e-4): the time of one
training step (forward, BCE loss, backward, Adam step) of the official code
(``../shared/peers/gu2net_official``: sigmoid outputs, ``BCELoss(reduction="sum")``, as in
its training recipe) and of unilandmark's ``gu2net`` under each speed setting. The two
implementations alternate step by step, so load on the machine affects both alike;
the median over repeats is reported.

    python benchmarks/train_speed_vs_official.py --json out/train_speed.json
    python benchmarks/train_speed_vs_official.py --quick       # small input, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402
from unilandmark.codecs.losses import heatmap_bce
from unilandmark.models import build_model
from unilandmark.training.speed import SPEED_SETTINGS, prepare_batch, prepare_model

PEERS = Path(__file__).resolve().parents[1].parent / "shared" / "peers"
DOMAINS = {"head": 19, "hand": 37, "chest": 6}


def official_step_fn(size, batch, seed=0):
    """One training step of the authors' GLN(U2Net) on the head task (index 0)."""
    sys.path.insert(0, str(PEERS))
    from gu2net_official import GLN, U2Net

    torch.manual_seed(seed)
    out = list(DOMAINS.values())
    net = GLN(U2Net, {"in_channels": [1, 1, 1], "out_channels": out},
              {"in_channels": [1, 1, 1], "out_channels": out, "scale_factor": 0.25,
               "kernel_size": 3, "dilations": [1, 2, 5, 2, 1]}).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=1e-4)
    loss_fn = torch.nn.BCELoss(reduction="sum")
    w, h = size
    x = torch.rand(batch, 1, h, w)
    target = torch.rand(batch, DOMAINS["head"], h, w)

    def step():
        prob = net(x, 0)["output"]
        loss = loss_fn(prob, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    params = sum(p.numel() for p in net.parameters())
    return step, params


def ours_step_fn(size, batch, setting, seed=0):
    torch.manual_seed(seed)
    model = build_model("gu2net", DOMAINS, width=64, global_width=128).train()
    model = prepare_model(model, setting)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    w, h = size
    x = prepare_batch(torch.rand(batch, 1, h, w), setting)
    target = {"heatmap": torch.rand(batch, DOMAINS["head"], h, w),
              "weight": torch.ones(batch, DOMAINS["head"])}
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if setting.get("bf16")
                else contextlib.nullcontext())

    def step():
        with autocast:
            out = model(x, "head")
        loss = heatmap_bce(out, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    params = sum(p.numel() for p in model.parameters())
    return step, params


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="208x256", help="input W x H (paper: 416x512)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--settings", default=",".join(SPEED_SETTINGS))
    p.add_argument("--quick", action="store_true", help="96x128 input, 2 repeats")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if not (PEERS / "gu2net_official").is_dir():
        print(f"skipped: the reference implementation is not at {PEERS / 'gu2net_official'}")
        return None
    torch.set_num_threads(a.threads)
    size = (96, 128) if a.quick else tuple(int(v) for v in a.size.lower().split("x"))
    repeats = 2 if a.quick else a.repeats
    official, official_params = official_step_fn(size, a.batch)
    names = a.settings.split(",")
    ours = {}
    for name in names:
        ours[name], params = ours_step_fn(size, a.batch, SPEED_SETTINGS[name])
    for fn in [official, *ours.values()]:  # warm-up (and compilation) outside the timing
        fn()
        fn()
    times = {"official": [], **{n: [] for n in names}}
    for _ in range(repeats):  # alternate, so load changes hit every entry alike
        for name, fn in [("official", official), *ours.items()]:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["official"])
    rows = [{"implementation": "official (gu2net_official GLN(U2Net))", "setting": "as published",
             "s_per_step": base, "speedup": 1.0, "params": official_params}]
    for name in names:
        t = statistics.median(times[name])
        rows.append({"implementation": "unilandmark gu2net", "setting": name, "s_per_step": t,
                     "speedup": base / t, "params": params})
    print(f"input {size[0]}x{size[1]}, batch {a.batch}, {a.threads} threads, median of "
          f"{repeats} alternating steps")
    print(f"{'implementation':40s} {'setting':16s} {'s/step':>8s} {'speed-up':>9s} {'params':>10s}")
    for r in rows:
        print(f"{r['implementation']:40s} {r['setting']:16s} {r['s_per_step']:8.3f} "
              f"{r['speedup']:8.2f}x {r['params']:10,d}")
    write_json(a.json, {"benchmark": "train_speed_vs_official", "machine": machine(),
                        "input": list(size), "batch": a.batch, "threads": a.threads,
                        "repeats": repeats, "rows": rows, "times": times})
    return rows


if __name__ == "__main__":
    main()
