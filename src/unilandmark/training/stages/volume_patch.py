"""The volume patch stage: coarse to fine in volumes, on top of a trained volume stage.

Every volume of a domain is read once, turned to the network's orientation
(``inference.volume_inputs.canonical``) and normalised as the previous stage does (its
modality and CT window); patches are cut from it at ``stage.spacing`` mm per patch voxel,
or at the volume's own voxels (``spacing: null``, full resolution). A training sample is
one (volume, landmark) pair: a cube of ``patch_size`` voxels centred on the ground truth
plus a previous-stage validation error vector of that landmark (world mm, times
``jitter_factor``) plus a uniform shift of up to ``jitter_mm`` per axis, then rotated and
scaled about its centre (``train.augment``, its translation replaced by the jitter; the
points moved exactly, :mod:`..augment3d`) and varied in intensity. Every annotated
landmark inside a patch is a target.

With ``absent_examples`` (the default) a landmark annotated absent (empty coordinates) is
absent from its volume: its channel is trained to zero in every patch of that volume, and
patches are also cut where the previous stage looks for it, so this stage's peak tells
present from absent (``quality.presence``).

Validation refines the previous stage's predictions of the validation split exactly as
prediction does (:func:`..inference.volume_refine.refine_volume_points`), scores them in
mm, and a per-landmark gate keeps this stage only where it helps. Its presence threshold
is chosen on the same validation predictions: this stage's peak decides whether a
landmark it places is there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...checkpoints.checkpoint import load_checkpoint, prediction_state, stage_chain
from ...core.errors import InputError
from ...core.types import Record
from ...core.world import VolumeGeometry
from ...imageio.volume import read_volume
from ...inference.volume_inputs import (
    CT_WINDOW,
    canonical,
    normalise_volume,
    patch_geometry,
    resample_into,
)
from ...inference.volume_refine import refine_volume_points
from ...models import codec_for
from ...quality.presence import landmark_presence_thresholds, thresholds_of
from ..augment3d import augment_volume_batch
from ..config import DomainConfig, ExperimentConfig, VolumePatchStageConfig
from .base import DomainRecords, RefinementGate, Stage, load_domain, score_domain

#: where an absent landmark is put in patch voxels so that its target is zero everywhere
FAR_AWAY = -1.0e4


@dataclass
class TurnedVolumes:
    """The volumes of one split turned to the network's orientation and normalised:
    ``arrays`` (Z, Y, X) float16 each, ``turned`` their geometries, ``stored`` the
    geometries as stored, ``truth`` (N, K, 3) voxel indices of the turned volumes (NaN:
    not annotated), ``visible`` (N, K)."""

    records: list[Record]
    arrays: list[np.ndarray]
    turned: list[VolumeGeometry]
    stored: list[VolumeGeometry]
    truth: np.ndarray
    visible: np.ndarray

    @classmethod
    def read(cls, records: list[Record], k: int, modality: str, window) -> TurnedVolumes:
        arrays, turned, stored = [], [], []
        truth = np.full((len(records), k, 3), np.nan)
        visible = np.zeros((len(records), k), dtype=bool)
        for i, record in enumerate(records):
            array, geometry = read_volume(record.image_path)
            array, turned_geometry = canonical(array, geometry)
            arrays.append(normalise_volume(array, modality, window).astype(np.float16))
            turned.append(turned_geometry)
            stored.append(geometry)
            points = np.asarray(record.points, dtype=np.float64)
            if points.shape != (k, 3):
                raise InputError(f"{record.image_path}: record {record.id}: points of shape "
                                 f"{points.shape}, expected ({k}, 3) voxel points")
            truth[i] = turned_geometry.world_to_index(geometry.index_to_world(points))
            visible[i] = np.asarray(record.visible) & np.isfinite(truth[i]).all(-1)
        return cls(records, arrays, turned, stored, truth, visible)

    def to_stored(self, i: int, turned_points: np.ndarray) -> np.ndarray:
        return self.stored[i].world_to_index(self.turned[i].index_to_world(turned_points))

    def to_turned(self, i: int, stored_points: np.ndarray) -> np.ndarray:
        return self.turned[i].world_to_index(self.stored[i].index_to_world(stored_points))


@dataclass
class VolumePatchDomain:
    name: str
    records: DomainRecords
    train: TurnedVolumes
    val: TurnedVolumes | None
    pairs: np.ndarray  # (P, 2) (volume, landmark): visible points, then absent ones
    guesses: np.ndarray | None  # (N_train, K, 3) previous predictions, turned voxels
    jitter_mm: np.ndarray  # (N_val, K, 3) previous-stage world errors (NaN: none)
    previous_val: np.ndarray | None  # (N_val, K, 3) previous predictions, turned voxels
    previous_score: dict | None

    @property
    def config(self) -> DomainConfig:
        return self.records.config


class VolumePatchStage(RefinementGate, Stage):
    kind = "volume-patch"

    def __init__(self, config: ExperimentConfig, device: torch.device, log=print):
        from ...inference.volume_detector import VolumeDetector

        self.config = config
        sc: VolumePatchStageConfig = config.stage  # type: ignore[assignment]
        self.stage_config = sc
        self.previous = prediction_state(load_checkpoint(sc.previous))
        first = stage_chain(self.previous)[0]
        previous_domains = first["domains"]
        if not all(m.get("dims") == 3 for m in previous_domains.values()):
            raise InputError(f"{sc.previous}: not a volume model; a volume-patch stage "
                             "refines a volume stage")
        domain_configs = self.resolve_domains(config, self.previous, previous_domains)
        detector = VolumeDetector.from_checkpoint_state(self.previous, device, sc.previous)
        self.codec = codec_for(config.model.name, sc.sigma, config.optim.loss)
        self.domain_data: dict[str, VolumePatchDomain] = {}
        for dc in domain_configs:
            recs = load_domain(dc)
            meta = previous_domains[dc.name]
            modality = meta.get("modality", "mr")
            window = tuple(meta.get("ct_window", CT_WINDOW))
            k = recs.spec.num_landmarks
            train = TurnedVolumes.read(recs.train, k, modality, window)
            val = TurnedVolumes.read(recs.val, k, modality, window) if recs.val else None
            jitter = np.zeros((1, k, 3))
            previous_val = previous_score = None
            if val is not None:
                results = [detector.predict_turned(a, t, g, dc.name)
                           for a, g, t in zip(val.arrays, val.stored, val.turned, strict=True)]
                previous_val = np.stack([val.to_turned(i, r.voxels)
                                         for i, r in enumerate(results)])
                truth_world = np.stack([g.index_to_world(t) for g, t in
                                        zip(val.turned, val.truth, strict=True)])
                jitter = np.stack([r.world for r in results]) - truth_world
                previous_score = self._score(val, previous_val, recs)
                log(f"{dc.name}: previous stage on validation {previous_score['mre']:.3f} "
                    f"{previous_score['unit']}")
            else:
                log(f"warning: domain {dc.name} has no validation split: patches are jittered "
                    f"by the uniform {sc.jitter_mm} mm only and no landmark is gated")
            pairs, guesses = np.argwhere(train.visible), None
            absent = np.argwhere(~train.visible)
            if sc.absent_examples and len(absent):
                # where the previous stage looks for a landmark that is not there
                guesses = np.full(train.truth.shape, np.nan)
                for i in np.unique(absent[:, 0]):
                    r = detector.predict_turned(train.arrays[i], train.turned[i],
                                                train.stored[i], dc.name)
                    guesses[i] = train.to_turned(i, r.voxels)
                pairs = np.concatenate([pairs, absent])
                log(f"{dc.name}: {len(absent)} landmark(s) annotated absent are taught as "
                    "absent (stage.absent_examples)")
            self.domain_data[dc.name] = VolumePatchDomain(dc.name, recs, train, val, pairs,
                                                          guesses,
                                                          jitter, previous_val,
                                                          previous_score)
        self.domains = {n: d.records.spec.num_landmarks for n, d in self.domain_data.items()}

    @staticmethod
    def _score(volumes: TurnedVolumes, turned_points: np.ndarray, recs: DomainRecords) -> dict:
        stored = np.stack([volumes.to_stored(i, p) for i, p in enumerate(turned_points)])
        return score_domain(stored, volumes.records, recs.spec.thresholds)

    def batch(self, domain, indices, generator, device):
        d, sc = self.domain_data[domain], self.stage_config
        size = sc.patch_size
        pairs = d.pairs[np.asarray(indices)]
        n = len(pairs)
        u = torch.rand((n, 3), generator=generator, dtype=torch.float64).numpy()
        pick = torch.randint(0, len(d.jitter_mm), (n,), generator=generator).numpy()
        patches = np.zeros((n, 1, size, size, size), dtype=np.float32)
        local = np.full((n, len(d.records.spec.landmark_names), 3), np.nan)
        for row, (i, k) in enumerate(pairs):
            turned = d.train.turned[i]
            if d.train.visible[i, k]:
                around = d.train.truth[i, k]
                shift_mm = np.nan_to_num(d.jitter_mm[pick[row], k]) * sc.jitter_factor
            else:  # an absent landmark: where the previous stage looks for it
                around, shift_mm = d.guesses[i, k], np.zeros(3)
            around_world = turned.index_to_world(around[None])[0]
            shift_mm = shift_mm + (2 * u[row] - 1) * sc.jitter_mm
            centre = turned.world_to_index((around_world + shift_mm)[None])[0]
            g = patch_geometry(turned, centre, size, sc.spacing)
            patches[row, 0] = resample_into(d.train.arrays[i], g)
            local[row] = g.to_network(d.train.truth[i])
        visible = torch.from_numpy(d.train.visible[pairs[:, 0]])
        patch_spacing = (sc.spacing,) * 3 if sc.spacing else d.train.turned[0].spacing
        augment = self.config.train.augment.model_copy(update={"translate": 0.0, "flip": 0.0})
        batch = augment_volume_batch(
            {"image": torch.from_numpy(patches), "points": torch.from_numpy(local).float(),
             "visible": visible}, augment, generator, patch_spacing)
        points, visible = batch["points"], batch["visible"]
        if sc.absent_examples:  # absent from the volume: trained to zero, not masked
            absent = torch.from_numpy(~d.train.visible[pairs[:, 0]])
            points = torch.where(absent[..., None], torch.full_like(points, FAR_AWAY), points)
            visible = visible | absent
        targets = self.codec.encode(points.to(device), visible.to(device), (size, size, size))
        return batch["image"].to(device), targets

    def refine(self, model, d: VolumePatchDomain, device) -> tuple[np.ndarray, np.ndarray]:
        """(points (N, K, 3) turned voxels, confidence (N, K)) of the validation split."""
        sc = self.stage_config
        out, confidence = [], []
        for i, previous in enumerate(d.previous_val):
            points, conf = refine_volume_points(model, self.codec, d.name,
                                                d.val.arrays[i], d.val.turned[i], previous,
                                                sc.patch_size, sc.spacing, device)
            out.append(points)
            confidence.append(conf)
        return np.stack(out), np.stack(confidence)

    def validate(self, model, device):
        out = {}
        for name, d in self.domain_data.items():
            if d.val is None:
                continue
            refined, confidence = self.refine(model, d, device)
            score = self._score(d.val, refined, d.records)
            score["presence_threshold"] = landmark_presence_thresholds(
                confidence, d.val.visible, self.stage_config.presence_threshold)
            score["gate"] = self.gate(d, score)
            gated = np.where(np.asarray(score["gate"])[None, :, None], refined, d.previous_val)
            score["gated_mre"] = self._score(d.val, gated, d.records)["mre"]
            score["previous_mre"] = d.previous_score["mre"]
            out[name] = score
        return out

    def checkpoint_fields(self, validation):
        domains = {}
        for name, d in self.domain_data.items():
            spec = d.records.spec
            gate = validation.get(name, {}).get("gate") or [True] * spec.num_landmarks
            domains[name] = {"landmark_names": list(spec.landmark_names),
                             "num_landmarks": spec.num_landmarks, "unit": spec.unit,
                             "thresholds": list(spec.thresholds), "spec_name": spec.name,
                             "dataset": d.config.dataset, "dims": 3, "apply": gate,
                             "presence_threshold": [float(v) for v in thresholds_of(
                                 validation.get(name, {}).get(
                                     "presence_threshold",
                                     self.stage_config.presence_threshold),
                                 spec.num_landmarks)]}
        return {"domains": domains, "previous": self.previous}
