"""Prediction on volumes with a model trained by a ``volume`` stage: landmarks in voxel
indices of the volume as stored and in world millimetres (LPS).

Each volume is read with its geometry (:func:`..imageio.volume.read_volume`), normalised
by the model's modality, resampled to the model's spacing and centred in its input
(:mod:`.volume_inputs`, the same map training used), passed through the network once,
decoded, and mapped back exactly: network voxels -> voxels of the volume turned to one
orientation (``volume_inputs.canonical``, as in training) -> world mm -> voxels of the
volume as stored. A volume saved in another axis order or orientation reaches the network
as the same picture and gives the same world points. Coarse-to-fine patches at full
resolution and a sliding window for volumes larger than the input are not built yet
(docs/volumes.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ..checkpoints.checkpoint import load_checkpoint, stage_chain, upgrade
from ..checkpoints.contract import stage_contract
from ..core.errors import InputError
from ..core.naming import file_stem
from ..core.world import VolumeGeometry
from ..imageio.volume import read_volume
from ..models import build_model, codec_for
from .volume_inputs import canonical, normalise_volume, resample_into, volume_geometry


@dataclass(frozen=True)
class VolumeResult:
    """Landmarks of one volume: ``voxels`` and ``world`` (K, 3) (x, y, z; world in LPS
    mm), ``confidence`` (K,) the heatmap peak (0..1), the volume's ``geometry``."""

    id: str
    image_path: str | None
    domain: str
    names: tuple[str, ...]
    voxels: np.ndarray
    world: np.ndarray
    confidence: np.ndarray
    geometry: VolumeGeometry


def is_volume_model(state: dict) -> bool:
    """Whether a loaded checkpoint or model file holds a volume model."""
    chain = stage_chain(upgrade(state))
    return any(m.get("dims") == 3 for m in chain[0].get("domains", {}).values())


class VolumeDetector:
    """A volume model ready to predict; one instance serves every domain it learned."""

    def __init__(self, model: torch.nn.Module, domains: dict[str, dict], model_name: str,
                 device="cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.domains = domains
        self.codecs = {n: codec_for(model_name, m.get("sigma", 2.0))
                       for n, m in domains.items()}

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device="cpu") -> VolumeDetector:
        return cls.from_checkpoint_state(load_checkpoint(path), device, str(path))

    @classmethod
    def from_checkpoint_state(cls, state: dict, device="cpu",
                              source: str = "model file") -> VolumeDetector:
        chain = stage_chain(upgrade(state))
        if len(chain) != 1:
            raise InputError(f"{source}: a volume model of {len(chain)} stages; patch stages "
                             "for volumes are not built yet")
        first = chain[0]
        contract = stage_contract(first, source)
        domains = first["domains"]
        if not all(m.get("dims") == 3 for m in domains.values()):
            raise InputError(f"{source}: not a volume model (its domains hold 2-D inputs); "
                             "use Detector")
        model = build_model(contract.model.name,
                            {n: int(m["num_landmarks"]) for n, m in domains.items()},
                            **contract.model.kwargs())
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in first["model"].items()})
        return cls(model, domains, contract.model.name, device)

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

    @torch.no_grad()
    def predict(self, volume, domain: str | None = None) -> VolumeResult:
        """One volume: a path (NIfTI, NRRD, MetaImage, a DICOM series folder) or an
        ``(array (Z, Y, X), VolumeGeometry)`` pair."""
        domain = self._domain(domain)
        meta = self.domains[domain]
        if isinstance(volume, (str, os.PathLike)):
            array, vg = read_volume(volume)
            rid, path = file_stem(volume), str(volume)
        else:
            array, vg = volume
            rid, path = "volume", None
        turned_array, turned = canonical(array, vg)  # the orientation training used
        geometry = volume_geometry(turned, meta["target_spacing"], meta["input_size"])
        normalised = normalise_volume(turned_array, meta.get("modality", "mr"),
                                      tuple(meta.get("ct_window", (-1000.0, 2000.0))))
        network = resample_into(normalised, geometry)
        x = torch.from_numpy(np.ascontiguousarray(network, dtype=np.float32))[None, None]
        pred = self.codecs[domain].decode(self.model(x.to(self.device), domain))
        points = pred.points[0].double().cpu().numpy()
        world = turned.index_to_world(geometry.to_original(points))
        voxels = vg.world_to_index(world)
        return VolumeResult(rid, path, domain, tuple(meta["landmark_names"]), voxels, world,
                            pred.confidence[0].float().cpu().numpy(), vg)

    def predict_many(self, volumes, domain: str | None = None) -> list[VolumeResult]:
        return [self.predict(v, domain) for v in volumes]

