"""``unilandmark convert``: an old checkpoint into a safe file."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, friendly


@friendly
def convert_cmd(
    src: Path = typer.Argument(..., help="The checkpoint to convert."),
    dst: Path = typer.Argument(..., help="The new file: NAME.safetensors for a model file "
                                         "(what prediction needs), NAME.pt for a training "
                                         "checkpoint of tensors and plain types."),
    trust: Path = typer.Option(None, "--trust", help="Name SRC here to allow unpickling an "
                                                     "old checkpoint in full: this runs any "
                                                     "code the file holds, so only for a "
                                                     "file whose origin you trust."),
) -> None:
    """Convert a checkpoint into a file that loads without running code from it."""
    from ..checkpoints.convert import convert_checkpoint
    from ..core.preflight import check_model_suffix, check_writable_file

    check_model_suffix(dst, "DST")
    check_writable_file(dst, "DST")
    done = convert_checkpoint(src, dst, trust)
    if done.trusted:
        console.print(f"{src} was unpickled in full because --trust named it", highlight=False)
    console.print(f"wrote {dst}: a {done.kind} ({' + '.join(done.stages)} stages)",
                  highlight=False)
