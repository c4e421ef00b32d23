"""The terminology engine: one object answering $validate-code, $lookup,
$translate and $expand from the loaded content, and reloading it when the
content folders change.

Operation semantics follow the R4 operation definitions:
ValueSet/$validate-code (https://hl7.org/fhir/R4/valueset-operation-validate-code.html),
CodeSystem/$lookup (codesystem-operation-lookup.html),
ConceptMap/$translate (conceptmap-operation-translate.html),
ValueSet/$expand (valueset-operation-expand.html).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from .content import CodeSystemRec, ConceptMapRec, UnitData, ValueSetRec, read_resource
from .errors import BadTerminologyRequest, CannotExpand, UnknownResource
from .index import Index, build_index, split_canonical
from .model import ConceptInfo, Membership, Translation
from .sources import Root, default_roots, load_unit, quick_signature, scan_units
from .valueset import CompiledValueSet, Hierarchy, compile_value_set

__all__ = ["Terminology", "get_terminology", "coding_for", "UCUM_SYSTEM", "CODING_PURPOSE",
           "TRANSLATION_EQUIVALENCE"]

UCUM_SYSTEM = "http://unitsofmeasure.org"
_MEMO_LIMIT = 500_000
_MISSING = object()


@dataclass(slots=True)
class _State:
    index: Index
    units: dict[str, UnitData]
    signature: tuple[tuple[str, int], ...]
    load_seconds: float
    unit_names: list[str]
    compiled: dict[str, Any] = field(default_factory=dict)  # ref -> CompiledValueSet | _MISSING
    memo: dict[tuple[str, str, str | None, str | None], Membership] = field(default_factory=dict)
    hierarchy: Hierarchy = field(default_factory=Hierarchy)


def _lang_match(designations: dict[str, str], lang: str | None) -> str | None:
    if not lang:
        return None
    lang = lang.lower()
    if lang in designations:
        return designations[lang]
    primary = lang.split("-")[0]
    if primary in designations:
        return designations[primary]
    for k, v in designations.items():
        if k.split("-")[0] == primary:
            return v
    return None


class Terminology:
    """Loaded CodeSystems, ValueSets and ConceptMaps with fast in-process queries.

    Create it through :func:`get_terminology` (process-wide, loaded once)."""

    def __init__(self, home: Path | None = None, roots: list[Root] | None = None,
                 check_interval: float = 2.0) -> None:
        self.home = home
        self.roots = roots if roots is not None else default_roots(home)
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._state = self._load({})

    # ------------------------------------------------------------------ loading
    def _load(self, previous: dict[str, UnitData]) -> _State:
        t0 = time.perf_counter()
        signature = quick_signature(self.roots)
        units = scan_units(self.roots)
        loaded: dict[str, UnitData] = {}
        ordered: list[UnitData] = []
        for unit in units:
            data = previous.get(unit.key) or load_unit(unit)
            loaded[unit.key] = data
            ordered.append(data)
        index = build_index(ordered)
        return _State(index=index, units=loaded, signature=signature,
                      load_seconds=time.perf_counter() - t0,
                      unit_names=[f"{u.root.kind}:{u.name}" for u in units])

    def reload(self) -> None:
        """Re-read the content folders now (unchanged packages come from memory)."""
        with self._lock:
            self._state = self._load(self._state.units)
            self._checked = time.monotonic()

    def refresh_if_stale(self) -> bool:
        """Reload when a content folder changed; checks at most every
        ``check_interval`` seconds (a few directory stats). True if reloaded."""
        now = time.monotonic()
        if now - self._checked < self.check_interval:
            return False
        self._checked = now
        if quick_signature(self.roots) == self._state.signature:
            return False
        self.reload()
        return True

    @property
    def index(self) -> Index:
        return self._state.index

    @property
    def load_seconds(self) -> float:
        return self._state.load_seconds

    def stats(self) -> dict[str, Any]:
        idx = self._state.index
        return {"codeSystems": len(idx.code_systems.current), "valueSets": len(idx.value_sets.current),
                "conceptMaps": len(idx.concept_maps.current),
                "namingSystems": len({id(ns) for ns in idx.naming_systems.values()}),
                "units": list(self._state.unit_names),
                "loadSeconds": round(self._state.load_seconds, 3), "problems": len(idx.problems)}

    # ------------------------------------------------------------------ value sets
    def _resolve_vs(self, ref: str) -> ValueSetRec | None:
        idx = self._state.index
        url, version = split_canonical(ref)
        if url.startswith("urn:oid:"):
            url = idx.oid_to_valueset.get(url[8:], url)
        elif url[:1].isdigit() and url.replace(".", "").isdigit():
            url = idx.oid_to_valueset.get(url, url)
        rec = idx.value_sets.get(url, version)
        if rec is None and "/" not in url and ":" not in url:
            rec = idx.value_sets.by_id.get(url)
        return rec

    def compiled(self, ref: str, _stack: frozenset[str] = frozenset()) -> CompiledValueSet | None:
        """The compiled membership table of a value set (compiled on first use)."""
        state = self._state
        hit = state.compiled.get(ref)
        if hit is not None:
            return None if hit is _MISSING else hit
        rec = self._resolve_vs(ref)
        if rec is None or rec.url in _stack:
            if rec is None:
                state.compiled[ref] = _MISSING
            return None
        stack = _stack | {rec.url}
        cvs = compile_value_set(state.index, state.hierarchy, rec.url, rec.version, rec.name,
                                rec.title, rec.compose, rec.expansion,
                                lambda r: self.compiled(r, stack))
        state.compiled[ref] = cvs
        return cvs

    def has_valueset(self, url: str) -> bool:
        return self._resolve_vs(url) is not None

    def validate_code(self, valueset: str, code: str, system: str | None = None,
                      display: str | None = None) -> Membership:
        """Is ``system#code`` in ``valueset``? member / not-member / not-checked."""
        state = self._state
        key = (valueset, code, system, display)
        hit = state.memo.get(key)
        if hit is not None:
            return hit
        result = self._validate(state, valueset, code, system, display)
        if len(state.memo) >= _MEMO_LIMIT:
            state.memo.clear()
        state.memo[key] = result
        return result

    def _validate(self, state: _State, valueset: str, code: str, system: str | None,
                  display: str | None) -> Membership:
        cvs = self.compiled(valueset)
        if cvs is None:
            return Membership("not-checked", f"value set {valueset} is not loaded")
        label = cvs.url
        if system is None:
            systems = cvs.by_code.get(code)
            if systems:
                return self._member(state, cvs, systems[0], code, display)
            reason = cvs.incomplete_reason()
            if reason:
                return Membership("not-checked", f"code '{code}' (no system) not found in {label}; {reason}")
            return Membership("not-member", f"code '{code}' (no system) is not in value set {label}")
        system = state.index.system_of(system)
        codes = cvs.members.get(system)
        if codes is not None and code in codes:
            return self._member(state, cvs, system, code, display)
        if system in cvs.whole:
            if system == UCUM_SYSTEM:
                from .ucum import ucum_validate

                valid = ucum_validate(code)
                if valid is True:
                    return Membership("member", f"'{code}' is a valid UCUM unit", code)
                if valid is False:
                    return Membership("not-member", f"'{code}' is not a valid UCUM unit ({label})")
            return Membership("not-checked", f"{system}#{code} not checked against {label}: "
                                             f"{cvs.whole[system]}")
        if system in cvs.open:
            return Membership("not-checked", f"{system}#{code} not checked against {label}: {cvs.open[system]}")
        if cvs.open_any:
            return Membership("not-checked", f"{system}#{code} not checked against {label}: {cvs.open_any}")
        return Membership("not-member", f"code '{system}#{code}' is not in value set {label}")

    def _member(self, state: _State, cvs: CompiledValueSet, system: str, code: str,
                display: str | None) -> Membership:
        unsure = cvs.unsure.get(system) or cvs.unsure_any
        known = cvs.members[system].get(code)
        if known is None:
            cs = state.index.code_systems.get(system)
            con = cs.concepts.get(code) if cs else None
            known = con[0] if con else None
        if unsure:
            return Membership("not-checked", f"{system}#{code} is included in {cvs.url} but {unsure}", known)
        if display and known and display.strip().lower() != known.strip().lower():
            alts = {v.lower() for v in self._designations(state.index, system, code).values()}
            if display.strip().lower() not in alts:
                return Membership("member", f"{system}#{code} is in {cvs.url}; display '{display}' "
                                            f"differs from '{known}'", known)
        return Membership("member", f"{system}#{code} is in {cvs.url}", known)

    # ------------------------------------------------------------------ code systems
    def _designations(self, idx: Index, system: str, code: str) -> dict[str, str]:
        out: dict[str, str] = {}
        cs = idx.code_systems.get(system)
        con = cs.concepts.get(code) if cs else None
        if con:
            for lang, value in con[1]:
                if lang:
                    out.setdefault(lang.lower(), value)
            if cs is not None and cs.language and con[0]:
                out.setdefault(cs.language.lower(), con[0])
        for lang, value in idx.extra_designations.get((system, code), ()):
            if lang:
                out.setdefault(lang.lower(), value)
        return out

    def display(self, system: str, code: str, language: str | None = None) -> str | None:
        """The display of a code, in ``language`` when a designation exists."""
        idx = self._state.index
        system = idx.system_of(system)
        if language:
            found = _lang_match(self._designations(idx, system, code), language)
            if found:
                return found
        cs = idx.code_systems.get(system)
        con = cs.concepts.get(code) if cs else None
        return con[0] if con else None

    def code_system(self, system: str) -> CodeSystemRec | None:
        url, version = split_canonical(system)
        idx = self._state.index
        return idx.code_systems.get(idx.system_of(url), version)

    def lookup(self, system: str, code: str, display_language: str | None = None,
               version: str | None = None) -> ConceptInfo | None:
        """What the loaded code system says about ``code`` (None: unknown)."""
        idx = self._state.index
        url, v = split_canonical(system)
        url = idx.system_of(url)
        cs = idx.code_systems.get(url, version or v)
        con = cs.concepts.get(code) if cs else None
        if con is None:
            extra = idx.extra_designations.get((url, code)) if cs is None else None
            if extra:  # a code system known only through a supplement's designations (e.g. LOINC)
                desig = self._designations(idx, url, code)
                return ConceptInfo(system=url, code=code,
                                   display=_lang_match(desig, display_language) or desig.get("en"),
                                   designations=desig)
            if url == UCUM_SYSTEM:
                from .ucum import ucum_validate

                if ucum_validate(code):
                    return ConceptInfo(system=url, code=code, display=code, name="UCUM")
            return None
        assert cs is not None
        desig = self._designations(idx, url, code)
        shown = _lang_match(desig, display_language) or con[0]
        props = con[3]
        inactive = any((n == "status" and v in ("retired", "inactive")) or (n == "inactive" and v == "true")
                       for n, v in props)
        return ConceptInfo(system=url, code=code, display=shown, designations=desig, parents=con[2],
                           version=cs.version, name=cs.title or cs.name, properties=props,
                           inactive=inactive)

    def subsumes(self, system: str, a: str, b: str) -> str:
        """CodeSystem/$subsumes outcome for a loaded hierarchy: equivalent,
        subsumes, subsumed-by or not-subsumed."""
        cs = self.code_system(system)
        if cs is None or a not in cs.concepts or b not in cs.concepts:
            raise UnknownResource("code", f"{system}#{a}" if cs is None or a not in cs.concepts else f"{system}#{b}")
        if a == b:
            return "equivalent"
        if a in Hierarchy.ancestors(cs, b):
            return "subsumes"
        if b in Hierarchy.ancestors(cs, a):
            return "subsumed-by"
        return "not-subsumed"

    # ------------------------------------------------------------------ concept maps
    def translate(self, system: str, code: str, *, target_system: str | None = None,
                  conceptmap: str | None = None) -> list[Translation]:
        """Targets for ``system#code`` from the loaded ConceptMaps (all
        relationships, including ``not-related-to`` for explicit non-matches)."""
        idx = self._state.index
        found = idx.translations.get((system, code))
        if found is None and (system.startswith("urn:oid:") or system[:1].isdigit()):
            system = idx.system_of(system)
            found = idx.translations.get((system, code))
        cm_url = split_canonical(conceptmap)[0] if conceptmap else None
        out = [t for t in found or () if (target_system is None or t.system == target_system)
               and (cm_url is None or t.conceptmap == cm_url)]
        mapped_by = {t.conceptmap for t in found or ()}
        for url, target, mode, fixed, fixed_display in idx.unmapped.get(system, ()):
            if url in mapped_by or (cm_url and url != cm_url):
                continue
            if target_system is not None and target != target_system:
                continue
            if mode == "provided":
                out.append(Translation(system=target or system, code=code, display=None,
                                       relationship="equivalent", conceptmap=url,
                                       comment="unmapped: provided", source_system=system,
                                       source_code=code))
            elif mode == "fixed" and fixed:
                out.append(Translation(system=target or system, code=fixed, display=fixed_display,
                                       relationship="related-to", equivalence="inexact",
                                       conceptmap=url, comment="unmapped: fixed", source_system=system,
                                       source_code=code))
        return out

    def translate_coding(self, system: str, code: str, display: str | None = None, *,
                         target_system: str | None = None,
                         conceptmap: str | None = None) -> list[dict[str, Any]]:
        """Codings for a CodeableConcept: the original first (always kept), then
        each mapped target. A target that is not equivalent carries the
        equivalence marker (see :func:`coding_for`)."""
        original: dict[str, Any] = {"system": self.index.system_of(system), "code": code}
        if display:
            original["display"] = display
        out = [original]
        for t in self.translate(system, code, target_system=target_system, conceptmap=conceptmap):
            if t.code is None or t.relationship == "not-related-to":
                continue
            out.append(coding_for(t))
        return out

    # ------------------------------------------------------------------ expansion
    def expand(self, valueset: str, *, filter: str | None = None, count: int | None = None,
               offset: int = 0, display_language: str | None = None,
               include_designations: bool = False) -> dict[str, Any]:
        """A FHIR ValueSet with an ``expansion`` (R4 $expand)."""
        if count is not None and count < 0:
            raise BadTerminologyRequest("count must not be negative", "count")
        if offset < 0:
            raise BadTerminologyRequest("offset must not be negative", "offset")
        cvs = self.compiled(valueset)
        if cvs is None:
            raise UnknownResource("ValueSet", valueset)
        if not cvs.complete:
            raise CannotExpand(f"value set {cvs.url} cannot be expanded here: {cvs.incomplete_reason()}")
        idx = self._state.index
        needle = filter.strip().lower() if filter else None
        rows: list[dict[str, Any]] = []
        for system, codes in cvs.members.items():
            version = cvs.system_versions.get(system)
            if version is None:
                cs = idx.code_systems.get(system)
                version = cs.version if cs else None
            for code, disp in codes.items():
                desig = self._designations(idx, system, code) if (display_language or include_designations) else {}
                shown = _lang_match(desig, display_language) or disp
                if shown is None:
                    cs = idx.code_systems.get(system)
                    con = cs.concepts.get(code) if cs else None
                    shown = con[0] if con else None
                if needle and needle not in code.lower() and needle not in (shown or "").lower() \
                        and needle not in (disp or "").lower():
                    continue
                row: dict[str, Any] = {"system": system}
                if version:
                    row["version"] = version
                row["code"] = code
                if shown:
                    row["display"] = shown
                if include_designations and desig:
                    row["designation"] = [{"language": k, "value": v} for k, v in sorted(desig.items())]
                rows.append(row)
        total = len(rows)
        page = rows[offset: offset + count if count is not None else None]
        params: list[dict[str, Any]] = []
        if filter:
            params.append({"name": "filter", "valueString": filter})
        if display_language:
            params.append({"name": "displayLanguage", "valueCode": display_language})
        if count is not None:
            params.append({"name": "count", "valueInteger": count})
        if offset:
            params.append({"name": "offset", "valueInteger": offset})
        expansion: dict[str, Any] = {
            "identifier": f"urn:uuid:{uuid.uuid4()}",
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "total": total, "offset": offset}
        if params:
            expansion["parameter"] = params
        expansion["contains"] = page
        out: dict[str, Any] = {"resourceType": "ValueSet", "url": cvs.url}
        if cvs.version:
            out["version"] = cvs.version
        if cvs.name:
            out["name"] = cvs.name
        if cvs.title:
            out["title"] = cvs.title
        out["status"] = "active"
        if display_language:
            out["language"] = display_language
        out["expansion"] = expansion
        return out

    # ------------------------------------------------------------------ systems
    def naming_system(self, system: str) -> dict[str, Any] | None:
        """The NamingSystem declaring an identifier or code system (its URI, ``urn:oid:...``
        or a bare OID), as stored; None when no loaded NamingSystem declares it."""
        table = self._state.index.naming_systems
        rec = table.get(system)
        if rec is None and system[:1].isdigit() and system.replace(".", "").isdigit():
            rec = table.get("urn:oid:" + system)
        return read_resource(rec.ref) if rec is not None else None

    def knows_system(self, system: str) -> bool:
        """Is ``system`` defined by a loaded CodeSystem or NamingSystem?"""
        idx = self._state.index
        return (idx.code_systems.get(idx.system_of(system)) is not None
                or self.naming_system(system) is not None)

    # ------------------------------------------------------------------ resources
    def read(self, rtype: str, rid: str) -> dict[str, Any] | None:
        """A loaded CodeSystem, ValueSet or ConceptMap by id, as stored."""
        rec = self._table(rtype).by_id.get(rid)
        return read_resource(rec.ref) if rec is not None else None

    def find(self, rtype: str, url: str | None = None, version: str | None = None,
             name: str | None = None) -> list[dict[str, Any]]:
        """Resources of a type by canonical url (and version) or name."""
        table = self._table(rtype)
        recs: list[CodeSystemRec | ValueSetRec | ConceptMapRec]
        if url:
            u, v = split_canonical(url)
            if rtype == "ValueSet":
                found = self._resolve_vs(url if v or not version else f"{u}|{version}")
            else:
                found = table.get(u, version or v)
            recs = [found] if found is not None else []
        else:
            recs = list(table.current.values())
            if name:
                needle = name.lower()
                recs = [r for r in recs if needle in (r.name or "").lower() or needle in (r.title or "").lower()]
        out = []
        for r in recs:
            body = read_resource(r.ref)
            if body is not None:
                out.append(body)
        return out

    def _table(self, rtype: str) -> Any:
        idx = self._state.index
        if rtype == "CodeSystem":
            return idx.code_systems
        if rtype == "ValueSet":
            return idx.value_sets
        if rtype == "ConceptMap":
            return idx.concept_maps
        raise BadTerminologyRequest(f"{rtype} is not a terminology resource type", "type")


def coding_for(t: Translation) -> dict[str, Any]:
    """A Coding for a translation target, marked ``translated`` with the
    standard ``coding-purpose`` extension. A target that is not equivalent also
    carries :data:`TRANSLATION_EQUIVALENCE` with the ConceptMap's R4
    equivalence code (an R5 relationship code is written as its R4 equivalent)
    and ``userSelected: false``, so it is never read as the same concept as the
    original."""
    coding: dict[str, Any] = {"system": t.system, "code": t.code}
    if t.display:
        coding["display"] = t.display
    ext: list[dict[str, Any]] = [{"url": CODING_PURPOSE,
                                  "valueCoding": {"system": "http://hl7.org/fhir/coding-purpose",
                                                  "code": "translated"}}]
    if not t.equivalent:
        ext.append({"url": TRANSLATION_EQUIVALENCE, "valueCode": r4_equivalence(t.equivalence)})
        coding["userSelected"] = False
    coding["extension"] = ext
    return coding


CODING_PURPOSE = "http://hl7.org/fhir/StructureDefinition/coding-purpose"
# The gateway's own marker of a non-equivalent translation (its R4 ConceptMap equivalence code):
# no standard extension carries this on a Coding. Defined (context Coding, valueCode bound to
# http://hl7.org/fhir/ValueSet/concept-map-equivalence) in
# profiles/gateway/StructureDefinition-translation-equivalence.json, under the project's
# canonical base (profiles/gateway/package.json).
TRANSLATION_EQUIVALENCE = "https://health-gateway.eu/fhir/StructureDefinition/translation-equivalence"

# R5 ConceptMapRelationship -> the R4 ConceptMapEquivalence code the extension is bound to
_R5_TO_R4_EQUIVALENCE = {
    "related-to": "relatedto",
    "equivalent": "equivalent",
    "source-is-narrower-than-target": "wider",
    "source-is-broader-than-target": "narrower",
    "not-related-to": "disjoint",
}
_R4_EQUIVALENCE = frozenset({"relatedto", "equivalent", "equal", "wider", "subsumes", "narrower",
                             "specializes", "inexact", "unmatched", "disjoint"})


def r4_equivalence(code: str) -> str:
    """The R4 ConceptMap equivalence code for an R4 equivalence or R5 relationship code
    (anything else: ``relatedto``, the weakest claim)."""
    if code in _R4_EQUIVALENCE:
        return code
    return _R5_TO_R4_EQUIVALENCE.get(code, "relatedto")


def _default_home() -> Path:
    return Path(os.environ.get("GATEWAY_HOME") or ".gateway").resolve()


@lru_cache(maxsize=8)
def get_terminology(home: str | Path | None = None) -> Terminology:
    """The process-wide engine for a home folder (default: ``GATEWAY_HOME`` or
    ``./.gateway``), loaded once; ``get_terminology.cache_clear()`` reloads."""
    return Terminology(Path(home).resolve() if home is not None else _default_home())
