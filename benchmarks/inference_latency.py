"""Inference latency: milliseconds per image, batch 1 and batched, decode included;
PyTorch beside onnxruntime; and end-to-end folder throughput (reading included).

Three kinds of rows:

- ``network``: ``gu2net`` / ``unet`` at the paper's input sizes (random weights), the
  network plus the heatmap decoding, through PyTorch and through onnxruntime (the same
  module exported to ONNX);
- ``cascade`` (``--cascade``): a whole trained model (default: the built-in one) as
  ``unilandmark export`` writes it: stage 1 on the image and its mirror, every patch
  stage, decoding, mapping back; PyTorch runs the same graph module. The inputs are
  prepared once from a random image of ``--image-size`` (reading excluded);
- ``folder`` (``--folder DIR``): images per second over the images of DIR through
  ``Detector.iter_predict`` and through the ONNX runner, reading and normalising
  included.

    python benchmarks/inference_latency.py --json out/inference_latency.json
    python benchmarks/inference_latency.py --cascade --models '' --batches 1,8
    python benchmarks/inference_latency.py --models '' --folder DIR --spacing 0.1
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import PAPER_DOMAINS, devices, machine, print_rows, timed, write_json  # noqa: E402
from unilandmark.models import MODELS, build_model

BACKENDS = ("torch", "onnx")


class _NetworkAndDecode(torch.nn.Module):
    """A network for one domain plus the heatmap decoding: points (B, K, 2)."""

    def __init__(self, model, domain):
        super().__init__()
        self.model, self.domain = model, domain

    def forward(self, x):
        from unilandmark.export.graph import decode

        return decode(self.model(x, self.domain)["heatmap"])[0]


def _onnx_session(module, example, names, dynamic_shapes, folder: Path, name: str):
    """Export ``module`` and open it in onnxruntime (CPU) with the current thread count."""
    import onnxruntime as ort

    from unilandmark.export.exporter import quiet_export

    path = folder / f"{name}.onnx"
    with torch.no_grad(), quiet_export():
        program = torch.onnx.export(module, example, dynamo=True, opset_version=18,
                                    input_names=names, dynamic_shapes=dynamic_shapes,
                                    verbose=False)
    program.save(str(path))
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def network_rows(models, device, batches, warmup, repeats, scale, width, backends, folder):
    doms = {d: k for d, (_, k) in PAPER_DOMAINS.items()}
    rows = []
    for name in models:
        kwargs = {"width": width}
        if MODELS[name].global_branch:
            kwargs["global_width"] = 2 * width
        model = build_model(name, doms, **kwargs).to(device).eval()
        for domain, ((w, h), _) in PAPER_DOMAINS.items():
            w, h = int(w * scale), int(h * scale)
            net = _NetworkAndDecode(model, domain).eval()
            session = None
            if "onnx" in backends and device == "cpu":
                batch_dim = torch.export.Dim("batch", min=1, max=1024)
                session = _onnx_session(net, (torch.rand(2, 1, h, w),), ["x"],
                                        ({0: batch_dim},), folder, f"{name}_{domain}")
            for batch in batches:
                x = torch.rand(batch, 1, h, w, device=device)
                runs = {}
                if "torch" in backends:
                    @torch.inference_mode()
                    def infer(net=net, x=x):
                        return net(x).cpu()
                    runs["torch"] = infer
                if session is not None:
                    feed = {"x": x.cpu().numpy()}
                    runs["onnx"] = lambda session=session, feed=feed: session.run(None, feed)
                for backend, fn in runs.items():
                    best = min(timed(fn, device, warmup, repeats))
                    rows.append({"kind": "network", "model": name, "backend": backend,
                                 "domain": domain, "device": device, "input": [w, h],
                                 "batch": batch, "ms_per_image": 1000 * best / batch,
                                 "repeats": repeats})
    return rows


def _exported(checkpoint, domain, folder: Path) -> Path:
    """The model exported once per run (``unilandmark export``)."""
    from unilandmark.export.exporter import export_onnx

    path = folder / f"model_{domain or 'default'}.onnx"
    if not path.exists():
        export_onnx(checkpoint, domain, path)
    return path


def cascade_rows(checkpoint, domain, batches, warmup, repeats, image_size, backends,
                 folder):
    """The exported graph of a whole model, PyTorch module vs onnxruntime session."""
    from unilandmark.export.contract import parse_metadata
    from unilandmark.export.exporter import input_names, metadata
    from unilandmark.export.graph import PredictionGraph
    from unilandmark.export.inputs import graph_inputs
    from unilandmark.export.runner import OnnxDetector
    from unilandmark.inference.detector import Detector
    from unilandmark.inference.inputs import read_input

    detector = Detector.from_checkpoint(checkpoint, relocate=False)
    domain = detector._domain(domain)
    graph = PredictionGraph(detector, domain).eval()
    names = input_names(graph)
    meta = parse_metadata(metadata(detector, domain, graph, names, {}))
    onnx = None
    if "onnx" in backends:
        onnx = OnnxDetector(_exported(checkpoint, domain, folder),
                            threads=torch.get_num_threads())
    rng = np.random.default_rng(0)
    w, h = image_size
    label = "builtin" if checkpoint is None else Path(checkpoint).stem
    rows = []
    for batch in batches:
        images = [rng.random((h, w), dtype=np.float32) for _ in range(batch)]
        spacing = tuple(meta.get("training_spacing") or (0.1, 0.1))
        feeds = graph_inputs(meta, [read_input(a, i, spacing, "option")
                                    for i, a in enumerate(images)])
        runs = {}
        if "torch" in backends:
            tensors = [torch.from_numpy(feeds[n]) for n in names]

            @torch.inference_mode()
            def infer(tensors=tensors):
                return graph(*tensors)
            runs["torch"] = infer
        if onnx is not None:
            runs["onnx"] = lambda feeds=feeds: onnx.session.run(None, feeds)
        for backend, fn in runs.items():
            best = min(timed(fn, "cpu", warmup, repeats))
            rows.append({"kind": "cascade", "model": label, "backend": backend,
                         "domain": domain, "device": "cpu", "input": [w, h], "batch": batch,
                         "ms_per_image": 1000 * best / batch, "repeats": repeats})
    return rows


def folder_rows(folder_in, checkpoint, domain, batch, limit, backends, folder, spacing,
                orientations=("auto",), decodes=("reduced",)):
    """Images per second over a folder, reading included, per backend, orientation
    (``auto`` decides per image with a second stage-1 pass on the mirror; ``original``
    skips it, for sites whose images all face the training way) and decode (``reduced``:
    a JPEG at the size the model needs; ``full``: whole)."""
    from unilandmark.imageio.read import is_image_file
    from unilandmark.inference.detector import Detector

    paths = sorted(p for p in Path(folder_in).iterdir() if p.is_file() and is_image_file(p))
    paths = paths[:limit] if limit else paths
    if not paths:
        raise SystemExit(f"{folder_in}: no images")
    detectors = {}
    if "torch" in backends:
        detectors["torch"] = Detector.from_checkpoint(checkpoint)
    if "onnx" in backends:
        from unilandmark.export.runner import OnnxDetector

        detectors["onnx"] = OnnxDetector(_exported(checkpoint, domain, folder),
                                         threads=torch.get_num_threads())
    label = "builtin" if checkpoint is None else Path(checkpoint).stem
    rows = []
    for (backend, detector), orientation, decode in itertools.product(
            detectors.items(), orientations, decodes):
        detector.predict_many(paths[:1], domain, spacing=spacing)  # warm up
        t0 = time.perf_counter()
        count = sum(1 for _ in detector.iter_predict(paths, domain, spacing=spacing,
                                                     batch_size=batch,
                                                     orientation=orientation,
                                                     reduced_decode=decode == "reduced"))
        seconds = time.perf_counter() - t0
        rows.append({"kind": "folder", "model": label, "backend": backend,
                     "domain": domain or "-", "device": "cpu", "input": [0, 0],
                     "batch": batch, "orientation": orientation, "decode": decode,
                     "ms_per_image": 1000 * seconds / count,
                     "images_per_s": count / seconds, "images": count})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="gu2net,unet", help="paper-size networks ('' none)")
    p.add_argument("--device", default="all")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--backends", default="torch,onnx")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--quick", action="store_true", help="quarter-size inputs")
    p.add_argument("--cascade", action="store_true", help="rows for a whole trained model")
    p.add_argument("--checkpoint", default=None, help="for --cascade/--folder; default: the "
                                                      "built-in model")
    p.add_argument("--domain", default=None)
    p.add_argument("--image-size", default="1935,2400", help="W,H of --cascade's image")
    p.add_argument("--folder", default=None, help="end-to-end throughput over this folder")
    p.add_argument("--limit", type=int, default=0, help="at most this many --folder images")
    p.add_argument("--spacing", type=float, default=None, help="mm per pixel for --folder")
    p.add_argument("--orientations", default="auto",
                   help="--folder rows per orientation, e.g. auto,original")
    p.add_argument("--decodes", default="reduced",
                   help="--folder: comma-separated JPEG decodes, reduced and/or full")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    batches = [int(b) for b in a.batches.split(",")]
    backends = [b for b in a.backends.split(",") if b]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise SystemExit(f"unknown backends {sorted(unknown)}; known: {BACKENDS}")
    if "onnx" in backends:
        from unilandmark.export.exporter import require_onnx

        require_onnx()
    models = [m for m in a.models.split(",") if m]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for device in devices(a.device):
            rows += network_rows(models, device, batches, a.warmup, a.repeats,
                                 0.25 if a.quick else 1.0, a.width, backends, folder)
        if a.cascade:
            size = tuple(int(v) for v in a.image_size.split(","))
            rows += cascade_rows(a.checkpoint, a.domain, batches, a.warmup, a.repeats, size,
                                 backends, folder)
        if a.folder:
            spacing = (a.spacing, a.spacing) if a.spacing else None
            rows += folder_rows(a.folder, a.checkpoint, a.domain, max(batches), a.limit,
                                backends, folder, spacing,
                                [o for o in a.orientations.split(",") if o],
                                [d for d in a.decodes.split(",") if d])
    print_rows([{**r, "model": "/".join([r["model"], r["backend"]] + (
        [r["orientation"], r["decode"]] if "orientation" in r else []))} for r in rows],
               [("ms/image", "ms_per_image", ".1f")])
    write_json(a.json, {"benchmark": "inference_latency", "machine": machine(), "rows": rows,
                        "args": vars(a)})
    return rows


if __name__ == "__main__":
    main()
