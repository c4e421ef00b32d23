"""The linked, in-memory index over every loaded unit (the link stage of
loading): canonical ``url|version`` resolution, OIDs, CodeSystem supplements
and the ConceptMap translation table.

Canonical references: FHIR R4 section 2.30 (``url|version``); CodeSystem
supplements: R4 4.8.11; ConceptMap: R4 4.10 (group/element/target, unmapped).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .content import CodeSystemRec, ConceptMapRec, NamingSystemRec, UnitData, ValueSetRec
from .model import Translation, relationship_of

__all__ = ["Index", "version_key", "split_canonical", "build_index", "BUILTIN_OIDS"]

R = TypeVar("R", CodeSystemRec, ValueSetRec, ConceptMapRec)

# OIDs of code systems that have no CodeSystem resource here (HL7 "sid" URIs
# and external terminologies), from the HL7 terminology's NamingSystems.
BUILTIN_OIDS: dict[str, str] = {
    "2.16.840.1.113883.6.96": "http://snomed.info/sct",
    "2.16.840.1.113883.6.1": "http://loinc.org",
    "2.16.840.1.113883.6.8": "http://unitsofmeasure.org",
    "2.16.840.1.113883.6.73": "http://www.whocc.no/atc",
    "2.16.840.1.113883.6.3": "http://hl7.org/fhir/sid/icd-10",
    "2.16.840.1.113883.6.90": "http://hl7.org/fhir/sid/icd-10-cm",
    "2.16.840.1.113883.6.103": "http://hl7.org/fhir/sid/icd-9-cm",
    "2.16.840.1.113883.12.292": "http://hl7.org/fhir/sid/cvx",
    "0.4.0.127.0.16.1.1.2.1": "http://standardterms.edqm.eu",
    "1.0.3166.1.2.2": "urn:iso:std:iso:3166",
    "1.0.3166.1.2.3": "urn:iso:std:iso:3166",
    "1.0.639.1": "urn:ietf:bcp:47",
    "2.16.840.1.113883.6.121": "urn:ietf:bcp:47",
    "2.16.840.1.113883.6.88": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "2.16.840.1.113883.5.1": "http://terminology.hl7.org/CodeSystem/v3-AdministrativeGender",
}


def version_key(version: str | None) -> tuple[Any, ...]:
    """Order versions: numeric parts as numbers, a pre-release (``-ballot``) below its release."""
    if version is None:
        return ((-1,),)
    base, _, pre = version.partition("-")
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.\s]+", base) if p)
    return (parts, 0 if pre else 1, pre)


def split_canonical(ref: str) -> tuple[str, str | None]:
    url, bar, version = ref.partition("|")
    return url, (version or None) if bar else None


@dataclass(slots=True)
class Versioned(Generic[R]):
    """All versions of the resources of one kind, and the current one per url."""

    by_url: dict[str, dict[str | None, R]] = field(default_factory=dict)
    current: dict[str, R] = field(default_factory=dict)
    by_id: dict[str, R] = field(default_factory=dict)

    def add(self, rec: R) -> None:
        versions = self.by_url.setdefault(rec.url, {})
        versions[rec.version] = rec  # a later root wins for the same url|version
        cur = self.current.get(rec.url)
        if cur is None or version_key(rec.version) >= version_key(cur.version):
            self.current[rec.url] = rec
        if rec.id:
            self.by_id[rec.id] = rec

    def get(self, url: str, version: str | None = None) -> R | None:
        if version is None:
            return self.current.get(url)
        versions = self.by_url.get(url)
        if not versions:
            return None
        if version in versions:
            return versions[version]
        # FHIR allows a partial version ("2.0" for "2.0.1"); take the highest match.
        matches = [v for v in versions if v and v.startswith(version + ".")]
        return versions[max(matches, key=version_key)] if matches else None


@dataclass(slots=True)
class Index:
    code_systems: Versioned[CodeSystemRec] = field(default_factory=Versioned)
    value_sets: Versioned[ValueSetRec] = field(default_factory=Versioned)
    concept_maps: Versioned[ConceptMapRec] = field(default_factory=Versioned)
    oid_to_system: dict[str, str] = field(default_factory=dict)
    oid_to_valueset: dict[str, str] = field(default_factory=dict)
    # every system a NamingSystem declares (uri, urn:oid:...) -> that NamingSystem
    naming_systems: dict[str, NamingSystemRec] = field(default_factory=dict)
    # supplement designations: (system, code) -> ((language, value), ...)
    extra_designations: dict[tuple[str, str], tuple[tuple[str, str], ...]] = field(default_factory=dict)
    translations: dict[tuple[str, str], tuple[Translation, ...]] = field(default_factory=dict)
    # group.unmapped per source system: (conceptmap url, target system, mode, code, display)
    unmapped: dict[str, list[tuple[str, str | None, str, str | None, str | None]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def system_of(self, system: str) -> str:
        """A system given as ``urn:oid:...`` (or a bare OID) turned into its canonical URL when known."""
        if system.startswith("urn:oid:"):
            return self.oid_to_system.get(system[8:], system)
        if system[:1].isdigit() and "." in system and system.replace(".", "").isdigit():
            return self.oid_to_system.get(system, "urn:oid:" + system)
        return system


def _translations(cm: ConceptMapRec, table: dict[tuple[str, str], list[Translation]],
                  unmapped: dict[str, list[tuple[str, str | None, str, str | None, str | None]]]) -> None:
    for g in cm.groups:
        source = g.get("source") or cm.source or ""
        target = g.get("target") or cm.target or ""
        for e in g.get("element") or ():
            code = e.get("code")
            if not code:
                continue
            for t in e.get("target") or ():
                eq = t.get("equivalence") or t.get("relationship") or "equivalent"
                table[(source, code)].append(Translation(
                    system=target, code=t.get("code"), display=t.get("display"),
                    relationship=relationship_of(eq), conceptmap=cm.url, equivalence=eq,
                    comment=t.get("comment"), source_system=source, source_code=code))
        um = g.get("unmapped")
        if isinstance(um, dict) and um.get("mode") in ("provided", "fixed"):
            unmapped.setdefault(source, []).append(
                (cm.url, target or None, um["mode"], um.get("code"), um.get("display")))


def build_index(units: list[UnitData]) -> Index:
    """Link parsed units (in precedence order) into one index."""
    idx = Index()
    naming: dict[str, str] = dict(BUILTIN_OIDS)
    supplements: list[CodeSystemRec] = []
    for unit in units:
        idx.problems.extend(unit.problems)
        for oid, uri in unit.naming:
            naming.setdefault(oid, uri)
        for ns in unit.naming_systems:
            for system in ns.systems:
                idx.naming_systems[system] = ns  # a later root wins, as for canonical resources
        for cs in unit.code_systems:
            if cs.content == "supplement" or cs.supplements:
                supplements.append(cs)
                continue
            idx.code_systems.add(cs)
            for oid in cs.oids:
                naming[oid] = cs.url
        for vs in unit.value_sets:
            idx.value_sets.add(vs)
            for oid in vs.oids:
                idx.oid_to_valueset[oid] = vs.url
        for cm in unit.concept_maps:
            idx.concept_maps.add(cm)
    idx.oid_to_system = naming
    extra: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for sup in supplements:
        base, _ = split_canonical(sup.supplements or "")
        if not base:
            idx.problems.append(f"supplement {sup.url} does not name the code system it supplements")
            continue
        for code, concept in sup.concepts.items():
            pairs = list(concept[1])
            if concept[0] and sup.language:
                pairs.append((sup.language, concept[0]))
            extra[(base, code)].extend(pairs)
    idx.extra_designations = {k: tuple(dict.fromkeys(v)) for k, v in extra.items()}
    table: dict[tuple[str, str], list[Translation]] = defaultdict(list)
    for cm in idx.concept_maps.current.values():
        _translations(cm, table, idx.unmapped)
    idx.translations = {k: tuple(v) for k, v in table.items()}
    return idx
