"""Apply a compiled HL7 v2 mapping set to one parsed message.

The flow for one message:

1. group: each segment is attached to the segment it belongs to
   (``structure.yaml`` ``parents``: an OBX to the OBR, RXA or TXA before it);
2. plan: every template of the message type is matched to its segments and
   each resource's id is derived from its business key (``key`` in the
   template), so that references can be written in any order;
3. build: rules copy fields into the resources through their transforms;
4. account: every field with a value that no rule read is reported, with its
   HL7 location, as an unmapped issue.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ...errors import Issue, Issues, RejectedInput, Severity
from ...fhir.ids import stable_id
from ...formats.hl7v2.er7 import Message, Rep, Segment, numeral
from ..common import compact
from .context import RuleContext
from .spec import (
    EachRule,
    FieldRule,
    KeyPart,
    MappingSet,
    RefRule,
    SourceRef,
    Template,
    parse_source,
)

MAX_EACH_ELEMENTS = 20_000

__all__ = ["MappingResult", "map_message", "Run"]


@dataclass(slots=True)
class MappingResult:
    resources: list[dict[str, Any]]
    issues: Issues
    message_spec: str


@dataclass(slots=True)
class _Planned:
    template: Template
    segment: Segment
    id: str
    body: dict[str, Any]
    primary: bool = True  # False when another segment already made this resource


class Run:
    """The state of one message's conversion."""

    def __init__(self, message: Message, mapping: MappingSet, digest: str, now: str) -> None:
        self.now = now
        self.message = message
        self.mapping = mapping
        self.digest = digest
        self.issues = message.issues
        msh = message.msh
        self.sender = "|".join(x for x in (msh.get(3), msh.get(4)) if x) or "unknown-sender"
        tz = msh.get(7).strip()
        self.default_tz = tz[-5:] if len(tz) > 5 and tz[-5] in "+-" and tz[-4:].isdigit() else None
        # What the rules read, by segment position: whole fields, and the
        # components read of fields read component by component.
        self.consumed: defaultdict[int, set[int]] = defaultdict(set)
        self.consumed_comps: dict[int, dict[int, set[int]]] = {}
        self.side: dict[str, dict[str, Any]] = {}
        self.side_order: list[str] = []
        self.planned: list[_Planned] = []
        self._first_planned: dict[str, _Planned] | None = None
        self.by_segment: dict[tuple[int, str], _Planned] = {}
        # the first by_segment key of each segment position (for "@parent")
        self._first_key_at: dict[int, tuple[int, str]] = {}
        self.by_id: dict[tuple[str, str], _Planned] = {}
        # The grouping (``group``), by segment position. Kept here, not on the
        # segments: a segment pointing at its parent and back would make
        # every message a reference cycle that only the garbage collector frees.
        self._parent: dict[int, Segment] = {}
        self._children: dict[int, list[Segment]] = {}
        self._related: dict[tuple[int, str], list[Segment]] = {}
        self._related_one: dict[tuple[int, str], Segment | None] = {}
        self._descendants: dict[tuple[int, str], list[Segment]] = {}
        self._each_elements = 0
        self._top: dict[str, list[Segment]] = {}
        self.segments_used: set[int] = set()

    # ------------------------------------------------------------------ grouping
    def group(self) -> None:
        parents, barriers = self.mapping.parents, self.mapping.barriers
        last: dict[str, Segment] = {}
        last_barrier = 0
        for seg in self.message.segments[1:]:
            candidates = parents.get(seg.name)
            if candidates:
                prev: Segment | None = None  # the latest segment of a candidate name
                for c in candidates:
                    s = last.get(c)
                    if s is not None and (prev is None or s.position > prev.position):
                        prev = s
                if prev is not None and prev.position >= last_barrier:
                    self._parent[seg.position] = prev
                    self._children.setdefault(prev.position, []).append(seg)
            last[seg.name] = seg
            if seg.name in barriers:
                last_barrier = seg.position

    def related(self, seg: Segment, name: str) -> list[Segment]:
        """Segments named ``name`` that belong with ``seg``: itself, its
        descendants, its ancestors, then what shares its nearest ancestor.
        The list is shared (the grouping does not change once made): read it,
        do not change it."""
        key = (seg.position, name)
        found = self._related.get(key)
        if found is None:
            found = self._related[key] = self._find_related(seg, name)
        return found

    def _find_related(self, seg: Segment, name: str) -> list[Segment]:
        if seg.name == name:
            return [seg]
        if name not in self.message.by_name:
            return []  # most names a template reads are not in a given message
        found = self._below(seg, name)
        if found:
            return found
        parent = self._parent
        p = parent.get(seg.position)
        while p is not None:
            if p.name == name:
                return [p]
            sib = [s for s in self._below(p, name) if s is not seg]
            if sib:
                return sib
            p = parent.get(p.position)
        top = self._top.get(name)
        if top is None:
            top = self._top[name] = [s for s in self.message.all(name) if s.position not in parent]
        return top

    def _below(self, seg: Segment, name: str) -> list[Segment]:
        """Descendants of ``seg`` named ``name``, depth first in message order."""
        key = (seg.position, name)
        found = self._descendants.get(key)
        if found is None:
            children = self._children
            found = []
            stack = list(reversed(children.get(seg.position, ())))
            while stack:
                s = stack.pop()
                if s.name == name:
                    found.append(s)
                stack.extend(reversed(children.get(s.position, ())))
            self._descendants[key] = found
        return found

    def children(self, seg: Segment) -> list[Segment]:
        """The segments that belong directly to ``seg`` (``structure.yaml``)."""
        return self._children.get(seg.position, [])

    def ancestor(self, seg: Segment, names: tuple[str, ...] | frozenset[str]) -> Segment | None:
        """The nearest segment ``seg`` belongs to whose name is in ``names``."""
        p = self._parent.get(seg.position)
        while p is not None:
            if p.name in names:
                return p
            p = self._parent.get(p.position)
        return None

    def related_one(self, seg: Segment, name: str) -> Segment | None:
        key = (seg.position, name)
        one = self._related_one.get(key, _UNSET)
        if one is _UNSET:
            found = self.related(seg, name)
            one = self._related_one[key] = found[0] if found else None
        return one  # type: ignore[return-value]

    # ------------------------------------------------------------------ bookkeeping
    def consume(self, seg: Segment, field: int, comp: int | None = None) -> None:
        pos = seg.position
        self.segments_used.add(pos)
        if comp is None:
            self.consumed[pos].add(field)
        else:
            self.consumed_comps.setdefault(pos, {}).setdefault(field, set()).add(comp)

    def add_side_resource(self, rtype: str, rid: str, body: dict[str, Any]) -> None:
        key = f"{rtype}/{rid}"
        existing = self.side.get(key)
        if existing is None:
            self.side[key] = {"resourceType": rtype, "id": rid,
                              **{k: v for k, v in body.items() if k != "resourceType"}}
            self.side_order.append(key)
            return
        for k, v in body.items():
            if k not in existing:
                existing[k] = v

    # ------------------------------------------------------------------ keys
    def _key_part(self, part: KeyPart, seg: Segment) -> str:
        if type(part) is SourceRef:
            target = seg if part.segment == seg.name else self.related_one(seg, part.segment)
            if target is None:
                return ""
            comp = part.comp
            reps = target.reps(part.field)
            value = reps[0].get(comp or 1, part.sub or 1).strip() if reps else ""
            if value and comp is None:
                self.consume(target, part.field)  # a key field is used, not dropped
            return value
        assert isinstance(part, str)
        if part.startswith("="):
            return part[1:]
        if part == "@patient":
            pid = self.message.one("PID")
            planned = self.by_segment.get((pid.position, "Patient")) if pid else None
            return planned.id if planned else ""
        if part == "@parent":
            p = self._parent.get(seg.position)
            while p is not None:
                first = self._first_key_at.get(p.position)
                if first is not None:
                    return self.by_segment[first].id
                p = self._parent.get(p.position)
            return ""
        if part == "@sender":
            return self.sender
        if part == "@message":
            return self.message.control_id or self.digest
        if part == "@digest":
            return self.digest
        if part == "@position":
            return str(seg.position)
        parse_source(part, "key")  # an unknown special part: the mapping is wrong
        return ""

    def resource_id(self, template: Template, seg: Segment) -> str:
        # Every part of an alternative tried is read (a key field is consumed
        # even when its alternative fails); a part shared by alternatives once.
        parts = template.key_parts
        values: list[str | None] = [None] * len(parts)
        for alt in template.key_alts:
            found = []
            for i in alt:
                v = values[i]
                if v is None:
                    v = values[i] = self._key_part(parts[i], seg)
                found.append(v)
            if all(found):
                return stable_id(template.resource_type, *found)
        self.issues.add(Issue(
            "information", "incomplete",
            f"no business identifier for this {template.resource_type}: its id is derived "
            "from the message, so a later update cannot find it", seg.label))
        return stable_id(template.resource_type, self.digest, str(seg.position))

    def _has(self, seg: Segment, ref: SourceRef) -> bool:
        target = seg if ref.segment == seg.name else self.related_one(seg, ref.segment)
        return bool(target and target.get(ref.field, ref.comp or 1, ref.sub or 1).strip())

    # ------------------------------------------------------------------ plan and build
    def plan(self, pairs: tuple[tuple[str, str], ...]) -> None:
        templates = self.mapping.templates
        by_segment, by_id = self.by_segment, self.by_id
        for seg_name, rtype in pairs:
            template = templates[(seg_name, rtype)]
            required = template.required
            for seg in self.message.all(seg_name):
                if required and not all(self._has(seg, r) for r in required):
                    continue
                rid = self.resource_id(template, seg)
                same = by_id.get((rtype, rid))
                if same is not None and template.distinct and same.template is template:
                    rid = self._distinct_id(template, seg, rid, same.segment)
                    same = None
                if same is not None:
                    # Two segments name the same thing (the drug ordered and the
                    # drug dispensed): one resource, both rule sets fill it.
                    planned = _Planned(template, seg, rid, same.body, primary=False)
                else:
                    body: dict[str, Any] = {"resourceType": rtype, "id": rid}
                    planned = _Planned(template, seg, rid, body)
                    by_id[(rtype, rid)] = planned
                self.planned.append(planned)
                key = (seg.position, rtype)
                by_segment[key] = planned
                self._first_key_at.setdefault(seg.position, key)
                self.segments_used.add(seg.position)

    def _distinct_id(self, template: Template, seg: Segment, rid: str, first: Segment) -> str:
        """An id for ``seg``, whose key repeats that of ``first`` in a template
        whose segments are distinct facts: the key with the repeat's ordinal
        (stable when the same message comes again, or corrected)."""
        rtype = template.resource_type
        n = 2
        while (rtype, candidate := stable_id(rtype, rid, str(n))) in self.by_id:
            n += 1
        self.issues.add(Issue(
            "warning", "duplicate",
            f"{seg.label} has the same key as {first.label} ({' + '.join(template.keys[0])}): "
            f"kept as a separate {rtype}", seg.label))
        return candidate

    def ref_targets(self, rule: RefRule, seg: Segment) -> list[_Planned]:
        rtype = rule.resource_type
        if rule.segment is None:
            if self._first_planned is None:
                self._first_planned = {}
                for planned in self.planned:
                    self._first_planned.setdefault(planned.template.resource_type, planned)
            first = self._first_planned.get(rtype)
            return [first] if first is not None else []
        out = []
        for s in self.related(seg, rule.segment):
            p = self.by_segment.get((s.position, rtype))
            if p is not None:
                out.append(p)
        return out

    def build(self) -> None:
        ctx = RuleContext(self)
        deferred: list[tuple[_Planned, RefRule]] = []
        for planned in self.planned:
            body = planned.body
            template = planned.template
            for k, v in template.fixed.items():
                body.setdefault(k, _copy(v))
            if template.profiles:
                body["meta"] = {"profile": list(template.profiles)}
            every: list[RefRule] = []
            self.apply_rules(template.rules, planned.segment, body, ctx, every)
            deferred.extend((planned, rule) for rule in every)
        for planned, rule in deferred:
            put = rule.path.put
            for other in self.planned:
                if other is not planned and other.primary:
                    put(planned.body, {"reference": f"{other.body['resourceType']}/{other.id}"})
            for key in self.side_order:
                put(planned.body, {"reference": key})

    def apply_rules(self, rules: tuple[FieldRule | RefRule | EachRule, ...], seg: Segment,
                    body: dict[str, Any], ctx: RuleContext,
                    defer: list[RefRule] | None = None) -> None:
        """Apply ``rules`` in order to ``seg``; references to every resource
        (``ref: "*"``) go to ``defer`` when given (they wait for the others)."""
        name, fields = seg.name, seg.fields
        nfields = len(fields)
        for rule in rules:
            if type(rule) is FieldRule:
                # Most rules find their field empty: that is decided here,
                # before any call.
                src = rule.source
                f = src.field
                if src.segment == name:
                    if f < nfields and fields[f]:
                        self._apply_field(rule, seg, f, body, ctx)
                    continue
                target = self.related_one(seg, src.segment)
                if target is not None and f < len(target.fields) and target.fields[f]:
                    self._apply_field(rule, target, f, body, ctx)
            elif defer is not None and type(rule) is RefRule and rule.resource_type == "*":
                defer.append(rule)
            else:
                self.apply(rule, seg, body, ctx)

    def apply(self, rule: FieldRule | RefRule | EachRule, seg: Segment, body: dict[str, Any],
              ctx: RuleContext) -> None:
        if type(rule) is FieldRule:
            self.apply_rules((rule,), seg, body, ctx)
            return
        if type(rule) is RefRule:
            targets = self.ref_targets(rule, seg)
            if not rule.path.repeats:
                targets = targets[:1]
            for t in targets:
                rule.path.put(body, {"reference": f"{t.template.resource_type}/{t.id}"})
            return
        if type(rule) is EachRule:
            direct = [c for c in self.children(seg) if c.name == rule.segment]
            others = direct if rule.own else direct or self.related(seg, rule.segment)
            self._each_elements += len(others)
            if self._each_elements > MAX_EACH_ELEMENTS:
                raise RejectedInput("message too repetitive", [Issue(
                    "error", "too-long", f"the {rule.segment} segments related to {seg.name} segments "
                    f"would make more than {MAX_EACH_ELEMENTS} elements", seg.label)])
            for other in others:
                self.segments_used.add(other.position)
                element: dict[str, Any] = {}
                self.apply_rules(rule.rules, other, element, ctx)
                if element:
                    rule.path.put(body, element)
            return

    def _apply_field(self, rule: FieldRule, target: Segment, f: int, body: dict[str, Any],
                     ctx: RuleContext) -> None:
        """Map field ``f`` of ``target`` (it holds a value) by ``rule``."""
        src = rule.source
        comp = src.comp
        if comp is None:  # consume(), inline: this runs for every value mapped
            self.segments_used.add(target.position)
            self.consumed[target.position].add(f)
        else:
            self.consume(target, f, comp)
        reps = target.reps(f)
        tf = rule.transform
        path = rule.path
        ctx.segment = target
        ctx.resource = body
        ctx.rule_path = path.text
        if comp is not None:
            reps = [r.component(comp) for r in reps]
            sub = src.sub
            if sub is not None:
                reps = [Rep(r.components[0][sub - 1] if sub <= len(r.components[0]) else "",
                            target.enc) for r in reps]
        if tf.many:
            ctx.at(f, comp, None)
            value = tf.fn(reps, ctx, rule.args)  # type: ignore[arg-type]
            if value is not None and not path.put(body, value):
                ctx.report(f"not written: {path.text} is already set by an earlier rule",
                           "information")
            return
        if path.repeats or len(reps) == 1:
            use = reps
        else:
            use = reps[:1]
            if len(reps) > 1:
                ctx.at(f, comp, 2)
                ctx.report(f"{len(reps) - 1} more repetition(s) not mapped: {path.text} holds one",
                           "warning", code="structure")
        fn, args, put = tf.fn, rule.args, path.put
        uses = tf.uses if comp is None else None
        n = 0
        for rep in use:
            n += 1
            raw = rep.raw
            if not raw or raw == '""':  # empty, or the null value: nothing to map
                continue
            ctx.at(f, comp, n)
            value = fn(rep, ctx, args)
            if value is None:
                continue
            if not put(body, value):
                ctx.report(f"not written: {path.text} is already set by an earlier rule "
                           "(rules are in order of preference)", "information")
            if uses is not None:
                # components 1..uses_upto are all read: look at those after
                for c in rep.filled(tf.uses_upto + 1):
                    if c not in uses:
                        ctx.at(f, c, n)
                        ctx.report(f"component has a value ({rep.get(c)!r}) that {tf.name} does "
                                   "not map", "information")

    # ------------------------------------------------------------------ accounting
    def account(self) -> None:
        ignored = self.mapping.ignored
        administrative = self.mapping.administrative
        consumed, consumed_comps = self.consumed, self.consumed_comps
        used = self.segments_used
        add = self.issues.add
        for seg in self.message.segments:
            fields = seg.fields
            name = seg.name
            # fields with a value that no rule is told to leave alone
            todo = seg.filled()
            skip = ignored.get(name)
            if skip:
                todo = [f for f in todo if f not in skip]
            if not todo:
                continue
            pos = seg.position
            if pos not in used:
                severity: Severity = "information" if name in administrative else "warning"
                add(Issue(
                    severity, "not-supported",
                    f"segment {name} is not mapped: fields "
                    f"{', '.join(map(numeral, todo))} hold values that are not converted",
                    seg.label))
                continue
            done = consumed.get(pos, _NONE)
            by_comp = consumed_comps.get(pos)
            for f in todo:
                if f in done:
                    continue
                comps = by_comp.get(f) if by_comp else None
                if comps:
                    for n, rep in enumerate(seg.reps(f), 1):
                        for c in rep.filled():
                            if c not in comps:
                                add(Issue(
                                    "information", "informational",
                                    f"value {rep.get(c)!r} is not mapped", seg.loc(f, c, rep=n)))
                    continue
                add(Issue(
                    "information", "informational",
                    f"value {fields[f][:60]!r} is not mapped", seg.loc(f)))

    def resources(self) -> list[dict[str, Any]]:
        out = [p.body for p in self.planned if p.primary]
        for body in out:
            compact(body)
        out.extend(self.side[k] for k in self.side_order)
        return out


_UNSET: Any = object()
_NONE: frozenset[int] = frozenset()


def _copy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


def map_message(message: Message, mapping: MappingSet, digest: str, now: str) -> MappingResult:
    """Map ``message``; ``now`` (an instant) stands in where the message gives
    no time of its own (Provenance.recorded)."""
    code, event, structure = message.message_type
    spec = mapping.spec_for(code, event, structure)
    if spec is mapping.default:
        message.issues.add(Issue(
            "warning", "not-supported",
            f"message type {code}^{event} has no specific mapping: patient and visit are "
            "converted, other segments are reported", "MSH[1]-9"))
    run = Run(message, mapping, digest, now)
    run.group()
    run.plan(spec.templates)
    run.build()
    run.account()
    return MappingResult(run.resources(), run.issues, spec.name)
