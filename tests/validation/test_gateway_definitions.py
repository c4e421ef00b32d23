"""The gateway's own definitions (profiles/gateway/): every URL under the project's canonical
base that the mappings or the code write is defined there, every definition is valid FHIR and
is what the validator and the terminology engine load, and the extensions appear in converted
output only where their context allows and with the value type they define."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from gateway.errors import GatewayError
from gateway.pipeline import convert
from gateway.validation.structure import compile_profile
from gateway.validation.typeinfo import upper_first

ROOT = Path(__file__).resolve().parents[2]
OWN = ROOT / "profiles" / "gateway"
# standard extensions we write whose published package is not available: our rendering of them
ADOPTED = ROOT / "profiles" / "hl7.fhir.eu.extensions.r4#1.2.0-gateway"
SCANNED = [(ROOT / "mappings", ("*.yaml", "*.yml", "*.json")), (ROOT / "gateway", ("*.py",))]
PLACEHOLDERS = re.compile(
    r"urn:gateway:extension|https?://[A-Za-z0-9.-]*\bexample\.(?:org|com|net)\b")
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _package() -> dict[str, Any]:
    return json.loads((OWN / "package.json").read_text("utf-8"))


BASE = _package()["canonical"]


def _resources(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    return [(p, json.loads(p.read_text("utf-8"))) for p in sorted(folder.glob("*.json"))
            if p.name != "package.json"]


def _defined(folder: Path) -> set[str]:
    """Canonical URLs (StructureDefinition, CodeSystem) and identifier system URIs
    (NamingSystem.uniqueId) defined in a package folder."""
    out: set[str] = set()
    for _, r in _resources(folder):
        if r["resourceType"] == "NamingSystem":
            out.update(u["value"] for u in r["uniqueId"] if u["type"] == "uri")
        else:
            out.add(r["url"])
    return out


def _scanned_files() -> Iterator[Path]:
    for folder, patterns in SCANNED:
        for pattern in patterns:
            for path in sorted(folder.rglob(pattern)):
                if not any(part.startswith(".") for part in path.relative_to(ROOT).parts):
                    yield path


@lru_cache(maxsize=1)
def _used() -> dict[str, list[str]]:
    """Every URL under the canonical base written in mappings/ or gateway/ -> where."""
    pattern = re.compile(re.escape(BASE) + r"/[A-Za-z]+/[A-Za-z0-9.\-]+")
    out: dict[str, list[str]] = {}
    for path in _scanned_files():
        for m in pattern.finditer(path.read_text("utf-8")):
            out.setdefault(m.group(0), []).append(str(path.relative_to(ROOT)))
    return out


def test_the_canonical_base_is_the_projects_own() -> None:
    pkg = _package()
    assert BASE == "https://health-gateway.eu/fhir"
    assert pkg["name"] and pkg["version"] and pkg["fhirVersions"] == ["4.0.1"]
    assert "example." not in BASE


def test_every_own_url_used_is_defined() -> None:
    used = _used()
    assert used, "the mappings write no URL under the canonical base?"
    missing = {url: where for url, where in used.items() if url not in _defined(OWN)}
    assert not missing, f"define these in profiles/gateway/ (see profiles/README.md): {missing}"


def test_every_own_definition_is_used() -> None:
    assert sorted(_defined(OWN) - set(_used())) == []


def test_no_placeholder_urls_are_written() -> None:
    hits = [f"{path.relative_to(ROOT)}: {m.group(0)}" for path in _scanned_files()
            for m in PLACEHOLDERS.finditer(path.read_text("utf-8"))]
    assert hits == []


def test_the_adopted_standard_extensions_we_render_are_the_ones_written() -> None:
    """profiles/hl7.fhir.eu.extensions.r4#*-gateway holds exactly the HL7 Europe extensions
    the mappings write."""
    written = {m.group(0) for path in _scanned_files() for m in re.finditer(
        r"http://hl7\.eu/fhir/StructureDefinition/[A-Za-z0-9.\-]+", path.read_text("utf-8"))}
    assert written == _defined(ADOPTED)


# R4 core profiles (not extensions) that no package we can fetch carries (profiles/README.md)
CORE_PROFILES_NOT_HERE = {"http://hl7.org/fhir/StructureDefinition/vitalsigns"}


def test_every_standard_extension_written_is_defined() -> None:
    """The HL7 extensions the mappings or the code write are in profiles/ (profiles/build.py
    copies them from the extensions package), so the validator checks them instead of
    reporting them as not known, and no URL is made up in HL7's namespace. A name ending in
    "-" is a prefix (humanname-: at least one definition starts with it)."""
    from gateway.validation.packages import get_registry

    registry = get_registry()
    written = {m.group(0) for path in _scanned_files() if path.suffix in (".py", ".yaml")
               for m in re.finditer(r"http://hl7\.org/fhir/StructureDefinition/[A-Za-z0-9.\-]+",
                                    path.read_text("utf-8"))} - CORE_PROFILES_NOT_HERE
    assert len(written) > 10
    urls = set(registry._by_url)  # noqa: SLF001 - every canonical URL the registry holds
    missing = sorted(url for url in written if not (
        registry.knows(url) if not url.endswith("-") else any(u.startswith(url) for u in urls)))
    assert missing == []


@pytest.mark.parametrize("folder", [OWN, ADOPTED], ids=["gateway", "hl7-eu"])
def test_definitions_are_valid_fhir(folder: Path) -> None:
    resources = _resources(folder)
    assert resources
    for path, r in resources:
        model = get_fhir_model_class(r["resourceType"])
        model.model_validate(r)  # raises on anything that is not valid R4(B)
        assert path.name == f"{r['resourceType']}-{r['id']}.json"
        assert r.get("description"), path.name
        if r["resourceType"] == "NamingSystem":
            assert all(u["value"].startswith(BASE + "/NamingSystem/") for u in r["uniqueId"])
        elif folder is OWN:
            assert r["url"] == f"{BASE}/{r['resourceType']}/{r['id']}"
            assert r["version"] == _package()["version"]
        if r["resourceType"] == "CodeSystem":
            assert r["content"] in ("not-present", "fragment", "complete")


def _extensions() -> list[dict[str, Any]]:
    return [r for folder in (OWN, ADOPTED) for _, r in _resources(folder)
            if r["resourceType"] == "StructureDefinition"]


@pytest.mark.parametrize("sd", _extensions(), ids=lambda sd: sd["id"])
def test_extension_definitions_say_what_where_and_which_type(sd: dict[str, Any]) -> None:
    assert sd["type"] == "Extension" and sd["kind"] == "complex-type"
    assert sd["derivation"] == "constraint" and sd["fhirVersion"] == "4.0.1"
    assert sd["context"] and all(c["type"] == "element" for c in sd["context"])
    root, *rest = sd["differential"]["element"]
    assert root["path"] == "Extension" and root["short"] and root["definition"]
    by_id = {e["id"]: e for e in rest}
    assert by_id["Extension.url"]["fixedUri"] == sd["url"]
    assert by_id["Extension.extension"]["max"] == "0"
    assert by_id["Extension.value[x]"]["type"]
    compiled = compile_profile(sd["url"])  # what the validator checks an instance against
    assert compiled is not None


@lru_cache(maxsize=1)
def _definitions_by_url() -> dict[str, dict[str, Any]]:
    return {sd["url"]: sd for sd in _extensions()}


def _converted() -> Iterator[tuple[str, dict[str, Any]]]:
    for folder, pattern in (("cda", "*.xml"), ("national", "*.xml"), ("hl7v2", "*.hl7")):
        for path in sorted((ROOT / "fixtures" / folder).rglob(pattern)):
            try:
                conv = convert(path.read_bytes(), now=NOW)
            except GatewayError:  # the fragments and negative fixtures that are refused
                continue
            for r in conv.resources:
                yield str(path.relative_to(ROOT)), r


def _occurrences(obj: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(element path, extension) for every extension in a resource (paths without indexes)."""
    if isinstance(obj, dict):
        for ext in obj.get("extension") or ():
            if isinstance(ext, dict):
                yield path, ext
        for key, value in obj.items():
            yield from _occurrences(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for item in obj:
            yield from _occurrences(item, path)


def _context_allows(expression: str, path: str) -> bool:
    if expression == "Coding":  # a data type context: any Coding
        return path.endswith((".coding", "Coding"))
    return expression == path


def test_converted_output_uses_the_extensions_as_defined() -> None:
    """Context and value type of every own (and adopted) extension in the converted CDA,
    national and HL7 v2 fixtures; the validator checks the value type, this also checks the context."""
    defs = _definitions_by_url()
    seen: set[str] = set()
    wrong: list[str] = []
    for source, resource in _converted():
        for path, ext in _occurrences(resource, resource["resourceType"]):
            sd = defs.get(ext.get("url", ""))
            if sd is None:
                continue
            seen.add(sd["id"])
            if not any(_context_allows(c["expression"], path) for c in sd["context"]):
                wrong.append(f"{source}: {sd['id']} at {path}")
            value_el = next(e for e in sd["differential"]["element"]
                            if e["id"] == "Extension.value[x]")
            allowed = {"value" + upper_first(t["code"]) for t in value_el["type"]}
            keys = {k for k in ext if k.startswith("value")}
            if len(keys) != 1 or not keys <= allowed:
                wrong.append(f"{source}: {sd['id']} at {path} has {sorted(keys)}")
    assert wrong == []
    # the fixtures exercise every extension we define (so the check above is not vacuous)
    assert seen == {sd["id"] for sd in _extensions()}
