"""The model registry: one entry per model name, holding everything that varies by model.

A :class:`ModelEntry` holds the builder ``(domains, **kwargs) -> nn.Module`` (``domains``
is ``{domain name: number of landmarks}``; the module's forward is ``(x (B, C, H, W),
domain) -> dict`` of logits whose keys match its codec), the codec factory ``(sigma in
input px, heatmap loss name) -> codec`` (targets, decoding and loss), the survey family
(Li et al. 2022), the stage kinds the model can serve: ``image`` (landmarks on the
whole image), ``patch`` (a coarse-to-fine refinement stage, which needs one heatmap
channel per landmark that its codec decodes alone) and ``volume-patch`` (refinement from a
cubic volume patch; ``triplanar``, the 2.5-D refiner, serves only this), and the input
dimensionalities it takes (``dims``: 2 for images ``(B, C, H, W)``, 3 for volumes
``(B, C, Z, H, W)``; :func:`models_for` lists the models of one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn

from ..codecs import (
    DirectRegressionCodec,
    DisplacementCodec,
    DSNTCodec,
    HeatmapCodec,
    LearnedSigmaHeatmapCodec,
    PatchClassCodec,
    PixelClassCodec,
    TriPlanarCodec,
)
from ..core.errors import UnknownNameError
from .displacement3d import Displacement3d
from .families import FamilyNet
from .gu2net import GU2Net, UNet
from .gu2net3d import GU2Net3d, UNet3d
from .triplanar import TriPlanarNet

IMAGE = frozenset({"image"})
IMAGE_OR_PATCH = frozenset({"image", "patch"})
#: refines a coarse 3-D estimate from a cubic volume patch around it, nothing else
VOLUME_PATCH = frozenset({"volume-patch"})
PLANAR = frozenset({2})
VOLUMETRIC = frozenset({3})


@dataclass(frozen=True)
class ModelEntry:
    """One model: how to build it, its codec, its family, the stages it can serve and the
    input dimensionalities it takes."""

    build: Callable[..., nn.Module]
    codec: Callable[[float, str], Any]
    family: str
    stages: frozenset[str] = IMAGE
    #: it has GU2Net's global branch (takes ``global_width`` and ``dilations``)
    global_branch: bool = False
    #: spatial dimensions of its input: {2} images (B, C, H, W), {3} volumes (B, C, Z, H, W)
    dims: frozenset[int] = PLANAR


def _heatmap(sigma: float, loss: str) -> HeatmapCodec:
    return HeatmapCodec(sigma, loss=loss)


MODELS: dict[str, ModelEntry] = {
    "gu2net": ModelEntry(partial(GU2Net, variant="full"), _heatmap,
                         "heatmap regression (universal, local x global)",
                         IMAGE_OR_PATCH, global_branch=True),
    "gu2net-local": ModelEntry(partial(GU2Net, variant="local"), _heatmap,
                               "heatmap regression (GU2Net ablation: local only)",
                               IMAGE_OR_PATCH, global_branch=True),
    "gu2net-global": ModelEntry(partial(GU2Net, variant="global"), _heatmap,
                                "heatmap regression (GU2Net ablation: global only)",
                                IMAGE_OR_PATCH, global_branch=True),
    "unet": ModelEntry(UNet, _heatmap, "heatmap regression (plain U-Net, everything shared)",
                       IMAGE_OR_PATCH),
    "heatmap": ModelEntry(partial(FamilyNet, head="heatmap"), _heatmap,
                          "heatmap regression (fixed sigma, family backbone)", IMAGE_OR_PATCH),
    "pixel-class": ModelEntry(partial(FamilyNet, head="pixel-class"),
                              lambda sigma, loss: PixelClassCodec(radius=max(2.0, 1.5 * sigma)),
                              "pixel classification"),
    "patch-class": ModelEntry(partial(FamilyNet, head="patch-class"),
                              lambda sigma, loss: PatchClassCodec(stride=8),
                              "patch classification"),
    "direct-regression": ModelEntry(partial(FamilyNet, head="direct-regression"),
                                    lambda sigma, loss: DirectRegressionCodec(),
                                    "coordinate regression (direct)"),
    "dsnt": ModelEntry(partial(FamilyNet, head="heatmap"),
                       lambda sigma, loss: DSNTCodec(sigma=sigma),
                       "coordinate regression (integral / DSNT)"),
    "heatmap-sigma": ModelEntry(partial(FamilyNet, head="heatmap-sigma"),
                                lambda sigma, loss: LearnedSigmaHeatmapCodec(),
                                "heatmap regression (learnable sigma)"),
    "heatmap-awing": ModelEntry(partial(FamilyNet, head="heatmap"),
                                lambda sigma, loss: HeatmapCodec(sigma, loss="awing"),
                                "heatmap regression (adaptive wing loss)", IMAGE_OR_PATCH),
    "displacement": ModelEntry(partial(FamilyNet, head="displacement"),
                               lambda sigma, loss: DisplacementCodec(radius=max(3.0, 3 * sigma)),
                               "displacement-map regression"),
    "scn": ModelEntry(partial(FamilyNet, head="scn"),
                      lambda sigma, loss: LearnedSigmaHeatmapCodec(),
                      "spatial configuration net"),
    # volumes (B, C, Z, H, W); small default widths (16, depth 3, global 32): 3-D memory
    "gu2net3d": ModelEntry(partial(GU2Net3d, variant="full"), _heatmap,
                           "heatmap regression (3-D universal, local x global)",
                           IMAGE_OR_PATCH, global_branch=True, dims=VOLUMETRIC),
    "gu2net3d-local": ModelEntry(partial(GU2Net3d, variant="local"), _heatmap,
                                 "heatmap regression (3-D GU2Net ablation: local only)",
                                 IMAGE_OR_PATCH, global_branch=True, dims=VOLUMETRIC),
    "gu2net3d-global": ModelEntry(partial(GU2Net3d, variant="global"), _heatmap,
                                  "heatmap regression (3-D GU2Net ablation: global only)",
                                  IMAGE_OR_PATCH, global_branch=True, dims=VOLUMETRIC),
    "unet3d": ModelEntry(UNet3d, _heatmap,
                         "heatmap regression (plain 3-D U-Net, everything shared)",
                         IMAGE_OR_PATCH, dims=VOLUMETRIC),
    # 3 offset maps per landmark + a mask, decoded by 3-D voting: no heatmap to refine
    "displacement3d": ModelEntry(Displacement3d,
                                 lambda sigma, loss: DisplacementCodec(radius=max(3.0, 3 * sigma)),
                                 "displacement-map regression (3-D U-Net, voting)",
                                 IMAGE, dims=VOLUMETRIC),
    # 2.5-D: takes a cubic volume patch, slices it itself, a 2-D U-Net refines the centre
    "triplanar": ModelEntry(TriPlanarNet, lambda sigma, loss: TriPlanarCodec(sigma, loss=loss),
                            "heatmap regression (2.5-D tri-planar patch refiner)",
                            VOLUME_PATCH, dims=VOLUMETRIC),
}


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; an unknown name is a KeyError listing the known."""
    if name not in MODELS:
        raise UnknownNameError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


def build_model(name: str, domains: dict[str, int], **kwargs) -> nn.Module:
    """The network of model ``name`` for ``domains`` ({name: number of landmarks})."""
    return model_entry(name).build(domains, **kwargs)


def codec_for(name: str, sigma: float = 3.0, loss: str = "bce"):
    """The codec of model ``name`` with the domain's sigma and the configured loss."""
    return model_entry(name).codec(sigma, loss)


def stage_models(kind: str) -> list[str]:
    """The model names that can serve a stage of ``kind`` (``image`` or ``patch``)."""
    return [name for name, entry in MODELS.items() if kind in entry.stages]


def models_for(dims: int) -> list[str]:
    """The model names that take inputs of ``dims`` spatial dimensions (2 or 3)."""
    return [name for name, entry in MODELS.items() if dims in entry.dims]
