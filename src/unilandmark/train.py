"""Universal training: ``fit(config)`` — one explicit loop over several domains.

Each step takes one batch from one domain (the schedule of ``data.sampling``), augments it
on the device, renders Gaussian targets from the float points, and takes an Adam step
on the domain-weighted, visibility-masked loss. Every epoch it validates per domain in
original pixels (x spacing: mm where known), keeps the best checkpoint by mean validation
MRE (not by loss), writes ``last.pt`` atomically and appends a line to ``metrics.jsonl``.
All randomness is derived from (seed, epoch, step), so ``resume=True`` after a kill
replays the interrupted epoch and ends with the same weights as an uninterrupted run.
Under ``torchrun`` it trains with DistributedDataParallel (NCCL on GPU, gloo on CPU).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from .checkpoint import load_checkpoint, save_checkpoint
from .config import ExperimentConfig, dump_config
from .data.augment import augment_batch
from .data.catalog import build_dataset
from .data.dataset import LandmarkDataset
from .data.sampling import epoch_schedule
from .metrics import radial_errors, summarise
from .models import build_model, codec_for
from .types import DatasetSpec


@dataclass
class DomainData:
    """A domain's spec and its datasets in network space."""

    name: str
    spec: DatasetSpec
    train: LandmarkDataset
    val: LandmarkDataset | None
    codec: object
    weight: float
    sigma_mm: float | None


@dataclass
class FitResult:
    out_dir: Path
    best_path: Path
    last_path: Path
    history: list[dict]


def domain_meta(d: DomainData, cfg) -> dict:
    """What a checkpoint keeps of a domain to predict without its dataset."""
    return {"dataset": cfg.dataset, "landmark_names": list(d.spec.landmark_names),
            "num_landmarks": d.spec.num_landmarks, "input_size": list(d.train.input_size),
            "resize": d.train.mode, "sigma": cfg.sigma, "unit": d.spec.unit,
            "thresholds": list(d.spec.thresholds), "spec_name": d.spec.name}


def load_domains(config: ExperimentConfig) -> dict[str, DomainData]:
    out = {}
    cache = config.train.cache_dir
    for dc in config.domains:
        spec = build_dataset(dc.dataset, dc.root, **dc.options)
        spec = _renamed_domain(spec, dc.name)
        train = LandmarkDataset(spec, dc.train_split, dc.input_size, dc.resize, cache)
        val = (LandmarkDataset(spec, dc.val_split, dc.input_size, dc.resize, cache)
               if dc.val_split and spec.splits.get(dc.val_split) else None)
        if dc.sigma_mm is not None and any(r.spacing is None for r in train.records):
            raise ValueError(f"domain {dc.name}: sigma_mm needs spacing for every image")
        codec = codec_for(config.model.name, dc.sigma, config.optim.loss)
        out[dc.name] = DomainData(dc.name, spec, train, val, codec, dc.loss_weight, dc.sigma_mm)
    return out


def _renamed_domain(spec: DatasetSpec, name: str) -> DatasetSpec:
    from dataclasses import replace

    return spec if spec.domain == name else replace(spec, domain=name)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def _make_scheduler(optimizer, config: ExperimentConfig, steps_per_epoch: int):
    o = config.optim
    if o.schedule == "cyclic":
        up = max(1, round(o.cycle_epochs * steps_per_epoch))
        return torch.optim.lr_scheduler.CyclicLR(optimizer, base_lr=o.lr, max_lr=o.max_lr,
                                                 step_size_up=up, cycle_momentum=False)
    if o.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, config.train.epochs * steps_per_epoch), eta_min=o.lr * 0.01)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


@torch.no_grad()
def predict_dataset(model, dataset: LandmarkDataset, codec, domain: str, device,
                    batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Predict every sample; returns (points (N, K, 2) in original px, confidence (N, K))."""
    was_training = model.training
    model.eval()
    pts, conf = [], []
    for start in range(0, len(dataset), batch_size):
        idx = np.arange(start, min(start + batch_size, len(dataset)))
        batch = dataset.batch(idx, device)
        pred = codec.decode(model(batch["image"], domain))
        p = pred.points.double().cpu().numpy()
        for j, i in enumerate(idx):
            pts.append(dataset.geometries[i].to_original(p[j]))
        conf.append(pred.confidence.float().cpu().numpy())
    model.train(was_training)
    return np.stack(pts), np.concatenate(conf)


def validate(model, domains: dict[str, DomainData], device) -> dict[str, dict]:
    """Per-domain validation: MRE in mm (px where a record has no spacing), SDR."""
    out = {}
    for name, d in domains.items():
        if d.val is None:
            continue
        pred, _ = predict_dataset(model, d.val, d.codec, name, device)
        records = d.val.records
        truth = np.stack([np.where(r.visible[:, None], r.points, np.nan) for r in records])
        if all(r.spacing for r in records):
            scale = np.array([r.spacing for r in records])[:, None, :]
            unit = "mm"
        else:
            scale, unit = None, "px"
        s = summarise(radial_errors(pred, truth, scale), d.spec.thresholds)
        out[name] = {"mre": s["mre"], "sd": s["sd"], "unit": unit, "sdr": s["sdr"]}
    return out


def _seed_for(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 9_176 + rank * 131) % (2**63 - 1)


def fit(config: ExperimentConfig, resume: bool = False, progress: bool = True,
        stop_after_epoch: int | None = None, log=print) -> FitResult:
    """Train ``config``; see the module docstring. Returns the checkpoint paths."""
    world, rank, local_rank = _dist_info()
    distributed = world > 1
    device = pick_device(config.train.device)
    if distributed:
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    main = rank == 0
    if distributed and main:
        log(f"distributed: {world} processes ({dist.get_backend()})")
    out_dir = Path(config.out_dir)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    metrics_path = out_dir / "metrics.jsonl"
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(dump_config(config))

    torch.manual_seed(config.train.seed)
    domains = load_domains(config)
    model = build_model(config.model.name, {n: d.spec.num_landmarks for n, d in domains.items()},
                        **config.model.kwargs()).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr,
                                 weight_decay=config.optim.weight_decay)
    sizes = {n: len(d.train) for n, d in domains.items()}
    bs = config.train.batch_size

    def schedule_of(epoch: int):
        sched = epoch_schedule(sizes, bs, config.train.seed, epoch, config.train.mixing,
                               world, rank)
        cap = config.train.max_steps_per_epoch
        return sched[:cap] if cap else sched

    steps_per_epoch = len(schedule_of(0))
    if steps_per_epoch == 0:
        raise ValueError("no training batch: the training splits are smaller than 2 images "
                         "per rank")
    scheduler = _make_scheduler(optimizer, config, steps_per_epoch)
    start_epoch, best = 0, {"score": float("inf"), "epoch": -1}
    if resume and last_path.is_file():
        state = load_checkpoint(last_path, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best = state["epoch"] + 1, state["best"]
        if main:
            _truncate_jsonl(metrics_path, state["epoch"])
            log(f"resumed from {last_path} after epoch {state['epoch'] + 1}")
    elif main and metrics_path.exists():
        metrics_path.unlink()
    metas = {n: domain_meta(d, c) for (n, d), c in zip(domains.items(), config.domains,
                                                        strict=True)}
    net = model
    if distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)
    use_amp = config.train.amp and device.type == "cuda"
    writer = _tensorboard(out_dir) if main else None
    history = []
    bar = _progress(progress and main)
    with bar:
        task = bar.add_task("train", total=(config.train.epochs - start_epoch) * steps_per_epoch)
        for epoch in range(start_epoch, config.train.epochs):
            t0 = time.time()
            net.train()
            generator = torch.Generator().manual_seed(_seed_for(config.train.seed, epoch, rank))
            losses = []
            for domain, idx in schedule_of(epoch):
                d = domains[domain]
                batch = augment_batch(d.train.batch(idx, device), config.train.augment, generator)
                sigma = None
                if d.sigma_mm is not None:
                    sigma = (d.sigma_mm / d.train.mm_per_px(idx)).to(device)[:, None]
                size = d.train.input_size
                targets = d.codec.encode(batch["points"], batch["visible"], size, sigma)
                autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if use_amp
                            else contextlib.nullcontext())
                with autocast:
                    outputs = net(batch["image"], domain)
                loss = d.codec.loss(outputs, targets) * d.weight
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                losses.append(float(loss.detach()))
                bar.update(task, advance=1, description=f"epoch {epoch + 1}/{config.train.epochs}"
                           f" loss {np.mean(losses[-20:]):.4f}")
            val = validate(model, domains, device) if main and (
                (epoch + 1) % config.train.val_every == 0 or epoch + 1 == config.train.epochs
            ) else {}
            score = float(np.mean([v["mre"] for v in val.values()])) if val else None
            improved = main and ((score is not None and score < best["score"]) or
                                 (not any(d.val for d in domains.values())))
            if improved:
                best = {"score": score if score is not None else float("nan"), "epoch": epoch}
            entry = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else None,
                     "lr": optimizer.param_groups[0]["lr"], "val": val, "score": score,
                     "best": bool(improved), "time_s": round(time.time() - t0, 3)}
            if main:
                common = {"model": model.state_dict(), "config": config.model_dump(mode="json"),
                          "domains": metas, "epoch": epoch, "best": best}
                if improved:
                    save_checkpoint(best_path, common)
                save_checkpoint(last_path, {**common, "optimizer": optimizer.state_dict(),
                                            "scheduler": scheduler.state_dict()})
                with open(metrics_path, "a") as fh:
                    fh.write(json.dumps(entry) + "\n")
                if writer is not None:
                    writer.add_scalar("loss/train", entry["loss"] or 0.0, epoch + 1)
                    for name, v in val.items():
                        writer.add_scalar(f"val_mre/{name}", v["mre"], epoch + 1)
                vals = "  ".join(f"{n} {v['mre']:.3f} {v['unit']}" for n, v in val.items())
                log(f"epoch {epoch + 1}/{config.train.epochs}  loss {entry['loss']:.5f}  "
                    f"{('val ' + vals) if vals else ''}{'  *best*' if improved else ''}  "
                    f"({entry['time_s']:.1f} s)")
            history.append(entry)
            if distributed:
                dist.barrier()
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
                break
    if writer is not None:
        writer.close()
    if distributed:
        dist.barrier()
    return FitResult(out_dir, best_path, last_path, history)


def _truncate_jsonl(path: Path, last_epoch_index: int) -> None:
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines()
            if ln.strip() and json.loads(ln)["epoch"] <= last_epoch_index + 1]
    path.write_text("".join(ln + "\n" for ln in keep))


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *a, **k):
        return 0

    def update(self, *a, **k):
        pass


def _progress(enabled: bool):
    if not enabled:
        return _NoBar()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
