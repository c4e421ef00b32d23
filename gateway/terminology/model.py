"""Value types of the terminology API: results of $validate-code, $lookup and
$translate as plain frozen dataclasses.

FHIR R4 terminology module (https://hl7.org/fhir/R4/terminology-module.html);
ConceptMap equivalence codes from https://hl7.org/fhir/R4/valueset-concept-map-equivalence.html.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "MembershipResult",
    "Relationship",
    "Membership",
    "ConceptInfo",
    "Translation",
    "relationship_of",
    "EQUIVALENCE_CODES",
]

MembershipResult = Literal["member", "not-member", "not-checked"]
Relationship = Literal["equivalent", "wider", "narrower", "related-to", "not-related-to"]


@dataclass(frozen=True, slots=True)
class Membership:
    """Answer of ``validate_code``: is the code in the value set?

    ``not-checked`` means the engine could not decide (a code system or filter
    it cannot evaluate locally, a value set not loaded); it is never a pass."""

    result: MembershipResult
    message: str
    display: str | None = None

    @property
    def ok(self) -> bool:
        return self.result == "member"


@dataclass(frozen=True, slots=True)
class ConceptInfo:
    """Answer of ``lookup``: what a code system says about one code."""

    system: str
    code: str
    display: str | None
    designations: dict[str, str] = field(default_factory=dict)
    parents: tuple[str, ...] = ()
    version: str | None = None
    name: str | None = None  # the code system's name
    properties: tuple[tuple[str, str], ...] = ()
    inactive: bool = False


@dataclass(frozen=True, slots=True)
class Translation:
    """One target of ``translate``.

    ``relationship`` says how the target relates to the source concept, in the
    R4 direction (``wider``: the target is wider in meaning than the source).
    Only ``equivalent`` may be presented as the same concept; ``equivalence``
    keeps the ConceptMap's own R4 code."""

    system: str
    code: str | None
    display: str | None
    relationship: Relationship
    conceptmap: str
    equivalence: str = "equivalent"
    comment: str | None = None
    source_system: str | None = None
    source_code: str | None = None

    @property
    def equivalent(self) -> bool:
        return self.relationship == "equivalent"


# R4 ConceptMapEquivalence -> relationship; R5 ConceptMapRelationship codes too.
EQUIVALENCE_CODES: dict[str, Relationship] = {
    "equivalent": "equivalent",
    "equal": "equivalent",
    "wider": "wider",
    "subsumes": "wider",
    "narrower": "narrower",
    "specializes": "narrower",
    "relatedto": "related-to",
    "inexact": "related-to",
    "unmatched": "not-related-to",
    "disjoint": "not-related-to",
    # R5 ConceptMapRelationship
    "related-to": "related-to",
    "source-is-narrower-than-target": "wider",
    "source-is-broader-than-target": "narrower",
    "not-related-to": "not-related-to",
}


def relationship_of(equivalence: str | None) -> Relationship:
    """Map an R4 equivalence (or R5 relationship) code; unknown codes are
    treated as ``related-to`` so they are never taken for equivalence."""
    if not equivalence:
        return "equivalent"  # R4: equivalence defaults to "equivalent"
    return EQUIVALENCE_CODES.get(equivalence, "related-to")
