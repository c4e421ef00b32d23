"""Which profiles apply (``--profile ips|eps|auto``, ``$validate?profile=``).

- ``auto`` (default): what the instance claims in ``meta.profile`` (any
  version we hold, e.g. ``...Bundle-uv-ips|1.1.0``), and for a document
  Bundle whose Composition is a Patient Summary (LOINC 60591-5) the IPS
  Bundle profile; otherwise the base R4 definitions only.
- ``ips``: HL7 IPS 2.0.0 (the profile of the resource's type; Bundle-uv-ips
  for a Bundle); ``ips-1.1.0``: IPS 1.1.0;
- ``eps``: HL7 Europe Patient Summary (our own definitions, see
  ``profiles/README.md``), IPS 2.0.0 for the types it does not constrain;
- ``r4`` (or ``base``): the base R4 definitions only (``meta.profile`` is ignored);
- any canonical URL (``url`` or ``url|version``) of a StructureDefinition.
"""

from __future__ import annotations

from typing import Any

from .packages import get_registry

__all__ = ["CHOICES", "profiles_for", "UnknownProfile"]

CHOICES = ("auto", "ips", "ips-1.1.0", "eps", "r4")
IPS = "http://hl7.org/fhir/uv/ips/StructureDefinition/"
EPS = "http://hl7.eu/fhir/eps/StructureDefinition/"
_PACKAGES = {"ips": ("hl7.fhir.uv.ips", "2.0.0"), "ips-1.1.0": ("hl7.fhir.uv.ips", "1.1.0")}
_EPS_TYPES = {"Bundle": EPS + "bundle-eu-eps", "Composition": EPS + "composition-eu-eps"}
PATIENT_SUMMARY = "60591-5"


class UnknownProfile(ValueError):
    pass


def _is_patient_summary(bundle: dict[str, Any]) -> bool:
    entries = bundle.get("entry")
    if bundle.get("type") != "document" or not isinstance(entries, list) or not entries:
        return False
    first = entries[0].get("resource") if isinstance(entries[0], dict) else None
    if not isinstance(first, dict) or first.get("resourceType") != "Composition":
        return False
    codings = (first.get("type") or {}).get("coding") or []
    return any(isinstance(c, dict) and c.get("system") == "http://loinc.org"
               and c.get("code") == PATIENT_SUMMARY for c in codings)


def _package_profile(rtype: str, package: str, version: str) -> list[str]:
    found = get_registry().profiles_for(rtype, package, version)
    preferred = [u for u in found if u.split("|")[0].endswith(f"/{rtype}-uv-ips")]
    return preferred[:1] or found[:1]


def profiles_for(resource: dict[str, Any], profile: str | None) -> tuple[str, ...]:
    """The profiles to check ``resource`` against, besides its own ``meta.profile``."""
    choice = (profile or "auto").strip()
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        return ()
    if choice in ("auto", ""):
        claims = (resource.get("meta") or {}).get("profile") if isinstance(
            resource.get("meta"), dict) else None
        if rtype == "Bundle" and not claims and _is_patient_summary(resource):
            return tuple(_package_profile("Bundle", *_PACKAGES["ips"]))
        return ()
    if choice in ("r4", "base"):
        return ()
    if choice in _PACKAGES:
        return tuple(_package_profile(rtype, *_PACKAGES[choice]))
    if choice == "eps":
        url = _EPS_TYPES.get(rtype)
        if url and get_registry().knows(url):
            return (url,)
        return tuple(_package_profile(rtype, *_PACKAGES["ips"]))
    if "://" in choice or choice.startswith("urn:"):
        if not get_registry().knows(choice):
            raise UnknownProfile(f"profile {choice} is not known")
        return (choice,)
    raise UnknownProfile(f"unknown profile choice {choice!r} (one of {', '.join(CHOICES)} "
                         "or a canonical URL)")
