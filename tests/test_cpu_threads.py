"""Threads on a busy machine (core.cpu; docs/training.md): a run with ``train.threads``
unset trains on the cores other processes leave free."""

from __future__ import annotations

import os

import torch

from unilandmark.core import cpu
from unilandmark.training import fit as fit_module

from .conftest import phantom_config


def test_free_threads_leaves_the_busy_cores_and_keeps_one():
    assert cpu.free_threads(busy=0.2, cores=2) == 2
    assert cpu.free_threads(busy=1.0, cores=2) == 1
    assert cpu.free_threads(busy=3.7, cores=2) == 1  # three other jobs: one thread, never 0
    assert cpu.free_threads(busy=1.4, cores=8) == 7
    assert 1 <= cpu.free_threads() <= cpu.allowed_cores()


def test_busy_cores_is_measured_between_zero_and_the_cpu_count():
    busy = cpu.busy_cores(sample_s=0.05)
    assert busy is None or 0.0 <= busy <= (os.cpu_count() or 1) + 1e-6


def test_training_without_threads_takes_fewer_on_a_busy_machine(phantoms, tmp_path,
                                                                monkeypatch):
    config = phantom_config(phantoms, tmp_path / "run", domains=("head",), epochs=1,
                            size=32, threads=1)
    config.train.threads = None
    monkeypatch.setattr(fit_module, "busy_cores", lambda: 5.0)
    monkeypatch.setattr(fit_module, "allowed_cores", lambda: 2)
    before = torch.get_num_threads()
    lines = []
    try:
        torch.set_num_threads(2)
        fit_module.fit(config, progress=False, log=lines.append)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    said = [ln for ln in lines if ln.startswith("the machine is busy")]
    assert said == ["the machine is busy (about 5.0 of 2 cores in use by other processes): "
                    "training on 1 thread(s) instead of 2; set train.threads to choose"]
