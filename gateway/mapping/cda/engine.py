"""Apply compiled CDA templates to elements of one document.

For one element (a section entry's clinical statement, the patient role,
an author...) and the template chosen for it:

1. *focus*: the template's focus paths pick the element(s) that become
   resources (an allergy concern act's allergy observation); the first
   alternative that finds something wins;
2. *key*: the resource id is a UUIDv5 of the type and a business key from
   the element (``fhir/ids.py``): its ``id`` (root and extension), else the
   document id and the element's XPath, so the same document converted
   twice gives the same ids. An id used by two different entries is
   reported and the second takes the positional key;
3. *build*: rules write FHIR elements (``from`` a source path ``to`` a
   target path ``as`` a transform), refer to resources made from related
   elements (``ref``: built on demand with their own template), or build
   list elements (``each``);
4. *account*: every element with data (a code, value, identifier or text)
   inside the entry that no rule read is reported with its XPath and line.

Branching stays here, in Python; the mapping files only say what becomes
what.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from ...fhir.ids import stable_id
from ...formats.cda import locate
from .accounting import account
from .context import DocContext
from .datatypes import ii_key
from .spec import CdaMappingSet, EachRule, FieldRule, RefRule, Rule, Template
from .writing import copy_value, default, write
from .xpaths import SourcePath

__all__ = ["Run", "EntryTrace"]


@dataclass(frozen=True, slots=True)
class EntryTrace:
    """The fidelity report line of one clinical entry: where it is, which
    template mapped it and the resources it became (empty: not mapped)."""

    section: str | None
    location: str
    template: str | None
    resources: tuple[str, ...]


class Run:
    """The state of one document's mapping: resources made, ids taken,
    elements read."""

    def __init__(self, ctx: DocContext, mapping: CdaMappingSet, doc_key: str) -> None:
        self.ctx = ctx
        self.mapping = mapping
        self.doc = ctx.doc.root
        self.tree = ctx.doc.tree
        self.doc_key = doc_key
        self.resources: dict[str, dict[str, Any]] = {}
        self.built: dict[tuple[str, etree._Element], list[str]] = {}
        self.owner: dict[str, etree._Element] = {}
        self.deep: set[etree._Element] = set()
        self.shallow: set[etree._Element] = set()
        self.listing: list[str] | None = None
        self.doc_refs: dict[str, str] = {}
        self.entry: etree._Element = self.doc
        self._tags: dict[etree._Element, frozenset[Any]] = {}
        self._printed: dict[tuple[str, bytes], list[str]] = {}
        self.narratives: dict[etree._Element, dict[str, Any]] = {}
        self._log: list[etree._Element] = []  # elements read since the last account()

    # ------------------------------------------------------------------ build
    def build(
        self, template: Template, node: etree._Element, *, apply_focus: bool = True
    ) -> list[str]:
        """Make the resources of ``template`` from ``node``; their
        references (``Type/id``), in document order."""
        focus_nodes = [node]
        if apply_focus:
            for path in template.focus:
                found = path.select(node, self.entry, self.doc)
                if found:
                    focus_nodes = found
                    break
            else:
                focus_nodes = []
        refs: list[str] = []
        for focus in focus_nodes:
            refs.extend(self._build_one(template, focus))
        return refs

    def _build_one(self, template: Template, focus: etree._Element) -> list[str]:
        memo = (template.name, focus)
        hit = self.built.get(memo)
        if hit is not None:
            return hit
        if template.merge:  # the same author named again, word for word: one resource
            print_ = (template.name, etree.tostring(focus, with_tail=False))
            same = self._printed.get(print_)
            if same is not None:
                self._consume(focus, deep=True)
                self.built[memo] = same
                if template.listed and self.listing is not None:
                    self.listing.extend(r for r in same if r not in self.listing)
                return same
        rtype = template.resource_type
        rid = self._id(template, focus)
        ref = f"{rtype}/{rid}"
        self.built[memo] = [ref]
        body: dict[str, Any] = {"resourceType": rtype, "id": rid}
        if template.profiles:
            body["meta"] = {"profile": list(template.profiles)}
        for k, v in template.fixed.items():
            body[k] = copy_value(v)
        self.apply(template.rules, body, focus)
        for k, v in template.defaults.items():
            default(body, k, v)
        for path in template.ignore:
            for el in path.select(focus, self.entry, self.doc):
                self._consume(el, deep=True)
        existing = self.resources.get(ref)
        if existing is None:
            self.resources[ref] = body
        else:  # the same thing named twice (merge templates): fill what is missing
            for k, v in body.items():
                if k not in existing:
                    existing[k] = v
                elif isinstance(v, list) and isinstance(existing[k], list):
                    existing[k].extend(x for x in v if x not in existing[k])
        if template.listed and self.listing is not None and ref not in self.listing:
            self.listing.append(ref)
        if template.merge:
            self._printed[(template.name, etree.tostring(focus, with_tail=False))] = [ref]
        return [ref]

    def _id(self, template: Template, focus: etree._Element) -> str:
        rtype = template.resource_type
        key = self._key(template, focus)
        if key is not None:
            rid = stable_id(rtype, *key)
            owner = self.owner.get(f"{rtype}/{rid}")
            if owner is None or owner is focus or template.merge:
                self.owner[f"{rtype}/{rid}"] = focus
                return rid
            self.ctx.info(
                f"identifier {'|'.join(key)} also names {locate(owner)}: this "
                f"{rtype} gets an id of its own",
                focus,
                code="duplicate",
            )
        rid = stable_id(rtype, self.doc_key, template.name, self.position(focus))
        self.owner[f"{rtype}/{rid}"] = focus
        return rid

    def _key(self, template: Template, focus: etree._Element) -> tuple[str, ...] | None:
        for alt in template.keys:
            parts: list[str] = []
            for p in alt:
                if isinstance(p, str):
                    value = self._special(p, focus)
                else:
                    found = p.select(focus, self.entry, self.doc)
                    value = None
                    for el in found:
                        value = el.get(p.attribute) if p.attribute else _node_key(el)
                        if value:
                            break
                if not value:
                    break
                parts.append(value)
            else:
                return tuple(parts)
        return None

    def _special(self, part: str, focus: etree._Element) -> str | None:
        if part.startswith("="):
            return part[1:]
        if part == "@doc":
            return self.doc_key
        if part == "@position":
            return self.position(focus)
        if part == "@patient":
            return self.doc_refs.get("@patient")
        return None

    def position(self, el: etree._Element) -> str:
        """Where ``el`` is in the document (libxml2's positional path): the
        key of what has no identifier of its own."""
        return self.tree.getpath(el)

    # ------------------------------------------------------------------ rules
    def apply(self, rules: tuple[Rule, ...], body: dict[str, Any], focus: etree._Element) -> None:
        for rule in rules:
            if type(rule) is FieldRule:
                self._field(rule, body, focus)
            elif type(rule) is RefRule:
                self._ref(rule, body, focus)
            elif type(rule) is EachRule:
                if self._absent(rule.source, focus):
                    continue
                for node in rule.source.select(focus, self.entry, self.doc):
                    element: dict[str, Any] = {}
                    self.apply(rule.rules, element, node)
                    if element:
                        rule.path.set(body, element)

    def _absent(self, src: SourcePath, focus: etree._Element) -> bool:
        """True when the path's first step names a child that is not there:
        most rules of a template find nothing, and this costs a set lookup."""
        first = src.first
        if first is None:
            return False
        el = self.entry if src.on_entry else focus
        tags = self._tags.get(el)
        if tags is None:
            tags = self._tags[el] = frozenset(c.tag for c in el)
        return first not in tags

    def _field(self, rule: FieldRule, body: dict[str, Any], focus: etree._Element) -> None:
        src = rule.source
        first = src.first
        if first is not None:
            el = self.entry if src.on_entry else focus
            tags = self._tags.get(el)
            if tags is None:
                tags = self._tags[el] = frozenset(c.tag for c in el)
            if first not in tags:
                return
        nodes = src.select(focus, self.entry, self.doc)
        if not nodes:
            return
        ctx = self.ctx
        attr = src.attribute
        tf = rule.transform
        if attr:
            values: list[Any] = []
            for el in nodes:
                v = el.get(attr)
                if v is not None:
                    values.append((el, v))
                    if tf.reads:
                        self._consume(el, deep=False)
        else:
            values = [(el, el) for el in nodes]
            if tf.reads:
                for el in nodes:
                    self._consume(el, deep=True)
        if not values or tf.name == "ignore":
            return
        ctx.target = (body.get("resourceType", ""), rule.path.text)
        try:
            if tf.many:
                value = tf.fn([v for _, v in values], ctx, rule.args)
                if value is not None and not write(rule.path, body, value):
                    ctx.info(
                        f"not written: {rule.path.text} is already set by an earlier rule",
                        values[0][0],
                    )
                return
            use = values if rule.path.repeats else values[:1]
            written = False
            for el, v in use:
                value = tf.fn(v, ctx, rule.args)
                if value is None:
                    continue
                if not write(rule.path, body, value):
                    ctx.info(f"not written: {rule.path.text} is already set by an earlier rule", el)
                else:
                    written = True
            if len(values) > len(use) and written:
                extra = values[1]
                if tf.fn(extra[1], ctx, rule.args) is not None:
                    ctx.warn(
                        f"{len(values) - 1} more value(s) not converted: "
                        f"{rule.path.text} holds one",
                        extra[0],
                        code="structure",
                    )
        finally:
            ctx.target = None

    def _ref(self, rule: RefRule, body: dict[str, Any], focus: etree._Element) -> None:
        if rule.source is None:
            ref = self.doc_refs.get(rule.template)
            if ref:
                rule.path.set(body, {"reference": ref})
            return
        if self._absent(rule.source, focus):
            return
        nodes = rule.source.select(focus, self.entry, self.doc)
        if not nodes:
            return
        if rule.template.startswith("@"):
            ref = self.doc_refs.get(rule.template)
            if ref:
                rule.path.set(body, {"reference": ref})
            return
        template = self.mapping.templates[rule.template]
        refs: list[str] = []
        for node in nodes:
            refs.extend(self.build(template, node))
        if rule.back:  # the resources made point at this one (Observation.focus)
            here = {"reference": f"{body['resourceType']}/{body['id']}"}
            for ref in refs:
                rule.path.set(self.resources[ref], dict(here))
            return
        if not rule.path.repeats:
            refs = refs[:1]
        for ref in refs:
            rule.path.set(body, {"reference": ref})

    def _consume(self, el: etree._Element, *, deep: bool) -> None:
        (self.deep if deep else self.shallow).add(el)
        self._log.append(el)

    # ------------------------------------------------------------------ account
    def account(self, stmt: etree._Element) -> int:
        """Report each element with data under ``stmt`` that no rule read
        (``accounting.py``); the number reported."""
        log, self._log = self._log, []
        return account(self, stmt, log)


def _node_key(el: etree._Element) -> str | None:
    if el.get("root") or el.get("extension"):
        return ii_key(el)
    if el.get("code"):
        return f"{el.get('codeSystem', '')}|{el.get('code')}"
    if el.get("value"):
        return el.get("value")
    text = " ".join("".join(el.itertext()).split())
    return text or None
