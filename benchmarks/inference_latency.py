"""Inference latency: milliseconds per image, batch 1 and batched, decode included.

At the paper's input sizes, for ``gu2net`` and ``unet``, on CPU and on CUDA when present.
Prints a table; ``--json`` writes it.

    python benchmarks/inference_latency.py --json out/inference_latency.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import PAPER_DOMAINS, devices, machine, print_rows, timed, write_json  # noqa: E402
from unilandmark.codecs import HeatmapCodec  # noqa: E402
from unilandmark.models import build_model  # noqa: E402


def run(models, device, batches, warmup, repeats, scale, width):
    doms = {d: k for d, (_, k) in PAPER_DOMAINS.items()}
    codec = HeatmapCodec(3.0)
    rows = []
    for name in models:
        kwargs = {"width": width}
        if name.startswith("gu2net"):
            kwargs["global_width"] = 2 * width
        model = build_model(name, doms, **kwargs).to(device).eval()
        for domain, ((w, h), _) in PAPER_DOMAINS.items():
            w, h = int(w * scale), int(h * scale)
            for batch in batches:
                x = torch.rand(batch, 1, h, w, device=device)

                @torch.inference_mode()
                def infer(model=model, x=x, domain=domain):
                    return codec.decode(model(x, domain)).points.cpu()

                best = min(timed(infer, device, warmup, repeats))
                rows.append({"model": name, "domain": domain, "device": device,
                             "input": [w, h], "batch": batch,
                             "ms_per_image": 1000 * best / batch, "repeats": repeats})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="gu2net,unet")
    p.add_argument("--device", default="all")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--quick", action="store_true", help="quarter-size inputs")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    batches = [int(b) for b in a.batches.split(",")]
    rows = []
    for device in devices(a.device):
        rows += run(a.models.split(","), device, batches, a.warmup, a.repeats,
                    0.25 if a.quick else 1.0, a.width)
    print_rows(rows, [("ms/image", "ms_per_image", ".1f")])
    write_json(a.json, {"benchmark": "inference_latency", "machine": machine(), "rows": rows,
                        "args": vars(a)})
    return rows


if __name__ == "__main__":
    main()
