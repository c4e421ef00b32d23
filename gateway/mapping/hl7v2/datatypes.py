"""Value transforms: HL7 v2 data types to FHIR R4 data types.

Each transform is a small typed function registered under the name a mapping
file uses in ``as:``. It receives one repetition of a field (or component), the
mapping context and the rule's ``args``, and returns a FHIR value or ``None``.
``uses`` lists the components it reads: a filled component outside that set
is reported by the engine as unmapped, so nothing is dropped silently.

Data types follow HL7 v2.5.1 chapter 2A; the FHIR side follows the HL7
"V2-to-FHIR" mapping project (data type maps) where it gives an answer.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ...formats.hl7v2.er7 import Rep

if TYPE_CHECKING:
    from .context import RuleContext

__all__ = ["Transform", "TRANSFORMS", "transform", "hl7_datetime"]

TransformFn = Callable[[Rep, "RuleContext", dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Transform:
    name: str
    fn: TransformFn
    uses: frozenset[int] | None  # components read; None = the whole value
    many: bool = False  # receives the list of all repetitions at once
    uses_upto: int = 0  # 1..uses_upto are all read: a shorter value needs no check


TRANSFORMS: dict[str, Transform] = {}


def transform(name: str, uses: set[int] | None = None, many: bool = False):  # type: ignore[no-untyped-def]
    def deco(fn: TransformFn) -> TransformFn:
        upto = 0
        while uses is not None and upto + 1 in uses:
            upto += 1
        TRANSFORMS[name] = Transform(name, fn, frozenset(uses) if uses is not None else None, many,
                                     upto)
        return fn

    return deco


# --------------------------------------------------------------------------- dates

_DTM = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?$"
)


@lru_cache(maxsize=4096)  # pure; a message repeats its times (MSH-7, OBR-7, every OBX-14)
def hl7_datetime(text: str, default_tz: str | None = None) -> tuple[str | None, str | None]:
    """HL7 DTM/TS ``YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`` to a FHIR
    dateTime. Returns (value, problem). FHIR requires a time zone with a
    time: without one, the sender's zone from MSH-7 is used; without that,
    the value is cut to the date and the problem says so."""
    text = text.strip()
    m = _DTM.match(text)
    if not m:
        return None, f"{text!r} is not an HL7 date/time (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])"
    year, month, day, hh, mi, ss, frac, tz = m.groups()
    try:
        if month and not 1 <= int(month) <= 12:
            raise ValueError("month")
        if day and not 1 <= int(day) <= 31:
            raise ValueError("day")
        if hh and int(hh) > 23 or mi and int(mi) > 59 or ss and int(ss) > 60:
            raise ValueError("time")
    except ValueError:
        return None, f"{text!r} is not a valid date/time"
    date = year + (f"-{month}" if month else "") + (f"-{day}" if day else "")
    if not hh:
        return date, None
    zone = tz or default_tz
    if not day:
        return date, f"time without a day in {text!r}"
    if not zone:
        return date, f"time in {text!r} has no time zone (and MSH-7 gives none): kept as a date"
    t = f"{hh}:{mi or '00'}:{ss or '00'}{frac or ''}"
    z = "Z" if zone in ("+0000", "-0000") and not tz else f"{zone[:3]}:{zone[3:]}"
    if tz in ("+0000",):
        z = "+00:00"
    return f"{date}T{t}{z}", None


def _timezone_of(text: str) -> str | None:
    m = _DTM.match(text.strip())
    return m.group(8) if m else None


@transform("dateTime", uses={1})
def t_datetime(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> str | None:
    value, problem = hl7_datetime(rep.get(1), ctx.default_tz)
    if problem:
        ctx.report(problem, "information" if value else "warning", code="value")
    return value


@transform("date", uses={1})
def t_date(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> str | None:
    text = rep.get(1).strip()
    value, problem = hl7_datetime(text, ctx.default_tz)
    if value is None:
        ctx.report(problem or f"bad date {text!r}", "warning", code="value")
        return None
    if len(text) > 8 and text[8:12].strip("0") and not args.get("quiet_time"):
        ctx.report(f"time part of {text!r} not kept: the target is a date", "information")
    return value[:10]


@transform("instant", uses={1})
def t_instant(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> str | None:
    value, problem = hl7_datetime(rep.get(1), ctx.default_tz)
    if value is None or "T" not in value:
        ctx.report(problem or f"{rep.get(1)!r} lacks the precision of an instant", "warning",
                   code="value")
        return None
    return value


@transform("period", uses={1, 2})
def t_period(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> dict[str, str] | None:
    """DR (date range): start ^ end."""
    out: dict[str, str] = {}
    for comp, key in ((1, "start"), (2, "end")):
        text = rep.get(comp)
        if text:
            value, problem = hl7_datetime(text, ctx.default_tz)
            if problem:
                ctx.report(problem, "information" if value else "warning", code="value")
            if value:
                out[key] = value
    return out or None


# ------------------------------------------------------------------ primitives

@transform("string", uses={1})
def t_string(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> str | None:
    return rep.get(1).strip() or None


@transform("text", uses=None)
def t_text(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> str | None:
    """A whole TX/FT/ST value (components, if any, joined as written)."""
    text = rep.text()
    text = text.replace(rep._enc.component, " ") if args.get("join_components") else text
    return text.strip() or None


@transform("text_lines", uses=None, many=True)
def t_text_lines(reps: list[Rep], ctx: "RuleContext", args: dict[str, Any]) -> str | None:
    text = "\n".join(r.text() for r in reps)
    return text or None


@transform("code", uses={1})
def t_code(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    code = rep.get(1).strip()
    if not code:
        return None
    table = args.get("table")
    if not table:
        return code
    mapped = ctx.lookup(table, code)
    if mapped is None:
        ctx.report(f"code {code!r} is not in table {table!r}; not mapped", "warning",
                   code="code-invalid")
    return mapped


@transform("boolean", uses={1})
def t_boolean(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> bool | None:
    v = rep.get(1).strip().upper()
    if v in ("Y", "YES", "T", "TRUE", "1"):
        return True
    if v in ("N", "NO", "F", "FALSE", "0"):
        return False
    ctx.report(f"{v!r} is not a yes/no value", "warning", code="value")
    return None


_INT64 = Decimal(2**63)


@lru_cache(maxsize=4096)  # pure, and read for every numeric value
def _number(text: str) -> int | float | Decimal | None:
    text = text.strip()
    if not text:
        return None
    try:
        d = Decimal(text)
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    if d == d.to_integral_value() and "." not in text and "e" not in text.lower():
        return int(d) if -_INT64 <= d < _INT64 else None
    f = float(text)
    return f if math.isfinite(f) else None


@transform("decimal", uses={1})
def t_decimal(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> int | float | None:
    n = _number(rep.get(1))
    if n is None:
        ctx.report(f"{rep.get(1)!r} is not a number", "warning", code="value")
        return None
    return n  # type: ignore[return-value]


@transform("integer", uses={1})
def t_integer(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> int | None:
    n = _number(rep.get(1))
    if not isinstance(n, int):
        ctx.report(f"{rep.get(1)!r} is not an integer", "warning", code="value")
        return None
    return n


# ------------------------------------------------------------------ identifiers

_OID = re.compile(r"[0-2](\.(0|[1-9]\d*))+")


def _hd_system(rep: Rep, ns: int, uid: int, uid_type: int, ctx: "RuleContext") -> str | None:
    """An HD (namespace, universal id, universal id type) as a system URI."""
    universal = rep.get(uid).strip() if uid else ""
    kind = rep.get(uid_type).strip().upper() if uid_type else ""
    if universal:
        if kind == "ISO" or (not kind and _OID.fullmatch(universal)):
            return f"urn:oid:{universal}"
        if kind in ("URI", "URL") or universal.startswith(("http:", "https:", "urn:")):
            return universal
        if kind in ("UUID", "GUID"):
            return f"urn:uuid:{universal}"
    namespace = rep.get(ns).strip() if ns else ""
    if namespace:
        return ctx.lookup("assigning-authorities", namespace, quiet=True)
    return None


def _identifier_type(code: str, ctx: "RuleContext") -> dict[str, Any] | None:
    if not code:
        return None
    return {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": code}]}


@transform("CX", uses={1, 4, 5, 7, 8})
def t_cx(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> dict[str, Any] | None:
    value = rep.get(1).strip()
    if not value:
        return None
    ident: dict[str, Any] = {}
    if args.get("use"):
        ident["use"] = args["use"]
    id_type = rep.get(5).strip() or args.get("type", "")
    t = _identifier_type(id_type, ctx)
    if t:
        ident["type"] = t
    authority = rep.component(4)
    system = _hd_system(authority, 1, 2, 3, ctx)
    if system:
        ident["system"] = system
    ident["value"] = value
    start, end = rep.get(7), rep.get(8)
    if start or end:
        period = {}
        for k, v in (("start", start), ("end", end)):
            if v:
                dt, _ = hl7_datetime(v, ctx.default_tz)
                if dt:
                    period[k] = dt
        if period:
            ident["period"] = period
    if authority.get(1) and not system:
        ident["assigner"] = {"display": authority.get(1)}
    return ident


@transform("EI", uses={1, 2, 3, 4})
def t_ei(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> dict[str, Any] | None:
    value = rep.get(1).strip()
    if not value:
        return None
    ident: dict[str, Any] = {}
    id_type = _identifier_type(args.get("type", ""), ctx)
    if id_type:
        ident["type"] = id_type
    system = _hd_system(rep, 2, 3, 4, ctx)
    if system:
        ident["system"] = system
    ident["value"] = value
    if rep.get(2) and not system:
        ident["assigner"] = {"display": rep.get(2)}
    return ident


# ------------------------------------------------------------------ coded values

def coding(rep: Rep, ctx: "RuleContext", code_c: int, text_c: int, sys_c: int,
           ver_c: int | None = None) -> dict[str, Any] | None:
    code = rep.get(code_c).strip()
    if not code:
        return None
    display = rep.get(text_c).strip()
    out: dict[str, Any] = {}
    sysname = rep.get(sys_c).strip()
    if sysname:
        uri = ctx.system_uri(sysname)
        if uri:
            out["system"] = uri
        else:
            ctx.report(f"coding system {sysname!r} is not known: code {code!r} kept "
                       "without a system", "information", code="code-invalid")
    if ver_c:
        version = rep.get(ver_c).strip()
        if version:
            out["version"] = version
    out["code"] = code
    if display:
        out["display"] = display
    return out


@transform("CWE", uses={1, 2, 3, 4, 5, 6, 7, 8, 9})
def t_cwe(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> dict[str, Any] | None:
    """CE / CWE / CNE to CodeableConcept. With ``table``, the translated
    coding comes first and the original coding is kept after it."""
    first = coding(rep, ctx, 1, 2, 3, 7)
    # the alternate coding (components 4-6) is absent from most values
    alternate = coding(rep, ctx, 4, 5, 6, 8) if rep.get(4).strip() else None
    codings = [c for c in (first, alternate) if c]
    default_system = args.get("default_system")
    if default_system and codings and "system" not in codings[0] and not rep.get(3).strip():
        codings[0] = {"system": default_system, **codings[0]}
    table = args.get("table")
    if table and codings:
        mapped = ctx.lookup(table, codings[0]["code"], quiet=True)
        if isinstance(mapped, dict) and mapped not in codings:
            codings.insert(0, dict(mapped))
        elif mapped is None:
            ctx.report(f"code {codings[0]['code']!r} is not in table {table!r}; kept as sent",
                       "information", code="code-invalid")
    if codings and not args.get("no_translation"):
        seen: set[tuple[Any, Any]] | None = None  # the codings sent; made when a map adds one
        for original in list(codings):
            if "system" not in original:
                continue
            found = ctx.translations(original["system"], original["code"])
            if not found:
                continue
            if seen is None:
                seen = {(c.get("system"), c.get("code")) for c in codings}
            for t in found:
                if (t.get("system"), t.get("code")) not in seen:
                    seen.add((t.get("system"), t.get("code")))
                    codings.append(t)
    out: dict[str, Any] = {}
    if codings:
        out["coding"] = codings
    # original text, else the display of a value without a code (no first coding)
    text = rep.get(9).strip() or (rep.get(2).strip() if first is None else "")
    if text:
        out["text"] = text
    elif codings and "display" in codings[-1] and len(codings) > 1 and not table:
        pass
    return out or None


@transform("CWE_text", uses={1, 2, 9})
def t_cwe_text(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> str | None:
    """A coded value read for its text only (original text, else display, else code)."""
    return (rep.get(9) or rep.get(2) or rep.get(1)).strip() or None


@transform("Coding", uses={1, 2, 3})
def t_coding(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> dict[str, Any] | None:
    """A coded value to one Coding; with ``table``, the table's coding (the
    original is then reported, since a Coding has room for one code)."""
    table = args.get("table")
    code = rep.get(1).strip()
    if not code:
        return None
    if table:
        mapped = ctx.lookup(table, code)
        if mapped is None:
            ctx.report(f"code {code!r} is not in table {table!r}; not mapped", "warning",
                       code="code-invalid")
            return None
        return dict(mapped) if isinstance(mapped, dict) else {"code": mapped}
    return coding(rep, ctx, 1, 2, 3)


# ------------------------------------------------------------------ names, addresses, telecom

_NAME_EXT = "http://hl7.org/fhir/StructureDefinition/humanname-"


@transform("XPN", uses={1, 2, 3, 4, 5, 6, 7, 10, 12, 13})
def t_xpn(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> dict[str, Any] | None:
    """XPN to HumanName. XPN-1 (FN) subcomponents 2-5 go to the ISO 21090
    own/partner name extensions."""
    name: dict[str, Any] = {}
    use = rep.get(7).strip()
    if use:
        mapped = ctx.lookup("name-use", use, quiet=True)
        if mapped:
            name["use"] = mapped
        else:
            ctx.report(f"name type {use!r} has no FHIR name use", "information", code="code-invalid")
    elif args.get("use"):
        name["use"] = args["use"]
    family = rep.get(1, 1).strip()
    if family:
        name["family"] = family
        exts = []
        for sub, ext in ((2, "own-prefix"), (3, "own-name"), (4, "partner-prefix"),
                         (5, "partner-name")):
            v = rep.get(1, sub).strip()
            if v:
                exts.append({"url": _NAME_EXT + ext, "valueString": v})
        if exts:
            name["_family"] = {"extension": exts}
    given = [g for g in (rep.get(2).strip(), rep.get(3).strip()) if g]
    if given:
        name["given"] = given
    if rep.get(5).strip():
        name["prefix"] = [rep.get(5).strip()]
    suffix = [s for s in (rep.get(4).strip(), rep.get(6).strip()) if s]
    if suffix:
        name["suffix"] = suffix
    start, end = rep.get(12) or rep.get(10, 1), rep.get(13) or rep.get(10, 2)
    period = {}
    for key, v in (("start", start), ("end", end)):
        if v:
            dt, _ = hl7_datetime(v, ctx.default_tz)
            if dt:
                period[key] = dt
    if period:
        name["period"] = period
    if not (family or given):
        return None
    return name


@transform("XAD", uses={1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 14})
def t_xad(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> dict[str, Any] | None:
    addr: dict[str, Any] = {}
    kind = rep.get(7).strip()
    if kind:
        mapped = ctx.lookup("address-type", kind, quiet=True)
        if isinstance(mapped, dict):
            addr.update(mapped)
        else:
            ctx.report(f"address type {kind!r} has no FHIR equivalent", "information",
                       code="code-invalid")
    street = " ".join(s for s in (rep.get(1, 1), rep.get(1, 3), rep.get(1, 2)) if s.strip())
    lines = [x for x in (street.strip(), rep.get(2).strip()) if x]
    if lines:
        addr["line"] = lines
    for comp, key in ((3, "city"), (9, "district"), (4, "state"), (5, "postalCode"),
                      (6, "country")):
        v = rep.get(comp).strip()
        if v:
            addr[key] = v
    # XAD-13 effective and XAD-14 expiration date; before v2.5, the range XAD-12
    period = {}
    for key, c, old in (("start", 13, 1), ("end", 14, 2)):
        v = rep.get(c).strip() or rep.get(12, old).strip()
        if v:
            dt, _ = hl7_datetime(v, ctx.default_tz)
            if dt:
                period[key] = dt
    if period:
        addr["period"] = period
    return addr if (lines or any(k in addr for k in ("city", "postalCode", "country", "state"))) else None


@transform("XTN", uses={1, 2, 3, 4, 5, 6, 7, 8, 12})
def t_xtn(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> dict[str, Any] | None:
    cp: dict[str, Any] = {}
    equipment = rep.get(3).strip()
    use_code = rep.get(2).strip()
    email = rep.get(4).strip()
    is_email = equipment.upper() in ("INTERNET", "X.400") or use_code.upper() == "NET"
    if email and not is_email:
        ctx.report(f"XTN-4 {email!r} is an e-mail address but XTN-3 is {equipment!r}: not used",
                   "warning", code="value")
    if email and is_email:
        value = email
        cp["system"] = "email"
    else:
        value = rep.get(12).strip() or rep.get(1).strip()
        if not value and (rep.get(6) or rep.get(7)):
            value = ""
            if rep.get(5):
                value += f"+{rep.get(5).strip()} "
            if rep.get(6):
                value += f"({rep.get(6).strip()}) "
            value += rep.get(7).strip()
            if rep.get(8):
                value += f" ext. {rep.get(8).strip()}"
        mapped = ctx.lookup("telecom-equipment", equipment, quiet=True) if equipment else None
        if isinstance(mapped, dict):
            cp.update(mapped)
        elif equipment:
            ctx.report(f"telecom equipment type {equipment!r} not known", "information",
                       code="code-invalid")
        cp.setdefault("system", "phone")
    if not value.strip():
        return None
    cp["value"] = value.strip()
    use = ctx.lookup("telecom-use", use_code, quiet=True) if use_code else None
    if isinstance(use, str):
        cp.setdefault("use", use)
    elif args.get("use"):
        cp.setdefault("use", args["use"])
    return cp


# ------------------------------------------------------------------ people and places as resources

def _practitioner_name(rep: Rep) -> dict[str, Any] | None:
    family = rep.get(2, 1).strip()
    given = [g for g in (rep.get(3).strip(), rep.get(4).strip()) if g]
    if not (family or given):
        return None
    name: dict[str, Any] = {}
    if family:
        name["family"] = family
    if given:
        name["given"] = given
    prefix = rep.get(6).strip()
    if prefix:
        name["prefix"] = [prefix]
    suffix = [s for s in (rep.get(5).strip(), rep.get(7).strip()) if s]
    if suffix:
        name["suffix"] = suffix
    return name


def _display(name: dict[str, Any] | None, fallback: str = "") -> str:
    if not name:
        return fallback
    parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
    return " ".join(p for p in parts if p) or fallback


@transform("XCN", uses={1, 2, 3, 4, 5, 6, 7, 9, 13})
def t_xcn(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> dict[str, Any] | None:
    """XCN to a Reference to a Practitioner, emitted once per person (keyed by
    id and assigning authority, else by name)."""
    ident_value = rep.get(1).strip()
    name = _practitioner_name(rep)
    if not ident_value and not name:
        text = rep.text().strip()
        return {"display": text} if text else None
    body: dict[str, Any] = {"resourceType": "Practitioner"}
    authority = rep.component(9)
    if ident_value:
        ident: dict[str, Any] = {}
        id_type = rep.get(13).strip()
        if id_type:
            ident["type"] = _identifier_type(id_type, ctx)
        system = _hd_system(authority, 1, 2, 3, ctx)
        if system:
            ident["system"] = system
        ident["value"] = ident_value
        if authority.get(1) and not system:
            ident["assigner"] = {"display": authority.get(1)}
        body["identifier"] = [ident]
        key = ("id", authority.get(1) or authority.get(2) or ctx.sender, ident_value)
    else:
        key = ("name", ctx.sender, _display(name))
    if name:
        body["name"] = [name]
    ref = ctx.emit("Practitioner", key, body)
    display = _display(name, ident_value)
    if display:
        ref["display"] = display
    return ref


@transform("XON", uses={1, 3, 6, 10})
def t_xon(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> dict[str, Any] | None:
    name = rep.get(1).strip()
    ident_value = (rep.get(10) or rep.get(3)).strip()
    if not (name or ident_value):
        return None
    body: dict[str, Any] = {"resourceType": "Organization"}
    if ident_value:
        ident: dict[str, Any] = {"value": ident_value}
        system = _hd_system(rep.component(6), 1, 2, 3, ctx)
        if system:
            ident = {"system": system, **ident}
        body["identifier"] = [ident]
    if name:
        body["name"] = name
    key = ("id", ident_value) if ident_value else ("name", name)
    ref = ctx.emit("Organization", key, body)
    if name:
        ref["display"] = name
    return ref


def _hd_resource(rep: Rep, ctx: "RuleContext", rtype: str, named: Any) -> dict[str, Any] | None:
    """An HD (namespace ^ universal id ^ type) as a Reference to a resource
    of ``rtype`` identified by its universal id and named by ``named(name)``."""
    namespace, universal = rep.get(1).strip(), rep.get(2).strip()
    if not (namespace or universal):
        return None
    name = namespace or universal
    body: dict[str, Any] = {"resourceType": rtype, **named(name)}
    if universal:
        body["identifier"] = [{"system": "urn:ietf:rfc:3986",
                               "value": _hd_system(rep, 0, 2, 3, ctx) or universal}]
    ref = ctx.emit(rtype, ("hd", universal or namespace), body)
    ref["display"] = name
    return ref


@transform("HD_organization", uses={1, 2, 3})
def t_hd_org(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> dict[str, Any] | None:
    """A facility (HD, e.g. MSH-4) as a Reference to an Organization."""
    return _hd_resource(rep, ctx, "Organization", lambda name: {"name": name})


@transform("HD_device", uses={1, 2, 3})
def t_hd_device(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> dict[str, Any] | None:
    """An application (HD, e.g. MSH-3) as a Reference to a Device."""
    return _hd_resource(rep, ctx, "Device",
                        lambda name: {"deviceName": [{"name": name, "type": "user-friendly-name"}]})


@transform("PL", uses={1, 2, 3, 4, 7, 8, 9})
def t_pl(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> dict[str, Any] | None:
    """PL (person location) to a Reference to a Location named after its parts,
    from the facility down to the bed."""
    facility = rep.get(4).strip()
    parts = [("facility", facility), ("building", rep.get(7).strip()),
             ("floor", rep.get(8).strip()), ("point of care", rep.get(1).strip()),
             ("room", rep.get(2).strip()), ("bed", rep.get(3).strip())]
    present = [(k, v) for k, v in parts if v]
    if not present:
        return None
    name = ", ".join(f"{k} {v}" if k in ("room", "bed", "floor", "building") else v
                     for k, v in present)
    body: dict[str, Any] = {"resourceType": "Location", "name": name, "mode": "instance"}
    description = rep.get(9).strip()
    if description:
        body["description"] = description
    bed = rep.get(3).strip()
    room = rep.get(2).strip()
    physical = "bd" if bed else "ro" if room else "wa" if rep.get(1).strip() else None
    if physical:
        body["physicalType"] = {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
            "code": physical}]}
    ref = ctx.emit("Location", tuple(v for _, v in parts), body)
    ref["display"] = name
    return ref


# ------------------------------------------------------------------ quantities and observation values

def unit_coding(unit_rep: Rep, ctx: "RuleContext") -> dict[str, Any]:
    """Units (CWE) to the unit/system/code of a Quantity: the unit as sent
    (its text, else its code; a unit sent as text only is kept too), and
    the UCUM code when the sender names UCUM or the unit is a known UCUM
    spelling. ISO+ and ANS+ units are not UCUM codes (``mcg``, ``MEQ/L``):
    they get a UCUM code only where the table knows their spelling."""
    code = unit_rep.get(1).strip()
    text = unit_rep.get(2).strip()
    sysname = unit_rep.get(3).strip().upper()
    out: dict[str, Any] = {}
    if not (code or text):
        return out
    out["unit"] = text or code
    ucum = ctx.lookup("ucum-units", code or text, quiet=True)
    if code and sysname == "UCUM":
        out["system"] = "http://unitsofmeasure.org"
        out["code"] = ucum if isinstance(ucum, str) else code
    elif ucum:
        out["system"] = "http://unitsofmeasure.org"
        out["code"] = ucum if isinstance(ucum, str) else code or text
    else:
        ctx.report(f"unit {code or text!r} is not a known UCUM unit: kept as text", "information",
                   code="code-invalid")
    return out


@transform("CQ", uses={1, 2})
def t_cq(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> dict[str, Any] | None:
    value = _number(rep.get(1))
    if value is None:
        if rep.get(1).strip():
            ctx.report(f"{rep.get(1)!r} is not a number", "warning", code="value")
        return None
    q: dict[str, Any] = {"value": value}
    q.update(unit_coding(rep.component(2), ctx))
    return q


@transform("unit", uses={1, 2, 3})
def t_unit(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> dict[str, Any] | None:
    """A units field (CWE) merged into an existing Quantity at the path."""
    return unit_coding(rep, ctx) or None


_SN_RANGE = {"-": "Range", ":": "Ratio", "/": "Ratio"}


def _media_type(kind: str, subtype: str) -> str:
    if "/" in subtype:
        return subtype.lower()
    major = {"TEXT": "text", "IMAGE": "image", "AUDIO": "audio", "VIDEO": "video",
             "APPLICATION": "application", "MULTIPART": "multipart", "AP": "application",
             "IM": "image", "AU": "audio", "TX": "text"}.get(kind.upper())
    minor = subtype.lower() if subtype else ""
    if major and minor:
        return f"{major}/{minor}"
    return "application/octet-stream"


def observation_value(reps: list[Rep], value_type: str, units: Rep,
                      ctx: "RuleContext") -> tuple[str, Any] | None:
    """OBX-5 by OBX-2 to Observation.value[x] (R4). ED and RP, which R4's
    value[x] cannot hold, become an Attachment for the caller to place."""
    if not reps:
        return None
    first = reps[0]
    vt = value_type.upper()
    if len(reps) > 1 and vt not in ("TX", "FT", "ST"):
        ctx.report(f"{len(reps)} repetitions of a {vt} value: only the first fits "
                   "Observation.value", "warning", code="structure")
    if vt in ("NM",):
        n = _number(first.get(1))
        if n is None:
            ctx.report(f"NM value {first.get(1)!r} is not a number: kept as a string",
                       "warning", code="value")
            return ("String", first.text())
        q: dict[str, Any] = {"value": n}
        q.update(unit_coding(units, ctx))
        return ("Quantity", q)
    if vt in ("ST", "TX", "FT"):
        return ("String", "\n".join(r.text() for r in reps))
    if vt in ("CE", "CWE", "CNE", "CF"):
        cc = t_cwe(first, ctx, {})
        return ("CodeableConcept", cc) if cc else None
    if vt == "SN":
        comparator, n1, sep, n2 = first.get(1).strip(), _number(first.get(2)), first.get(3), _number(first.get(4))
        unit = unit_coding(units, ctx)
        if sep in _SN_RANGE and n1 is not None and n2 is not None:
            if _SN_RANGE[sep] == "Range":
                return ("Range", {"low": {"value": n1, **unit}, "high": {"value": n2, **unit}})
            return ("Ratio", {"numerator": {"value": n1}, "denominator": {"value": n2}})
        if n1 is None:
            ctx.report(f"SN value {first.raw!r} has no number", "warning", code="value")
            return ("String", first.text())
        q = {"value": n1, **unit}
        if comparator in ("<", "<=", ">=", ">"):
            q["comparator"] = comparator
        elif comparator and comparator != "=":
            ctx.report(f"SN comparator {comparator!r} not allowed in FHIR", "warning", code="value")
        return ("Quantity", q)
    if vt in ("TS", "DTM", "DT"):
        value, problem = hl7_datetime(first.get(1), ctx.default_tz)
        if problem:
            ctx.report(problem, "information" if value else "warning", code="value")
        return ("DateTime", value) if value else None
    if vt == "TM":
        t = first.get(1).strip()
        m = re.match(r"^(\d{2})(\d{2})?(\d{2})?", t)
        if not m:
            return None
        return ("Time", f"{m.group(1)}:{m.group(2) or '00'}:{m.group(3) or '00'}")
    if vt == "CQ":
        q2 = t_cq(first, ctx, {})
        return ("Quantity", q2) if q2 else None
    if vt == "ED":
        att: dict[str, Any] = {"contentType": _media_type(first.get(2), first.get(3))}
        data, encoding = first.get(5), first.get(4).strip().upper()
        if data:
            if encoding in ("BASE64", "B64"):
                att["data"] = data.strip()
            elif encoding in ("HEX",):
                try:
                    att["data"] = base64.b64encode(bytes.fromhex(data)).decode()
                except ValueError:
                    ctx.report("ED data is not valid hex", "warning", code="value")
            else:
                att["data"] = base64.b64encode(data.encode("utf-8")).decode()
        else:
            ctx.report("ED value carries no data", "warning", code="incomplete")
        if first.get(1):
            att["title"] = first.get(1)
        return ("Attachment", att)
    if vt == "RP":
        att = {"url": first.get(1).strip(), "contentType": _media_type(first.get(3), first.get(4))}
        return ("Attachment", att)
    ctx.report(f"value type {vt!r} is not supported: value kept as a string", "warning",
               code="not-supported")
    return ("String", first.text())


_RANGE = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*[-_–]\s*(-?\d+(?:\.\d+)?)\s*")
_BOUND = re.compile(r"\s*(<=?|>=?)\s*(-?\d+(?:\.\d+)?)\s*")


@transform("range", uses=None)
def t_range(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> dict[str, Any] | None:
    """OBX-7 reference range text (``70-80``, ``<5``, ``>10``, ``3.5_5``); the
    text is always kept, the bounds are added when they read unambiguously."""
    text = rep.text().strip()
    if not text:
        return None
    out: dict[str, Any] = {"text": text}
    m = _RANGE.fullmatch(text)
    if m:
        low, high = _number(m.group(1)), _number(m.group(2))
        out["low"], out["high"] = {"value": low}, {"value": high}
    else:
        m = _BOUND.fullmatch(text)
        if m:
            key = "high" if m.group(1).startswith("<") else "low"
            out[key] = {"value": _number(m.group(2))}
    return out
