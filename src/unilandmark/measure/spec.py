"""The measurement spec: plain data naming angles, distances and ratios over landmark names.

A spec is written in YAML (or given as a dict) and validated by pydantic; loading never
runs code from the file. Shape of a spec (docs/measurements.md has the full reference)::

    name: isbi2015
    domain: head
    points: {S: sella, N: nasion, A: subspinale}      # optional short symbols
    measurements:
      - name: SNA
        angle: [[N, S], [N, A]]          # unsigned angle between N->S and N->A, degrees
        classes:
          - {class: 1, min: 79.4, max: 83.2}   # closed interval
          - {class: 2, above: 83.2}
          - {class: 3, below: 79.4}

Each measurement has exactly one of ``angle``, ``signed_angle``, ``distance``,
``projection``, ``line_distance``, ``ratio``, ``sum`` or a 3-D kind
(``line_plane_angle``, ``plane_angle``, ``plane_distance``, ``projected_distance``: a
plane is three points ``[A, B, C]``); a ``sum`` adds weighted terms (each an ``angle``,
``signed_angle``, ``distance`` or a ``ref`` to another measurement). A point is a symbol
of ``points`` or a landmark name. ``X->Y`` is the vector Y - X in the patient's frame
(2-D: x right, y down; 3-D: world millimetres). ``angle``, ``distance``, ``projection``,
``line_distance`` and ``ratio`` hold in 2-D and 3-D alike (``line_distance`` with
``sign: side`` in 2-D only). Angles are in degrees, distances in mm (or px).

A measurement may carry a ``norm`` (``mean`` and ``sd``, or a ``min``..``max`` range, with
its ``source`` publication and ``population``) and ``interpretation`` words for a value
below, within and above it; a spec marked ``analysis: true`` is a named clinical analysis
(Steiner, Downs, ...): it lists what it ``not_computed`` and the landmark
``substitutions`` it makes, and ``measure`` never picks it by itself (docs/measurements.md,
"Norms and analyses").
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from ..core.errors import InputError, UnknownNameError

KINDS = ("angle", "signed_angle", "distance", "projection", "line_distance", "ratio", "sum",
         "line_plane_angle", "plane_angle", "plane_distance", "projected_distance")
#: kinds defined for 3-D points only (a plane needs a third dimension)
KINDS_3D = ("line_plane_angle", "plane_angle", "plane_distance", "projected_distance")
#: kinds defined for 2-D points only (the sign of a 2-D cross product)
KINDS_2D = ("signed_angle", "line_distance (sign: side)")
TERM_KINDS = ("angle", "signed_angle", "distance", "ref")
UNITS = ("deg", "mm", "px", "ratio", "percent")
#: suffixes of the measurement CSV's extra columns: no measurement name may end in one
RESERVED_SUFFIXES = ("_class", "_class_label", "_norm_sd", "_px")


class SpecError(InputError):
    """A measurement spec that cannot be used; the message names the file and every fault."""


def _as_name(value: Any) -> Any:
    """Landmark names may be numbers in YAML (``[1, 5]`` for a hand): read them as text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return value


Name = Annotated[str, BeforeValidator(_as_name), Field(min_length=1)]
Segment = tuple[Name, Name]
"""Two points ``[P, Q]``: the vector P->Q (or the distance |Q - P|)."""
Plane = tuple[Name, Name, Name]
"""Three points ``[A, B, C]``: the plane through them, normal ``(B - A) x (C - A)``."""


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ClassRule(_Data):
    """One class: matches a value meeting every bound given; the first matching rule wins.

    ``min``/``max`` are inclusive (``min <= v <= max``: a closed interval), ``above`` and
    ``below`` exclusive (``v > above``, ``v < below``), ``equals`` exact.
    """

    class_: int = Field(alias="class", ge=1, description="class number, 1 or more")
    label: str | None = None
    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None
    equals: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> ClassRule:
        if all(v is None for v in (self.min, self.max, self.above, self.below, self.equals)):
            raise InputError(f"class {self.class_}: give at least one of min, max, above, "
                             "below, equals")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise InputError(f"class {self.class_}: min {self.min} is above max {self.max}")
        return self

    def matches(self, value: float) -> bool:
        """Whether a finite ``value`` falls in this class."""
        return ((self.min is None or value >= self.min)
                and (self.max is None or value <= self.max)
                and (self.above is None or value > self.above)
                and (self.below is None or value < self.below)
                and (self.equals is None or value == self.equals))


class Term(_Data):
    """One weighted term of a ``sum``: exactly one of angle, signed_angle, distance, ref."""

    weight: float = 1.0
    angle: tuple[Segment, Segment] | None = None
    signed_angle: tuple[Segment, Segment] | None = None
    distance: Segment | None = None
    sign: Literal["x", "y"] | None = None
    ref: Name | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Term:
        given = [k for k in TERM_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise InputError(f"a sum term needs exactly one of {', '.join(TERM_KINDS)}; "
                             f"got {given or 'none'}")
        if self.sign is not None and self.distance is None:
            raise InputError("'sign' applies to a distance only")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in TERM_KINDS if getattr(self, k) is not None)


class Norm(_Data):
    """The reference value of a measurement, in the measurement's unit: ``mean`` and
    ``sd`` (a deviation is then ``(value - mean) / sd``), or a ``min``..``max`` range (a
    closed interval), or both; with the ``source`` publication it comes from, the
    ``population`` it describes and an optional ``note``.

    Within the norm: ``min <= value <= max`` where a range is given, else
    ``mean - sd <= value <= mean + sd``.
    """

    mean: float | None = None
    sd: float | None = Field(default=None, gt=0)
    min: float | None = None
    max: float | None = None
    source: str = Field(min_length=1)
    population: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Norm:
        if (self.mean is None) != (self.sd is None):
            raise InputError("a norm gives mean and sd together")
        if (self.min is None) != (self.max is None):
            raise InputError("a norm range gives min and max together")
        if self.mean is None and self.min is None:
            raise InputError("a norm needs mean and sd, or min and max")
        if self.min is not None and self.min > self.max:
            raise InputError(f"norm: min {self.min} is above max {self.max}")
        return self

    @property
    def has_sd(self) -> bool:
        """Whether a deviation in SD can be given (mean and sd are known)."""
        return self.mean is not None

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high) of "within the norm" (see the class doc)."""
        if self.min is not None:
            return self.min, self.max
        return self.mean - self.sd, self.mean + self.sd


class Interpretation(_Data):
    """What a value means in words, below, within and above its norm."""

    below: str | None = Field(default=None, min_length=1)
    within: str | None = Field(default=None, min_length=1)
    above: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _some(self) -> Interpretation:
        if self.below is None and self.within is None and self.above is None:
            raise InputError("interpretation: give at least one of below, within, above")
        return self


class NotComputed(_Data):
    """A measurement of the analysis that this spec does not compute, and why."""

    name: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class Substitution(_Data):
    """A landmark the analysis defines (``landmark``) replaced by one the model has
    (``uses``), and what that changes (``note``)."""

    landmark: str = Field(min_length=1)
    uses: Name
    note: str = Field(min_length=1)


class Measurement(_Data):
    """One named measurement and its classes.

    ``angle``: unsigned angle in degrees (0..180) between two vectors ``[[P, Q], [R, T]]``
    (P->Q and R->T). ``signed_angle``: the same angle, negative when
    ``cross(u, v) = u.x v.y - u.y v.x < 0`` (x right, y down). ``distance``: |Q - P| of
    ``[P, Q]``; with ``sign: x`` negative when Q.x < P.x (``sign: y``: when Q.y < P.y).
    ``projection``: the signed length of P->Q along the direction of R->T, of
    ``[[P, Q], [R, T]]`` (e.g. A point ahead of the nasion perpendicular:
    ``[[N, A], [Po, Or]]``). ``ratio``: |Q - P| / |T - R| of ``[[P, Q], [R, T]]``
    (``unit: percent``: times 100). ``line_distance``: the distance of P from the line
    through A and B, of ``[P, [A, B]]`` (e.g. pogonion to the N-B line); with ``sign:
    side`` (2-D) negative when P lies left of the direction A->B as seen on the screen
    (``cross(B - A, P - A) < 0``, x right, y down), so ``[Pog, [B, N]]`` is positive with
    pogonion ahead of N-B in a patient facing right. ``sum``: weighted terms.

    3-D only (points in world mm; a plane ``[A, B, C]`` has the normal
    ``n = (B - A) x (C - A)``): ``line_plane_angle: [[P, Q], [A, B, C]]``, the angle
    between the line P-Q and the plane, 0..90 (``sign: normal``: negative when P->Q points
    against n); ``plane_angle: [[A, B, C], [D, E, F]]``, the angle between two planes,
    0..90; ``plane_distance: [P, [A, B, C]]``, the distance of P from the plane
    (``sign: normal``: negative on the side opposite n); ``projected_distance:
    [[P, Q], [A, B, C]]``, the length of P->Q projected onto the plane.

    ``unit`` of a distance (or a sum of distances): ``mm`` (needs the pixel spacing) or
    ``px``. ``without_spacing``: what an ``mm`` distance gives for an image without
    spacing: ``nan`` (default) or ``px``, which adds ``<name>_px`` (pixels) beside the NaN.

    ``norm``: the measurement's reference value (:class:`Norm`); ``interpretation``: words
    for a value below, within and above it (needs a norm); ``note``: free text (e.g. a
    landmark substitution that changes this measurement).
    """

    name: str = Field(min_length=1)
    description: str | None = None
    unit: Literal["deg", "mm", "px", "ratio", "percent"] | None = None
    angle: tuple[Segment, Segment] | None = None
    signed_angle: tuple[Segment, Segment] | None = None
    distance: Segment | None = None
    projection: tuple[Segment, Segment] | None = None
    line_distance: tuple[Name, Segment] | None = None
    sign: Literal["x", "y", "normal", "side"] | None = None
    ratio: tuple[Segment, Segment] | None = None
    sum: tuple[Term, ...] | None = None
    line_plane_angle: tuple[Segment, Plane] | None = None
    plane_angle: tuple[Plane, Plane] | None = None
    plane_distance: tuple[Name, Plane] | None = None
    projected_distance: tuple[Segment, Plane] | None = None
    without_spacing: Literal["nan", "px"] = "nan"
    classes: tuple[ClassRule, ...] = ()
    norm: Norm | None = None
    interpretation: Interpretation | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Measurement:
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise InputError(f"measurement {self.name!r} needs exactly one of "
                             f"{', '.join(KINDS)}; got {given or 'none'}")
        if self.sign in ("x", "y") and self.distance is None:
            raise InputError(f"measurement {self.name!r}: 'sign: {self.sign}' applies to a "
                             "distance only")
        if self.sign == "normal" and self.line_plane_angle is None and \
                self.plane_distance is None:
            raise InputError(f"measurement {self.name!r}: 'sign: normal' applies to a "
                             "line_plane_angle or a plane_distance only")
        if self.sign == "side" and self.line_distance is None:
            raise InputError(f"measurement {self.name!r}: 'sign: side' applies to a "
                             "line_distance only")
        if self.sum is not None and not self.sum:
            raise InputError(f"measurement {self.name!r}: a sum needs at least one term")
        if self.interpretation is not None and self.norm is None:
            raise InputError(f"measurement {self.name!r}: interpretation words need a norm")
        bad = set(self.name) & set(',"\n\r')
        if bad or self.name != self.name.strip() or self.name == "image" or \
                self.name.endswith(RESERVED_SUFFIXES):
            raise InputError(f"measurement name {self.name!r}: must not be 'image', end in "
                             f"{', '.join(repr(s) for s in RESERVED_SUFFIXES)}, or hold "
                             "commas, quotes or line breaks")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)


class MeasurementSpec(_Data):
    """A set of measurements for one domain (anatomy); plain data, see the module doc.

    ``landmarks``: optional ordered list of the domain's landmark names, used to read files
    that number landmarks without naming them. ``points``: optional short symbols for
    landmark names. ``frame``: the orientation the definitions assume (free text).

    A named clinical analysis (``analysis: true``; ``report`` shows it, ``measure`` never
    picks it by itself) adds ``title`` (its name in words), ``notes`` (free text: e.g. that
    norms vary with age, sex and ethnicity), ``substitutions`` (landmarks it defines that
    the model lacks, replaced by ones it has) and ``not_computed`` (the analysis's
    measurements left out, each with the reason).
    """

    name: str = Field(min_length=1)
    title: str | None = None
    domain: str | None = None
    description: str | None = None
    source: str | None = None
    frame: str | None = None
    analysis: bool = False
    notes: tuple[str, ...] = ()
    landmarks: tuple[Name, ...] | None = None
    points: dict[str, Name] = Field(default_factory=dict)
    measurements: tuple[Measurement, ...] = Field(min_length=1)
    substitutions: tuple[Substitution, ...] = ()
    not_computed: tuple[NotComputed, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> MeasurementSpec:
        faults = _semantic_faults(self)
        if faults:
            raise InputError("; ".join(faults))
        return self

    # -- lookups -------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Measurement names in the spec's order (the order of output columns)."""
        return tuple(m.name for m in self.measurements)

    def measurement(self, name: str) -> Measurement:
        for m in self.measurements:
            if m.name == name:
                return m
        raise UnknownNameError(f"spec {self.name}: no measurement {name!r}; known: "
                       f"{', '.join(self.names)}")

    def resolve(self, point: str) -> str:
        """The landmark name a point symbol (or a landmark name) stands for."""
        return self.points.get(point, point)

    def landmarks_used(self) -> tuple[str, ...]:
        """Every landmark name the measurements read, in first-use order."""
        seen: dict[str, None] = {}
        for m in self.measurements:
            for p in _points_of(m):
                seen.setdefault(self.resolve(p), None)
        return tuple(seen)

    def landmarks_of(self, name: str) -> tuple[str, ...]:
        """The landmark names one measurement reads (through its ``ref``s too), in
        first-use order."""
        seen: dict[str, None] = {}
        todo, done = [self.measurement(name)], set()
        while todo:
            m = todo.pop(0)
            if m.name in done:
                continue
            done.add(m.name)
            for p in _points_of(m):
                seen.setdefault(self.resolve(p), None)
            todo += [self.measurement(t.ref) for t in m.sum or () if t.ref is not None]
        return tuple(seen)

    def deviations(self) -> tuple[str, ...]:
        """Names of the measurements whose norm gives a mean and an SD (a deviation in SD,
        the ``<name>_norm_sd`` column)."""
        return tuple(m.name for m in self.measurements if m.norm is not None and
                     m.norm.has_sd)

    def unit(self, name: str) -> str:
        """The unit of a measurement: ``deg``, ``mm``, ``px`` or ``ratio``."""
        return _unit(self, self.measurement(name), set())

    def units(self) -> dict[str, str]:
        return {m.name: self.unit(m.name) for m in self.measurements}

    def classified(self) -> tuple[str, ...]:
        """Names of the measurements that define classes."""
        return tuple(m.name for m in self.measurements if m.classes)

    def dimensions(self) -> int | None:
        """3 when a measurement is defined for 3-D points only, 2 when one is defined for
        2-D points only (``signed_angle``, a ``line_distance`` with ``sign: side``), None
        when the spec holds in both."""
        kinds = _kinds(self)
        if kinds & set(KINDS_3D):
            return 3
        return 2 if kinds & set(KINDS_2D) else None

    def pixel_fallbacks(self) -> tuple[str, ...]:
        """Names of mm measurements that add ``<name>_px`` for images without spacing."""
        return tuple(m.name for m in self.measurements
                     if m.without_spacing == "px" and self.unit(m.name) == "mm")


def _kinds(spec: MeasurementSpec) -> set[str]:
    """The kinds of the spec's measurements and sum terms; a signed line distance counts as
    the 2-D-only kind ``line_distance (sign: side)``."""
    kinds = {m.kind for m in spec.measurements} | {
        t.kind for m in spec.measurements for t in m.sum or ()}
    if any(m.line_distance is not None and m.sign == "side" for m in spec.measurements):
        kinds.add("line_distance (sign: side)")
    return kinds


def _points_of(m: Measurement | Term) -> list[str]:
    out: list[str] = []
    for key in ("angle", "signed_angle", "projection", "ratio"):
        pairs = getattr(m, key, None)
        if pairs is not None:
            out += [p for seg in pairs for p in seg]
    if m.distance is not None:
        out += list(m.distance)
    for key in (*KINDS_3D, "line_distance"):
        parts = getattr(m, key, None)
        if parts is not None:
            out += [p for part in parts for p in ((part,) if isinstance(part, str) else part)]
    for term in getattr(m, "sum", None) or []:
        out += _points_of(term)
    return out


def _unit(spec: MeasurementSpec, m: Measurement, visiting: set[str]) -> str:
    """Unit of ``m``; raises ValueError on a unit clash or a reference cycle."""
    if m.angle is not None or m.signed_angle is not None or \
            m.line_plane_angle is not None or m.plane_angle is not None:
        return "deg"
    if m.ratio is not None:
        return "percent" if m.unit == "percent" else "ratio"
    if m.distance is not None or m.projection is not None or m.line_distance is not None or \
            m.plane_distance is not None or m.projected_distance is not None:
        return m.unit if m.unit in ("mm", "px") else "mm"
    if m.name in visiting:
        raise InputError(f"measurement {m.name!r}: its references form a cycle")
    visiting = visiting | {m.name}
    units = set()
    for term in m.sum or []:
        if term.ref is not None:
            units.add(_unit(spec, spec.measurement(term.ref), visiting))
        elif term.distance is not None:
            units.add(m.unit or "mm")
        else:
            units.add("deg")
    if len(units) != 1:
        raise InputError(f"measurement {m.name!r}: a sum mixes units {sorted(units)}")
    return units.pop()


def _semantic_faults(spec: MeasurementSpec) -> list[str]:
    """Every fault beyond the field types: duplicates, unknown refs, units, cycles."""
    faults = []
    seen: set[str] = set()
    for m in spec.measurements:
        if m.name in seen:
            faults.append(f"measurement {m.name!r} is defined twice")
        seen.add(m.name)
    for m in spec.measurements:
        for term in m.sum or []:
            if term.ref is not None and term.ref not in seen:
                faults.append(f"measurement {m.name!r}: refers to unknown measurement "
                              f"{term.ref!r}")
    if spec.landmarks is not None:
        if len(set(spec.landmarks)) != len(spec.landmarks):
            faults.append("landmarks: a name is listed twice")
        known = set(spec.landmarks)
        for symbol, name in spec.points.items():
            if name not in known:
                faults.append(f"points: {symbol} -> {name!r} is not in landmarks")
        for m in spec.measurements:
            for p in _points_of(m):
                if spec.resolve(p) not in known:
                    faults.append(f"measurement {m.name!r}: point {p!r} is neither a symbol "
                                  "of points nor a name in landmarks")
    kinds = _kinds(spec)
    if kinds & set(KINDS_2D) and kinds & set(KINDS_3D):
        faults.append(f"{', '.join(sorted(kinds & set(KINDS_2D)))} (2-D points only) and "
                      f"{', '.join(sorted(kinds & set(KINDS_3D)))} (3-D points only) cannot "
                      "share one spec")
    for item in spec.not_computed:
        if item.name in seen:
            faults.append(f"not_computed: {item.name!r} is a measurement of this spec")
    used = set(spec.landmarks_used())
    for sub in spec.substitutions:
        if spec.resolve(sub.uses) not in used:
            faults.append(f"substitutions: {sub.landmark!r} -> {sub.uses!r}: no measurement "
                          f"reads {sub.uses!r}")
    if faults:
        return list(dict.fromkeys(faults))
    for m in spec.measurements:
        try:
            unit = _unit(spec, m, set())
        except ValueError as err:
            faults.append(str(err))
            continue
        if m.unit is not None and m.unit != unit:
            faults.append(f"measurement {m.name!r}: unit {m.unit!r} does not fit a "
                          f"{m.kind} (its unit is {unit!r})")
        if m.unit in ("ratio", "percent") and m.kind != "ratio":
            faults.append(f"measurement {m.name!r}: unit {m.unit!r} is for a ratio only")
        if m.unit == "px" and m.kind in KINDS_3D:
            faults.append(f"measurement {m.name!r}: a {m.kind} is in mm (3-D world points)")
        if m.unit == "px" and m.without_spacing == "px":
            faults.append(f"measurement {m.name!r}: without_spacing applies to mm only")
    return list(dict.fromkeys(faults))


def parse_spec(data: Any, source: str = "<spec>") -> MeasurementSpec:
    """Validate a spec given as a dict; every fault is listed, prefixed with ``source``."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec is a mapping with name and measurements; got "
                        f"{type(data).__name__}")
    try:
        return MeasurementSpec.model_validate(data)
    except ValidationError as err:
        lines = [f"  - {_where(e['loc'], data)}: {_message(e)}" for e in err.errors()]
        raise SpecError(f"{source}: invalid measurement spec, {len(lines)} fault(s):\n" +
                        "\n".join(lines)) from None


def load_spec(path: str | Path) -> MeasurementSpec:
    """Read a YAML spec file (safe loader: the file's content is data, never code)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such measurement spec file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise SpecError(f"{path}: not a valid YAML file: {err}") from None
    return parse_spec(data, str(path))


def _where(loc: tuple, data: dict) -> str:
    """``measurements[2] (SNA).classes[0]`` from a pydantic location."""
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                parts[-1] += f" ({node['name']})"
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "spec"


def _message(error: dict) -> str:
    msg = error["msg"]
    return msg[len("Value error, "):] if msg.startswith("Value error, ") else msg
