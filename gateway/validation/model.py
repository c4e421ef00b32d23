"""The compiled form of a StructureDefinition: a tree of :class:`ElementRule`.

A snapshot (FHIR R4 section 2.17 "ElementDefinition", section 5.1.0.12
"Snapshot and differential") is a flat, ordered list of element definitions
named by ids such as ``Composition.section:sectionProblems.code``. Compiling
turns it into a tree: each rule knows its children by JSON key (a choice
element ``value[x]`` answers to ``valueQuantity``, ``valueString``...), its
slices (section 5.1.0.14 "Slicing"), its fixed or pattern value, its binding,
its invariants compiled to FHIRPath closures, and the types whose own
definitions apply below it when the snapshot does not spell them out.
Compiled rules are immutable once built and shared between threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .fhirpath import Compiled

__all__ = ["TypeRef", "Constraint", "Discriminator", "Slicing", "ElementRule", "CompiledProfile",
           "MANY"]

MANY = 1 << 30  # max = "*"


@dataclass(frozen=True, slots=True)
class TypeRef:
    """One ``ElementDefinition.type``: code, profiles and target profiles (section 2.17.0.2)."""

    code: str
    profiles: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    json_suffix: str = ""  # "Quantity" in valueQuantity


@dataclass(frozen=True, slots=True)
class Constraint:
    """One invariant (``ElementDefinition.constraint``)."""

    key: str
    severity: str  # error | warning
    human: str
    expression: str
    compiled: Compiled | None
    problem: str | None = None  # why it could not be compiled


@dataclass(frozen=True, slots=True)
class Discriminator:
    type: str  # value | pattern | type | profile | exists
    path: str


@dataclass(frozen=True, slots=True)
class Slicing:
    discriminators: tuple[Discriminator, ...]
    rules: str  # open | closed | openAtEnd
    ordered: bool


@dataclass(eq=False, slots=True)
class ElementRule:
    """A compiled element definition (one node of the tree)."""

    id: str
    path: str
    base_path: str
    name: str  # "value" for value[x]
    min: int
    max: int
    array: bool  # represented as a JSON array (base max > 1)
    types: tuple[TypeRef, ...]
    choice: bool
    profile_url: str
    slice_name: str | None = None
    fixed: Any = None
    pattern: Any = None
    binding: tuple[str, str] | None = None  # (strength, value set)
    constraints: tuple[Constraint, ...] = ()
    slicing: Slicing | None = None
    slices: list["ElementRule"] = field(default_factory=list)
    children: list["ElementRule"] = field(default_factory=list)
    keys: dict[str, tuple["ElementRule", TypeRef]] = field(default_factory=dict)
    content_reference: str | None = None
    modifier: bool = False
    plain: bool = False  # no fixed/pattern/binding/invariants/slicing: type check only

    def finish(self) -> None:
        self.plain = (self.fixed is None and self.pattern is None and self.binding is None
                      and not self.constraints and self.slicing is None)

    @property
    def label(self) -> str:
        """The element as the profile names it, for messages."""
        return self.id

    def type_for_key(self, key: str) -> TypeRef | None:
        hit = self.keys.get(key)
        return hit[1] if hit else None


@dataclass(eq=False, slots=True)
class CompiledProfile:
    """A compiled StructureDefinition."""

    url: str
    version: str | None
    name: str
    type: str  # the resource or data type constrained
    kind: str
    derivation: str
    root: ElementRule
    by_id: dict[str, ElementRule]

    @property
    def canonical(self) -> str:
        return f"{self.url}|{self.version}" if self.version else self.url
