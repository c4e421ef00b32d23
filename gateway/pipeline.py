"""The spine: bytes -> detected format -> reader -> mapping -> FHIR Bundle.

``convert`` is pure (no storage) and is what ``gateway convert``, ``POST
/ingest``, the MLLP listener and the benchmarks all call.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .errors import Issue, RejectedInput
from .fhir.bundle import transaction_bundle
from .fhir.jsonio import dumps, dumps_pretty
from .fhir.outcome import operation_outcome
from .formats.detect import detect, register_xml_roots
from .formats.hl7v2 import Message, parse
from .mapping.hl7v2 import MappingSet, load_mapping_set, map_message

__all__ = ["Conversion", "convert", "convert_cda", "mappings_root", "hl7v2_mapping", "cda_mapping",
           "source_digest"]


def mappings_root() -> Path:
    """``mappings/`` beside the package (``GATEWAY_MAPPINGS`` overrides)."""
    env = os.environ.get("GATEWAY_MAPPINGS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "mappings"


@lru_cache(maxsize=1)
def hl7v2_mapping() -> MappingSet:
    return load_mapping_set(mappings_root() / "hl7v2")


@dataclass(slots=True)
class Conversion:
    """The result of converting one message or document."""

    source_format: str
    digest: str  # sha256 of the normalised source: the idempotency key
    resources: list[dict[str, Any]]
    issues: list[Issue]
    source: dict[str, str] = field(default_factory=dict)  # sender, control id, type, version
    document: dict[str, Any] | None = None  # a FHIR document Bundle (CDA input)
    fidelity: list[Any] = field(default_factory=list)  # CDA: one EntryTrace per clinical entry

    @property
    def bundle(self) -> dict[str, Any]:
        if self.document is not None:
            return self.document
        return transaction_bundle(self.resources)

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues, ok_text="converted without findings")

    def to_json(self, pretty: bool = False) -> bytes:
        return (dumps_pretty if pretty else dumps)(self.bundle)


def source_digest(text: str) -> str:
    """sha256 of the message with segment ends normalised, so the same
    message sent with CR or LF, with or without a BOM, has one key."""
    lines = [ln for ln in text.lstrip("\ufeff").replace("\r\n", "\r").replace("\n", "\r").split("\r")
             if ln.strip()]
    return hashlib.sha256("\r".join(ln.rstrip() for ln in lines).encode("utf-8")).hexdigest()


_NO_META: dict[str, Any] = {}
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def _quote(text: str) -> str:
    """``quote(text, safe="")``; most values need no quoting at all."""
    return text if _UNRESERVED.fullmatch(text) else quote(text, safe="")


def _meta_source(message: Message) -> str:
    msh = message.msh
    app = _quote(msh.get(3) or "unknown")
    fac = _quote(msh.get(4) or "unknown")
    return f"urn:hl7v2:{app}:{fac}#{_quote(message.control_id)}"


def _message_lines(message: Message) -> list[str]:
    """The segments as text (MSH written without its first field separator)."""
    fs = message.enc.field
    return [(s.line or fs.join(s.fields)) if s.name != "MSH" else "MSH" + fs.join(s.fields[2:])
            for s in message.segments]


def _message_digest(lines: list[str]) -> str:
    """:func:`source_digest` of ``"\\r".join(lines)``, from the lines directly:
    segments hold no line breaks and none is blank, so only the trailing
    whitespace of each has to go."""
    return hashlib.sha256("\r".join([ln.rstrip() for ln in lines]).encode("utf-8")).hexdigest()


def convert_hl7v2(data: bytes | str, *, strict: bool = False, now: datetime | None = None,
                  mapping: MappingSet | None = None, parsed: Message | None = None) -> Conversion:
    """``parsed``: ``data`` already read by :func:`parse` (the MLLP handler
    reads a message before converting it, for its ACK)."""
    message = parsed if parsed is not None else parse(data)
    lines = _message_lines(message)
    digest = _message_digest(lines)
    issues: list[Issue] = []
    if strict:
        from .formats.hl7v2.strict import strict_issues

        # hl7apy reads MSH with its field separator, which the lines leave out
        fs = message.enc.field
        found = strict_issues("\r".join("MSH" + fs + ln[3:] if ln.startswith("MSH") else ln
                                        for ln in lines))
        if found:
            raise RejectedInput(found[0].message, found)
    if not message.version:
        message.issues.warning("MSH-12 (version id) is empty: read as v2.5.1", "MSH[1]-12",
                               code="required")
    elif not message.version.startswith("2."):
        message.issues.warning(f"MSH-12 version {message.version!r} is not an HL7 v2 version",
                               "MSH[1]-12", code="value")
    if message.one("PID") is None:
        message.issues.warning("no PID segment: nothing can be tied to a patient", "PID",
                               code="required")
    m = mapping or hl7v2_mapping()
    result = map_message(message, m, digest, now=_instant(now))
    source = _meta_source(message)
    tags = []
    processing = message.msh.get(11).strip().upper()
    not_real = m.tables.get("processing-not-production", {}).get(processing)
    if not_real:
        tags.append(dict(not_real))
        issues.append(Issue("warning", "informational",
                            f"MSH-11 processing id {processing!r}: not production data; every "
                            "resource is tagged with it", "MSH[1]-11"))
    resources = []
    for res in result.resources:
        meta = {**res.pop("meta", _NO_META), "source": source}
        if tags:
            meta["tag"] = [*meta.get("tag", []), *tags]
        # resourceType and id stay first: ** keeps their place and value
        resources.append({"resourceType": res["resourceType"], "id": res["id"], "meta": meta,
                          **res})
    code, event, structure = message.message_type
    issues.extend(result.issues)
    return Conversion(
        "hl7v2", digest, resources, issues,
        {"sender": "|".join(x for x in (message.msh.get(3), message.msh.get(4)) if x),
         "control_id": message.control_id, "type": f"{code}^{event}",
         "version": message.version, "mapping": m.version, "spec": result.message_spec},
    )


@lru_cache(maxsize=1)
def cda_mapping() -> Any:
    from .mapping.cda import load_mapping_set as load_cda

    return load_cda(mappings_root() / "cda")


def convert_cda(data: bytes, *, now: datetime | None = None, mapping: Any = None) -> Conversion:
    """A CDA document to a FHIR document Bundle (``gateway.mapping.cda``);
    ``resources`` holds every resource of the Bundle for the store."""
    from .formats.cda import read_cda
    from .mapping.cda import map_document

    digest = hashlib.sha256(data.lstrip(b"\xef\xbb\xbf")).hexdigest()
    doc = read_cda(data)
    result = map_document(doc, mapping or cda_mapping(), digest=digest, now=_instant(now),
                          terminology=_cda_terminology())
    return Conversion("cda", digest, result.resources, list(result.issues), result.source,
                      document=result.document, fidelity=result.fidelity)


@lru_cache(maxsize=1)
def _cda_terminology() -> Any:
    from .mapping.cda import load_hook

    return load_hook()


@lru_cache(maxsize=1)
def national_mappings() -> dict[str, Any]:
    """The national XML formats of ``mappings/national`` by format name."""
    from .mapping.national import load_national

    root = mappings_root() / "national"
    return load_national(root) if root.is_dir() else {}


def _national_roots() -> dict[tuple[str, str], str]:
    return {r: m.name for m in national_mappings().values() for r in m.roots}


register_xml_roots(_national_roots)


def convert_national(data: bytes, fmt: str, *, now: datetime | None = None) -> Conversion:
    """A national XML document (``mappings/national/<format>.yaml``) to FHIR
    resources (a transaction Bundle); every element with text no rule read is
    a located warning."""
    from .mapping.national import map_national
    from .mapping.national.xml import read_xml

    mapping = national_mappings().get(fmt)
    if mapping is None:
        raise RejectedInput(f"unknown national XML format {fmt!r}")
    digest = hashlib.sha256(data.lstrip(b"\xef\xbb\xbf")).hexdigest()
    root = read_xml(data)
    result = map_national(mapping, root)
    source = f"{mapping.source_uri}#{digest[:16]}"
    resources = [{"resourceType": r.pop("resourceType"), "id": r.pop("id"),
                  "meta": {"source": source}, **r} for r in result.resources]
    return Conversion(fmt, digest, resources, list(result.issues),
                      {"type": str(root.tag), "mapping": mapping.file})


def _instant(now: datetime | None) -> str:
    t = now or datetime.now(timezone.utc)
    return t.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def convert(data: bytes, source_format: str = "auto", *, strict: bool = False,
            now: datetime | None = None, parsed: Message | None = None) -> Conversion:
    """Convert one message or document to FHIR R4 resources.

    Raises a :class:`gateway.errors.GatewayError` (with located issues) when
    the input cannot be read; everything else is reported in
    ``Conversion.issues``."""
    fmt = detect(data) if source_format == "auto" else source_format
    if fmt == "hl7v2":
        if data[:1] == b"\x0b":
            data = data[1:].rstrip(b"\x1c\r\n")
        return convert_hl7v2(data, strict=strict, now=now, parsed=parsed)
    if fmt == "cda":
        return convert_cda(data, now=now)
    if fmt in national_mappings():
        return convert_national(data, fmt, now=now)
    raise RejectedInput(f"unknown source format {fmt!r}")
