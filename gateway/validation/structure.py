"""StructureDefinition -> :class:`CompiledProfile` (once per canonical URL).

The element tree is rebuilt from the snapshot's ids (FHIR R4 section
2.17.0.1 "Element ids": ``path`` segments joined by ``.``, slices named
with ``:``). Each element's invariants are compiled to FHIRPath closures
here, so validation never parses anything. ``ele-1`` ("All FHIR elements
must have a @value or children") is checked structurally by the walker on
every element instead of through FHIRPath: it is the one invariant present
on every element of every definition.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from .fhirpath import FhirPathError, compile_expression
from .model import MANY, CompiledProfile, Constraint, Discriminator, ElementRule, Slicing, TypeRef
from .packages import Package, Registry, get_registry
from .snapshot import SnapshotError, apply_differential
from .typeinfo import SYSTEM_TYPES, upper_first

__all__ = ["compile_profile", "snapshot_elements", "ProfileError", "NATIVE_CONSTRAINTS",
           "with_type_elements"]

NATIVE_CONSTRAINTS = frozenset({"ele-1"})
# Narrative XHTML rules (txt-1, txt-2: ``htmlChecks()``, R4 section 2.6.2.4) are not checked:
# the div is only required to be a string.
UNCHECKED_EXPRESSIONS = frozenset({"htmlChecks()"})
_lock = threading.RLock()


class ProfileError(ValueError):
    """A StructureDefinition that cannot be found or compiled."""


def _max(v: str | None) -> int:
    return MANY if v in (None, "*") else int(v)


def snapshot_elements(sd: dict[str, Any], reg: Registry,
                      package: Package | None) -> list[dict[str, Any]]:
    """The snapshot of ``sd``, generated from its base when only a differential is given."""
    snap = sd.get("snapshot", {}).get("element")
    if snap:
        return list(snap)
    base_url = sd.get("baseDefinition")
    if not base_url:
        raise ProfileError(f"{sd.get('url')}: neither a snapshot nor a base definition")
    base = reg.get(base_url, package)
    if base is None:
        raise ProfileError(f"{sd.get('url')}: base definition {base_url} is not known")
    base_elements = snapshot_elements(base, reg, reg.package_of(base_url, package))
    try:
        return apply_differential(base_elements, sd.get("differential", {}).get("element", []),
                                  lambda url: reg.get(url))
    except SnapshotError as exc:
        raise ProfileError(f"{sd.get('url')}: {exc}") from exc


def _types(e: dict[str, Any], choice: bool, pin: "Callable[[str], str]") -> tuple[TypeRef, ...]:
    out = []
    for t in e.get("type", []):
        code = SYSTEM_TYPES.get(t["code"], t["code"])
        for ext in t.get("extension", []):
            if ext.get("url", "").endswith("structuredefinition-fhir-type"):
                code = ext.get("valueUrl") or ext.get("valueUri") or code
        out.append(TypeRef(code, tuple(pin(p) for p in t.get("profile", [])),
                           tuple(pin(p) for p in t.get("targetProfile", [])),
                           upper_first(code) if choice else ""))
    return tuple(out)


def _constraints(e: dict[str, Any]) -> tuple[Constraint, ...]:
    out = []
    for c in e.get("constraint", []):
        key, expr = c.get("key", ""), c.get("expression")
        if key in NATIVE_CONSTRAINTS or not expr or expr.strip() in UNCHECKED_EXPRESSIONS:
            continue
        try:
            compiled, problem = compile_expression(expr), None
        except FhirPathError as exc:
            compiled, problem = None, str(exc)
        out.append(Constraint(key, c.get("severity", "error"), c.get("human", ""), expr,
                              compiled, problem))
    return tuple(out)


def _rule(e: dict[str, Any], url: str, pin: "Callable[[str], str]") -> ElementRule:
    path = e["path"]
    last = path.rsplit(".", 1)[-1]
    choice = last.endswith("[x]")
    fixed = pattern = None
    for k, v in e.items():
        if k.startswith("fixed"):
            fixed = v
        elif k.startswith("pattern"):
            pattern = v
    binding = None
    b = e.get("binding")
    if b and b.get("valueSet") and b.get("strength") in ("required", "extensible"):
        binding = (b["strength"], b["valueSet"])
    slicing = None
    s = e.get("slicing")
    if s:
        slicing = Slicing(tuple(Discriminator(d["type"], d["path"])
                                for d in s.get("discriminator", [])),
                          s.get("rules", "open"), bool(s.get("ordered", False)))
    base = e.get("base", {})
    return ElementRule(
        id=e.get("id", path), path=path, base_path=base.get("path", path),
        name=last[:-3] if choice else last, min=int(e.get("min", 0)), max=_max(e.get("max")),
        array=_max(base.get("max", e.get("max"))) > 1, types=_types(e, choice, pin), choice=choice,
        profile_url=url, slice_name=e.get("sliceName"), fixed=fixed, pattern=pattern,
        binding=binding, constraints=_constraints(e), slicing=slicing,
        content_reference=e.get("contentReference"), modifier=bool(e.get("isModifier")))


def _index_keys(rule: ElementRule) -> None:
    rule.keys = {}
    for child in rule.children:
        if child.choice:
            for t in child.types:
                rule.keys[child.name + t.json_suffix] = (child, t)
        else:
            t = child.types[0] if child.types else TypeRef("BackboneElement")
            rule.keys[child.name] = (child, t)


def with_type_elements(rule: ElementRule, type_root: ElementRule) -> ElementRule:
    """``rule`` with the elements of its type that its snapshot does not list.

    A snapshot lists only the children a profile constrains below an element
    whose type it does not expand (typically a choice such as ``effective[x]``
    with ``effective[x].extension`` sliced); the others are those of the type
    itself (FHIR R4 section 5.1.0.12). The listed children keep the profile's
    rules; a type element is added only when no listed child has its name, so
    that a choice the profile narrowed (``value[x]`` to ``valueCode``) stays
    narrowed. Returns ``rule`` itself when the snapshot lists them all."""
    listed = {child.name for child in rule.children}
    unlisted = [child for child in type_root.children if child.name not in listed]
    if not unlisted:
        return rule
    merged = dataclasses.replace(rule, children=rule.children + unlisted)
    _index_keys(merged)
    return merged


def build_tree(elements: list[dict[str, Any]], url: str,
               pin: "Callable[[str], str]" = lambda u: u) -> tuple[ElementRule,
                                                                 dict[str, ElementRule]]:
    by_id: dict[str, ElementRule] = {}
    root: ElementRule | None = None
    for e in elements:
        rule = _rule(e, url, pin)
        by_id[rule.id] = rule
        parent_id, _, last = rule.id.rpartition(".")
        if not parent_id:
            root = rule
            continue
        if ":" in last:
            name = last.split(":", 1)[0]
            sliced = by_id.get(f"{parent_id}.{name}")
            if sliced is not None:
                sliced.slices.append(rule)
            continue
        parent = by_id.get(parent_id)
        if parent is not None:
            parent.children.append(rule)
    if root is None:
        raise ProfileError(f"{url}: empty snapshot")
    for rule in by_id.values():
        if rule.content_reference and not rule.children:
            # an element defined as another one (Observation.component.referenceRange
            # as Observation.referenceRange): that one's children are its children
            target = by_id.get(rule.content_reference.rpartition("#")[2])
            if target is not None:
                rule.children = target.children
    for rule in by_id.values():
        for s in rule.slices:
            if not s.children:
                s.children = rule.children
        _index_keys(rule)
        rule.finish()
    return root, by_id


@lru_cache(maxsize=1024)
def _compile(url: str, context: str | None) -> CompiledProfile:
    reg = get_registry()
    ctx = next((p for p in reg.packages if f"{p.id}#{p.version}" == context), None)
    sd = reg.get(url, ctx)
    if sd is None or sd.get("resourceType") != "StructureDefinition":
        raise ProfileError(f"profile {url} is not known")
    pkg = reg.package_of(url, ctx)
    elements = snapshot_elements(sd, reg, pkg)

    def pin(ref: str) -> str:
        """An unversioned reference, pinned to the version this package sees."""
        if "|" in ref:
            return ref
        entry = reg._entry(ref, pkg)  # noqa: SLF001 - same package
        return f"{entry.url}|{entry.version}" if entry and entry.version else ref

    root, by_id = build_tree(elements, sd["url"], pin)
    return CompiledProfile(sd["url"], sd.get("version"), sd.get("name", sd.get("id", "")),
                           sd.get("type", root.path), sd.get("kind", ""),
                           sd.get("derivation", "specialization"), root, by_id)


def compile_profile(url: str, context: str | None = None) -> CompiledProfile:
    """The compiled profile for a canonical URL (``url|version`` allowed); cached.

    ``context`` is the ``id#version`` of the package whose definition asks,
    so that an unversioned reference stays inside the same package family."""
    with _lock:
        return _compile(url, context)


def package_key(profile: CompiledProfile) -> str | None:
    pkg = get_registry().package_of(profile.canonical)
    return f"{pkg.id}#{pkg.version}" if pkg else None
