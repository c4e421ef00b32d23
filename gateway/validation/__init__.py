"""Profile validation driven by StructureDefinitions (``profiles/``).

    from gateway.validation import validate_resource, validate_bundle
    issues = validate_bundle(bundle, profile="ips")   # list[gateway.errors.Issue]

Every issue has a severity, a FHIR issue-type code, the FHIRPath of the
element in ``expression`` and the rule (element id or invariant key) in its
message; :func:`gateway.fhir.outcome.operation_outcome` turns the list into
an OperationOutcome. Definitions and FHIRPath are compiled on first use and
cached; each call builds its own state, so calls are safe from threads.
See ARCHITECTURE.md "Validation" and FHIR R4 section 5.1.0.2.
"""

from __future__ import annotations

from typing import Any

from ..errors import Issue

__all__ = ["validate_resource", "validate_bundle", "validate", "CHOICES", "UnknownProfile"]

from .select import CHOICES, UnknownProfile  # noqa: E402  (light: no definitions loaded)


def validate(resource: Any, profile: str | None = None) -> list[Issue]:
    """Validate any resource (a Bundle gets the Bundle-level checks too)."""
    from .document import bundle_checks
    from .instance import Walker, dedupe
    from .references import BundleIndex
    from .select import profiles_for

    if not isinstance(resource, dict):
        kind = "null" if resource is None else type(resource).__name__
        return [Issue("error", "structure", f"a resource must be a JSON object, not {kind}")]
    try:
        wanted = profiles_for(resource, profile)
    except UnknownProfile as exc:
        return [Issue("error", "not-supported", str(exc))]
    rtype = resource.get("resourceType")
    from .typeinfo import type_info

    path = rtype if isinstance(rtype, str) and type_info().is_resource(rtype) else "Resource"
    index = BundleIndex.of(resource, path) if rtype == "Bundle" else None
    walker = Walker(index, claims=(profile or "auto").strip() not in ("r4", "base"))
    try:
        walker.resource(resource, path, wanted)
        issues = walker.sink + walker.elsewhere
        if index is not None:
            issues += bundle_checks(resource, index, path)
    except (TypeError, AttributeError, KeyError, ValueError, IndexError, RecursionError) as exc:
        # A JSON value of a kind the definitions do not allow where a rule
        # looks at it (an object where a string belongs, say): what was found
        # so far, and an error saying the rest could not be checked.
        issues = walker.sink + walker.elsewhere + [Issue(
            "error", "structure",
            f"the resource holds a value of an unexpected JSON type; validation stopped "
            f"({type(exc).__name__}: {str(exc)[:120]})", None, path)]
    return dedupe(issues)


def validate_resource(resource: dict[str, Any], profile: str | None = None) -> list[Issue]:
    """Validate one resource against its base definition, ``profile`` and its meta.profile."""
    return validate(resource, profile)


def validate_bundle(bundle: dict[str, Any], profile: str | None = None) -> list[Issue]:
    """Validate a Bundle: every entry, the Bundle's profile, references, document rules."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        found = bundle.get("resourceType") if isinstance(bundle, dict) else type(bundle).__name__
        return [Issue("error", "structure", f"expected a Bundle, found {found!r}")]
    return validate(bundle, profile)
