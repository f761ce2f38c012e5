"""CPU/GPU speed settings of a training step: memory format, bf16 autocast, compilation.

``SPEED_SETTINGS`` names each combination; ``train.speed`` in a config picks one, and
``benchmarks/train_speed_vs_official.py`` measures them against the reference
implementation (docs/results.md has the figures and which one is the default and why).
"""

from __future__ import annotations

import contextlib

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


def autocast_for(setting: dict, device: torch.device, amp: bool):
    """bf16 autocast on CUDA when ``amp``; on the CPU when the setting asks for it."""
    if device.type == "cuda" and amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and setting.get("bf16"):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
