"""The built-in AFIDs measurement spec (3-D, world mm) on the AFIDs templates: per
template and measurement, the value on the consensus landmarks and the raters' spread
(each rater file measured the same way: mean absolute difference to the consensus value,
and the largest). Cheap (no model, no images read beyond their headers).

    python benchmarks/measurements_afids.py --root ../shared/data/afids_templates \\
        --json docs/results/measurements_afids.json
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_json  # noqa: E402
from unilandmark.data.adapters.volumes import afids_templates
from unilandmark.measure import builtin_specs, measure


def run(root: Path) -> dict:
    spec = builtin_specs()["afids"]
    consensus = afids_templates(root)
    names = consensus.landmark_names
    templates = {}
    for record in consensus.records:
        truth = measure(spec, record.meta["world_lps"], names)
        stems = consensus.info["rater_files"].get(record.id, [])
        raters = {s: measure(spec, afids_templates(root, rater=s).records[0]
                             .meta["world_lps"], names) for s in stems}
        rows = {}
        for name in spec.names:
            diffs = np.array([abs(v[name] - truth[name]) for v in raters.values()])
            rows[name] = {
                "unit": spec.unit(name),
                "consensus": round(truth[name], 3),
                "raters": len(diffs),
                "rater_mad": round(float(diffs.mean()), 3) if len(diffs) else None,
                "rater_max": round(float(diffs.max()), 3) if len(diffs) else None,
            }
        templates[record.id] = {"rater_files": stems, "measurements": rows}
    return {"spec": spec.name, "root": str(root), "coordinates": "world mm (LPS)",
            "templates": templates}


def markdown(result: dict) -> list[str]:
    spec = builtin_specs()["afids"]
    ids = list(result["templates"])
    head = "| measurement | unit | " + " | ".join(
        f"{t} ({len(result['templates'][t]['rater_files'])} raters)" for t in ids) + " |"
    lines = [head, "|---|---|" + "---|" * len(ids)]
    for name in spec.names:
        cells = []
        for t in ids:
            m = result["templates"][t]["measurements"][name]
            spread = "" if m["rater_mad"] is None else \
                f" ({m['rater_mad']:.2f} / {m['rater_max']:.2f})"
            cells.append(f"{m['consensus']:.2f}{spread}")
        lines.append(f"| {name} | {spec.unit(name)} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("../shared/data/afids_templates"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    result = run(args.root)
    result["seconds"] = round(time.perf_counter() - start, 2)
    result["machine"] = {"python": platform.python_version(), "cpu": platform.processor()
                         or platform.machine()}
    write_json(args.json, result)
    print("\n".join(markdown(result)))
    print(f"({result['seconds']} s)")


if __name__ == "__main__":
    main()
