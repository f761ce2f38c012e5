"""CPU/GPU speed settings of a training step: memory format, mixed precision, compilation.

``SPEED_SETTINGS`` names each combination; ``train.speed`` in a config picks one, and
``benchmarks/train_speed_vs_official.py`` measures them against the reference
implementation (docs/results.md has the figures and which one is the default and why).
``choose_precision`` picks the step's precision: bf16 autocast on a CUDA device that
supports bf16, float16 autocast with a gradient scaler on one that does not (``amp``),
bf16 on the CPU only when the setting names it, float32 otherwise.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

SPEED_SETTINGS: dict[str, dict] = {
    "plain": {},
    "channels_last": {"channels_last": True},
    "channels_last+bf16": {"channels_last": True, "bf16": True},
    "compile": {"compile": True},
    "channels_last+compile": {"channels_last": True, "compile": True},
}


def prepare_model(model: nn.Module, setting: dict) -> nn.Module:
    """The module to call for training steps (the given one, moved to channels-last
    memory and/or compiled). Its parameters are the given model's."""
    if setting.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    if setting.get("compile"):
        return torch.compile(model)
    return model


def prepare_batch(x: torch.Tensor, setting: dict) -> torch.Tensor:
    """A (B, C, H, W) input in the setting's memory format."""
    if setting.get("channels_last"):
        return x.contiguous(memory_format=torch.channels_last)
    return x


@dataclass(frozen=True)
class Precision:
    """The training step's precision: autocast to ``dtype`` on ``device_type`` (None: no
    autocast, float32), with a gradient scaler when ``scaler`` (float16 needs one: small
    gradients underflow to zero without)."""

    device_type: str
    dtype: torch.dtype | None = None
    scaler: bool = False

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype] + \
            ("+scaler" if self.scaler else "")

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self):
        """A ``torch.amp.GradScaler`` when the precision needs one, else None."""
        return torch.amp.GradScaler(self.device_type) if self.scaler else None


def cuda_bf16_supported(device: torch.device) -> bool:
    """Whether the CUDA ``device`` computes in bf16 natively
    (``torch.cuda.is_bf16_supported`` asked of that device, emulation not counted: an
    emulated bf16 is slower than float32)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    with torch.cuda.device(index):
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch without ``including_emulation``
            return bool(torch.cuda.is_bf16_supported())


def choose_precision(setting: dict, device: torch.device, amp: bool,
                     bf16_supported: bool | None = None) -> Precision:
    """The precision of a training step on ``device``.

    CUDA with ``amp``: bf16 autocast where the device supports bf16 (``bf16_supported``;
    None: ask the device), else float16 autocast with a gradient scaler. The CPU: bf16
    autocast when the speed setting asks for it. Everything else: float32.
    """
    if device.type == "cuda" and amp:
        if bf16_supported is None:
            bf16_supported = cuda_bf16_supported(device)
        if bf16_supported:
            return Precision("cuda", torch.bfloat16)
        return Precision("cuda", torch.float16, scaler=True)
    if device.type == "cpu" and setting.get("bf16"):
        return Precision("cpu", torch.bfloat16)
    return Precision(device.type)
