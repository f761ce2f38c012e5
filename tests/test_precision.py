"""Mixed precision and GPU paths of training and decoding (issue 19, item 8): float32
decoding of low-precision outputs, the global RNG left as found by augmentation, the
autocast choice per device, divergence stops the run without saving non-finite weights,
and DDP ranks that wait for rank 0's validation outside the default group's timeout.

No GPU is needed: the CUDA paths are checked with monkeypatched ``torch.cuda`` functions.
"""

import contextlib
import importlib
import math
import os
import subprocess
import sys

import pytest
import torch
import yaml

from unilandmark.checkpoints.checkpoint import load_checkpoint
from unilandmark.codecs import (
    HeatmapCodec,
    LearnedSigmaHeatmapCodec,
    decode_heatmap,
    decode_peaks,
    render_gaussians,
)
from unilandmark.models import MODELS, codec_for
from unilandmark.training.augment import AugmentConfig, augment_batch, seeded_global_rng
from unilandmark.training.fit import TrainingDiverged, fit
from unilandmark.training.speed import Precision, choose_precision, cuda_bf16_supported
from unilandmark.training.stages.image import ImageStage

from .conftest import phantom_config
from .test_families import SIZE, ideal_outputs

fit_module = importlib.import_module("unilandmark.training.fit")
LOW = [torch.bfloat16, torch.float16]
X, Y = 300.37, 5.62  # x = 300.37 is 300.0 in bf16 and 300.25 in float16


def _peak_logits(x=X, y=Y, size=(320, 12), sigma=2.0):
    """(1, 1, H, W) float32 logits of a Gaussian of peak 1 at (x, y)."""
    heat = render_gaussians(torch.tensor([[[x, y]]], dtype=torch.float64), size, sigma)
    heat = heat.clamp(1e-12, 1 - 1e-12)
    return (torch.log(heat) - torch.log1p(-heat)).float()


# --- decoding ------------------------------------------------------------------------


def _decoders():
    """Every decoder of heatmaps: name, (B, K, H, W) float32 input of a peak at (X, Y),
    decode(input) -> (points, confidence or peak)."""
    logits = _peak_logits()
    heat = 10.0 * render_gaussians(torch.tensor([[[X, Y]]]), (320, 12), 2.0)

    def heatmap(v):
        pred = HeatmapCodec(2.0).decode({"heatmap": v})
        return pred.points, pred.confidence

    def sigma(v):
        pred = LearnedSigmaHeatmapCodec(gamma=10.0).decode({"heatmap": v})
        return pred.points, pred.confidence

    return [("HeatmapCodec", logits, heatmap),
            ("decode_heatmap", logits,
             lambda v: (decode_heatmap(v).points, decode_heatmap(v).confidence)),
            ("decode_peaks", torch.nn.functional.logsigmoid(logits), decode_peaks),
            ("LearnedSigmaHeatmapCodec", heat, sigma)]


@pytest.mark.parametrize("dtype", LOW)
def test_heatmap_decoders_return_float32_points_of_low_precision_maps(dtype):
    for name, full, decode in _decoders():
        low = full.to(dtype)
        pts, conf = decode(low)
        assert pts.dtype == torch.float32 and conf.dtype == torch.float32, name
        # exactly what decoding the float32 copy of the same (rounded) values gives
        ref_pts, ref_conf = decode(low.float())
        assert torch.equal(pts, ref_pts) and torch.equal(conf, ref_conf), name
        # the rounding of the map moves the refined peak by hundredths of a pixel (bf16
        # points would put it at 300.0, float16 points at 300.25 or 300.5)
        assert abs(float(pts[0, 0, 0]) - X) < 0.05, (name, float(pts[0, 0, 0]))
        assert abs(float(pts[0, 0, 1]) - Y) < 0.05, (name, float(pts[0, 0, 1]))
        # a float32 map decodes as it always did: to the point itself
        assert abs(float(decode(full)[0][0, 0, 0]) - X) < 1e-3, name


def test_every_codec_decodes_low_precision_outputs_in_float32():
    """Every family: float32 points and confidence, equal to decoding the float32 copy."""
    pts = torch.tensor([[[8.3, 8.6], [28.4, 9.1], [18.7, 17.2], [8.1, 27.6], [29.2, 26.4]]])
    visible = torch.ones(1, 5, dtype=torch.bool)
    checked = set()
    for name in MODELS:
        if "volume-patch" in MODELS[name].stages:  # 3-D points only (test_triplanar.py)
            continue
        codec = codec_for(name, sigma=2.0)
        ideal = ideal_outputs(codec, codec.encode(pts, visible, SIZE), pts, SIZE)
        for dtype in LOW:
            low = {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v
                   for k, v in ideal.items()}
            up = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v
                  for k, v in low.items()}
            pred, ref = codec.decode(low), codec.decode(up)
            assert pred.points.dtype == torch.float32, (name, dtype)
            assert pred.confidence.dtype == torch.float32, (name, dtype)
            assert torch.equal(pred.points, ref.points), (name, dtype)
            assert torch.equal(pred.confidence, ref.confidence), (name, dtype)
        checked.add(codec.name)
    assert {"heatmap", "heatmap-sigma", "dsnt"} <= checked


# --- the global RNG around seeded augmentation ----------------------------------------


class _FakeCudaGenerator:
    def __init__(self, state: int):
        self.state = state

    def manual_seed(self, seed):
        self.state = int(seed)
        return self


@pytest.fixture
def fake_cuda(monkeypatch):
    """Two fake CUDA devices whose RNG state is an int; every seeding of all devices at
    once (what ``torch.manual_seed`` does) is recorded."""
    gens = (_FakeCudaGenerator(111), _FakeCudaGenerator(222))
    seeded_all = []
    monkeypatch.setattr(torch.cuda, "default_generators", gens)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state",
                        lambda device="cuda": torch.tensor([gens[_index(device)].state]))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": setattr(
        gens[_index(device)], "state", int(state[0])))
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: seeded_all.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: seeded_all.append(seed))
    return gens, seeded_all


def _index(device):
    return device if isinstance(device, int) else (torch.device(device).index or 0)


def test_augmentation_leaves_the_global_rng_as_it_was(fake_cuda):
    gens, seeded_all = fake_cuda
    batch = {"image": torch.rand(4, 1, 24, 24), "points": torch.rand(4, 3, 2) * 12 + 6,
             "visible": torch.ones(4, 3).bool()}
    torch.manual_seed(1234)
    seeded_all.clear()
    cpu_before = torch.get_rng_state()
    augment_batch(batch, AugmentConfig(backend="kornia"), torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), cpu_before)
    # CPU images: no CUDA generator is seeded (torch.manual_seed would seed them all)
    assert seeded_all == [] and [g.state for g in gens] == [111, 222]


def test_seeded_rng_on_a_cuda_device_restores_that_device_only(fake_cuda):
    gens, seeded_all = fake_cuda
    cpu_before = torch.get_rng_state()
    with seeded_global_rng(99, torch.device("cuda", 1)):
        assert gens[1].state == 99 and gens[0].state == 111  # the used device only
        assert torch.random.default_generator.initial_seed() == 99
    assert [g.state for g in gens] == [111, 222]  # restored
    assert torch.equal(torch.get_rng_state(), cpu_before)
    assert seeded_all == []
    with seeded_global_rng(5, torch.device("cuda")):  # no index: the current device
        assert gens[0].state == 5 and gens[1].state == 222
    assert [g.state for g in gens] == [111, 222]


# --- the precision of a training step --------------------------------------------------


@pytest.fixture
def cuda_bf16(monkeypatch):
    """A fake CUDA whose bf16 support is ``answer[index]``; records what was asked."""
    answer, asked, current = {0: True, 1: False}, [], [0]

    @contextlib.contextmanager
    def device(index):
        before, current[0] = current[0], index
        yield
        current[0] = before

    def is_bf16_supported(including_emulation=True):
        asked.append((current[0], including_emulation))
        return answer[current[0]] or including_emulation  # emulation: "supported" anywhere

    monkeypatch.setattr(torch.cuda, "device", device)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current[0])
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    return asked


def test_bf16_only_where_the_cuda_device_supports_it(cuda_bf16):
    bf16 = choose_precision({}, torch.device("cuda", 0), amp=True)
    assert (bf16.dtype, bf16.scaler, bf16.name) == (torch.bfloat16, False, "bf16")
    fp16 = choose_precision({}, torch.device("cuda", 1), amp=True)
    assert (fp16.dtype, fp16.scaler, fp16.name) == (torch.float16, True, "fp16+scaler")
    # the device asked is the training device, without emulation
    assert cuda_bf16 == [(0, False), (1, False)]
    assert choose_precision({}, torch.device("cuda"), amp=True).dtype == torch.bfloat16
    assert cuda_bf16_supported(torch.device("cuda", 1)) is False


def test_precision_without_cuda_amp(cuda_bf16):
    cpu = choose_precision({}, torch.device("cpu"), amp=True)
    assert (cpu.dtype, cpu.scaler, cpu.name) == (None, False, "fp32")
    assert isinstance(cpu.autocast(), contextlib.nullcontext) and cpu.grad_scaler() is None
    assert choose_precision({"bf16": True}, torch.device("cpu"), amp=True).dtype == \
        torch.bfloat16
    off = choose_precision({"bf16": True}, torch.device("cuda", 0), amp=False)
    assert off.dtype is None and not off.scaler
    assert cuda_bf16 == []  # nothing asked of a device without amp
    # an explicit capability needs no device at all
    assert choose_precision({}, torch.device("cuda", 3), True, bf16_supported=False).scaler


def test_training_step_uses_the_gradient_scaler(phantoms, tmp_path, monkeypatch):
    """A float16-like precision trains through the scaler (here on the CPU) and keeps its
    state in last.pt for an exact resume."""
    scaled = []
    real_scale = torch.amp.GradScaler.scale

    def scale(self, outputs):
        scaled.append(1)
        return real_scale(self, outputs)

    monkeypatch.setattr(torch.amp.GradScaler, "scale", scale)
    monkeypatch.setattr(fit_module, "choose_precision",
                        lambda *a, **k: Precision("cpu", torch.bfloat16, scaler=True))
    cfg = phantom_config(phantoms, tmp_path / "run", domains=("head",), epochs=1, size=32,
                         threads=1, max_steps_per_epoch=2)
    run = fit(cfg, progress=False, log=lambda *_: None)
    assert len(scaled) == 2 and math.isfinite(run.history[0]["loss"])
    assert load_checkpoint(run.last_path)["scaler"]["scale"] > 0


# --- divergence ----------------------------------------------------------------------


def _finite(path):
    weights = load_checkpoint(path)["model"]
    return all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_nan_loss_stops_the_run_and_saves_no_nan_weights(phantoms, tmp_path, monkeypatch):
    calls = []
    real_loss = ImageStage.loss

    def loss(self, domain, outputs, targets):
        calls.append(domain)
        value = real_loss(self, domain, outputs, targets)
        return value * float("nan") if len(calls) == 4 else value  # epoch 2, step 2

    monkeypatch.setattr(ImageStage, "loss", loss)
    cfg = phantom_config(phantoms, tmp_path / "run", domains=("head",), epochs=3, size=32,
                         threads=1, max_steps_per_epoch=2)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 2 of 3, step 2 of 2"):
        fit(cfg, progress=False, log=lambda *_: None)
    run = tmp_path / "run"
    assert load_checkpoint(run / "last.pt")["epoch"] == 0  # epoch 1, nothing after
    assert _finite(run / "last.pt") and _finite(run / "best.pt")
    # the stopped run resumes as before (here with the loss no longer diverging)
    monkeypatch.setattr(ImageStage, "loss", real_loss)
    done = fit(cfg, resume=True, progress=False, log=lambda *_: None)
    assert [e["epoch"] for e in done.history] == [1, 2, 3] and _finite(done.last_path)


def test_non_finite_weights_are_never_saved(phantoms, tmp_path, monkeypatch):
    """Weights made infinite by an update whose loss was finite (the last step of epoch
    2) stop the run at the end of that epoch, before anything is saved."""
    steps = []
    real_step = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        steps.append(1)
        if len(steps) == 4:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("inf"))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    cfg = phantom_config(phantoms, tmp_path / "run", domains=("head",), epochs=3, size=32,
                         threads=1, max_steps_per_epoch=2)
    with pytest.raises(TrainingDiverged, match=r"after epoch 2 of 3 the weights are not"):
        fit(cfg, progress=False, log=lambda *_: None)
    run = tmp_path / "run"
    assert load_checkpoint(run / "last.pt")["epoch"] == 0
    assert _finite(run / "last.pt") and _finite(run / "best.pt")


# --- DDP: waiting for rank 0's validation ----------------------------------------------

_LAUNCHER = """
import sys, time
from datetime import timedelta
import torch.distributed as dist
from unilandmark.training.config import load_config
from unilandmark.training.fit import fit
from unilandmark.training.stages.image import ImageStage

validate = ImageStage.validate

def slow_validate(self, model, device):  # a validation longer than the group's timeout
    time.sleep(float(sys.argv[3]))
    return validate(self, model, device)

ImageStage.validate = slow_validate
dist.init_process_group("gloo", timeout=timedelta(seconds=float(sys.argv[2])))
fit(load_config(sys.argv[1]), progress=False)
"""


@pytest.mark.slow
def test_ddp_ranks_wait_for_a_long_validation_outside_the_default_timeout(phantoms,
                                                                          tmp_path):
    cfg = phantom_config(phantoms, tmp_path / "ddp", domains=("head",), epochs=1, size=32,
                         threads=1, batch_size=3, max_steps_per_epoch=2)
    cfg_path = tmp_path / "ddp.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    script = tmp_path / "launch.py"
    script.write_text(_LAUNCHER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", str(script), str(cfg_path), "5", "12"]  # 5 s timeout, 12 s validation
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert load_checkpoint(tmp_path / "ddp" / "last.pt")["epoch"] == 0
