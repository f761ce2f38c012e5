"""``OnnxVolumeDetector``: volume prediction with an exported volume model through
onnxruntime, without torch.

The same interface and results as ``VolumeDetector`` (``predict``, ``predict_many``,
``domains``, ``presence_threshold``, :class:`~..inference.volume_locate.VolumeResult`),
for the one domain the file was exported for. Around the file's networks
(:mod:`.volume_contract`) everything is the PyTorch path's own numpy code: reading and
turning the volume (``volume_locate.read_turned``), resampling it into the network grid,
cutting cubes and the way back (``volume_locate.locate``); only the calls to the networks
differ. Imports numpy, SimpleITK (reading) and onnxruntime, never torch.

Threads: onnxruntime's own pool, ``threads`` or else ``OMP_NUM_THREADS`` when set.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..inference.volume_locate import PatchStep, VolumeResult, locate, read_turned
from ..quality.presence import thresholds_of
from .session import open_session, output_fault
from .volume_contract import STAGE_INPUT, VOLUME_INPUT, parse_volume_metadata

__all__ = ["OnnxVolumeDetector"]


class OnnxVolumeDetector:
    """An exported volume model (``unilandmark export`` of a volume stage or cascade)
    ready to predict."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu",
                 threads: int | None = None, opened: tuple | None = None):
        """``opened``: the ``(session, device)`` of :func:`.session.open_session` for
        ``path`` where the caller has it already (the file is then not read again)."""
        path = Path(path)
        self.session, self.device = opened or open_session(path, device, threads)
        try:
            self.meta = parse_volume_metadata(self.session.get_modelmeta().custom_metadata_map)
        except ValueError as err:
            raise InputError(f"{path}: {err}") from None
        self.path = path
        self.domain = self.meta["domain"]
        self.names = tuple(self.meta["landmark_names"])
        fault = output_fault(self.session) or _declared_fault(self.session, self.meta)
        if fault:
            raise InputError(f"{path}: {fault}")
        self.domains = {self.domain: self.meta["domain_meta"]}
        #: overrides the stored presence thresholds (None: use the stored ones)
        self.presence_threshold: float | None = None
        # the inputs of the stages not run: any array of the declared shape (not read)
        x, y, z = self.meta["input_size"]
        self._idle = {VOLUME_INPUT: np.zeros((1, 1, z, y, x), dtype=np.float32)}
        for stage in self.meta["stages"][1:]:
            if stage.get("input") is not None:
                p = stage["patch_size"]
                self._idle[stage["input"]] = np.zeros((1, 1, p, p, p), dtype=np.float32)

    def _domain(self, domain: str | None) -> str:
        if domain is not None and domain != self.domain:
            raise InputError(f"{self.path} was exported for domain {self.domain!r}, not "
                             f"{domain!r}")
        return self.domain

    def run(self, stage: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Network ``stage`` (0 the coarse one, ``n`` patch stage n) on ``x`` (N, 1, ...)
        float32 -> (points (N, K, 3) voxels of ``x``, confidence (N, K))."""
        stages = self.meta["stages"]
        name = VOLUME_INPUT if stage == 0 else \
            stages[stage].get("input") if 0 < stage < len(stages) else None
        if name is None:
            raise InputError(f"{self.path} holds no network for stage {stage} (its stages "
                             "with a network: "
                             f"{[i for i, st in enumerate(stages) if st.get('input')]})")
        feeds = {**self._idle, STAGE_INPUT: np.asarray(stage, dtype=np.int64),
                 name: np.ascontiguousarray(x, dtype=np.float32)}
        points, confidence = self.session.run(["points", "confidence"], feeds)
        return points, confidence

    def steps(self) -> list[PatchStep]:
        """The file's patch stages that refine a landmark, as the pipeline takes them."""
        k = len(self.names)
        steps = []
        for n, stage in enumerate(self.meta["stages"][1:], start=1):
            apply = np.asarray(stage.get("apply") or [False] * k, dtype=bool)
            if stage.get("input") is None or not apply.any():
                continue
            steps.append(PatchStep(lambda patches, n=n: self.run(n, patches),
                                   int(stage["patch_size"]), stage.get("spacing"), apply,
                                   thresholds_of(stage.get("presence_threshold"), k)))
        return steps

    def predict(self, volume, domain: str | None = None) -> VolumeResult:
        """One volume: a path (NIfTI, NRRD, MetaImage, a DICOM series folder) or an
        ``(array (Z, Y, X), VolumeGeometry)`` pair."""
        domain = self._domain(domain)
        meta = self.domains[domain]
        normalised, turned, stored, rid, path = read_turned(volume, meta)

        def coarse(network: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            points, confidence = self.run(0, network[None, None])
            return points[0], confidence[0]

        return locate(normalised, turned, stored, meta, domain, coarse, self.steps(),
                      self.presence_threshold, rid, path)

    def predict_many(self, volumes, domain: str | None = None) -> list[VolumeResult]:
        return [self.predict(v, domain) for v in volumes]


def _declared_fault(session, meta: dict) -> str | None:
    """Why the graph's declared inputs and outputs disagree with the metadata, or None:
    the inputs are ``stage``, ``volume`` and each patch stage's named input, ``volume`` is
    (1, 1, Z, Y, X) for the metadata's ``input_size`` (X, Y, Z), each stage's cubes
    (N, 1, P, P, P) for its ``patch_size``, and ``points`` holds as many landmarks as the
    metadata names."""
    x, y, z = meta["input_size"]
    expected = {STAGE_INPUT: [], VOLUME_INPUT: [1, 1, z, y, x]}
    for stage in meta["stages"][1:]:
        if stage.get("input") is not None:
            p = stage["patch_size"]
            expected[stage["input"]] = [None, 1, p, p, p]
    declared = {i.name: list(i.shape) for i in session.get_inputs()}
    if set(declared) != set(expected):
        return (f"the graph's inputs {sorted(declared)} are not those its metadata names "
                f"{sorted(expected)}: the file is inconsistent (edited metadata?); export "
                "the model again")
    for name, shape in expected.items():
        got = declared[name]
        if len(got) != len(shape) or any(isinstance(g, int) and e is not None and g != e
                                         for g, e in zip(got, shape, strict=True)):
            return (f"the graph's input {name!r} is {got} but its metadata implies "
                    f"{['N' if e is None else e for e in shape]}: the file is inconsistent "
                    "(edited metadata?); export the model again")
    k = len(meta["landmark_names"])
    for output in session.get_outputs():
        if output.name == "points" and len(output.shape) == 3 and \
                isinstance(output.shape[1], int) and output.shape[1] != k:
            return (f"the metadata names {k} landmarks but the graph outputs "
                    f"{output.shape[1]}: the file is inconsistent (edited metadata?); "
                    "export the model again")
    return None
