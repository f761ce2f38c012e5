"""Prediction on volumes with a model trained by a ``volume`` stage: landmarks in voxel
indices of the volume as stored and in world millimetres (LPS).

Each volume is read with its geometry (:func:`..imageio.volume.read_volume`), normalised
by the model's modality, resampled to the model's spacing and centred in its input
(:mod:`.volume_inputs`, the same map training used), passed through the network once,
decoded, and mapped back exactly: network voxels -> voxels of the volume turned to one
orientation (``volume_inputs.canonical``, as in training) -> world mm -> voxels of the
volume as stored. A volume saved in another axis order or orientation reaches the network
as the same picture and gives the same world points. A cascade (a ``volume`` stage then
``volume-patch`` stages) refines each landmark on a patch around the previous estimate,
at full resolution or the stage's spacing (:mod:`.volume_refine`), where its validation
gate (``apply``) says the stage helps; memory stays bounded by the coarse input and ``K``
patches, whatever the volume's size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ..checkpoints.checkpoint import load_checkpoint, stage_chain, upgrade
from ..checkpoints.contract import load_weights, stage_contract, stage_label
from ..core.errors import InputError
from ..core.world import VolumeGeometry
from ..models import build_model, codec_for
from ..quality.presence import thresholds_of
from .volume_locate import PatchStep, VolumeResult, locate, read_turned
from .volume_refine import torch_patch_network

__all__ = ["RefineStage", "VolumeDetector", "VolumeResult", "is_volume_model"]


def is_volume_model(state: dict) -> bool:
    """Whether a loaded checkpoint or model file holds a volume model."""
    chain = stage_chain(upgrade(state))
    return any(m.get("dims") == 3 for m in chain[0].get("domains", {}).values())


@dataclass
class RefineStage:
    """One ``volume-patch`` stage of a cascade, ready to refine."""

    model: torch.nn.Module
    codec: object
    patch_size: int
    spacing: float | None
    apply: dict[str, np.ndarray]  # domain -> (K,) bool: the validation gate
    presence: dict[str, np.ndarray]  # domain -> (K,) this stage's presence thresholds


def _load(stage: dict, source: str, index: int) -> tuple[torch.nn.Module, object]:
    contract = stage_contract(stage, source)
    domains = stage["domains"]
    model = build_model(contract.model.name,
                        {n: int(m["num_landmarks"]) for n, m in domains.items()},
                        **contract.model.kwargs())
    load_weights(model, {k: v.float() if v.is_floating_point() else v
                         for k, v in stage["model"].items()}, source, stage_label(stage, index))
    return model, contract


class VolumeDetector:
    """A volume model (one stage or a cascade) ready to predict; one instance serves
    every domain it learned."""

    def __init__(self, model: torch.nn.Module, domains: dict[str, dict], model_name: str,
                 device="cpu", refiners: list[RefineStage] | None = None):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.domains = domains
        self.codecs = {n: codec_for(model_name, m.get("sigma", 2.0))
                       for n, m in domains.items()}
        self.refiners = refiners or []
        #: overrides every domain's stored presence threshold (None: use the stored one)
        self.presence_threshold: float | None = None
        for r in self.refiners:
            r.model.to(self.device).eval()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device="cpu") -> VolumeDetector:
        return cls.from_checkpoint_state(load_checkpoint(path), device, str(path))

    @classmethod
    def from_checkpoint_state(cls, state: dict, device="cpu",
                              source: str = "model file") -> VolumeDetector:
        chain = stage_chain(upgrade(state))
        first = chain[0]
        domains = first["domains"]
        if not all(m.get("dims") == 3 for m in domains.values()):
            raise InputError(f"{source}: not a volume model (its domains hold 2-D inputs); "
                             "use Detector")
        model, contract = _load(first, source, 0)
        refiners = []
        for index, stage in enumerate(chain[1:], start=1):
            if stage.get("kind") != "volume-patch":
                raise InputError(f"{source}: a volume cascade holds volume-patch stages, "
                                 f"found a {stage.get('kind')!r} stage")
            refine_model, refine_contract = _load(stage, source, index)
            geometry = refine_contract.volume_patch
            apply = {n: np.asarray(m.get("apply", [True] * int(m["num_landmarks"])),
                                   dtype=bool) for n, m in stage["domains"].items()}
            presence = {n: thresholds_of(m.get("presence_threshold"), int(m["num_landmarks"]))
                        for n, m in stage["domains"].items()}
            refiners.append(RefineStage(
                refine_model, codec_for(refine_contract.model.name, geometry.sigma),
                geometry.patch_size, geometry.spacing, apply, presence))
        return cls(model, domains, contract.model.name, device, refiners)

    def _domain(self, domain: str | None) -> str:
        if domain is None:
            if len(self.domains) == 1:
                return next(iter(self.domains))
            raise InputError(f"this model has domains {sorted(self.domains)}; name one "
                             "(--domain)")
        if domain not in self.domains:
            raise InputError(f"unknown domain {domain!r}; this model has "
                             f"{sorted(self.domains)}")
        return domain

    def predict(self, volume, domain: str | None = None) -> VolumeResult:
        """One volume: a path (NIfTI, NRRD, MetaImage, a DICOM series folder) or an
        ``(array (Z, Y, X), VolumeGeometry)`` pair."""
        domain = self._domain(domain)
        normalised, turned, stored, rid, path = read_turned(volume, self.domains[domain])
        return self.predict_turned(normalised, turned, stored, domain, rid, path)

    @torch.no_grad()
    def predict_turned(self, normalised: np.ndarray, turned: VolumeGeometry,
                       stored: VolumeGeometry, domain: str | None = None,
                       rid: str = "volume", path: str | None = None) -> VolumeResult:
        """A volume already turned to the network's orientation (``canonical``) and
        normalised (``normalise_volume``, the model's modality): ``normalised`` (Z, Y, X)
        with its geometry ``turned``; ``stored``: the geometry of the volume as stored
        (the frame of the returned voxel indices). The pipeline is
        :func:`.volume_locate.locate`, with this detector's PyTorch models."""
        domain = self._domain(domain)
        return locate(normalised, turned, stored, self.domains[domain], domain,
                      self._coarse(domain), self.steps(domain), self.presence_threshold,
                      rid, path)

    def _coarse(self, domain: str):
        """The coarse model as a :data:`.volume_locate.CoarseNetwork`."""
        codec = self.codecs[domain]

        @torch.no_grad()
        def run(network: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            x = torch.from_numpy(network)[None, None].to(self.device)
            pred = codec.decode(self.model(x, domain))
            return pred.points[0].cpu().numpy(), pred.confidence[0].float().cpu().numpy()

        return run

    def steps(self, domain: str) -> list[PatchStep]:
        """The cascade's ``volume-patch`` stages for ``domain`` that refine a landmark."""
        k = int(self.domains[domain]["num_landmarks"])
        return [PatchStep(torch_patch_network(r.model, r.codec, domain, self.device),
                          r.patch_size, r.spacing, r.apply[domain],
                          r.presence.get(domain, np.zeros(k)))
                for r in self.refiners
                if r.apply.get(domain) is not None and r.apply[domain].any()]

    def predict_many(self, volumes, domain: str | None = None) -> list[VolumeResult]:
        return [self.predict(v, domain) for v in volumes]

