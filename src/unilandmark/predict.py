"""Prediction on new images without ground truth: ``Detector``.

``Detector.from_checkpoint(path).predict(image_or_path, domain)`` reads any supported
format at any size, resizes it into the domain's network input, decodes the landmarks and
maps them back to original pixels through the Geometry; millimetres where the image
carries a spacing; a confidence per landmark.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .config import ExperimentConfig
from .data.dataset import preprocess
from .io import read_image
from .models import build_model, codec_for
from .types import Spacing

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
PRETRAINED_NAME = "gu2net_isbi2015_head.pt"


@dataclass(frozen=True)
class LandmarkResult:
    """Landmarks of one image: points (K, 2) original pixels, points_mm (K, 2) or None,
    confidence (K,), the landmark names, the image's id and spacing.

    ``confidence`` is the peak value of the landmark's predicted heatmap, 0..1: about 1
    where the network is as sure as on its training images, 0.2 where the peak reached a
    fifth of that height (docs/training.md, "What the confidence means"); not a calibrated
    probability of being right. ``spacing_source`` says where ``spacing`` (mm/px, (x, y))
    came from: ``file`` (the image header), ``option`` (given by the caller, e.g.
    ``--spacing``), ``model`` (the training spacing the caller accepted), or None.
    """

    id: str
    domain: str
    names: tuple[str, ...]
    points: np.ndarray
    confidence: np.ndarray
    spacing: Spacing | None
    points_mm: np.ndarray | None
    image_path: str | None = None
    spacing_source: str | None = None


class Detector:
    """A trained model ready to predict; one instance serves every domain it was trained on."""

    def __init__(self, model: torch.nn.Module, domains: dict[str, dict], device="cpu",
                 model_name: str = "gu2net"):
        self.model = model.to(device).eval()
        self.domains = domains
        self.device = torch.device(device)
        self.model_name = model_name
        self.codecs = {n: codec_for(model_name, m.get("sigma", 3.0)) for n, m in domains.items()}
        self.refiner = None  # (model, codec, RefineConfig) of a coarse-to-fine cascade

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None,
                        device: str = "cpu") -> Detector:
        """Load a checkpoint (``best.pt``/``last.pt``), or the built-in model when None."""
        if path is None:
            path = PRETRAINED_DIR / PRETRAINED_NAME
            if not Path(path).is_file():
                raise FileNotFoundError(
                    f"{path}: no built-in model is installed in this build; pass --checkpoint")
        return cls.from_checkpoint_state(load_checkpoint(path, map_location="cpu"), device)

    @classmethod
    def from_checkpoint_state(cls, state: dict, device: str = "cpu") -> Detector:
        """Build from a loaded checkpoint dict (a training checkpoint or a cascade)."""
        if state.get("kind") == "cascade":
            from .codecs import HeatmapCodec
            from .refine import RefineConfig

            detector = cls.from_checkpoint_state(state["stage1"], device)
            rc = RefineConfig.model_validate(state["refine_config"])
            refiner = build_model(state.get("refine_model", "unet"), state["refine_domains"],
                                  width=rc.width, depth=rc.depth)
            refiner.load_state_dict(_float_weights(state["refiner"]))
            detector.refiner = (refiner.to(device).eval(), HeatmapCodec(rc.sigma), rc)
            return detector
        config = ExperimentConfig.model_validate(state["config"])
        domains = state["domains"]
        model = build_model(config.model.name,
                            {n: m["num_landmarks"] for n, m in domains.items()},
                            **config.model.kwargs())
        model.load_state_dict(_float_weights(state["model"]))
        return cls(model, domains, device, config.model.name)

    def _domain(self, domain: str | None) -> str:
        if domain is None:
            if len(self.domains) == 1:
                return next(iter(self.domains))
            raise ValueError(f"give a domain; this model knows {sorted(self.domains)}")
        if domain not in self.domains:
            raise ValueError(f"unknown domain {domain!r}; this model knows "
                             f"{sorted(self.domains)}")
        return domain

    @torch.no_grad()
    def predict(self, image, domain: str | None = None, spacing: Spacing | None = None,
                ) -> LandmarkResult:
        """One image: a path (any supported format) or a 2-D array. ``spacing`` (mm per
        pixel, (x, y)) applies where the file carries none (and to arrays)."""
        return self.predict_many([image], domain, spacing)[0]

    @torch.no_grad()
    def predict_many(self, images, domain: str | None = None, spacing: Spacing | None = None,
                     batch_size: int = 4, spacing_source: str = "option",
                     on_result: Callable[[LandmarkResult], None] | None = None,
                     ) -> list[LandmarkResult]:
        """Images in batches. ``spacing`` applies where a file carries none and is recorded
        with ``spacing_source``; ``on_result`` is called with each result as it is ready
        (progress reporting)."""
        domain = self._domain(domain)
        meta = self.domains[domain]
        size = tuple(meta["input_size"])
        results = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            arrays, geometries, ids, paths, raws, sources = [], [], [], [], [], []
            for item in chunk:
                if isinstance(item, (str, os.PathLike)):
                    array, sp = read_image(item)
                    sources.append("file" if sp else spacing_source if spacing else None)
                    sp = sp or spacing  # the file's own spacing wins
                    ids.append(_stem(item))
                    paths.append(str(item))
                else:
                    array, sp = np.asarray(item), spacing
                    sources.append(spacing_source if spacing else None)
                    if array.ndim != 2:
                        raise ValueError(f"expected a 2-D image array, got shape {array.shape}")
                    ids.append(f"array{start + len(ids)}")
                    paths.append(None)
                raws.append((array, sp))
                image, geometry = preprocess(array, sp, size, meta.get("resize", "stretch"))
                arrays.append(image)
                geometries.append(geometry)
            x = torch.from_numpy(np.stack(arrays)).to(self.device)
            pred = self.codecs[domain].decode(self.model(x, domain))
            pts = pred.points.double().cpu().numpy()
            conf = pred.confidence.float().cpu().numpy()
            originals = np.stack([g.to_original(pts[j]) for j, g in enumerate(geometries)])
            if self.refiner is not None and domain in self.refiner[0].domains:
                originals, conf = self._refine(raws, originals, domain)
            for j, g in enumerate(geometries):
                original = originals[j]
                results.append(LandmarkResult(
                    id=ids[j], domain=domain, names=tuple(meta["landmark_names"]),
                    points=original, confidence=conf[j], spacing=g.spacing,
                    points_mm=g.to_mm(original), image_path=paths[j],
                    spacing_source=sources[j] if g.spacing else None))
                if on_result is not None:
                    on_result(results[-1])
        return results


    def _refine(self, raws, points, domain):
        from .refine import _cache_size, refine_points

        refiner, codec, rc = self.refiner
        images, geometries = [], []
        for array, sp in raws:
            size = _cache_size((array.shape[1], array.shape[0]), rc.scale)
            image, geometry = preprocess(array, sp, size, "stretch")
            images.append(torch.from_numpy(image))
            geometries.append(geometry)
        return refine_points(refiner, codec, torch.stack(images), geometries, points, domain,
                             rc.patch_size, rc.scale)


def training_spacing(detector: Detector, domain: str | None = None) -> Spacing | None:
    """The spacing (mm/px, (x, y)) of ``domain``'s training images as the checkpoint records
    it (``spacing``: the median over the original training images), or None."""
    recorded = detector.domains[detector._domain(domain)].get("spacing")
    return (float(recorded[0]), float(recorded[1])) if recorded else None


def _float_weights(weights: dict) -> dict:
    return {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}


def _stem(path) -> str:
    name = Path(path).name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else Path(name).stem


def result_rows(results: list[LandmarkResult]) -> list[dict]:
    """Prediction-CSV rows (docs/protocols.md, "Prediction CSV") for a list of results:
    millimetres where a spacing is known, and on every row the spacing used and its source
    (empty when none)."""
    from .evaluate import prediction_rows

    rows = []
    for r in results:
        sp = r.spacing
        used = {"spacing_x": repr(float(sp[0])) if sp else "",
                "spacing_y": repr(float(sp[1])) if sp else "",
                "spacing_source": (r.spacing_source or "") if sp else ""}
        rows += [{**row, **used} for row in prediction_rows(
            [r.id], [r.points], r.names, confidence=[r.confidence], spacing=[sp],
            domain=r.domain)]
    return rows
