"""FHIRPath for invariants, compiled once into Python closures.

``constraint.expression`` (FHIR R4 section 2.17.1 "Constraints", FHIRPath
N1 http://hl7.org/fhirpath/N1/) is parsed by fhirpathpy's ANTLR parser and
the parse tree is compiled here into nested closures over plain JSON, so an
invariant costs a few microseconds instead of the ~50-100 µs of fhirpathpy's
tree-walking evaluator. Expressions that use something this compiler does
not cover fall back to fhirpathpy itself (with ``hasValue()`` and
``htmlChecks()`` added, which fhirpathpy lacks), so nothing is skipped
silently; :func:`compile_expression` says which path each one took.

Evaluation follows the N1 semantics the invariants rely on: collections
everywhere, empty propagation through operators, three-valued ``and`` /
``or`` / ``implies``, choice elements reached by their base name
(``value`` finds ``valueQuantity``), primitive extensions (``_birthDate``)
visible through ``extension``. Items are :class:`Item` (an element with its
FHIR type) or plain Python values (results of functions and literals).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any

from .typeinfo import TypeInfo, type_info, upper_first

__all__ = ["Item", "Env", "Compiled", "compile_expression", "FhirPathError", "truthy", "make_item"]


class FhirPathError(Exception):
    """The expression cannot be compiled or evaluated."""


class Unsupported(FhirPathError):
    pass


class Item:
    """A FHIR element in a FHIRPath collection: JSON value, type key, primitive extension."""

    __slots__ = ("v", "t", "x")

    def __init__(self, v: Any, t: str | None, x: dict[str, Any] | None = None) -> None:
        self.v = v
        self.t = t
        self.x = x

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Item({self.v!r}, {self.t!r})"


def make_item(v: Any, t: str | None, x: dict[str, Any] | None = None) -> Item:
    if isinstance(v, dict) and "resourceType" in v:
        t = v["resourceType"]
    return Item(v, t, x)


@dataclass(slots=True)
class Env:
    """Variables of one evaluation: %resource, %rootResource, %context, and services."""

    resource: Item | None = None
    root: Item | None = None
    context: Item | None = None
    resolve: Callable[[str], dict[str, Any] | None] | None = None
    this: Any = None
    memo: dict[int, list[Any]] | None = None  # sub-expressions that depend on %resource only


Fn = Callable[[list[Any], Env], list[Any]]


def _val(x: Any) -> Any:
    return x.v if isinstance(x, Item) else x


def truthy(coll: list[Any]) -> bool | None:
    """Singleton evaluation of a collection as a Boolean (N1 section 4.5)."""
    if not coll:
        return None
    if len(coll) == 1:
        v = _val(coll[0])
        if isinstance(v, bool):
            return v
        return True
    raise FhirPathError("a collection of several items where a Boolean is expected")


# ---------------------------------------------------------------- values and comparisons

_DT = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
                 r"(Z|[+-]\d{2}:\d{2})?)?)?)?$")


def _parse_dt(s: str) -> tuple[int, datetime] | None:
    m = _DT.match(s.lstrip("@"))
    if not m:
        return None
    y, mo, d, h, mi, sec, frac, tz = m.groups()
    precision = sum(1 for g in (y, mo, d, h, mi, sec) if g)
    tzinfo = timezone.utc
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        from datetime import timedelta
        tzinfo = timezone(sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))
    dt = datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(sec or 0),
                  int((frac or "0")[:6].ljust(6, "0")), tzinfo=tzinfo)
    return precision, dt


_DATE_TYPES = frozenset({"date", "dateTime", "instant"})


def _is_temporal(x: Any) -> bool:
    return isinstance(x, Item) and x.t in _DATE_TYPES or isinstance(x, _DateLit)


class _DateLit(str):
    """A FHIRPath date/time literal (``@2020-01-01``)."""


def _compare(a: Any, b: Any) -> int | None:
    """-1/0/1, or None when not comparable (different precision, units or types)."""
    va, vb = _val(a), _val(b)
    if (_is_temporal(a) or _is_temporal(b)) and isinstance(va, str) and isinstance(vb, str):
        pa, pb = _parse_dt(va), _parse_dt(vb)
        if pa is None or pb is None:
            return None
        if pa[0] != pb[0]:
            n = min(pa[0], pb[0])
            ta = pa[1].timetuple()[:n]
            tb = pb[1].timetuple()[:n]
            if ta != tb:
                return -1 if ta < tb else 1
            return None
        return (pa[1] > pb[1]) - (pa[1] < pb[1])
    if isinstance(va, dict) and isinstance(vb, dict):  # Quantity
        if "value" in va and "value" in vb and (va.get("code"), va.get("unit")) == (
                vb.get("code"), vb.get("unit")):
            x, y = Decimal(str(va["value"])), Decimal(str(vb["value"]))
            return (x > y) - (x < y)
        return None
    if isinstance(va, bool) or isinstance(vb, bool):
        return None
    if isinstance(va, (int, float, Decimal)) and isinstance(vb, (int, float, Decimal)):
        x, y = Decimal(str(va)), Decimal(str(vb))
        return (x > y) - (x < y)
    if isinstance(va, str) and isinstance(vb, str):
        return (va > vb) - (va < vb)
    return None


def _strip_ids(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _strip_ids(x) for k, x in v.items() if k != "id"}
    if isinstance(v, list):
        return [_strip_ids(x) for x in v]
    return v


def _equal(a: Any, b: Any) -> bool | None:
    va, vb = _val(a), _val(b)
    if (_is_temporal(a) or _is_temporal(b)) and isinstance(va, str) and isinstance(vb, str):
        c = _compare(a, b)
        return None if c is None else c == 0
    if isinstance(va, bool) or isinstance(vb, bool):
        return va is vb
    if isinstance(va, (int, float, Decimal)) and isinstance(vb, (int, float, Decimal)):
        return Decimal(str(va)) == Decimal(str(vb))
    if isinstance(va, dict) and isinstance(vb, dict):
        return _strip_ids(va) == _strip_ids(vb)
    return va == vb


def _equivalent(a: Any, b: Any) -> bool:
    va, vb = _val(a), _val(b)
    if isinstance(va, str) and isinstance(vb, str):
        return " ".join(va.lower().split()) == " ".join(vb.lower().split())
    return bool(_equal(a, b))


def _coll_equal(left: list[Any], right: list[Any]) -> bool | None:
    if not left or not right:
        return None
    if len(left) != len(right):
        return False
    result: bool | None = True
    for a, b in zip(left, right):
        e = _equal(a, b)
        if e is False:
            return False
        if e is None:
            result = None
    return result


def _hash_key(x: Any) -> Any:
    v = _val(x)
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, (int, float, Decimal)):
        return ("n", Decimal(str(v)).normalize())
    if isinstance(v, str) and not _is_temporal(x):
        return ("s", v)
    return None


def _distinct(items: list[Any]) -> list[Any]:
    keys = [_hash_key(i) for i in items]
    if None not in keys:
        seen: set[Any] = set()
        fast = []
        for k, i in zip(keys, items):
            if k not in seen:
                seen.add(k)
                fast.append(i)
        return fast
    out: list[Any] = []
    for it in items:
        if not any(_equal(it, o) for o in out):
            out.append(it)
    return out


# ----------------------------------------------------------------------- navigation

def _items_of(raw: Any, companion: Any, tkey: str | None, out: list[Any]) -> None:
    if isinstance(raw, list):
        comp = companion if isinstance(companion, list) else []
        for i, v in enumerate(raw):
            x = comp[i] if i < len(comp) else None
            if v is None and x is None:
                continue
            out.append(make_item(v, tkey, x))
    elif raw is not None or companion is not None:
        out.append(make_item(raw, tkey, companion if isinstance(companion, dict) else None))


def _member(ti: TypeInfo, name: str) -> Fn:
    def member(focus: list[Any], env: Env) -> list[Any]:
        out: list[Any] = []
        for it in focus:
            if not isinstance(it, Item):
                continue
            v = it.v
            if not isinstance(v, dict):
                if name == "extension" and it.x is not None:
                    _items_of(it.x.get("extension"), None, "Extension", out)
                elif name == "id" and it.x is not None and "id" in it.x:
                    out.append(Item(it.x["id"], "string"))
                continue
            info = ti.child(it.t, name)
            if info is not None:
                if not info.choice:
                    if name in v or "_" + name in v:
                        _items_of(v.get(name), v.get("_" + name), info.keys[0][1], out)
                    continue
                for key in v:
                    k = key[1:] if key[:1] == "_" else key
                    tkey = info.by_key.get(k)
                    if tkey is not None and (k == key or k not in v):
                        _items_of(v.get(k), v.get("_" + k), tkey, out)
                continue
            if name in v or "_" + name in v:
                _items_of(v.get(name), v.get("_" + name), None, out)
                continue
            if it.t is not None and it.t in ti.children:
                continue  # a known type without that element
            for key in v:  # untyped choice element: value -> valueQuantity
                if key == "resourceType":
                    continue
                if key.startswith(name) and len(key) > len(name) and key[len(name)].isupper():
                    suffix = key[len(name):]
                    tkey = suffix if suffix in ti.kinds else suffix[0].lower() + suffix[1:]
                    _items_of(v[key], v.get("_" + key), tkey, out)
        return out
    return member


def _type_name(node: dict[str, Any]) -> str:
    text = _text(node)
    name = text.replace("`", "")
    for prefix in ("FHIR.", "System."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


_SYSTEM_NAMES = {"String": str, "Boolean": bool, "Integer": int, "Decimal": (float, Decimal)}


def _has_type(ti: TypeInfo, it: Any, name: str) -> bool:
    if isinstance(it, Item):
        if it.t is None:
            if isinstance(it.v, dict):
                return name in ("Element", "Base")
            return name in ("string", "String") and isinstance(it.v, str)
        if name in ("String", "Boolean", "Integer", "Decimal", "Date", "DateTime", "Time"):
            name = name[0].lower() + name[1:]
        return ti.is_a(it.t, name) or (name in ("uri",) and it.t in ("url", "canonical", "oid",
                                                                      "uuid"))
    py = _SYSTEM_NAMES.get(name) or _SYSTEM_NAMES.get(upper_first(name))
    if py is None:
        return False
    if py is int:
        return isinstance(it, int) and not isinstance(it, bool)
    return isinstance(it, py)  # type: ignore[arg-type]


def _children(ti: TypeInfo, it: Any) -> list[Any]:
    out: list[Any] = []
    if not isinstance(it, Item):
        return out
    if not isinstance(it.v, dict):
        if it.x is not None:
            _items_of(it.x.get("extension"), None, "Extension", out)
        return out
    typed = ti.children.get(it.t or "", {}) if it.t else {}
    seen: set[str] = set()
    for info in typed.values():
        for key, tkey in info.keys:
            if key in it.v or "_" + key in it.v:
                seen.add(key)
                seen.add("_" + key)
                _items_of(it.v.get(key), it.v.get("_" + key), tkey, out)
    for key, v in it.v.items():
        if key in seen or key == "resourceType" or key.startswith("_"):
            continue
        _items_of(v, it.v.get("_" + key), None, out)
    return out


# ------------------------------------------------------------------------ compiler

def _text(node: dict[str, Any]) -> str:
    if node.get("text"):
        return str(node["text"])
    terms = node.get("terminalNodeText") or []
    if terms and not node.get("children"):
        return "".join(terms)
    return "".join(_text(c) for c in node.get("children") or [])


def _unquote(s: str) -> str:
    if s.startswith("`") and s.endswith("`"):
        return s[1:-1]
    if s.startswith("'") and s.endswith("'"):
        s = s[1:-1]
        return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", lambda m: (
            chr(int(m.group(1)[1:], 16)) if m.group(1)[0] == "u" else
            {"n": "\n", "r": "\r", "t": "\t", "f": "\f"}.get(m.group(1), m.group(1))), s)
    return s


_HOISTABLE = frozenset({"OrExpression", "AndExpression", "EqualityExpression",
                        "ParenthesizedTerm", "InvocationExpression", "MembershipExpression"})


def _env_only(node: dict[str, Any]) -> bool:
    """Does the value of ``node`` depend only on %resource / %rootResource (and literals)?
    Such a sub-expression is the same for every item of an iteration (``entry.all(...
    %resource.type = 'batch' ...)``) and for every invariant of one resource."""
    kind = node.get("type")
    if kind == "InvocationTerm" or kind == "ThisInvocation":
        return False
    if kind == "ExternalConstantTerm":
        name = _unquote(_text(node["children"][0]).lstrip("%"))
        return name in ("resource", "rootResource", "ucum")
    if kind == "FunctionInvocation":
        name = _text(node["children"][0]["children"][0])
        if name in ("today", "now", "trace", "resolve"):
            return False
    return all(_env_only(c) for c in node.get("children") or [])


def _memoized(fn: Fn) -> Fn:
    key = id(fn)

    def memo(focus: list[Any], env: Env) -> list[Any]:
        if env.memo is None:
            env.memo = {}
        hit = env.memo.get(key)
        if hit is None:
            hit = env.memo[key] = fn(focus, env)
        return hit
    return memo


class _Compiler:
    def __init__(self, ti: TypeInfo) -> None:
        self.ti = ti

    def compile(self, node: dict[str, Any]) -> Fn:
        kind = node.get("type")
        method = getattr(self, "c_" + str(kind), None)
        if method is None:
            raise Unsupported(f"FHIRPath construct {kind} is not compiled")
        fn: Fn = method(node)
        if kind in _HOISTABLE and _env_only(node):
            return _memoized(fn)
        return fn

    # wrappers
    def c_None(self, node: dict[str, Any]) -> Fn:
        return self.compile(node["children"][0])

    def c_TermExpression(self, node: dict[str, Any]) -> Fn:
        return self.compile(node["children"][0])

    def c_ParenthesizedTerm(self, node: dict[str, Any]) -> Fn:
        return self.compile(node["children"][0])

    def c_InvocationTerm(self, node: dict[str, Any]) -> Fn:
        inner = node["children"][0]
        if inner["type"] == "MemberInvocation":
            name = _unquote(_text(inner["children"][0]))
            member = _member(self.ti, name)
            if name[:1].isupper():  # a type name as first step: Patient.name
                def first(focus: list[Any], env: Env) -> list[Any]:
                    typed = [i for i in focus if isinstance(i, Item) and i.t is not None
                             and self.ti.is_a(i.t, name)]
                    return typed if typed else member(focus, env)
                return first
            return member
        return self.invocation(inner)

    def invocation(self, inner: dict[str, Any]) -> Fn:
        kind = inner["type"]
        if kind == "MemberInvocation":
            return _member(self.ti, _unquote(_text(inner["children"][0])))
        if kind == "FunctionInvocation":
            return self.function(inner["children"][0])
        if kind == "ThisInvocation":
            return lambda focus, env: [env.this] if env.this is not None else []
        raise Unsupported(f"invocation {kind}")

    def c_InvocationExpression(self, node: dict[str, Any]) -> Fn:
        left = self.compile(node["children"][0])
        right = self.invocation(node["children"][1])

        def chain(focus: list[Any], env: Env) -> list[Any]:
            return right(left(focus, env), env)
        return chain

    def c_IndexerExpression(self, node: dict[str, Any]) -> Fn:
        left = self.compile(node["children"][0])
        index = self.compile(node["children"][1])

        def indexer(focus: list[Any], env: Env) -> list[Any]:
            coll = left(focus, env)
            i = index(focus, env)
            if not i:
                return []
            n = _val(i[0])
            return [coll[n]] if isinstance(n, int) and 0 <= n < len(coll) else []
        return indexer

    # literals and constants
    def c_LiteralTerm(self, node: dict[str, Any]) -> Fn:
        lit = node["children"][0]
        kind = lit["type"]
        text = _text(lit)
        value: Any
        if kind == "StringLiteral":
            value = _unquote(text)
        elif kind == "NumberLiteral":
            value = int(text) if re.fullmatch(r"\d+", text) else Decimal(text)
        elif kind == "BooleanLiteral":
            value = text == "true"
        elif kind == "NullLiteral":
            return lambda focus, env: []
        elif kind in ("DateTimeLiteral", "DateLiteral"):
            value = _DateLit(text.lstrip("@"))
        elif kind == "QuantityLiteral":
            q = lit["children"][0]
            num = q.get("terminalNodeText", ["0"])[0]
            unit = _unquote(_text(q["children"][0])) if q.get("children") else "1"
            value = {"value": Decimal(num), "code": unit, "unit": unit}
        else:
            raise Unsupported(f"literal {kind}")
        result = [value]
        return lambda focus, env: result

    def c_ExternalConstantTerm(self, node: dict[str, Any]) -> Fn:
        name = _unquote(_text(node["children"][0]).lstrip("%"))
        if name == "resource":
            return lambda focus, env: [env.resource] if env.resource is not None else []
        if name == "rootResource":
            return lambda focus, env: [env.root] if env.root is not None else []
        if name == "context":
            return lambda focus, env: [env.context] if env.context is not None else []
        if name == "ucum":
            return lambda focus, env: ["http://unitsofmeasure.org"]
        raise Unsupported(f"external constant %{name}")

    # operators
    def c_PolarityExpression(self, node: dict[str, Any]) -> Fn:
        inner = self.compile(node["children"][0])
        sign = -1 if "-" in (node.get("terminalNodeText") or []) else 1

        def polarity(focus: list[Any], env: Env) -> list[Any]:
            r = inner(focus, env)
            return [sign * _val(r[0])] if r else []
        return polarity

    def _binary(self, node: dict[str, Any]) -> tuple[Fn, Fn, str]:
        return (self.compile(node["children"][0]), self.compile(node["children"][1]),
                (node.get("terminalNodeText") or [""])[0])

    def c_EqualityExpression(self, node: dict[str, Any]) -> Fn:
        left, right, op = self._binary(node)

        def eq(focus: list[Any], env: Env) -> list[Any]:
            a, b = left(focus, env), right(focus, env)
            if op in ("~", "!~"):
                if not a and not b:
                    r: bool | None = True
                elif len(a) != len(b):
                    r = False
                else:
                    r = all(_equivalent(x, y) for x, y in zip(a, b))
                return [r if op == "~" else not r]
            r = _coll_equal(a, b)
            if r is None:
                return []
            return [r if op == "=" else not r]
        return eq

    def c_InequalityExpression(self, node: dict[str, Any]) -> Fn:
        left, right, op = self._binary(node)
        test = {"<": lambda c: c < 0, ">": lambda c: c > 0, "<=": lambda c: c <= 0,
                ">=": lambda c: c >= 0}[op]

        def ineq(focus: list[Any], env: Env) -> list[Any]:
            a, b = left(focus, env), right(focus, env)
            if len(a) != 1 or len(b) != 1:
                return []
            c = _compare(a[0], b[0])
            return [] if c is None else [test(c)]
        return ineq

    def c_MembershipExpression(self, node: dict[str, Any]) -> Fn:
        left, right, op = self._binary(node)

        def member(focus: list[Any], env: Env) -> list[Any]:
            a, b = left(focus, env), right(focus, env)
            if op == "contains":
                a, b = b, a
            if not a:
                return []
            if len(a) > 1:
                raise FhirPathError("membership test on several items")
            return [any(_equal(a[0], x) for x in b)]
        return member

    def c_UnionExpression(self, node: dict[str, Any]) -> Fn:
        left, right, _ = self._binary(node)
        return lambda focus, env: _distinct(left(focus, env) + right(focus, env))

    def c_AdditiveExpression(self, node: dict[str, Any]) -> Fn:
        left, right, op = self._binary(node)

        def add(focus: list[Any], env: Env) -> list[Any]:
            a, b = left(focus, env), right(focus, env)
            if op == "&":
                return [(str(_val(a[0])) if a else "") + (str(_val(b[0])) if b else "")]
            if not a or not b:
                return []
            x, y = _val(a[0]), _val(b[0])
            if op == "+":
                if isinstance(x, str) and isinstance(y, str):
                    return [x + y]
                if isinstance(x, (int, Decimal, float)) and isinstance(y, (int, Decimal, float)):
                    return [Decimal(str(x)) + Decimal(str(y))]
                raise FhirPathError("'+' on these operands is not supported")
            if isinstance(x, (int, Decimal, float)) and isinstance(y, (int, Decimal, float)):
                return [Decimal(str(x)) - Decimal(str(y))]
            raise FhirPathError("'-' on these operands is not supported")
        return add

    def c_MultiplicativeExpression(self, node: dict[str, Any]) -> Fn:
        left, right, op = self._binary(node)

        def mul(focus: list[Any], env: Env) -> list[Any]:
            a, b = left(focus, env), right(focus, env)
            if not a or not b:
                return []
            x, y = Decimal(str(_val(a[0]))), Decimal(str(_val(b[0])))
            if op == "*":
                return [x * y]
            if y == 0:
                return []
            if op == "/":
                return [x / y]
            if op == "div":
                return [int(x // y)]
            return [x % y]
        return mul

    def c_AndExpression(self, node: dict[str, Any]) -> Fn:
        left, right, _ = self._binary(node)

        def and_(focus: list[Any], env: Env) -> list[Any]:
            a = truthy(left(focus, env))
            if a is False:
                return [False]
            b = truthy(right(focus, env))
            if b is False:
                return [False]
            if a is True and b is True:
                return [True]
            return []
        return and_

    def c_OrExpression(self, node: dict[str, Any]) -> Fn:
        left, right, op = self._binary(node)
        if op == "xor":
            def xor(focus: list[Any], env: Env) -> list[Any]:
                a, b = truthy(left(focus, env)), truthy(right(focus, env))
                return [] if a is None or b is None else [a != b]
            return xor

        def or_(focus: list[Any], env: Env) -> list[Any]:
            a = truthy(left(focus, env))
            if a is True:
                return [True]
            b = truthy(right(focus, env))
            if b is True:
                return [True]
            if a is False and b is False:
                return [False]
            return []
        return or_

    def c_ImpliesExpression(self, node: dict[str, Any]) -> Fn:
        left, right, _ = self._binary(node)

        def implies(focus: list[Any], env: Env) -> list[Any]:
            a = truthy(left(focus, env))
            if a is False:
                return [True]
            b = truthy(right(focus, env))
            if b is True:
                return [True]
            if a is True and b is False:
                return [False]
            return []
        return implies

    def c_TypeExpression(self, node: dict[str, Any]) -> Fn:
        left = self.compile(node["children"][0])
        name = _type_name(node["children"][1])
        op = (node.get("terminalNodeText") or [""])[0]
        ti = self.ti

        def typed(focus: list[Any], env: Env) -> list[Any]:
            coll = left(focus, env)
            if op == "is":
                if not coll:
                    return []
                return [_has_type(ti, coll[0], name)]
            return [i for i in coll if _has_type(ti, i, name)]
        return typed

    # functions
    def function(self, node: dict[str, Any]) -> Fn:
        name = _text(node["children"][0])
        params = node["children"][1]["children"] if len(node["children"]) > 1 else []
        builder = getattr(self, "f_" + name, None)
        if builder is None:
            raise Unsupported(f"function {name}()")
        return builder(params)  # type: ignore[no-any-return]

    def _args(self, params: list[dict[str, Any]], n: tuple[int, ...]) -> list[Fn]:
        if len(params) not in n:
            raise Unsupported("wrong number of arguments")
        return [self.compile(p) for p in params]

    @staticmethod
    def _root_arg(arg: Fn) -> Callable[[list[Any], Env], list[Any]]:
        """A non-lambda argument: evaluated against $this of the enclosing iteration."""
        def run(focus: list[Any], env: Env) -> list[Any]:
            return arg([env.this] if env.this is not None else [], env)
        return run

    @staticmethod
    def _per_item(crit: Fn, focus: list[Any], env: Env) -> list[tuple[Any, list[Any]]]:
        saved = env.this
        out = []
        try:
            for it in focus:
                env.this = it
                out.append((it, crit([it], env)))
        finally:
            env.this = saved
        return out

    def f_empty(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))
        return lambda focus, env: [not focus]

    def f_exists(self, params: list[dict[str, Any]]) -> Fn:
        args = self._args(params, (0, 1))
        if not args:
            return lambda focus, env: [bool(focus)]
        crit = args[0]
        return lambda focus, env: [any(truthy(r) for _, r in self._per_item(crit, focus, env))]

    def f_all(self, params: list[dict[str, Any]]) -> Fn:
        (crit,) = self._args(params, (1,))
        return lambda focus, env: [all(truthy(r) for _, r in self._per_item(crit, focus, env))]

    def f_where(self, params: list[dict[str, Any]]) -> Fn:
        (crit,) = self._args(params, (1,))
        return lambda focus, env: [it for it, r in self._per_item(crit, focus, env) if truthy(r)]

    def f_select(self, params: list[dict[str, Any]]) -> Fn:
        (proj,) = self._args(params, (1,))

        def select(focus: list[Any], env: Env) -> list[Any]:
            out: list[Any] = []
            for _, r in self._per_item(proj, focus, env):
                out.extend(r)
            return out
        return select

    def f_not(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))

        def not_(focus: list[Any], env: Env) -> list[Any]:
            b = truthy(focus)
            return [] if b is None else [not b]
        return not_

    def f_count(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))
        return lambda focus, env: [len(focus)]

    def f_first(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))
        return lambda focus, env: focus[:1]

    def f_last(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))
        return lambda focus, env: focus[-1:]

    def f_tail(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))
        return lambda focus, env: focus[1:]

    def f_skip(self, params: list[dict[str, Any]]) -> Fn:
        (n,) = [self._root_arg(a) for a in self._args(params, (1,))]
        return lambda focus, env: focus[int(_val(n(focus, env)[0])):]

    def f_take(self, params: list[dict[str, Any]]) -> Fn:
        (n,) = [self._root_arg(a) for a in self._args(params, (1,))]
        return lambda focus, env: focus[:int(_val(n(focus, env)[0]))]

    def f_single(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))

        def single(focus: list[Any], env: Env) -> list[Any]:
            if len(focus) > 1:
                raise FhirPathError("single() on several items")
            return focus
        return single

    def f_distinct(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))
        return lambda focus, env: _distinct(focus)

    def f_isDistinct(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))
        return lambda focus, env: [len(_distinct(focus)) == len(focus)]

    def _type_fn(self, params: list[dict[str, Any]]) -> str:
        if len(params) != 1:
            raise Unsupported("type function needs one type")
        return _type_name(params[0])

    def f_ofType(self, params: list[dict[str, Any]]) -> Fn:
        name = self._type_fn(params)
        return lambda focus, env: [i for i in focus if _has_type(self.ti, i, name)]

    def f_as(self, params: list[dict[str, Any]]) -> Fn:
        return self.f_ofType(params)

    def f_is(self, params: list[dict[str, Any]]) -> Fn:
        name = self._type_fn(params)

        def is_(focus: list[Any], env: Env) -> list[Any]:
            if not focus:
                return []
            if len(focus) > 1:
                raise FhirPathError("is() on several items")
            return [_has_type(self.ti, focus[0], name)]
        return is_

    def f_hasValue(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))
        return lambda focus, env: [len(focus) == 1 and isinstance(focus[0], Item)
                                   and focus[0].v is not None
                                   and not isinstance(focus[0].v, (dict, list))]

    def f_children(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))

        def children(focus: list[Any], env: Env) -> list[Any]:
            out: list[Any] = []
            for it in focus:
                out.extend(_children(self.ti, it))
            return out
        return children

    def f_descendants(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))

        def descendants(focus: list[Any], env: Env) -> list[Any]:
            out: list[Any] = []
            stack = list(focus)
            while stack:
                it = stack.pop()
                kids = _children(self.ti, it)
                out.extend(kids)
                stack.extend(kids)
            return out
        return descendants

    def _string_fn(self, params: list[dict[str, Any]], n: tuple[int, ...],
                   op: Callable[..., Any]) -> Fn:
        args = [self._root_arg(a) for a in self._args(params, n)]

        def fn(focus: list[Any], env: Env) -> list[Any]:
            if not focus:
                return []
            if len(focus) > 1:
                raise FhirPathError("string function on several items")
            s = _val(focus[0])
            if not isinstance(s, str):
                return []
            vals = []
            for a in args:
                r = a(focus, env)
                if not r:
                    return []
                vals.append(_val(r[0]))
            result = op(s, *vals)
            return [] if result is None else [result]
        return fn

    def f_startsWith(self, params: list[dict[str, Any]]) -> Fn:
        return self._string_fn(params, (1,), lambda s, p: s.startswith(p))

    def f_endsWith(self, params: list[dict[str, Any]]) -> Fn:
        return self._string_fn(params, (1,), lambda s, p: s.endswith(p))

    def f_contains(self, params: list[dict[str, Any]]) -> Fn:
        return self._string_fn(params, (1,), lambda s, p: p in s)

    def f_matches(self, params: list[dict[str, Any]]) -> Fn:
        return self._string_fn(params, (1,), lambda s, p: _regex(p).search(s) is not None)

    def f_replaceMatches(self, params: list[dict[str, Any]]) -> Fn:
        return self._string_fn(params, (2,), lambda s, p, r: _regex(p).sub(r, s))

    def f_length(self, params: list[dict[str, Any]]) -> Fn:
        return self._string_fn(params, (0,), len)

    def f_lower(self, params: list[dict[str, Any]]) -> Fn:
        return self._string_fn(params, (0,), str.lower)

    def f_upper(self, params: list[dict[str, Any]]) -> Fn:
        return self._string_fn(params, (0,), str.upper)

    def f_substring(self, params: list[dict[str, Any]]) -> Fn:
        def sub(s: str, start: int, length: int | None = None) -> str | None:
            if start < 0 or start >= len(s):
                return None
            return s[start:] if length is None else s[start:start + int(length)]
        return self._string_fn(params, (1, 2), sub)

    def f_toString(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))

        def to_string(focus: list[Any], env: Env) -> list[Any]:
            if len(focus) != 1:
                return []
            v = _val(focus[0])
            if isinstance(v, bool):
                return ["true" if v else "false"]
            if isinstance(v, (str, int, float, Decimal)):
                return [str(v)]
            return []
        return to_string

    def f_toInteger(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))

        def to_int(focus: list[Any], env: Env) -> list[Any]:
            if len(focus) != 1:
                return []
            v = _val(focus[0])
            if isinstance(v, bool):
                return [int(v)]
            if isinstance(v, int):
                return [v]
            if isinstance(v, str) and re.fullmatch(r"[+-]?\d+", v):
                return [int(v)]
            return []
        return to_int

    def f_iif(self, params: list[dict[str, Any]]) -> Fn:
        args = self._args(params, (2, 3))

        def iif(focus: list[Any], env: Env) -> list[Any]:
            saved = env.this
            if len(focus) == 1:
                env.this = focus[0]
            try:
                if truthy(args[0](focus, env)):
                    return args[1](focus, env)
                return args[2](focus, env) if len(args) > 2 else []
            finally:
                env.this = saved
        return iif

    def f_trace(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (1, 2))
        return lambda focus, env: focus

    def f_allTrue(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))
        return lambda focus, env: [all(_val(i) is True for i in focus)]

    def f_anyTrue(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))
        return lambda focus, env: [any(_val(i) is True for i in focus)]

    def f_allFalse(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))
        return lambda focus, env: [all(_val(i) is False for i in focus)]

    def f_anyFalse(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))
        return lambda focus, env: [any(_val(i) is False for i in focus)]

    def _set_fn(self, params: list[dict[str, Any]],
                op: Callable[[list[Any], list[Any]], list[Any]]) -> Fn:
        (other,) = [self._root_arg(a) for a in self._args(params, (1,))]
        return lambda focus, env: op(focus, other(focus, env))

    def f_intersect(self, params: list[dict[str, Any]]) -> Fn:
        return self._set_fn(params, lambda a, b: _distinct(
            [x for x in a if any(_equal(x, y) for y in b)]))

    def f_exclude(self, params: list[dict[str, Any]]) -> Fn:
        return self._set_fn(params, lambda a, b: [x for x in a if not any(_equal(x, y)
                                                                          for y in b)])

    def f_combine(self, params: list[dict[str, Any]]) -> Fn:
        return self._set_fn(params, lambda a, b: a + b)

    def f_union(self, params: list[dict[str, Any]]) -> Fn:
        return self._set_fn(params, lambda a, b: _distinct(a + b))

    def f_subsetOf(self, params: list[dict[str, Any]]) -> Fn:
        return self._set_fn(params, lambda a, b: [all(any(_equal(x, y) for y in b) for x in a)])

    def f_supersetOf(self, params: list[dict[str, Any]]) -> Fn:
        return self._set_fn(params, lambda a, b: [all(any(_equal(x, y) for y in a) for x in b)])

    def f_extension(self, params: list[dict[str, Any]]) -> Fn:
        (url,) = [self._root_arg(a) for a in self._args(params, (1,))]
        member = _member(self.ti, "extension")

        def extension(focus: list[Any], env: Env) -> list[Any]:
            u = url(focus, env)
            if not u:
                return []
            want = _val(u[0])
            return [e for e in member(focus, env) if isinstance(e.v, dict)
                    and e.v.get("url") == want]
        return extension

    def f_htmlChecks(self, params: list[dict[str, Any]]) -> Fn:
        # Narrative XHTML rules (R4 section 2.6.2.4) are not checked beyond being a string.
        self._args(params, (0,))
        return lambda focus, env: [all(isinstance(_val(i), dict) or isinstance(_val(i), str)
                                       for i in focus)]

    def f_resolve(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))

        def resolve(focus: list[Any], env: Env) -> list[Any]:
            out: list[Any] = []
            for it in focus:
                v = _val(it)
                ref = v.get("reference") if isinstance(v, dict) else v
                if isinstance(ref, str) and env.resolve is not None:
                    target = env.resolve(ref)
                    if target is not None:
                        out.append(make_item(target, None))
            return out
        return resolve

    def f_memberOf(self, params: list[dict[str, Any]]) -> Fn:
        """Terminology membership (the gateway's terminology engine); empty when it cannot
        decide, so an unverifiable code never fails an invariant."""
        (url,) = [self._root_arg(a) for a in self._args(params, (1,))]

        def member_of(focus: list[Any], env: Env) -> list[Any]:
            from .bindings import check_code

            u = url(focus, env)
            if len(focus) != 1 or not u:
                return []
            v, vs = _val(focus[0]), str(_val(u[0]))
            codes: list[tuple[str | None, str]] = []
            if isinstance(v, str):
                codes.append((None, v))
            elif isinstance(v, dict):
                for c in v.get("coding") or ([v] if "code" in v else []):
                    if isinstance(c, dict) and isinstance(c.get("code"), str):
                        codes.append((c.get("system"), c["code"]))
            results = {check_code(vs, code, system).result for system, code in codes}
            if "member" in results:
                return [True]
            if not results or "not-checked" in results:
                return []
            return [False]
        return member_of

    def f_today(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))
        return lambda focus, env: [_DateLit(date.today().isoformat())]

    def f_now(self, params: list[dict[str, Any]]) -> Fn:
        self._args(params, (0,))
        return lambda focus, env: [_DateLit(datetime.now(timezone.utc).isoformat())]


@lru_cache(maxsize=256)
def _regex(p: str) -> re.Pattern[str]:
    return re.compile(p)


# ------------------------------------------------------------------------ fallback

def _fhirpathpy_fn(expression: str) -> Callable[[Item, Env], list[Any]]:
    """Evaluate with fhirpathpy itself (used for what the compiler does not cover)."""
    import fhirpathpy
    from fhirpathpy.models import models

    def has_value(inputs: list[Any]) -> list[bool]:
        return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], dict)]

    table = {"hasValue": {"fn": has_value, "arity": {0: []}},
             "htmlChecks": {"fn": lambda inputs: [True], "arity": {0: []}}}
    fn = fhirpathpy.compile(expression, models["r4"],
                            options={"userInvocationTable": table,
                                     "traceFn": lambda *a, **k: None})

    def run(item: Item, env: Env) -> list[Any]:
        res = env.resource.v if env.resource is not None else None
        root = env.root.v if env.root is not None else res
        return list(fn(item.v, {"resource": res, "rootResource": root}))
    return run


def _triggers(tree: dict[str, Any]) -> frozenset[str] | None:
    """Names of the context's children an expression can read, or None for "anything".

    Every identifier that starts a path anywhere in the expression is collected
    (inside ``where()`` too, which only widens the set). An expression that
    starts from the context itself (``$this``, a function with no input such as
    ``hasValue()`` or ``where()``, a type name) or from %resource /
    %rootResource reads anything. If none of the names is present, the result
    is the result on an empty element, computed once."""
    names: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        kind = node.get("type")
        if kind == "ExternalConstantTerm":
            return None
        if kind == "InvocationTerm":
            inner = node["children"][0]
            if inner.get("type") != "MemberInvocation":
                return None
            name = _unquote(_text(inner["children"][0]))
            if name[:1].isupper():
                return None
            names.add(name)
        stack.extend(node.get("children") or [])
    return frozenset(names)


@dataclass(frozen=True, slots=True)
class Compiled:
    """A compiled expression: ``engine`` is "native" or "fhirpathpy"."""

    expression: str
    engine: str
    fn: Callable[[Item, Env], list[Any]]
    triggers: frozenset[str] | None = None

    def evaluate(self, item: Item, env: Env) -> list[Any]:
        v = item.v
        if self.triggers is not None and isinstance(v, dict) and not _reads(v, self.triggers):
            key = (self.expression, item.t)
            hit = _EMPTY_RESULTS.get(key)
            if hit is None:
                hit = self.fn(Item({}, item.t), Env())
                _EMPTY_RESULTS[key] = hit
            return hit
        return self.fn(item, env)


_EMPTY_RESULTS: dict[tuple[str, str | None], list[Any]] = {}


def _reads(node: dict[str, Any], names: frozenset[str]) -> bool:
    if not names.isdisjoint(node):
        return True
    for key in node:
        if key[:1] == "_":
            if key[1:] in names:
                return True
            key = key[1:]
        for n in names:
            if key.startswith(n) and key[len(n):len(n) + 1].isupper():
                return True
    return False


_lock = threading.Lock()


@lru_cache(maxsize=2048)
def _compile_cached(expression: str) -> Compiled:
    from fhirpathpy.parser import parse

    try:
        tree = parse(expression)
    except Exception as exc:  # antlr raises plain exceptions
        raise FhirPathError(f"cannot parse {expression!r}: {exc}") from exc
    try:
        native = _Compiler(type_info()).compile(tree)
    except Unsupported:
        return Compiled(expression, "fhirpathpy", _fhirpathpy_fn(expression), _triggers(tree))

    def run(item: Item, env: Env) -> list[Any]:
        saved = env.this
        env.this = item
        try:
            return native([item], env)
        finally:
            env.this = saved
    return Compiled(expression, "native", run, _triggers(tree))


def compile_expression(expression: str) -> Compiled:
    """Compile once (cached by text); raises :class:`FhirPathError` if it cannot be parsed."""
    with _lock:
        return _compile_cached(expression)
