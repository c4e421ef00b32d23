"""UCUM units: validation, commensurability and canonical form, from the UCUM
essence (``mappings/terminology/ucum/ucum-essence.xml``, UCUM 2.2) as data.

Grammar: The Unified Code for Units of Measure, section "Syntax Rules"
(main-term, term, component, annotatable, simple-unit, annotation, factor,
exponent); semantics: each atom's definition in the essence, reduced to the
seven base units (m, s, g, rad, K, C, cd). Special units (Cel, [degF], [pH],
...) are commensurable through their function's unit but are not converted
multiplicatively; arbitrary units ([IU], [arb'U], ...) are commensurable only
with themselves. Results are cached per unit string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from lxml import etree

from .sources import terminology_dir

__all__ = ["ucum_validate", "ucum_comparable", "ucum_canonical", "ucum_convert", "UcumError",
           "UcumValue", "essence_path"]

_NS = "{http://unitsofmeasure.org/ucum-essence}"
_BASE_ORDER = ("g", "m", "s", "rad", "K", "C", "cd")


class UcumError(ValueError):
    """A string that is not a UCUM unit (or cannot be converted as asked)."""


class UcumValue(NamedTuple):
    factor: float
    dims: tuple[tuple[str, int], ...]  # sorted (base or arbitrary atom, exponent), no zeros
    special: bool = False

    def __mul__(self, other: object) -> "UcumValue":
        assert isinstance(other, UcumValue)
        return UcumValue(self.factor * other.factor, _add(self.dims, other.dims, 1),
                         self.special or other.special)

    def __truediv__(self, other: object) -> "UcumValue":
        assert isinstance(other, UcumValue)
        return UcumValue(self.factor / other.factor, _add(self.dims, other.dims, -1),
                         self.special or other.special)

    def __pow__(self, n: int) -> "UcumValue":  # type: ignore[override]
        return UcumValue(self.factor ** n, tuple((k, v * n) for k, v in self.dims), self.special)


UNITY = UcumValue(1.0, ())


def _add(a: tuple[tuple[str, int], ...], b: tuple[tuple[str, int], ...], sign: int) -> tuple[tuple[str, int], ...]:
    acc = dict(a)
    for k, v in b:
        acc[k] = acc.get(k, 0) + sign * v
    return tuple(sorted((k, v) for k, v in acc.items() if v))


@dataclass(frozen=True, slots=True)
class _Atom:
    code: str
    metric: bool
    special: bool
    arbitrary: bool
    definition: str | None  # a UCUM expression
    value: float
    function_unit: str | None


class _Essence:
    def __init__(self, path: Path) -> None:
        root = etree.parse(str(path)).getroot()
        self.version = root.get("version")
        self.prefixes: dict[str, float] = {}
        self.atoms: dict[str, _Atom] = {}
        for el in root:
            tag = el.tag if isinstance(el.tag, str) else ""
            if tag == _NS + "prefix":
                self.prefixes[el.get("Code")] = float(el.find(_NS + "value").get("value"))
            elif tag == _NS + "base-unit":
                code = el.get("Code")
                self.atoms[code] = _Atom(code, True, False, False, None, 1.0, None)
            elif tag == _NS + "unit":
                code = el.get("Code")
                val = el.find(_NS + "value")
                func = val.find(_NS + "function") if val is not None else None
                self.atoms[code] = _Atom(
                    code=code, metric=el.get("isMetric") == "yes", special=el.get("isSpecial") == "yes",
                    arbitrary=el.get("isArbitrary") == "yes",
                    definition=val.get("Unit") if val is not None else None,
                    value=float(val.get("value") or 1) if val is not None and val.get("value") else 1.0,
                    function_unit=func.get("Unit") if func is not None else None)
        self._prefix_codes = sorted(self.prefixes, key=len, reverse=True)
        self._values: dict[str, UcumValue] = {}

    def atom_value(self, code: str, depth: int = 0) -> UcumValue:
        hit = self._values.get(code)
        if hit is not None:
            return hit
        atom = self.atoms[code]
        if depth > 40:
            raise UcumError(f"definition of {code} does not terminate")
        if atom.definition is None and not atom.special:
            v = UcumValue(1.0, ((code, 1),))
        elif atom.arbitrary:
            v = UcumValue(1.0, ((code, 1),))
        elif atom.special:
            inner = _Parser(self, atom.function_unit or "1", depth + 1).parse()
            v = UcumValue(1.0, inner.dims, True)
        else:
            inner = _Parser(self, atom.definition or "1", depth + 1).parse()
            v = UcumValue(inner.factor * atom.value, inner.dims, inner.special)
        self._values[code] = v
        return v

    def simple(self, symbol: str, depth: int) -> UcumValue | None:
        if symbol in self.atoms:
            return self.atom_value(symbol, depth)
        for p in self._prefix_codes:
            if symbol.startswith(p) and len(symbol) > len(p):
                rest = symbol[len(p):]
                atom = self.atoms.get(rest)
                if atom is not None and atom.metric:
                    v = self.atom_value(rest, depth)
                    return UcumValue(v.factor * self.prefixes[p], v.dims, v.special)
        return None


_EXP = re.compile(r"(.+?)([+-]?\d+)")


class _Parser:
    """Recursive descent over the UCUM syntax rules."""

    def __init__(self, essence: _Essence, text: str, depth: int = 0) -> None:
        self.e, self.s, self.i, self.depth = essence, text, 0, depth

    def parse(self) -> UcumValue:
        if not self.s:
            raise UcumError("empty unit")
        v = self._main()
        if self.i != len(self.s):
            raise UcumError(f"unexpected '{self.s[self.i]}' at position {self.i + 1}")
        return v

    def _main(self) -> UcumValue:
        if self.s.startswith("/", self.i):
            self.i += 1
            return UNITY / self._term()
        return self._term()

    def _term(self) -> UcumValue:
        v = self._component()
        while self.i < len(self.s) and self.s[self.i] in "./":
            op = self.s[self.i]
            self.i += 1
            c = self._component()
            v = v * c if op == "." else v / c
        return v

    def _annotation(self) -> None:
        end = self.s.find("}", self.i)
        if end < 0:
            raise UcumError("annotation without closing '}'")
        body = self.s[self.i + 1:end]
        if "{" in body or any(ord(ch) < 33 or ord(ch) > 126 for ch in body):
            raise UcumError("annotation with characters outside ASCII 33-126")
        self.i = end + 1

    def _component(self) -> UcumValue:
        s = self.s
        if self.i >= len(s):
            raise UcumError("unit ends where a component is expected")
        ch = s[self.i]
        if ch == "(":
            self.i += 1
            v = self._main()
            if self.i >= len(s) or s[self.i] != ")":
                raise UcumError("missing ')'")
            self.i += 1
            if self.i < len(s) and s[self.i] == "{":
                self._annotation()
            return v
        if ch == "{":
            self._annotation()
            return UNITY
        start = self.i
        bracket = 0
        while self.i < len(s):
            c = s[self.i]
            if c == "[":
                bracket += 1
            elif c == "]":
                bracket -= 1
            elif bracket == 0 and c in "./(){}":
                break
            self.i += 1
        run = s[start:self.i]
        if not run:
            raise UcumError(f"unexpected '{ch}' at position {start + 1}")
        v = self._symbol(run)
        if self.i < len(s) and s[self.i] == "{":
            self._annotation()
        return v

    def _symbol(self, run: str) -> UcumValue:
        if run.isdigit():
            if run.startswith("0") and run != "0":
                pass
            return UcumValue(float(int(run)), ())
        found = self.e.simple(run, self.depth)
        m = _EXP.fullmatch(run)
        if m is not None:
            base = self.e.simple(m.group(1), self.depth)
            if base is not None:
                if base.special:
                    raise UcumError(f"special unit '{m.group(1)}' cannot take an exponent")
                return base ** int(m.group(2))
        if found is not None:
            return found
        raise UcumError(f"'{run}' is not a UCUM unit symbol")


def essence_path() -> Path:
    return terminology_dir() / "ucum" / "ucum-essence.xml"


@lru_cache(maxsize=1)
def _essence() -> _Essence | None:
    path = essence_path()
    return _Essence(path) if path.exists() else None


@lru_cache(maxsize=4096)
def _value(unit: str) -> UcumValue:
    e = _essence()
    if e is None:
        raise LookupError("UCUM essence not available")
    return _Parser(e, unit).parse()


def ucum_validate(unit: str) -> bool | None:
    """True for a valid UCUM (case-sensitive) unit, False for an invalid one,
    None when the UCUM tables are not available."""
    try:
        _value(unit)
        return True
    except UcumError:
        return False
    except LookupError:
        return None


def ucum_comparable(a: str, b: str) -> bool:
    """True when both are valid UCUM units of the same dimension (commensurable)."""
    try:
        return _value(a).dims == _value(b).dims
    except (UcumError, LookupError):
        return False


def ucum_canonical(unit: str) -> tuple[float, str] | None:
    """``(factor, canonical unit)`` in UCUM base units, e.g. ``mg/dL`` ->
    ``(10.0, 'g.m-3')``; None for an invalid unit or a special unit (Cel,
    [pH], ...) that has no multiplicative canonical form."""
    try:
        v = _value(unit)
    except (UcumError, LookupError):
        return None
    if v.special:
        return None
    order = {b: i for i, b in enumerate(_BASE_ORDER)}
    parts = sorted(v.dims, key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
    text = ".".join(k if n == 1 else f"{k}{n}" for k, n in parts) or "1"
    return (float(f"{v.factor:.15g}"), text)


def ucum_convert(value: float, source: str, target: str) -> float:
    """Convert a quantity between commensurable, non-special units."""
    a, b = _value(source), _value(target)
    if a.dims != b.dims:
        raise UcumError(f"'{source}' and '{target}' are not commensurable")
    if a.special or b.special:
        raise UcumError("special units (Cel, [degF], [pH], ...) are not converted")
    return float(f"{value * a.factor / b.factor:.15g}")
