"""Terminology is optional: conversion is the same without it, and what it
adds never replaces the document's own coding."""

from __future__ import annotations

from gateway.formats.cda import read_cda
from gateway.mapping.cda import map_document
from gateway.pipeline import cda_mapping
from tests.cda.helpers import converted, fixture, resources


def test_conversion_works_without_terminology() -> None:
    data = fixture("PS-RTD-W3-known-absence.xml").read_bytes()
    result = map_document(
        read_cda(data), cda_mapping(), digest="d", now="2026-01-01T00:00:00Z", terminology=None
    )
    cond = [r for r in result.resources if r["resourceType"] == "Condition"][0]
    assert cond["code"]["coding"] == [
        {
            "system": "http://hl7.org/fhir/uv/ips/CodeSystem/absent-unknown-uv-ips",
            "code": "no-known-problems",
            "display": "No known problems",
        }
    ]


def test_translations_follow_the_original_coding() -> None:
    cond = resources(converted("PS-RTD-W3-known-absence.xml"), "Condition")[0]
    codings = cond["code"]["coding"]
    assert codings[0]["code"] == "no-known-problems"
    for extra in codings[1:]:  # whatever the terminology engine knows
        assert extra.get("userSelected") is False or "extension" not in extra


def test_the_nci_thesaurus_oid_becomes_its_uri() -> None:
    # C-CDA route of administration and dose forms are NCI Thesaurus codes
    import json

    text = json.dumps(converted("MS-170.314B2_Amb_CCD.xml").resources)
    assert "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl" in text
    assert "urn:oid:2.16.840.1.113883.3.26.1.1" not in text
