"""``unilandmark adapt``: adapt a domain to a new site, or add a new anatomy, from a handful
of labelled images."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ..core.errors import InputError
from .common import OPT_HELP, console, err_console, friendly, parse_options, parse_size


def _parse_old_data(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        name, sep, root = item.partition("=")
        if not sep or not name.strip() or not root.strip():
            raise InputError(f"--old-data {item!r}: expected DOMAIN=ROOT, e.g. "
                             "head=../shared/data/isbi2015")
        out[name.strip()] = root.strip()
    return out


@friendly
def adapt_cmd(
    data: Path = typer.Option(..., "--data", help="The new domain's dataset root (or table "
                                                  "for --dataset csv)."),
    domain: str = typer.Option(..., "--domain", help="A domain of the model (e.g. head) to "
                               "adapt it to a site in place (same landmarks), or the name "
                               "of a new domain: a site beside its source (same landmarks "
                               "as --from-domain) or a new anatomy (e.g. hand)."),
    out: Path = typer.Option(..., "--out", help="Folder for the stages' runs, model.pt and "
                                                "the adaptation summary."),
    dataset: str = typer.Option("csv", "--dataset", help="Dataset adapter of --data (see "
                                                         "`unilandmark datasets list`)."),
    opt: list[str] = typer.Option(None, "--opt", help=OPT_HELP),
    checkpoint: str = typer.Option("builtin", "--checkpoint", help="Model to adapt: a "
                                   "checkpoint or cascade file, or builtin."),
    from_domain: str = typer.Option(None, "--from-domain", help="Old domain whose parts the "
                                    "new domain starts from, or mean (default: the "
                                    "checkpoint's only domain, else mean)."),
    shared: str = typer.Option("finetune", "--shared", help="finetune (the shared parts "
                               "train at --shared-lr-scale) or frozen (only the new "
                               "domain's parts train; the old domains cannot change)."),
    shared_lr_scale: float = typer.Option(
        0.1, "--shared-lr-scale", min=1e-6, max=1.0,
        help="Learning rate of the shared (pretrained) weights relative to the new "
             "domain's, when they train (--shared)."),
    replay: bool = typer.Option(False, "--replay/--no-replay", help="Keep training the old "
                                "domains on their data (as many samples as the new "
                                "domain's per epoch)."),
    old_data: list[str] = typer.Option(None, "--old-data", help="DOMAIN=ROOT where an old "
                                       "domain's data is not at the checkpoint's path "
                                       "(repeatable)."),
    check_old: bool = typer.Option(True, "--check-old/--no-check-old", help="Validate the "
                                   "old domains before and after (forgetting)."),
    train_split: str = typer.Option(None, "--train-split", help="Default: train if the "
                                    "dataset has it, else all."),
    val_split: str = typer.Option(None, "--val-split", help="The new domain's validation "
                                  "split (default none: the model is the last epoch; a "
                                  "site is then uncalibrated, with it recalibrated)."),
    input_size: str = typer.Option(None, "--input-size", help="WxH network input of the new "
                                   "domain (default: the images' median aspect at the "
                                   "source domain's pixel count)."),
    resize: str = typer.Option("stretch", "--resize", help="stretch or letterbox."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Whole-image stage epochs "
                               "(default: about 150 steps for a site, 300 for a new "
                               "anatomy)."),
    patch_epochs: int = typer.Option(None, "--patch-epochs", min=1, help="Epochs of each "
                                     "patch stage (default: as --epochs)."),
    batch_size: int = typer.Option(4, "--batch-size", min=2, help="Images per training step."),
    refine: bool = typer.Option(None, "--refine/--no-refine", help="Train the checkpoint's "
                                "patch stages for the new domain too (default: when the "
                                "checkpoint is a cascade)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the training (sampling, augmentation)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    threads: int = typer.Option(None, "--threads", min=1, help="CPU threads (default: torch's)."),
    set_: list[str] = typer.Option(None, "--set", help="Override a key=value of the "
                                   "whole-image stage's config, e.g. train.augment.flip=0.5."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted adaptation "
                                                        "in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an adaptation "
                                                              "already in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress",
                                  help="Show a progress bar per epoch."),
) -> None:
    """Adapt a model to a new site (its machines and its experts' conventions) or add a
    new anatomy, from a handful of labelled images. --domain naming a domain of the model
    adapts it in place; a new name adds a domain, and the result serves the old and the
    new domains. See docs/adapt.md."""
    from ..workflows.adapt import AdaptRequest, run_adaptation

    if resize not in ("stretch", "letterbox"):
        raise InputError(f"--resize {resize!r}: expected stretch or letterbox")
    if shared not in ("finetune", "frozen"):
        raise InputError(f"--shared {shared!r}: expected finetune or frozen")
    request = AdaptRequest(
        data=str(data), domain=domain, out=str(out), dataset=dataset,
        options=parse_options(opt), checkpoint=checkpoint, from_domain=from_domain,
        shared=shared, shared_lr_scale=shared_lr_scale, replay=replay,
        old_data=_parse_old_data(old_data), check_old=check_old, train_split=train_split,
        val_split=val_split, input_size=parse_size(input_size, "--input-size")
        if input_size else None, resize=resize, epochs=epochs, patch_epochs=patch_epochs,
        batch_size=batch_size, refine=refine, seed=seed, device=device, threads=threads,
        overrides=list(set_ or []))
    result = run_adaptation(request, resume=resume, overwrite=overwrite, progress=progress,
                            log=console.print, warn=lambda text: err_console.print(
                                f"[yellow]warning:[/yellow] {escape(text)}", highlight=False))
    console.print(f"adapted model: {result.model_path}\nsummary: {result.summary_md}")
