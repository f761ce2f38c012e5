"""Prediction on new images without ground truth: ``Detector``.

``Detector.from_checkpoint(path).predict(image_or_path, domain)`` reads any supported
format at any size and runs the checkpoint's stages:

1. **Whole image.** The image is resized into the domain's network input and decoded.
   With ``orientation="auto"`` (the default) an image not read confidently has its
   left-right mirror decoded too, and the mirror is kept when it is clearly more
   confident (``unilandmark.orientation``): a model learns the orientation of its
   training images, so a mirrored scan is read in that orientation and everything after
   runs on it.
2. **Configuration check.** Where the domain has a shape model (built from the training
   shapes), the points are fitted by it; a landmark far from where the others put it
   (more than ``RELOCATE_SPREADS`` of its training spread) is searched again in the
   heatmap, under a Gaussian prior around the shape's position (skipped with
   ``relocate=False``: the residuals are still computed).
3. **Refinement stages** (a cascade's patch stages) crop patches around the current points
   and refine them.
4. The points go back to the original image: un-mirrored, flip pairs swapped back,
   millimetres where a spacing is known, a confidence per landmark.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ..checkpoints.builtin import (
    BUILTIN_MODELS,
    PRETRAINED_DIR,
    PRETRAINED_NAME,
    model_path,
)
from ..checkpoints.checkpoint import load_checkpoint, stage_chain, upgrade
from ..checkpoints.contract import PatchGeometry, load_weights, stage_contract, stage_label
from ..codecs import HeatmapCodec, decode_peaks
from ..core.errors import InputError
from ..core.geometry import fit_geometry, flip_permutation, patch_scale, scaled_geometry
from ..core.types import Spacing
from ..models import build_model, codec_for
from ..quality.evidence import assess
from .inputs import (
    LeastSize,
    RawInput,
    fallback_spacing,
    least_size_rule,
    read_batches,
    read_input,
    stage1_inputs,
)
from .orientation import mirror_pass_needed, reads_mirrored
from .refine import refine_points
from .results import LandmarkResult, PredictionFailure, result_rows
from .shape import ShapeModel, fit_shape

ORIENTATIONS = ("auto", "original", "mirrored")
#: a landmark whose shape-fit residual exceeds this many training spreads is searched again
RELOCATE_SPREADS = 6.0


@dataclass
class PatchStageModel:
    """A refinement stage ready to predict."""

    model: torch.nn.Module
    codec: HeatmapCodec  # the model's codec (registry); a patch stage decodes heatmaps
    config: PatchGeometry
    domains: dict[str, dict]


class Detector:
    """A trained model (or cascade) ready to predict; one instance serves every domain it
    was trained on."""

    def __init__(self, model: torch.nn.Module, domains: dict[str, dict], device="cpu",
                 model_name: str = "gu2net", refiners: list[PatchStageModel] | None = None,
                 relocate: bool = True, calibrations: dict[str, dict] | None = None):
        self.device = torch.device(device)
        #: re-localise gross misses of the configuration check (False: residuals only)
        self.relocate = relocate
        # channels_last: the convolutions follow the weights' memory format, which on a
        # 2-core CPU makes prediction about 1.5x faster (docs/deployment.md)
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()
        self.domains = domains
        self.model_name = model_name
        self.codecs = {n: codec_for(model_name, m.get("sigma", 3.0)) for n, m in domains.items()}
        self.refiners = refiners or []
        for r in self.refiners:
            r.model.to(self.device, memory_format=torch.channels_last).eval()
        self._shapes = {n: ShapeModel.from_dict(m["shape"]) for n, m in domains.items()
                        if m.get("shape")}
        self._flips = {n: flip_permutation(m["landmark_names"], m.get("flip_pairs") or [])
                       for n, m in domains.items()}
        #: per domain: the quality calibration (docs/quality.md) or None
        self.calibrations: dict[str, dict | None] = dict(calibrations or {})

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None,
                        device: str = "cpu", relocate: bool = True) -> Detector:
        """Load a checkpoint (``best.pt``, a cascade, a slim model file), or the built-in
        model when None, or a built-in model by name (:data:`BUILTIN_MODELS`, e.g.
        ``head-mean``) where no such file exists. ``relocate=False`` skips the configuration check's
        re-localisation (shape residuals are still computed; what an exported ONNX graph
        does)."""
        file = model_path(path)
        return cls.from_checkpoint_state(load_checkpoint(file, map_location="cpu"),
                                         device, relocate, str(file))

    @classmethod
    def from_checkpoint_state(cls, state: dict, device: str = "cpu",
                              relocate: bool = True, source: str = "model file") -> Detector:
        """Build from a loaded checkpoint dict: its whole stage chain. ``source`` names
        the file in errors (weights that do not fit the network the config describes)."""
        chain = stage_chain(upgrade(state))
        first = chain[0]
        config = stage_contract(first, source)
        domains = first["domains"]
        model = build_model(config.model.name,
                            {n: m["num_landmarks"] for n, m in domains.items()},
                            **config.model.kwargs())
        load_weights(model, _float_weights(first["model"]), source, stage_label(first, 0))
        refiners = []
        for index, later in enumerate(chain[1:], start=1):
            rc = stage_contract(later, source)
            refiner = build_model(rc.model.name,
                                  {n: m["num_landmarks"] for n, m in later["domains"].items()},
                                  **rc.model.kwargs())
            load_weights(refiner, _float_weights(later["model"]), source,
                         stage_label(later, index))
            refiners.append(PatchStageModel(refiner, codec_for(rc.model.name, rc.patch.sigma),
                                            rc.patch,
                                            later["domains"]))
        calibrations = {n: m["calibration"] for n, m in chain[-1]["domains"].items()
                        if m.get("calibration")}
        return cls(model, domains, device, config.model.name, refiners, relocate,
                   calibrations)

    def _domain(self, domain: str | None) -> str:
        if domain is None:
            if len(self.domains) == 1:
                return next(iter(self.domains))
            raise InputError(f"give a domain; this model knows {sorted(self.domains)}")
        if domain not in self.domains:
            raise InputError(f"unknown domain {domain!r}; this model knows "
                             f"{sorted(self.domains)}")
        return domain

    def predict(self, image, domain: str | None = None, spacing: Spacing | None = None,
                **options) -> LandmarkResult:
        """One image: a path (any supported format) or a 2-D array. ``spacing`` (mm per
        pixel, (x, y)) applies where the file carries none (and to arrays). ``options``:
        see :meth:`iter_predict`."""
        return self.predict_many([image], domain, spacing, **options)[0]

    def predict_many(self, images, domain: str | None = None, spacing: Spacing | None = None,
                     batch_size: int = 4, **options) -> list[LandmarkResult]:
        """A list of images (paths or arrays) -> a list of results in the same order
        (without the images that failed, where ``on_failure`` is given)."""
        return list(self.iter_predict(images, domain, spacing, batch_size, **options))

    @torch.inference_mode()
    def iter_predict(self, images: Iterable, domain: str | None = None,
                     spacing: Spacing | None = None, batch_size: int = 4,
                     orientation: str = "auto", assume_training_spacing: bool = False,
                     on_result: Callable[[LandmarkResult], None] | None = None,
                     on_failure: Callable[[PredictionFailure], None] | None = None,
                     readers: int = 2, reduced_decode: bool = True,
                     spacings: Mapping[str, Spacing] | None = None,
                     ) -> Iterator[LandmarkResult]:
        """Yield one result per image, ``batch_size`` images at a time through the model.

        orientation: ``auto`` (decide per image), ``original`` or ``mirrored`` (force).
        assume_training_spacing: for images without a spacing (file or ``spacing``), use
        the model's training spacing (only where the images come from the same kind of
        scanner: the millimetres are then an assumption, marked ``model``).
        on_result: called with each result as it is ready (progress).
        on_failure: called with a :class:`PredictionFailure` for each image that cannot be
        read (unreadable, truncated, not an image, not 2-D), and the batch goes on with
        the others; without it the first such image raises its error.
        readers: threads that read and decode the next images while the model runs on
        the current batch (decoders and the model release the GIL); 0 reads in line.
        reduced_decode: decode a JPEG at the smallest size that still has the pixels the
        model's finest stage samples (:meth:`least_size`; points stay in the original's
        pixels); False decodes every file whole.
        spacings: absolute path -> spacing (x, y) mm per pixel, each image's own (``predict
        --spacing-file``); before the image's calibration file, its header and ``spacing``.
        """
        domain = self._domain(domain)
        if orientation not in ORIENTATIONS:
            raise InputError(f"unknown orientation {orientation!r}; expected one of "
                             f"{ORIENTATIONS}")
        fallback, fallback_source = fallback_spacing(
            spacing, assume_training_spacing, self.domains[domain].get("spacing"), domain)

        least_size = self.least_size(domain) if reduced_decode else None

        def load(index, item):
            return read_input(item, index, fallback, fallback_source, least_size, spacings)

        for chunk in read_batches(images, load, batch_size, readers, on_failure):
            yield from self._predict_chunk(chunk, domain, orientation, on_result)

    def least_size(self, domain: str | None = None) -> LeastSize:
        """The fewest pixels ``domain``'s stages look at an image with (``reading.
        least_size_rule``): stage 1's input and each patch stage's resized image."""
        domain = self._domain(domain)
        meta = self.domains[domain]
        scales = [lambda sp, c=r.config: patch_scale(sp, c.scale, c.scale_mm)
                  for r in self.refiners if domain in r.domains
                  and _refines_any(r.domains[domain].get("apply"))]
        return least_size_rule(tuple(meta["input_size"]), meta.get("resize", "stretch"),
                               scales)

    def _predict_chunk(self, raws: list[RawInput], domain, orientation, on_result):
        meta = self.domains[domain]
        points, conf, mirrored, logits, geometries, gap = self._whole_image(
            raws, domain, orientation)
        residual = self._configuration_check(points, conf, logits, geometries, raws, domain)
        first = points.copy()
        stage_conf = [conf]
        stage_spread = [np.full(conf.shape, np.nan)]
        for refiner in self.refiners:
            if domain not in refiner.domains:
                continue
            points, c, spread = self._refine(refiner, raws, mirrored, points, domain)
            stage_conf.append(c)
            stage_spread.append(spread)
            conf = np.where(np.isfinite(c), c, conf)
        shift = np.linalg.norm(points - first, axis=-1)
        flip = self._flips[domain]
        for j, raw in enumerate(raws):
            pts, cf, res, sh, mg = points[j], conf[j], residual[j], shift[j], gap[j]
            sc = np.stack([s[j] for s in stage_conf])
            spr = np.stack([s[j] for s in stage_spread])
            if mirrored[j]:
                w = raw.original_size[0]
                pts = np.stack([(w - 1) - pts[:, 0], pts[:, 1]], -1)[flip]
                cf, res, sh, mg = cf[flip], res[flip], sh[flip], mg[flip]
                sc, spr = sc[:, flip], spr[:, flip]
            pts = pts.astype(np.float32)
            mm = geometries[j].to_mm(pts)
            result = LandmarkResult(
                id=raw.id, domain=domain, names=tuple(meta["landmark_names"]), points=pts,
                confidence=cf.astype(np.float32), spacing=raw.spacing,
                points_mm=None if mm is None else mm.astype(np.float32), image_path=raw.path,
                spacing_source=raw.spacing_source if raw.spacing else None,
                orientation="mirrored" if mirrored[j] else "original", shape_residual=res,
                stage_confidence=sc.astype(np.float32), image_size=raw.original_size,
                refinement_shift=sh.astype(np.float32), crop_spread=spr.astype(np.float32),
                mirror_gap=mg.astype(np.float32))
            result = assess(result, meta, self.calibrations.get(domain))
            if on_result is not None:
                on_result(result)
            yield result

    def _whole_image(self, raws: list[RawInput], domain, orientation):
        """Stage 1 on every image (and its mirror for ``auto``): points (B, K, 2) in the
        chosen orientation's original pixels, confidence (B, K), mirrored (B,) bool, the
        chosen heatmap logits (or None for non-heatmap models), the geometries, and the
        mirror gap (B, K): original pixels between each point and the other
        orientation's answer brought into the chosen frame (NaN unless ``auto`` decoded
        the mirror: an image read confidently as it is skips it, ``orientation.py``)."""
        meta = self.domains[domain]
        size, mode = tuple(meta["input_size"]), meta.get("resize", "stretch")
        b = len(raws)
        geometries = [fit_geometry(r.original_size, size, mode, r.spacing) for r in raws]
        inputs, contents = stage1_inputs(raws, size, mode)
        x = torch.from_numpy(inputs).to(self.device)

        def mirror_inputs(rows):
            # resizing commutes with the mirror: mirror the content (letterbox pads the
            # right and bottom, which stay where they are)
            out = x[rows].clone()
            for i, j in enumerate(rows):
                cw, ch = contents[j]
                out[i, :, :ch, :cw] = x[j, :, :ch, :cw].flip(-1)
            return out

        everything = list(range(b))
        first = mirror_inputs(everything) if orientation == "mirrored" else x
        pts, conf, heat = self._stage1(first, domain)
        mirrored = np.full(b, orientation == "mirrored")
        other_pts = np.full_like(pts, np.nan)  # the orientation not chosen (NaN: not run)
        if orientation == "auto":
            # the mirror only where the original is not confidently right (orientation.py)
            rows = np.flatnonzero(mirror_pass_needed(conf))
            mirror_pts, mirror_conf = np.full_like(pts, np.nan), np.zeros_like(conf)
            if rows.size:
                m_pts, m_conf, m_heat = self._stage1(mirror_inputs(rows.tolist()), domain)
                mirror_pts[rows], mirror_conf[rows] = m_pts, m_conf
                mirrored = reads_mirrored(conf, mirror_conf)
                if heat is not None and mirrored.any():
                    swap = np.flatnonzero(mirrored)
                    heat = heat.clone()
                    heat[torch.from_numpy(swap).to(heat.device)] = \
                        m_heat[torch.from_numpy(np.searchsorted(rows, swap)).to(heat.device)]
            pick = mirrored[:, None, None]
            pts, other_pts = np.where(pick, mirror_pts, pts), np.where(pick, pts, mirror_pts)
            conf = np.where(mirrored[:, None], mirror_conf, conf)
        points = np.stack([g.to_original(p) for g, p in zip(geometries, pts, strict=True)])
        gap = np.full(conf.shape, np.nan)
        flip = self._flips[domain]
        for j, g in enumerate(geometries):  # the other orientation's answer, chosen frame
            if np.isfinite(other_pts[j]).all():
                o = g.to_original(other_pts[j])
                o = np.stack([(g.original_size[0] - 1) - o[:, 0], o[:, 1]], -1)
                gap[j] = np.linalg.norm(points[j] - o[flip], axis=-1)
        return points, conf, mirrored, heat, geometries, gap

    def _stage1(self, batch: torch.Tensor, domain: str):
        """Stage 1 on (B, 1, H, W) inputs: points (B, K, 2) network px (float64),
        confidence (B, K) float32, heatmap logits (B, K, H, W) or None (no heatmap)."""
        outputs = self.model(batch, domain)
        pred = self.codecs[domain].decode(outputs)
        heat = outputs.get("heatmap") if isinstance(self.codecs[domain], HeatmapCodec) else None
        return (pred.points.double().cpu().numpy(), pred.confidence.float().cpu().numpy(),
                heat)

    def _configuration_check(self, points, conf, logits, geometries, raws, domain):
        """Shape-fit residuals (B, K); re-localises gross misses in place."""
        b, k, _ = points.shape
        residual = np.full((b, k), np.nan)
        shape = self._shapes.get(domain)
        if shape is None:
            return residual
        trained = self.domains[domain].get("spacing")
        for j in range(b):
            sp = raws[j].spacing or trained
            scale = np.asarray(sp, dtype=np.float64) if sp else np.ones(2)
            fit = fit_shape(shape, points[j] * scale, conf[j])
            residual[j] = fit.residual
            bad = np.flatnonzero(fit.residual > RELOCATE_SPREADS)
            if logits is None or not self.relocate or not len(bad) or \
                    not np.isfinite(fit.size):
                continue
            g = geometries[j]
            prior_centres = g.to_network(fit.fitted[bad] / scale)
            # prior radius: 3 training spreads, in network pixels
            radius = 3 * shape.spread[bad] * fit.size / scale.mean() / np.diag(g.matrix)[:2].mean()
            found, peak = _search_with_prior(logits[j, bad], prior_centres,
                                             np.maximum(radius, 2.0))
            points[j, bad] = g.to_original(found)
            conf[j, bad] = peak
            again = fit_shape(shape, points[j] * scale, conf[j])
            residual[j] = again.residual
        return residual

    def _refine(self, refiner: PatchStageModel, raws: list[RawInput], mirrored, points,
                domain):
        """Refinement stage on (B, K, 2) points in each image's chosen orientation: its
        image resized by ``1 / s`` (mirrored where ``mirrored``: resizing commutes with
        the mirror)."""
        sc = refiner.config
        images, geometries = [], []
        for raw, flip in zip(raws, mirrored, strict=True):
            s = patch_scale(raw.spacing, sc.scale, sc.scale_mm)
            g = scaled_geometry(raw.original_size, raw.spacing, s)
            scaled = raw.resized(g.input_size)
            if flip:
                scaled = np.ascontiguousarray(scaled[:, ::-1])
            images.append(torch.from_numpy(scaled)[None].to(self.device))
            geometries.append(g)
        apply = refiner.domains[domain].get("apply")
        return refine_points(refiner.model, refiner.codec, domain, images, geometries, points,
                             sc.patch_size, apply=apply, test_offsets=sc.test_offsets,
                             device=self.device, return_spread=True)


def _search_with_prior(logits: torch.Tensor, centres: np.ndarray, radius: np.ndarray):
    """Peaks of (M, H, W) heatmap logits weighted by Gaussian priors at ``centres`` (M, 2)
    network pixels with SD ``radius`` (M,). Returns (points (M, 2), peak probability (M,))."""
    m, h, w = logits.shape
    logp = torch.nn.functional.logsigmoid(logits.float())
    ys = torch.arange(h, device=logp.device, dtype=torch.float32)[:, None]
    xs = torch.arange(w, device=logp.device, dtype=torch.float32)[None, :]
    c = torch.tensor(centres, dtype=torch.float32, device=logp.device)
    r = torch.tensor(radius, dtype=torch.float32, device=logp.device)
    prior = -((xs[None] - c[:, 0, None, None]) ** 2 + (ys[None] - c[:, 1, None, None]) ** 2) \
        / (2 * r[:, None, None] ** 2)
    pts, _ = decode_peaks((logp + prior)[None], refine=True)
    pts = pts[0].double().cpu().numpy()
    xi = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
    peak = torch.exp(logp[torch.arange(m), torch.from_numpy(yi), torch.from_numpy(xi)])
    return pts, peak.cpu().numpy()


def training_spacing(detector: Detector, domain: str | None = None) -> Spacing | None:
    """The spacing (mm/px, (x, y)) of ``domain``'s training images as the checkpoint records
    it (``spacing``: the median over the original training images), or None."""
    recorded = detector.domains[detector._domain(domain)].get("spacing")
    return (float(recorded[0]), float(recorded[1])) if recorded else None


def _refines_any(apply) -> bool:
    """Whether a patch stage's gate (None: every landmark) refines any landmark."""
    return apply is None or bool(np.any(np.asarray(apply)))


def _float_weights(weights: dict) -> dict:
    return {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}


__all__ = ["BUILTIN_MODELS", "Detector", "LandmarkResult", "PRETRAINED_DIR", "PRETRAINED_NAME",
           "PredictionFailure", "model_path", "result_rows"]
