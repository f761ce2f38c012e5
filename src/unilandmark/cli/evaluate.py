"""``unilandmark evaluate``: score a prediction CSV."""

from __future__ import annotations

from pathlib import Path

import typer

from ..core.errors import InputError, UnknownNameError
from .common import OPT_HELP, build_spec, console, friendly


@friendly
def evaluate_cmd(
    name: str = typer.Argument(..., help="Dataset adapter name."),
    root: Path = typer.Option(..., "--root", help="Dataset folder (or table for csv)."),
    predictions: Path = typer.Option(..., "--predictions",
                                     help="Prediction CSV: image,landmark,x,y[,...], one row "
                                          "per landmark in original pixels "
                                          "(docs/protocols.md)."),
    split: str = typer.Option(None, "--split", help="Split (default: the protocol's)."),
    annotator: str = typer.Option(None, help="Ground truth annotator (default: protocol's)."),
    protocol: str = typer.Option(None, help="Named protocol (default: native spacing)."),
    opt: list[str] = typer.Option(None, "--opt", metavar="KEY=VALUE", help=OPT_HELP),
    json_out: Path = typer.Option(None, "--json", help="Write the JSON report here "
                                                             "(fields: docs/protocols.md)."),
    figures: Path = typer.Option(None, "--figures", help="Draw figures into this folder."),
    measurements: bool = typer.Option(False, "--measurements",
                                      help="Also score the clinical measurements and their "
                                           "classes (the built-in spec that fits)."),
    measurement_spec: str = typer.Option(None, "--measurement-spec",
                                         help="Measurement spec: a built-in name (steiner, "
                                              "isbi2015, ...) or a spec YAML file (implies "
                                              "--measurements)."),
    predicted_only: bool = typer.Option(False, "--predicted-only",
                                        help="Score only the split's images that the file "
                                             "predicts (a quick look at a few images; the "
                                             "figure is then not the protocol's)."),
    truncate: bool = typer.Option(False, "--truncate",
                                  help="Measurements: truncate coordinates to integers first "
                                       "(the ISBI 2015 organisers' code); default floats."),
) -> None:
    """Score a prediction CSV: table, JSON report and figures."""
    from ..core.preflight import check_writable_dir, check_writable_file
    from ..evaluation.protocols import PROTOCOLS, get_protocol
    from ..evaluation.report import draw_figures, print_report, write_json
    from ..evaluation.scoring import evaluate
    from ..predictions.table import read_predictions

    if json_out:
        check_writable_file(json_out, "--json")
    if figures:
        check_writable_dir(figures, "--figures")

    chosen = PROTOCOLS.get(protocol) if protocol else None
    if protocol and chosen is None:
        raise UnknownNameError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if chosen and chosen.annotator and annotator and annotator != chosen.annotator:
        raise InputError(f"protocol {protocol} uses annotator {chosen.annotator!r}, "
                         f"not {annotator!r}")
    if chosen and chosen.split and split and split != chosen.split:
        raise InputError(f"protocol {protocol} scores split {chosen.split!r}, not {split!r}")
    annotator = annotator or (chosen.annotator if chosen else None)
    split = split or (chosen.split if chosen else None)
    if not split:
        raise InputError("give --split (the protocol does not fix one)")
    spec = build_spec(name, root, annotator, opt)
    if spec.records and spec.records[0].points.shape[-1] == 3:  # a volume dataset
        from ..evaluation.volumes import evaluate_volumes

        if measurements or measurement_spec or figures:
            raise InputError("--measurements and --figures are for 2-D images; volumes are "
                             "scored in mm in 3-D (docs/volumes.md)")
        report, *_ = evaluate_volumes(predictions, spec, split, predicted_only)
        print_report(report, console)
        presence = report["presence"]
        if presence["truth_absent"] or presence["predicted_absent"]:
            def share(v):
                return "n/a" if v is None else f"{v:.3f}"

            console.print(
                f"absent landmarks: {presence['truth_absent']} annotated absent, "
                f"{presence['predicted_absent']} predicted absent, "
                f"{presence['correctly_absent']} both: precision {share(presence['precision'])}"
                f", recall {share(presence['recall'])}", highlight=False)
        if json_out:
            write_json(json_out, report)
            console.print(f"report: {json_out}")
        return
    table = read_predictions(predictions)
    report, errors, records, pred = evaluate(table, spec, split, get_protocol(protocol, spec),
                                             predicted_only)
    if predicted_only:
        sub = report["subset"]
        console.print(f"note: {sub['n_images']} of the split's {sub['n_images_in_split']} "
                      "images scored (--predicted-only): not the protocol's figure",
                      highlight=False)
    if measurements or measurement_spec:
        from ..measure.builtin import resolve_spec
        from ..measure.evaluation import measurement_report
        from ..measure.report import print_measurements

        mspec = resolve_spec(measurement_spec) if measurement_spec else None
        report["measurements"] = measurement_report(predictions, spec, records, pred, mspec,
                                                    truncate)
    print_report(report, console)
    if "quality" in report:
        from ..evaluation.quality import quality_lines

        for line in quality_lines(report["quality"]):
            console.print(line, highlight=False)
    if "measurements" in report:
        print_measurements(report["measurements"], console)
    if json_out:
        write_json(json_out, report)
        console.print(f"report: {json_out}")
    if figures:
        paths = draw_figures(report, errors, records, pred, figures)
        if "quality" in report:
            from ..evaluation.quality import draw_risk_coverage

            q = report["quality"]
            drawn = draw_risk_coverage(table, records, errors, q["radius"], q["unit"],
                                       figures / "risk_coverage.png")
            paths += [drawn] if drawn else []
        console.print(f"figures: {', '.join(str(p) for p in paths)}")


