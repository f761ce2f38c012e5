"""``export_volume_onnx``: a volume model (a ``volume`` stage, or a cascade with
``volume-patch`` stages) -> one ONNX file for one domain.

Each network that runs for the domain is traced with its decoding
(:class:`.volume_graph.DecodedNetwork`: the coarse one on the network grid, each refining
patch stage on a dynamic batch of cubes), the networks are joined into one model whose
``stage`` input picks the network (:mod:`.volume_compose`), and the file's
``metadata_props`` hold what the driver needs around them (:mod:`.volume_contract`). After
writing, the file is run by :class:`.volume_runner.OnnxVolumeDetector` and compared with
PyTorch's ``VolumeDetector`` on one volume (:mod:`.volume_check`); above the tolerance no
file is left.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoints.builtin import builtin_name
from ..checkpoints.checkpoint import stage_chain, upgrade
from ..checkpoints.contract import stage_contract
from ..core.atomic import atomic_path
from ..core.version import __version__
from ..inference.volume_detector import VolumeDetector
from .tracing import provenance_of, quiet_export, require_onnx
from .volume_check import check_export
from .volume_compose import compose
from .volume_contract import INPUTS, OPSET, OUTPUTS, VOLUME_FORMAT, VOLUME_INPUT, patches_input
from .volume_graph import DecodedNetwork

__all__ = ["VolumeExportSummary", "export_volume_onnx", "volume_metadata"]


@dataclass(frozen=True)
class VolumeExportSummary:
    """What ``export`` wrote: the file, the domain, the number of stages (refining or
    not), the graph's inputs, the largest landmark difference from PyTorch in voxels of
    the check volume (NaN without a check) and what that volume was."""

    path: Path
    domain: str
    stages: int
    inputs: tuple[str, ...]
    max_difference_voxel: float
    check_volume: str


def export_volume_onnx(state: dict, source: Path, domain: str | None, out: str | os.PathLike,
                       check: bool = True, check_volume: str | os.PathLike | None = None,
                       ) -> VolumeExportSummary:
    """Export the volume model ``state`` (loaded from ``source``) for ``domain`` (its only
    domain when None) to ``out``, written atomically and, with ``check``, kept only when
    onnxruntime reproduces PyTorch on ``check_volume`` (None: a phantom)."""
    require_onnx()
    import onnx

    detector = VolumeDetector.from_checkpoint_state(state, "cpu", str(source))
    domain = detector._domain(domain)
    meta = detector.domains[domain]
    models = [stage_contract(stage, str(source)).model.name
              for stage in stage_chain(upgrade(state))]
    x, y, z = (int(v) for v in meta["input_size"])
    networks = [(0, _trace(DecodedNetwork(detector.model, detector.codecs[domain], domain,
                                          f"the volume stage's model {models[0]!r}"),
                           torch.rand((1, 1, z, y, x), generator=_seeded()), VOLUME_INPUT,
                           dynamic=False))]
    stages = [{"index": 0, "kind": "volume", "model": models[0], "input": VOLUME_INPUT,
               "input_size": [x, y, z]}]
    for n, refiner in enumerate(detector.refiners, start=1):
        apply = refiner.apply.get(domain)
        needed = apply is not None and bool(apply.any())
        p = refiner.patch_size
        if needed:
            network = DecodedNetwork(refiner.model, refiner.codec, domain,
                                     f"stage {n}'s model {models[n]!r}")
            cubes = torch.rand((2, 1, p, p, p), generator=_seeded())
            networks.append((n, _trace(network, cubes, patches_input(n), dynamic=True)))
        k = int(meta["num_landmarks"])
        stages.append({"index": n, "kind": "volume-patch", "model": models[n],
                       "patch_size": p, "spacing": refiner.spacing,
                       "sigma": getattr(refiner.codec, "sigma", None),
                       "apply": [bool(a) for a in (apply if apply is not None
                                                   else [False] * k)],
                       "presence_threshold": [float(t) for t in refiner.presence.get(
                           domain, [0.0] * k)],
                       "input": patches_input(n) if needed else None})
    names = [*INPUTS, *(patches_input(n) for n, _ in networks[1:])]
    proto = compose(networks, int(meta["num_landmarks"]),
                    doc=f"unilandmark {__version__}: landmarks of volume domain {domain!r} "
                        "(the coarse network and each patch stage's, chosen by 'stage')")
    provenance = provenance_of(state, source, builtin_name(source) is not None)
    for key, value in volume_metadata(detector, domain, stages, names, provenance).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    out = Path(out)
    where = str(check_volume) if check_volume is not None else "head phantom"
    with atomic_path(out) as tmp:  # checked before it takes the final name
        onnx.save(proto, str(tmp))
        difference = check_export(tmp, detector, domain, out, check_volume) if check \
            else math.nan
    return VolumeExportSummary(out, domain, len(stages), tuple(names), difference, where)


def volume_metadata(detector: VolumeDetector, domain: str, stages: list[dict], names,
                    provenance: dict) -> dict:
    """The ``metadata_props`` of an exported volume model (strings; JSON where
    structured): :mod:`.volume_contract`'s keys."""
    from ..checkpoints.checkpoint import versions

    meta = detector.domains[domain]
    values = {
        "format": VOLUME_FORMAT, "unilandmark_version": __version__, "domain": domain,
        "landmark_names": list(meta["landmark_names"]),
        "input_size": [int(v) for v in meta["input_size"]],
        "stages": stages, "domain_meta": meta, "provenance": provenance,
        "inputs": list(names), "outputs": list(OUTPUTS),
        "versions": json.dumps(versions()),
    }
    return {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in values.items()}


def _seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _trace(network: DecodedNetwork, example: torch.Tensor, name: str, dynamic: bool):
    """One network as an ``onnx.ModelProto`` with input ``name`` and outputs ``points``
    and ``confidence``; ``dynamic``: the batch (cubes) is dynamic."""
    shapes = ({0: torch.export.Dim("cubes", min=1, max=4096)},) if dynamic else None
    with torch.no_grad(), quiet_export():
        program = torch.onnx.export(network.eval(), (example,), dynamo=True,
                                    opset_version=OPSET, input_names=[name],
                                    output_names=list(OUTPUTS), dynamic_shapes=shapes,
                                    verbose=False)
    return program.model_proto
