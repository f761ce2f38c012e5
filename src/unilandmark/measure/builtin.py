"""The built-in specs shipped as package data (``measure/specs/*.yaml``) and spec choice."""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import yaml

from .compute import normalise_name
from .spec import MeasurementSpec, SpecError, load_spec, parse_spec


@functools.lru_cache(maxsize=1)
def _load_builtin() -> tuple[tuple[str, MeasurementSpec], ...]:
    folder = resources.files("unilandmark.measure").joinpath("specs")
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith((".yaml", ".yml")):
            continue
        source = f"unilandmark/measure/specs/{entry.name}"
        try:
            data = yaml.safe_load(entry.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise SpecError(f"{source}: not a valid YAML file: {err}") from None
        spec = parse_spec(data, source)
        out.append((spec.name, spec))
    return tuple(out)


def builtin_specs() -> dict[str, MeasurementSpec]:
    """{spec name: spec} of the built-in specs (``isbi2015``: the ISBI 2015 set)."""
    return dict(_load_builtin())


def covers(spec: MeasurementSpec, landmark_names: Sequence[str]) -> bool:
    """Whether every landmark the spec reads is among ``landmark_names`` (by name)."""
    present = {normalise_name(n) for n in landmark_names}
    return all(normalise_name(n) in present for n in spec.landmarks_used())


def unknown_landmarks(spec: MeasurementSpec, landmark_names: Sequence[str]) -> str | None:
    """Why ``spec`` cannot be measured on landmarks named ``landmark_names``: each
    landmark it reads that is not among them (by name, as :func:`covers`), with the
    closest known names (a typo, most likely); None when every one is there."""
    known: dict[str, str] = {}
    for name in landmark_names:
        if name:
            known.setdefault(normalise_name(name), name)
    missing = [n for n in spec.landmarks_used() if normalise_name(n) not in known]
    if not missing:
        return None
    parts = []
    for name in missing:
        close = difflib.get_close_matches(normalise_name(name), list(known), n=3, cutoff=0.6)
        hint = ", ".join(repr(known[c]) for c in close)
        parts.append(f"{name!r} (closest: {hint})" if close else f"{name!r} (nothing close)")
    shown = list(known.values())
    listed = ", ".join(shown[:20]) + (f" and {len(shown) - 20} more" if len(shown) > 20 else "")
    return (f"measurement spec {spec.name!r} reads landmark(s) that do not exist here: "
            f"{'; '.join(parts)}; the landmarks are: {listed or 'none'}")


def automatic_specs() -> list[MeasurementSpec]:
    """The built-in specs ``measure`` may pick by itself: all but the named analyses
    (``analysis: true``: Steiner, Downs, ..., chosen by name only)."""
    return [s for s in builtin_specs().values() if not s.analysis]


def spec_for(landmark_names: Sequence[str], domain: str | None = None,
             ) -> MeasurementSpec | None:
    """The first built-in spec whose landmark names are all present (matching by names,
    not by count); with ``domain``, only specs of that domain are considered. Named
    analyses are never picked (:func:`automatic_specs`)."""
    for spec in automatic_specs():
        if domain is not None and spec.domain != domain:
            continue
        if covers(spec, landmark_names):
            return spec
    return None


def specs_for_domain(domain: str) -> list[MeasurementSpec]:
    """The built-in specs declared for ``domain`` (e.g. ``head``), named analyses
    included."""
    return [s for s in builtin_specs().values() if s.domain == domain]


def resolve_spec(name_or_path: str | os.PathLike) -> MeasurementSpec:
    """A built-in spec by name (``steiner``, ``isbi2015``, ...) or a spec YAML file by
    path (a path wins over a built-in name when the file exists)."""
    text = str(name_or_path)
    path = Path(text)
    if path.is_file():
        return load_spec(path)
    known = builtin_specs()
    if text in known:
        return known[text]
    if path.suffix.lower() in (".yaml", ".yml") or len(path.parts) > 1:
        raise SpecError(f"{path}: no such measurement spec file")
    close = difflib.get_close_matches(text, list(known), n=3, cutoff=0.5)
    hint = f" (closest: {', '.join(close)})" if close else ""
    raise SpecError(f"no built-in measurement spec or analysis {text!r}{hint}; built-in: "
                    f"{', '.join(known)}; or give a spec YAML file")
