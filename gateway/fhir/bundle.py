"""Transaction Bundles (FHIR R4 section 2.36) of converted resources."""

from __future__ import annotations

from typing import Any

__all__ = ["transaction_bundle"]


def transaction_bundle(resources: list[dict[str, Any]], bundle_id: str | None = None) -> dict[str, Any]:
    """A ``transaction`` Bundle that PUTs every resource at its stable id, so
    that applying it twice changes nothing."""
    entries = []
    for res in resources:
        rtype, rid = res["resourceType"], res["id"]
        entries.append({
            "fullUrl": f"urn:uuid:{rid}",
            "resource": res,
            "request": {"method": "PUT", "url": f"{rtype}/{rid}"},
        })
    bundle: dict[str, Any] = {"resourceType": "Bundle"}
    if bundle_id:
        bundle["id"] = bundle_id
    bundle["type"] = "transaction"
    bundle["entry"] = entries
    return bundle
