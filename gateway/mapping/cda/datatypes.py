"""Value transforms: CDA R2 data types (HL7 V3 Data Types R1) to FHIR R4.

Each transform is a small typed function registered under the name a
mapping file uses in ``as:``. It receives the element a rule's source path
selected (or, for a path ending in ``/@name``, that attribute's text), the
document context and the rule's ``args``, and returns a FHIR value or
``None``. A transform answers for the whole element it is given
(translations, ``originalText``, ``low``/``high``...): what it cannot carry
it reports.

This module: the registry, II, CD/CE/CV/CO/CS, ST/ED text, BL, INT, and
``nullFlavor`` → ``data-absent-reason``. Times are in ``temporal.py``,
quantities and ``observation.value`` in ``quantities.py``, names, addresses
and telecoms in ``demographics.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree

from ...formats.cda.namespaces import EPSOS, PHARM, V3
from .context import OID, UUID, DocContext

__all__ = [
    "Transform",
    "TRANSFORMS",
    "transform",
    "Node",
    "codeable",
    "coding_of",
    "local",
    "data_absent",
    "DAR_URL",
]

Node = etree._Element | str
TransformFn = Callable[[Any, DocContext, dict[str, Any]], Any]
DAR_URL = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"


@dataclass(frozen=True, slots=True)
class Transform:
    name: str
    fn: TransformFn
    many: bool = False  # receives every selected element at once
    reads: bool = True  # False: presence only; the element counts as not read


TRANSFORMS: dict[str, Transform] = {}


def transform(name: str, many: bool = False, reads: bool = True):  # type: ignore[no-untyped-def]
    def deco(fn: TransformFn) -> TransformFn:
        TRANSFORMS[name] = Transform(name, fn, many, reads)
        return fn

    return deco


_V3 = f"{{{V3}}}"
_TRANSLATION = (f"{_V3}translation", f"{{{PHARM}}}translation", f"{{{EPSOS}}}translation")
_ORIGINAL = (f"{_V3}originalText", f"{{{PHARM}}}originalText", f"{{{EPSOS}}}originalText")
_QUALIFIER = (f"{_V3}qualifier", f"{{{PHARM}}}qualifier", f"{{{EPSOS}}}qualifier")


def local(el: etree._Element) -> str:
    tag = el.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def data_absent(ctx: DocContext, flavor: str | None) -> dict[str, Any] | None:
    """The ``data-absent-reason`` extension for a ``nullFlavor``
    (``tables.yaml`` ``null-flavors``)."""
    if not flavor:
        return None
    code = ctx.table("null-flavors").get(flavor, "unknown")
    return {"url": DAR_URL, "valueCode": code}


@transform("data_absent")
def t_data_absent(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """``nullFlavor`` (the element's, or the attribute read) → the
    data-absent-reason extension."""
    flavor = node if isinstance(node, str) else node.get("nullFlavor")
    return data_absent(ctx, flavor)


# --------------------------------------------------------------------------- II


@transform("II")
def t_identifier(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """II → Identifier. ``root`` + ``extension``: the root is the namespace
    (``assigning-authorities`` URI, else ``urn:oid:``/``urn:uuid:``) and the
    extension the value; ``root`` alone is itself the identifier
    (``urn:ietf:rfc:3986``). ``assigningAuthorityName`` → ``assigner.display``."""
    if isinstance(node, str):
        return {"value": node}
    root = (node.get("root") or "").strip()
    ext = node.get("extension")
    if node.get("nullFlavor") and not root and not ext:
        return None
    out: dict[str, Any] = {}
    if args.get("use"):
        out["use"] = args["use"]
    if args.get("type"):
        out["type"] = {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": args["type"]}
            ]
        }
    if ext is not None and ext.strip():
        system = ctx.identifier_system(root) if root else None
        if root and system is None:
            ctx.warn(
                f"id root {root!r} is neither an OID nor a UUID: kept as the identifier's assigner",
                node,
                code="code-invalid",
                attribute="root",
            )
            out["assigner"] = {"display": root}
        if system:
            out["system"] = system
        out["value"] = ext.strip()
    elif root:
        if OID.match(root):
            out.update(system="urn:ietf:rfc:3986", value=f"urn:oid:{root}")
        elif UUID.match(root):
            out.update(system="urn:ietf:rfc:3986", value=f"urn:uuid:{root.lower()}")
        else:
            out["value"] = root
    else:
        return None
    name = node.get("assigningAuthorityName")
    if name:
        out.setdefault("assigner", {})["display"] = name
    return out


def ii_key(node: etree._Element) -> str | None:
    """The business key of an II: ``root|extension`` (or ``root``)."""
    root = (node.get("root") or "").strip()
    ext = (node.get("extension") or "").strip()
    if not root and not ext:
        return None
    return f"{root}|{ext}" if ext else root


# --------------------------------------------------------------------------- CD


def coding_of(
    el: etree._Element, ctx: DocContext, default_system: str | None = None
) -> dict[str, Any] | None:
    """One Coding from a CD-like element's own attributes (no translations)."""
    code = el.get("code")
    if not code:
        return None
    coding: dict[str, Any] = {}
    system = ctx.system(el.get("codeSystem"), el) if el.get("codeSystem") else default_system
    if system:
        coding["system"] = system
    version = el.get("codeSystemVersion")
    if version:
        coding["version"] = version
    fix = ctx.mapping.code_fixes.get(f"{system}|{code}")
    if fix:
        ctx.warn(
            f"code {code!r} is not a code of {system}: read as {fix!r}",
            el,
            code="code-invalid",
            attribute="code",
        )
        code = fix
    coding["code"] = code.strip()
    display = el.get("displayName")
    if display and display.strip():
        coding["display"] = display.strip()
    return coding


def codeable(
    el: etree._Element, ctx: DocContext, args: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """CD → CodeableConcept: the code, then every translation (nested ones
    too) as codings, ``originalText`` (narrative references resolved) as
    text, terminology translations appended; a ``nullFlavor`` without any
    coding becomes the data-absent-reason extension."""
    args = args or {}
    codings: list[dict[str, Any]] = []
    text: str | None = None
    default_system = args.get("system")
    first = coding_of(el, ctx, default_system)
    if first:
        codings.append(first)
    elif el.get("code") is None and el.get("displayName") and not el.get("nullFlavor"):
        text = el.get("displayName")
    qualifiers: list[etree._Element] = []
    stack = [el]
    while stack:
        cur = stack.pop(0)
        for child in cur:
            tag = child.tag
            if tag in _TRANSLATION:
                c = coding_of(child, ctx)
                if c:
                    if c not in codings:
                        codings.append(c)
                elif child.get("displayName") and not text:
                    text = child.get("displayName")
                stack.append(child)
            elif tag in _ORIGINAL and args.get("text", True) is not False:
                t = ctx.text(child)
                if t:
                    text = t
            elif tag in _QUALIFIER:
                qualifiers.append(child)
    if qualifiers:
        _post_coordinate(first, qualifiers, codings, ctx)
    if codings and ctx.terminology is not None:
        _translate(codings, el, ctx)
    out: dict[str, Any] = {}
    if codings:
        out["coding"] = codings
    if text:
        out["text"] = text
    if not codings:
        dar = data_absent(ctx, el.get("nullFlavor"))
        if dar:
            out["extension"] = [dar]
    return out or None


SNOMED = "http://snomed.info/sct"


def _post_coordinate(
    first: dict[str, Any] | None,
    qualifiers: list[etree._Element],
    codings: list[dict[str, Any]],
    ctx: DocContext,
) -> None:
    """CD qualifiers (name = value pairs refining the code): on a SNOMED CT
    code they become a post-coordinated expression in SNOMED CT
    compositional grammar (``focus:attribute=value``), a second coding; on
    any other code they have no FHIR place and are reported."""
    pairs = []
    for q in qualifiers:
        name, value = q.find(f"{_V3}name"), q.find(f"{_V3}value")
        if name is None or value is None or not name.get("code") or not value.get("code"):
            pairs = []
            break
        pairs.append(f"{name.get('code')}={value.get('code')}")
    if first is not None and first.get("system") == SNOMED and pairs:
        codings.append({"system": SNOMED, "code": f"{first['code']}:{','.join(pairs)}"})
        return
    for q in qualifiers:
        parts = [
            x.get("displayName") or x.get("code")
            for x in (q.find(f"{_V3}name"), q.find(f"{_V3}value"))
            if x is not None
        ]
        ctx.warn(
            "CD qualifier (post-coordination) of a non-SNOMED CT code has no place in a "
            f"FHIR CodeableConcept: {' = '.join(p for p in parts if p)} not converted",
            q,
        )


def _translate(codings: list[dict[str, Any]], el: etree._Element, ctx: DocContext) -> None:
    hook = ctx.terminology
    if hook is None:
        return
    for c in list(codings):
        system, code = c.get("system"), c.get("code")
        if not system or not code:
            continue
        for coding, note in hook.translations(system, code):
            if any(
                x.get("system") == coding.get("system") and x.get("code") == coding.get("code")
                for x in codings
            ):
                continue
            codings.append(coding)
            if note:
                ctx.info(
                    f"{system}|{code} translated to {coding.get('system')}|{coding.get('code')}"
                    f" ({note}, not equivalent): kept as a separate coding",
                    el,
                    code="informational",
                )


@transform("CD")
def t_cd(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """CD / CE / CV / CO → CodeableConcept (see :func:`codeable`)."""
    if isinstance(node, str):
        return {"text": node} if node.strip() else None
    return codeable(node, ctx, args)


@transform("Coding")
def t_coding(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """CD → its first Coding (for Coding-typed elements)."""
    if isinstance(node, str):
        return None
    return coding_of(node, ctx, args.get("system"))


@transform("code")
def t_code(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """CS (``@code``, or the attribute read) → a FHIR code, through
    ``table`` when given; a value the table lacks is reported."""
    value = node if isinstance(node, str) else (node.get("code") or node.get("value"))
    if value is None:
        return None
    value = value.strip()
    table = args.get("table")
    if table is None:
        return value or None
    mapped = ctx.table(table).get(value)
    if mapped is None:
        mapped = ctx.table(table).get(value.lower())
    if mapped is None:
        if "default" in args:
            return args["default"]
        ctx.warn(
            f"{value!r} has no entry in table {table!r}: not converted",
            None if isinstance(node, str) else node,
            code="code-invalid",
        )
    return mapped


@transform("codeable")
def t_codeable_from_table(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """A code through ``table`` to a CodeableConcept whose coding the table
    gives as ``system|code|display``."""
    value = t_code(node, ctx, args)
    if not value:
        return None
    system, _, rest = str(value).partition("|")
    code, _, display = rest.partition("|")
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


@transform("string")
def t_string(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """ST / ED / ON / the text of any element, narrative references
    resolved."""
    if isinstance(node, str):
        return node.strip() or None
    return ctx.text(node)


@transform("markdown")
def t_markdown(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    return t_string(node, ctx, args)


@transform("annotation")
def t_annotation(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    text = t_string(node, ctx, args)
    return {"text": text} if text else None


@transform("boolean")
def t_boolean(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """BL (``@value``, or the attribute read) → boolean; ``args.negate``
    inverts it."""
    value = node if isinstance(node, str) else node.get("value")
    if value is None:
        return None
    v = value.strip().lower()
    if v not in ("true", "false"):
        ctx.warn(f"{value!r} is not a boolean", None if isinstance(node, str) else node)
        return None
    result = v == "true"
    return (not result) if args.get("negate") else result


@transform("integer")
def t_integer(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    value = node if isinstance(node, str) else node.get("value")
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        ctx.warn(f"{value!r} is not an integer", None if isinstance(node, str) else node)
        return None


@transform("constant", reads=False)
def t_constant(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """``args.value``, written when the source element is present."""
    return args.get("value")


@transform("ignore")
def t_ignore(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """Reads the element and writes nothing: for parts of a template that
    carry no information of their own (say why in the rule's ``note``)."""
    return None


@transform("language")
def t_language(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """CS language code (BCP 47, e.g. ``pt-PT``) → a FHIR code."""
    value = node if isinstance(node, str) else node.get("code")
    return value.strip() if value and value.strip() else None


@transform("language_concept")
def t_language_concept(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    code = t_language(node, ctx, args)
    return {"coding": [{"system": "urn:ietf:bcp:47", "code": code}]} if code else None
