"""FHIR MedicationRequest (+ Medication, Patient) and a dispense → an eHDSI
eDispensation CDA (current generation, ``pharm:`` = urn:hl7-org:pharm).

eHDSI CDA Display/Pivot Document Design, eDispensation: document
1.3.6.1.4.1.12559.11.10.1.3.1.1.2 (LOINC 60593-1), Dispensation section
1.3.6.1.4.1.12559.11.10.1.3.1.2.2 (LOINC 60590-7), Dispensed Medicine
1.3.6.1.4.1.12559.11.10.1.3.1.3.3 (supply EVN) with the prescription item it
fulfils in ``entryRelationship[@typeCode='REFR']/substanceAdministration``
whose ``id`` is the MedicationRequest's Prescription Item ID, so reading the
document back (``mappings/cda/entries/eprescription.yaml``) points at the
same MedicationRequest id. Valid against ``schemas/cda/ehdsi-cda-pharma``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from lxml import etree

from ..errors import Issue, RejectedInput

__all__ = ["Dispense", "edispensation_cda", "V3", "PHARM"]

V3 = "urn:hl7-org:v3"
PHARM = "urn:hl7-org:pharm"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_NS = {None: V3, "pharm": PHARM, "xsi": XSI}
EDQM = "0.4.0.127.0.16.1.1.2.1"
ATC = "2.16.840.1.113883.6.73"
_SYSTEM_OIDS = {"http://standardterms.edqm.eu": EDQM, "http://www.whocc.no/atc": ATC,
                "http://loinc.org": "2.16.840.1.113883.6.1",
                "http://snomed.info/sct": "2.16.840.1.113883.6.96"}
_GENDER = {"male": "M", "female": "F", "other": "UN", "unknown": "UN"}


@dataclass(frozen=True, slots=True)
class Dispense:
    """What the pharmacy handed over."""

    quantity: float  # number of packages (eHDSI: positive)
    substituted: bool = False
    when: datetime | None = None
    dispenser_name: str = "Dispensing pharmacist"
    pharmacy_name: str = "Dispensing pharmacy"
    dispense_id: str | None = None  # default: a new UUID


def _oid(system: str | None) -> str | None:
    if not system:
        return None
    if system in _SYSTEM_OIDS:
        return _SYSTEM_OIDS[system]
    if system.startswith("urn:oid:"):
        return system[8:]
    return None


def _el(parent: etree._Element, name: str, ns: str = V3, **attrs: Any) -> etree._Element:
    e = etree.SubElement(parent, f"{{{ns}}}{name}")
    for k, v in attrs.items():
        if v is not None:
            e.set(k.rstrip("_"), str(v))
    return e


def _ii(parent: etree._Element, ident: dict[str, Any] | None, name: str = "id",
        ns: str = V3) -> etree._Element:
    root = _oid((ident or {}).get("system"))
    value = (ident or {}).get("value")
    if root and value:
        return _el(parent, name, ns, root=root, extension=value)
    if value:  # no OID: the value as a UUID-rooted extension is not allowed; keep it readable
        return _el(parent, name, ns, root="2.25", extension=value)
    return _el(parent, name, ns, nullFlavor="NI")


def _cd(parent: etree._Element, name: str, cc: dict[str, Any] | None, ns: str = V3,
        system: str | None = None) -> etree._Element:
    for c in (cc or {}).get("coding", []):
        oid = _oid(c.get("system"))
        if oid and c.get("code") and (system is None or c.get("system") == system):
            return _el(parent, name, ns, code=c["code"], codeSystem=oid,
                       displayName=c.get("display"))
    return _el(parent, name, ns, nullFlavor="NI")


def _ts(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y%m%d%H%M%S+0000")


def _name(parent: etree._Element, hn: dict[str, Any] | None, text: str | None = None) -> None:
    n = _el(parent, "name")
    if hn and (hn.get("family") or hn.get("given")):
        for g in hn.get("given", []):
            _el(n, "given").text = g
        if hn.get("family"):
            _el(n, "family").text = hn["family"]
    else:
        n.text = (hn or {}).get("text") or text or ""


def _material(parent: etree._Element, med: dict[str, Any] | None) -> None:
    """manufacturedProduct/manufacturedMaterial (eHDSI Medicinal Product 3.29/3.30)."""
    mp = _el(parent, "manufacturedProduct", classCode="MANU")
    _el(mp, "templateId", root="1.3.6.1.4.1.12559.11.10.1.3.1.3.29")
    mm = _el(mp, "manufacturedMaterial", classCode="MMAT", determinerCode="KIND")
    _el(mm, "templateId", root="1.3.6.1.4.1.12559.11.10.1.3.1.3.30")
    code = (med or {}).get("code") or {}
    product = [c for c in code.get("coding", []) if c.get("system") != "http://www.whocc.no/atc"]
    _cd(mm, "code", {"coding": product})
    _el(mm, "name").text = code.get("text") or "unknown"
    if (med or {}).get("form"):
        _cd(mm, "formCode", med["form"], PHARM)
    atc = [c for c in code.get("coding", []) if c.get("system") == "http://www.whocc.no/atc"]
    if atc:
        kind = _el(mm, "asSpecializedKind", PHARM, classCode="GRIC")
        gmk = _el(kind, "generalizedMaterialKind", PHARM, classCode="MMAT", determinerCode="KIND")
        _cd(gmk, "code", {"coding": atc}, PHARM)
    for ing in (med or {}).get("ingredient", []):
        item = ing.get("itemCodeableConcept")
        if not item:
            continue
        ie = _el(mm, "ingredient", PHARM, classCode="ACTI" if ing.get("isActive", True) else "IACT")
        strength = ing.get("strength") or {}
        if strength.get("numerator", {}).get("value") is not None:
            q = _el(ie, "quantity", PHARM)
            for part in ("numerator", "denominator"):
                v = strength.get(part) or {"value": 1, "code": "1"}
                p = _el(q, part, V3, value=v.get("value", 1), unit=v.get("code") or v.get("unit") or "1")
                p.set(f"{{{XSI}}}type", "PQ")
        sub = _el(ie, "ingredientSubstance", PHARM, classCode="MMAT", determinerCode="KIND")
        _cd(sub, "code", item, PHARM)
        if item.get("text"):
            _el(sub, "name", PHARM).text = item["text"]


def edispensation_cda(request: dict[str, Any], medication: dict[str, Any] | None,
                      patient: dict[str, Any], dispense: Dispense,
                      now: datetime | None = None) -> bytes:
    """The eDispensation document for ``dispense`` of ``request``."""
    if dispense.quantity <= 0:
        raise RejectedInput("the dispensed quantity must be positive", [Issue(
            "error", "value", f"quantity {dispense.quantity:g} is not positive "
            "(eHDSI: the number of packages dispensed)", "--quantity")])
    items = request.get("identifier") or []
    item_id = next((i for i in items if _oid(i.get("system"))), None)
    if item_id is None:
        raise RejectedInput("the MedicationRequest has no identifier with an OID system", [Issue(
            "error", "required", "an eDispensation names the Prescription Item ID (an II with an "
            "OID root): the MedicationRequest has none", "MedicationRequest.identifier")])
    when = dispense.when or now or datetime.now(timezone.utc)
    doc_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"eD|{request.get('id')}|{_ts(when)}"))
    disp_id = dispense.dispense_id or str(uuid.uuid4())

    cd = etree.Element(f"{{{V3}}}ClinicalDocument", nsmap=_NS)
    _el(cd, "realmCode", code="EU")
    _el(cd, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    _el(cd, "templateId", root="1.3.6.1.4.1.12559.11.10.1.3.1.1.2")
    _el(cd, "id", root=doc_id)
    _el(cd, "code", code="60593-1", codeSystem="2.16.840.1.113883.6.1", codeSystemName="LOINC",
        displayName="Medication dispensed.extended Document")
    _el(cd, "title").text = "eDispensation"
    _el(cd, "effectiveTime", value=_ts(when))
    _el(cd, "confidentialityCode", code="N", codeSystem="2.16.840.1.113883.5.25")
    _el(cd, "languageCode", code="en-GB")
    # recordTarget
    pr = _el(_el(cd, "recordTarget"), "patientRole")
    ids = patient.get("identifier") or [{}]
    for ident in ids:
        _ii(pr, ident)
    p = _el(pr, "patient")
    _name(p, (patient.get("name") or [None])[0])
    _el(p, "administrativeGenderCode", code=_GENDER.get(patient.get("gender", ""), "UN"),
        codeSystem="2.16.840.1.113883.5.1")
    if patient.get("birthDate"):
        _el(p, "birthTime", value=patient["birthDate"].replace("-", ""))
    else:
        _el(p, "birthTime", nullFlavor="UNK")
    # author: the dispenser
    author = _el(cd, "author")
    _el(author, "time", value=_ts(when))
    aa = _el(author, "assignedAuthor")
    _el(aa, "id", nullFlavor="NI")
    _name(_el(aa, "assignedPerson"), None, dispense.dispenser_name)
    org = _el(aa, "representedOrganization")
    _el(org, "id", nullFlavor="NI")
    _el(org, "name").text = dispense.pharmacy_name
    # custodian
    cust = _el(_el(_el(cd, "custodian"), "assignedCustodian"), "representedCustodianOrganization")
    _el(cust, "id", nullFlavor="NI")
    _el(cust, "name").text = dispense.pharmacy_name
    # body
    sec = _el(_el(_el(_el(cd, "component"), "structuredBody"), "component"), "section")
    _el(sec, "templateId", root="1.3.6.1.4.1.12559.11.10.1.3.1.2.2")
    _el(sec, "id", root=str(uuid.uuid5(uuid.NAMESPACE_URL, f"eD-section|{doc_id}")))
    _el(sec, "code", code="60590-7", codeSystem="2.16.840.1.113883.6.1",
        displayName="Medication dispensed")
    _el(sec, "title").text = "Dispensed medication"
    med_text = ((medication or {}).get("code") or {}).get("text") or "medication"
    _el(sec, "text").text = (f"{med_text}: {dispense.quantity:g} package(s) dispensed"
                             + (" (substituted)" if dispense.substituted else ""))
    supply = _el(_el(sec, "entry", typeCode="COMP"), "supply", classCode="SPLY", moodCode="EVN")
    _el(supply, "templateId", root="1.3.6.1.4.1.12559.11.10.1.3.1.3.3")
    _el(supply, "id", root=disp_id)
    _el(supply, "quantity", value=f"{dispense.quantity:g}", unit="1")
    _material(_el(supply, "product", typeCode="PRD"), medication)
    perf = _el(supply, "performer", typeCode="PRF")
    _el(perf, "time", value=_ts(when))
    ae = _el(perf, "assignedEntity")
    _el(ae, "id", nullFlavor="NI")
    _name(_el(ae, "assignedPerson"), None, dispense.dispenser_name)
    if dispense.substituted:
        act = _el(_el(supply, "entryRelationship", typeCode="COMP"), "act", classCode="ACT",
                  moodCode="EVN")
        _el(act, "code", code="SUBST", codeSystem="2.16.840.1.113883.5.6",
            displayName="Substitution")
    sa = _el(_el(supply, "entryRelationship", typeCode="REFR"), "substanceAdministration",
             classCode="SBADM", moodCode="INT")
    _el(sa, "templateId", root="1.3.6.1.4.1.12559.11.10.1.3.1.3.2")
    _ii(sa, item_id)
    _material(_el(sa, "consumable", typeCode="CSM"), medication)
    return etree.tostring(cd, xml_declaration=True, encoding="UTF-8", pretty_print=True)
