"""Training: ``fit(config)`` — one explicit loop for every stage and every model.

The stage (``config.stage.kind``: the whole image, or patches refining a previous stage;
see ``stages``) supplies batches, targets, the loss and validation; this loop supplies
everything else, the same for all: the device, mixed precision on CUDA (``amp``: bf16
where the device supports it, else float16 with a gradient scaler;
``speed.choose_precision``), DistributedDataParallel under ``torchrun`` (NCCL on GPU,
gloo on CPU), Adam with the
configured learning-rate schedule, per-domain validation every ``val_every`` epochs, the
best checkpoint by a unit-free selection score (see ``stages.base.selection_score``),
atomic checkpoints, the metrics log, the progress bar and exact resume.

Divergence: a non-finite loss (NaN or Inf, on any process) stops the run before that
step's optimiser update with :class:`TrainingDiverged`, naming the epoch and the step;
the weights are also checked before every save, so ``best.pt`` and ``last.pt`` only ever
hold finite weights (those of the last finite epoch), and ``resume`` works as before.

Validation under DDP: rank 0 validates and writes the checkpoints, exactly as a single
process does (so the results of one process are unchanged). The other ranks do not wait
for it in a barrier of the default process group (whose timeout, by default 10 minutes
for NCCL and 30 for gloo, a long patch-stage validation can exceed): they wait in a
broadcast of rank 0's validation results on a separate gloo group whose timeout is
``VALIDATION_TIMEOUT``, and then all ranks hold the same validation, score and best
epoch. The training collectives (DDP's gradient all-reduce, the per-step loss check)
never wait on a validation.

Each step takes one batch from one domain (the schedule of ``data.sampling``). All
randomness is derived from (seed, epoch, rank), so ``resume=True`` after a kill replays
the interrupted epoch and ends with the same weights as an uninterrupted run. The run
folder's rules (refusing to overwrite another run, checking a resumed config) are in
``run_folder``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..checkpoints.checkpoint import prediction_state, save_checkpoint
from ..checkpoints.contract import load_weights
from ..core.cpu import allowed_cores, busy_cores, free_threads
from ..core.errors import InputError
from ..core.folder_lock import folder_lock
from ..core.preflight import check_device
from .config import ExperimentConfig
from .run_folder import RunFolder
from .sampling import epoch_schedule
from .speed import SPEED_SETTINGS, choose_precision, prepare_batch, prepare_model
from .stages import build_stage
from .stages.base import selection_score

#: how long the other ranks of a DDP run wait for rank 0's validation and checkpoint
#: writing (a separate gloo group, so this bounds only that wait, not the training steps)
VALIDATION_TIMEOUT = timedelta(hours=6)


class TrainingDiverged(InputError):
    """The loss (or the weights) became NaN or infinite; the run stopped without writing
    the non-finite weights. A ValueError, so the command line reports it in one line."""


@dataclass
class FitResult:
    out_dir: Path
    best_path: Path
    last_path: Path
    history: list[dict]


def pick_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N``; a clear
    error for a device this machine does not have (see ``preflight.check_device``)."""
    return torch.device(check_device(name, "train.device"))


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def _make_scheduler(optimizer, config: ExperimentConfig, steps_per_epoch: int):
    o = config.optim
    if o.schedule == "cyclic":
        up = max(1, round(o.cycle_epochs * steps_per_epoch))
        scales = [g.get("lr_scale", 1.0) for g in optimizer.param_groups]  # per group
        return torch.optim.lr_scheduler.CyclicLR(
            optimizer, base_lr=[o.lr * s for s in scales], max_lr=[o.max_lr * s for s in scales],
            step_size_up=up, cycle_momentum=False)
    if o.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, config.train.epochs * steps_per_epoch), eta_min=o.lr * 0.01)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def _seed_for(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 9_176 + rank * 131) % (2**63 - 1)


def fit(config: ExperimentConfig, resume: bool = False, overwrite: bool = False,
        progress: bool = True, stop_after_epoch: int | None = None, log=print) -> FitResult:
    """Train ``config``; see the module docstring. Returns the checkpoint paths.

    ``resume`` continues ``out_dir/last.pt``; ``overwrite`` replaces a run already in
    ``out_dir`` (without either, such a folder is refused before anything is written).
    The run holds ``out_dir``'s lock (``core.folder_lock``; under ``torchrun`` rank 0
    holds it) from before its checks to its end: a second process on the same folder
    is refused, naming this one.
    """
    if _dist_info()[1] != 0:
        return _fit(config, resume, overwrite, progress, stop_after_epoch, log)
    with folder_lock(config.out_dir, "out_dir"):
        return _fit(config, resume, overwrite, progress, stop_after_epoch, log)


def _fit(config: ExperimentConfig, resume: bool, overwrite: bool, progress: bool,
         stop_after_epoch: int | None, log) -> FitResult:
    world, rank, local_rank = _dist_info()
    distributed = world > 1
    device = pick_device(config.train.device)
    if distributed:
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    main = rank == 0
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    elif device.type == "cpu" and not distributed:
        _threads_for_a_busy_machine(log if main else (lambda *_: None))
    if distributed and main:
        log(f"distributed: {world} processes ({dist.get_backend()})")
    folder = RunFolder(config.out_dir)
    if main:
        folder.check(resume, overwrite)

    torch.manual_seed(config.train.seed)
    stage = build_stage(config, device, log)
    config = stage.resolved_config(config)
    model = stage.build_model(config).to(device)
    optimizer = torch.optim.Adam(stage.parameter_groups(model, config), lr=config.optim.lr,
                                 weight_decay=config.optim.weight_decay)
    sizes = stage.sizes()
    bs = config.train.batch_size

    def schedule_of(epoch: int):
        sched = epoch_schedule(sizes, bs, config.train.seed, epoch, config.train.mixing,
                               world, rank)
        cap = config.train.max_steps_per_epoch
        return sched[:cap] if cap else sched

    steps_per_epoch = len(schedule_of(0))
    if steps_per_epoch == 0:
        raise InputError("no training batch: the training data is smaller than 2 samples "
                         "per process")
    scheduler = _make_scheduler(optimizer, config, steps_per_epoch)
    start_epoch, history, state = 0, [], {}
    best = {"score": float("inf"), "epoch": -1, "reference": stage.reference()}
    if resume:
        state = folder.resume_state(config)
        # names and shapes checked first: a damaged or edited last.pt is a sentence
        load_weights(model, state["model"], str(folder.last), "the model")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best, history = state["epoch"] + 1, state["best"], state["history"]
    if main:
        folder.start(config, replace=overwrite and not resume)
        if resume:
            folder.write_metrics(history)
            log(f"resumed from {folder.last} after epoch {start_epoch}")
    if start_epoch >= config.train.epochs:
        log(f"nothing to do: {folder.last} already holds {start_epoch} of "
            f"{config.train.epochs} epochs")
    speed = SPEED_SETTINGS[config.train.speed]
    net = prepare_model(model, speed)  # the same parameters, maybe channels-last / compiled
    if distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)
    precision = choose_precision(speed, device, config.train.amp)
    scaler = precision.grad_scaler()  # float16 only
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    if main and device.type == "cuda":
        log(f"precision: {precision.name}")
    # rank 0's validation is waited for here, with its own timeout (module docstring)
    wait_group = (dist.new_group(backend="gloo", timeout=VALIDATION_TIMEOUT)
                  if distributed else None)
    writer = _tensorboard(folder.path) if main else None
    bar = _progress(progress and main)
    with bar:
        task = bar.add_task("train", total=max(0, config.train.epochs - start_epoch)
                            * steps_per_epoch)
        for epoch in range(start_epoch, config.train.epochs):
            t0 = time.time()
            net.train()
            generator = torch.Generator().manual_seed(_seed_for(config.train.seed, epoch, rank))
            losses = []
            schedule = schedule_of(epoch)
            for step, (domain, idx) in enumerate(schedule):
                inputs, targets = stage.batch(domain, idx, generator, device)
                inputs = prepare_batch(inputs, speed)
                with precision.autocast():
                    outputs = net(inputs, domain)
                loss = stage.loss(domain, outputs, targets)
                value = float(loss.detach())
                if _any_rank(not math.isfinite(value), distributed, device):
                    raise TrainingDiverged(_diverged_message(
                        value, epoch, config.train.epochs, step, len(schedule), domain,
                        folder, rank if distributed else None))
                optimizer.zero_grad(set_to_none=True)
                if scaler is None:
                    loss.backward()
                    optimizer.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                scheduler.step()
                losses.append(value)
                bar.update(task, advance=1, description=f"epoch {epoch + 1}/{config.train.epochs}"
                           f" loss {np.mean(losses[-20:]):.4f}")
            validate_now = (epoch + 1) % config.train.val_every == 0 or \
                epoch + 1 == config.train.epochs
            # weights made non-finite by a finite loss (an overflowing update) are caught
            # here, before a validation of a broken model and before any save
            problem = _non_finite_weights(model) if main else None
            val = (stage.validate(model, device) if main and validate_now and problem is None
                   else {})
            if val and not best.get("reference"):
                best["reference"] = {d: v["mre"] for d, v in val.items()}
            score = selection_score(val, best["reference"]) if val else None
            no_validation = not stage.has_validation()
            improved = main and ((score is not None and score < best["score"]) or no_validation)
            if improved:
                best = {**best, "score": score if score is not None else float("nan"),
                        "epoch": epoch}
            entry = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else None,
                     "lr": optimizer.param_groups[0]["lr"], "val": val, "score": score,
                     "best": bool(improved), "time_s": round(time.time() - t0, 3)}
            history.append(entry)
            if main and problem is None:
                common = {"kind": stage.kind, "model": model.state_dict(),
                          "config": config.model_dump(mode="json"), "epoch": epoch,
                          "best": best, **stage.checkpoint_fields(val)}
                if improved:
                    save_checkpoint(folder.best, prediction_state(common))
                extra = {"scaler": scaler.state_dict()} if scaler is not None else {}
                save_checkpoint(folder.last, {**common, "history": history,
                                              "optimizer": optimizer.state_dict(),
                                              "scheduler": scheduler.state_dict(), **extra})
                folder.write_metrics(history)
                if writer is not None:
                    writer.add_scalar("loss/train", entry["loss"] or 0.0, epoch + 1)
                    for name, v in val.items():
                        writer.add_scalar(f"val_mre/{name}", v["mre"], epoch + 1)
                log(_epoch_line(entry, config.train.epochs))
            if distributed:  # the other ranks wait here for rank 0 (module docstring)
                shared = [val, score, improved, best, problem]
                dist.broadcast_object_list(shared, src=0, group=wait_group)
                val, score, improved, best, problem = shared
                entry.update(val=val, score=score, best=bool(improved))
            if problem is not None:
                raise TrainingDiverged(
                    f"training diverged: after epoch {epoch + 1} of {config.train.epochs} "
                    f"the weights are not finite ({problem}); nothing was saved for this "
                    f"epoch, so {folder.last.name} and {folder.best.name} hold finite "
                    "weights of earlier epochs. Start a new run (--overwrite or another "
                    "out_dir) with a lower learning rate (optim.lr, optim.max_lr)")
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
                break
    if writer is not None:
        writer.close()
    if distributed:
        dist.barrier()
        dist.destroy_process_group(wait_group)
    return FitResult(folder.path, folder.best, folder.last, history)


def _any_rank(flag: bool, distributed: bool, device: torch.device) -> bool:
    """``flag`` of this process, or of any process under DDP (so all stop together)."""
    if not distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def _diverged_message(value: float, epoch: int, epochs: int, step: int, steps: int,
                      domain: str, folder: RunFolder, rank: int | None) -> str:
    where = "" if rank is None else f" (this is rank {rank})"
    what = (f"the loss is {value}" if not math.isfinite(value)
            else "the loss of another process is not finite")
    return (f"training diverged: {what} at epoch {epoch + 1} of {epochs}, step {step + 1} "
            f"of {steps} (a batch of domain {domain}){where}. The run stopped before that "
            f"step's update; {folder.last.name} and {folder.best.name} hold finite weights "
            "of earlier epochs (if any). Start a new run (--overwrite or another out_dir) "
            "with a lower learning rate (optim.lr, optim.max_lr) or in float32 "
            "(train.amp=false): resuming with the same settings diverges again")


def _non_finite_weights(model: torch.nn.Module) -> str | None:
    """None when every floating-point weight and buffer is finite, else the names of
    (up to three of) those that are not."""
    tensors = [(n, t) for n, t in model.state_dict().items() if t.is_floating_point()]
    if not tensors:
        return None
    finite = torch.stack([torch.isfinite(t).all() for _, t in tensors]).cpu()
    if bool(finite.all()):
        return None
    bad = [n for (n, _), ok in zip(tensors, finite.tolist(), strict=True) if not ok]
    return ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")


def _epoch_line(entry: dict, epochs: int) -> str:
    parts = []
    for name, v in entry["val"].items():
        text = f"{name} {v['mre']:.3f} {v['unit']}"
        if "previous_mre" in v:
            text += f" (previous {v['previous_mre']:.3f}, gated {v['gated_mre']:.3f})"
        parts.append(text)
    score = "" if entry["score"] is None or not math.isfinite(entry["score"]) else \
        f"  score {entry['score']:.3f}"
    return (f"epoch {entry['epoch']}/{epochs}  loss {entry['loss']:.5f}  "
            f"{('val ' + '  '.join(parts)) if parts else ''}{score}"
            f"{'  *best*' if entry['best'] else ''}  ({entry['time_s']:.1f} s)")


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


def _threads_for_a_busy_machine(log) -> None:
    """``train.threads`` unset on the CPU: fewer torch threads when other processes keep
    cores busy (:mod:`..core.cpu`: OpenMP threads on shared cores wait for each other);
    said in one line when it lowers them."""
    cores = min(torch.get_num_threads(), allowed_cores())
    busy = busy_cores()
    threads = free_threads(busy, cores)
    if threads < cores:
        torch.set_num_threads(threads)
        log(f"the machine is busy (about {busy:.1f} of {allowed_cores()} cores in use by "
            f"other processes): training on {threads} thread(s) instead of {cores}; set "
            "train.threads to choose")


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
