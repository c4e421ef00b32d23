"""Apply a national XML mapping (``spec.NationalMapping``) to one document.

1. every *top* template's ``focus`` selects the elements that become
   resources, in file order (the patient first);
2. the resource id is the UUIDv5 of the type and the template's ``key``
   (literal parts and XPath values joined with ``|``, ``fhir/ids.py``), so
   a Danish prescription id keyed ``1.2.208.176.7.2.2|<id>`` is the same
   MedicationRequest whether it came from FMK or from an eHDSI CDA;
3. rules write FHIR elements through named transforms; ``ref`` rules build
   (once) the resource of another template and point at it;
4. *account*: every element with text under the root that no rule read
   (and no ``ignore`` XPath names) becomes a warning with its XPath and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from ...errors import Issue
from ...fhir.ids import stable_id
from .spec import NationalMapping, Rule, Template

__all__ = ["map_national", "NationalResult", "where"]


def _step(el: etree._Element) -> str:
    name = etree.QName(el).localname
    parent = el.getparent()
    if parent is None:
        return name
    same = [s for s in parent if isinstance(s.tag, str) and s.tag == el.tag]
    return f"{name}[{same.index(el) + 1}]" if len(same) > 1 else name


def where(el: etree._Element) -> str:
    """``/GetPrescriptionResponse/Prescription[2]/Drug/Name (line 61)``."""
    steps = [_step(a) for a in reversed(list(el.iterancestors()))] + [_step(el)]
    path = "/" + "/".join(steps)
    return f"{path} (line {el.sourceline})" if el.sourceline else path


@dataclass(slots=True)
class NationalResult:
    resources: list[dict[str, Any]] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)


class _Run:
    def __init__(self, mapping: NationalMapping, root: etree._Element) -> None:
        self.m = mapping
        self.root = root
        self.resources: dict[str, dict[str, Any]] = {}
        self.built: dict[tuple[str, etree._Element], str] = {}
        self.read: set[etree._Element] = set()
        self.issues: list[Issue] = []
        self.ns = mapping.namespaces

    def report(self, message: str, el: Any, code: str = "value") -> None:
        loc = where(el) if isinstance(el, etree._Element) else None
        self.issues.append(Issue("warning", code, message, loc))  # type: ignore[arg-type]

    def consume(self, el: Any) -> None:
        if isinstance(el, etree._Element):
            self.read.update(e for e in el.iter() if isinstance(e.tag, str))

    def key(self, t: Template, focus: etree._Element) -> str:
        parts: list[str] = []
        for k in t.key:
            if isinstance(k, str):
                parts.append(k)
                continue
            found = k(focus)
            value = ""
            for f in found if isinstance(found, list) else [found]:
                value = f if isinstance(f, str) else " ".join("".join(f.itertext()).split())
                if value:
                    self.consume(f)
                    break
            if not value:
                return "|".join(["@position", self.root.getroottree().getpath(focus)])
            parts.append(value)
        return "|".join(parts)

    def build(self, t: Template, focus: etree._Element) -> str:
        hit = self.built.get((t.name, focus))
        if hit:
            return hit
        rid = stable_id(t.resource_type, self.key(t, focus))
        ref = f"{t.resource_type}/{rid}"
        self.built[(t.name, focus)] = ref
        body: dict[str, Any] = {"resourceType": t.resource_type, "id": rid, **t.fixed}
        self.apply(t.rules, body, focus)
        for k, v in t.defaults.items():
            body.setdefault(k, v)
        existing = self.resources.get(ref)
        if existing is None:
            self.resources[ref] = body
        else:
            for k, v in body.items():
                existing.setdefault(k, v)
        return ref

    def select(self, rule: Rule, focus: etree._Element) -> list[Any]:
        if rule.source is None:
            return [focus]
        found = rule.source(focus)
        return found if isinstance(found, list) else [found]

    def apply(self, rules: tuple[Rule, ...], body: dict[str, Any], focus: etree._Element) -> None:
        for rule in rules:
            if rule.each:
                for node in self.select(rule, focus):
                    item: dict[str, Any] = {}
                    self.apply(rule.each, item, node)
                    if item:
                        rule.path.set(body, item)
                continue
            if rule.ref is not None:
                target = self.m.templates[rule.ref]
                nodes = (self.select(rule, focus) if rule.source is not None
                         else target.focus(self.root))
                for node in nodes[: None if rule.path.repeats else 1]:
                    if isinstance(node, etree._Element):
                        rule.path.set(body, {"reference": self.build(target, node)})
                continue
            if rule.transform is None:
                continue
            args = dict(rule.args, _ns=self.ns)
            if rule.source is None:  # a constant
                value = rule.transform("", args, self.report)
                if value is not None:
                    rule.path.set(body, value)
                continue
            for node in self.select(rule, focus):
                self.consume(node)
                value = rule.transform(node, args, self.report)
                if value is None or rule.path.text == "_ignored":
                    continue
                rule.path.set(body, value)
                if not rule.path.repeats:
                    break

    def account(self) -> None:
        for x in self.m.ignore:
            for el in x(self.root):
                self.consume(el)
        for el in self.root.iter():
            if not isinstance(el.tag, str) or el in self.read:
                continue
            if el.text and el.text.strip() and not len(el):
                self.issues.append(Issue(
                    "warning", "not-supported",
                    f"{etree.QName(el).localname} {el.text.strip()[:60]!r} is not converted",
                    where(el)))


def map_national(mapping: NationalMapping, root: etree._Element) -> NationalResult:
    """The resources one national XML document becomes, and what was not kept."""
    run = _Run(mapping, root)
    for name in mapping.order:
        t = mapping.templates[name]
        for node in t.focus(root):
            if isinstance(node, etree._Element):
                run.build(t, node)
    run.account()
    return NationalResult(list(run.resources.values()), run.issues)
