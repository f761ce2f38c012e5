"""Which analyses a report shows: the ones asked for by name or spec file, else every
built-in spec of the image's domain (for ``head``: the named cephalometric analyses and
the ISBI 2015 measurements), in a clinical reading order."""

from __future__ import annotations

from collections.abc import Sequence

from ..core.errors import InputError
from ..measure.builtin import resolve_spec, specs_for_domain
from ..measure.spec import MeasurementSpec

#: the order built-in analyses are shown in (others follow, by name)
ORDER = ("steiner", "downs", "bjork-jarabak", "mcnamara", "holdaway", "isbi2015")


def default_analyses(domain: str) -> list[MeasurementSpec]:
    """The built-in 2-D specs declared for ``domain``, in :data:`ORDER`."""
    specs = [s for s in specs_for_domain(domain) if s.dimensions() in (None, 2)]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(specs, key=lambda s: (rank.get(s.name, len(ORDER)), s.name))


def choose_analyses(requested: Sequence[str] | None, domain: str,
                    ) -> list[tuple[MeasurementSpec, bool]]:
    """(spec, asked for by name) pairs: each ``requested`` name or spec file (a built-in
    name, or a YAML path), else :func:`default_analyses` (not asked for: shown only
    where the model's landmarks give some of it)."""
    if requested:
        chosen: dict[str, MeasurementSpec] = {}
        for item in requested:
            spec = resolve_spec(item)
            if spec.name in chosen and chosen[spec.name] != spec:
                raise InputError(f"--analysis {item}: another analysis is named "
                                 f"{spec.name!r} too; give each spec its own name")
            chosen[spec.name] = spec
        return [(spec, True) for spec in chosen.values()]
    return [(spec, False) for spec in default_analyses(domain)]
