"""Training throughput: images per second for forward + backward + Adam step.

At the paper's input sizes (head 416x512, hand 368x512, chest 512x512; W x H), for
``gu2net`` and ``unet`` (universal: all three domains' parts built), on CPU and on CUDA
when present (bf16 autocast there, as in training). Prints a table; ``--json`` writes it.

    python benchmarks/train_throughput.py --json out/train_throughput.json
    python benchmarks/train_throughput.py --quick      # smaller inputs, seconds on a CPU
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import PAPER_DOMAINS, devices, machine, print_rows, timed, write_json  # noqa: E402
from unilandmark.codecs.losses import heatmap_bce
from unilandmark.models import MODELS, build_model


def run(models, device, batch, warmup, repeats, scale, width):
    doms = {d: k for d, (_, k) in PAPER_DOMAINS.items()}
    rows = []
    for name in models:
        torch.manual_seed(0)
        kwargs = {"width": width}
        if MODELS[name].global_branch:
            kwargs["global_width"] = 2 * width
        model = build_model(name, doms, **kwargs).to(device).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        amp = (torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda")
               else contextlib.nullcontext())
        for domain, ((w, h), k) in PAPER_DOMAINS.items():
            w, h = int(w * scale), int(h * scale)
            x = torch.rand(batch, 1, h, w, device=device)
            target = {"heatmap": torch.rand(batch, k, h, w, device=device),
                      "weight": torch.ones(batch, k, device=device)}

            def step(model=model, opt=opt, amp=amp, x=x, domain=domain, target=target):
                with amp:
                    out = model(x, domain)
                loss = heatmap_bce(out, target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            times = timed(step, device, warmup, repeats)
            best = min(times)
            rows.append({"model": name, "domain": domain, "device": device, "input": [w, h],
                         "batch": batch, "s_per_step": best,
                         "images_per_s": batch / best, "repeats": repeats})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="gu2net,unet")
    p.add_argument("--device", default="all", help="cpu, cuda or all")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--width", type=int, default=64, help="base width (paper: 64)")
    p.add_argument("--quick", action="store_true", help="quarter-size inputs, batch 2")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    scale = 0.25 if a.quick else 1.0
    batch = 2 if a.quick else a.batch
    rows = []
    for device in devices(a.device):
        rows += run(a.models.split(","), device, batch, a.warmup, a.repeats, scale, a.width)
    print_rows(rows, [("s/step", "s_per_step", ".3f"), ("img/s", "images_per_s", ".2f")])
    write_json(a.json, {"benchmark": "train_throughput", "machine": machine(), "rows": rows,
                        "args": vars(a)})
    return rows


if __name__ == "__main__":
    main()
