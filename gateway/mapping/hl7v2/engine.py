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

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ...errors import Issue, Issues, RejectedInput
from ...fhir.ids import stable_id
from ...formats.hl7v2.er7 import Message, Rep, Segment
from .context import RuleContext
from .spec import EachRule, FieldRule, MappingSet, RefRule, SourceRef, Template

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
        self.consumed: set[tuple[int, int]] = set()
        self.consumed_comps: dict[tuple[int, int], set[int]] = {}
        self.side: dict[str, dict[str, Any]] = {}
        self.side_order: list[str] = []
        self.planned: list[_Planned] = []
        self._first_planned: dict[str, _Planned] | None = None
        self.by_segment: dict[tuple[int, str], _Planned] = {}
        self.by_id: dict[tuple[str, str], _Planned] = {}
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
                found = [last[c] for c in candidates if c in last]
                prev = max(found, key=lambda s: s.position) if found else None
                if prev is not None and prev.position >= last_barrier:
                    seg.parent = prev
                    prev.children.append(seg)
            last[seg.name] = seg
            if seg.name in barriers:
                last_barrier = seg.position

    def related(self, seg: Segment, name: str) -> list[Segment]:
        """Segments named ``name`` that belong with ``seg``: itself, its
        descendants, its ancestors, then what shares its nearest ancestor."""
        if seg.name == name:
            return [seg]
        found = self._below(seg, name)
        if found:
            return list(found)
        p = seg.parent
        while p is not None:
            if p.name == name:
                return [p]
            sib = [s for s in self._below(p, name) if s is not seg]
            if sib:
                return sib
            p = p.parent
        top = self._top.get(name)
        if top is None:
            top = self._top[name] = [s for s in self.message.all(name) if s.parent is None]
        return list(top)

    def _below(self, seg: Segment, name: str) -> list[Segment]:
        key = (seg.position, name)
        found = self._descendants.get(key)
        if found is None:
            found = self._descendants[key] = _descendants(seg, name)
        return found

    def related_one(self, seg: Segment, name: str) -> Segment | None:
        key = (seg.position, name)
        cache = self._related_one
        if key in cache:
            return cache[key]
        found = self.related(seg, name)
        one = found[0] if found else None
        cache[key] = one
        return one

    # ------------------------------------------------------------------ bookkeeping
    def consume(self, seg: Segment, field: int, comp: int | None = None) -> None:
        self.segments_used.add(seg.position)
        if comp is None:
            self.consumed.add((seg.position, field))
        else:
            self.consumed_comps.setdefault((seg.position, field), set()).add(comp)

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
    def _key_part(self, part: str, seg: Segment) -> str:
        if part.startswith("="):
            return part[1:]
        if part == "@sender":
            return self.sender
        if part == "@message":
            return self.message.control_id or self.digest
        if part == "@digest":
            return self.digest
        if part == "@position":
            return str(seg.position)
        if part == "@patient":
            pid = self.message.one("PID")
            planned = self.by_segment.get((pid.position, "Patient")) if pid else None
            return planned.id if planned else ""
        if part == "@parent":
            p = seg.parent
            while p is not None:
                for (pos, _), planned in self.by_segment.items():
                    if pos == p.position:
                        return planned.id
                p = p.parent
            return ""
        ref = _source(part)
        target = seg if ref.segment == seg.name else self.related_one(seg, ref.segment)
        if target is None:
            return ""
        value = target.get(ref.field, ref.comp or 1, ref.sub or 1).strip()
        if value and ref.comp is None:
            self.consume(target, ref.field)  # a key field is used, not dropped
        return value

    def resource_id(self, template: Template, seg: Segment) -> str:
        for alt in template.keys:
            values = [self._key_part(p, seg) for p in alt]
            if all(values):
                return stable_id(template.resource_type, *values)
        self.issues.add(Issue(
            "information", "incomplete",
            f"no business identifier for this {template.resource_type}: its id is derived "
            "from the message, so a later update cannot find it", seg.label))
        return stable_id(template.resource_type, self.digest, str(seg.position))

    # ------------------------------------------------------------------ plan and build
    def plan(self, pairs: tuple[tuple[str, str], ...]) -> None:
        for seg_name, rtype in pairs:
            template = self.mapping.templates[(seg_name, rtype)]
            for seg in self.message.all(seg_name):
                if any(not _has(seg, self, r) for r in template.requires):
                    continue
                rid = self.resource_id(template, seg)
                same = self.by_id.get((rtype, rid))
                if same is not None:
                    # Two segments name the same thing (the drug ordered and the
                    # drug dispensed): one resource, both rule sets fill it.
                    planned = _Planned(template, seg, rid, same.body, primary=False)
                else:
                    body: dict[str, Any] = {"resourceType": rtype, "id": rid}
                    planned = _Planned(template, seg, rid, body)
                    self.by_id[(rtype, rid)] = planned
                self.planned.append(planned)
                self.by_segment[(seg.position, rtype)] = planned
                self.segments_used.add(seg.position)

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
            for k, v in planned.template.fixed.items():
                body.setdefault(k, _copy(v))
            if planned.template.profiles:
                body["meta"] = {"profile": list(planned.template.profiles)}
            for rule in planned.template.rules:
                if isinstance(rule, RefRule) and rule.resource_type == "*":
                    deferred.append((planned, rule))
                    continue
                self.apply(rule, planned.segment, body, ctx)
        for planned, rule in deferred:
            for other in self.planned:
                if other is not planned and other.primary:
                    rule.path.set(planned.body, {"reference": f"{other.body['resourceType']}/{other.id}"})
            for key in self.side_order:
                rule.path.set(planned.body, {"reference": key})

    def apply(self, rule: FieldRule | RefRule | EachRule, seg: Segment, body: dict[str, Any],
              ctx: RuleContext) -> None:
        if type(rule) is FieldRule:
            self._apply_field(rule, seg, body, ctx)
            return
        if isinstance(rule, RefRule):
            targets = self.ref_targets(rule, seg)
            if not rule.path.repeats:
                targets = targets[:1]
            for t in targets:
                rule.path.set(body, {"reference": f"{t.template.resource_type}/{t.id}"})
            return
        if isinstance(rule, EachRule):
            direct = [c for c in seg.children if c.name == rule.segment]
            others = direct or self.related(seg, rule.segment)
            self._each_elements += len(others)
            if self._each_elements > MAX_EACH_ELEMENTS:
                raise RejectedInput("message too repetitive", [Issue(
                    "error", "too-long", f"the {rule.segment} segments related to {seg.name} segments "
                    f"would make more than {MAX_EACH_ELEMENTS} elements", seg.label)])
            for other in others:
                self.segments_used.add(other.position)
                element: dict[str, Any] = {}
                for inner in rule.rules:
                    self.apply(inner, other, element, ctx)  # type: ignore[arg-type]
                if element:
                    rule.path.set(body, element)
            return

    def _apply_field(self, rule: FieldRule, seg: Segment, body: dict[str, Any],
                     ctx: RuleContext) -> None:
        src = rule.source
        if src.segment == seg.name:
            target: Segment | None = seg
        else:
            target = self.related_one(seg, src.segment)
            if target is None:
                return
        fields = target.fields  # type: ignore[union-attr]
        if src.field >= len(fields) or not fields[src.field]:
            return  # the common case: nothing to map, nothing to account for
        assert target is not None
        self.consume(target, src.field, src.comp)
        reps = target.reps(src.field)
        tf = rule.transform
        ctx.segment = target
        ctx.resource = body
        ctx.rule_path = rule.path.text
        if src.comp is not None:
            reps = [r.component(src.comp) for r in reps]
            if src.sub is not None:
                reps = [Rep(r.components[0][src.sub - 1] if src.sub <= len(r.components[0]) else "",
                            target.enc) for r in reps]
        if tf.many:
            ctx.at(src.field, src.comp, None)
            value = tf.fn(reps, ctx, rule.args)  # type: ignore[arg-type]
            if value is not None and rule.path.set(body, value) is None:
                ctx.report(f"not written: {rule.path.text} is already set by an earlier rule",
                           "information")
            return
        use = reps if rule.path.repeats else reps[:1]
        if len(reps) > len(use):
            ctx.at(src.field, src.comp, 2)
            ctx.report(f"{len(reps) - 1} more repetition(s) not mapped: {rule.path.text} holds one",
                       "warning", code="structure")
        uses = tf.uses if src.comp is None else None
        for n, rep in enumerate(use, 1):
            if not rep:
                continue
            ctx.at(src.field, src.comp, n)
            value = tf.fn(rep, ctx, rule.args)
            if value is None:
                continue
            if rule.path.set(body, value) is None:
                ctx.report(f"not written: {rule.path.text} is already set by an earlier rule "
                           "(rules are in order of preference)", "information")
            if uses is not None and len(rep.components) > tf.uses_upto:
                for c in rep.filled():
                    if c not in uses:
                        ctx.at(src.field, c, n)
                        ctx.report(f"component has a value ({rep.get(c)!r}) that {tf.name} does "
                                   "not map", "information")

    # ------------------------------------------------------------------ accounting
    def account(self) -> None:
        ignored = self.mapping.ignored
        administrative = self.mapping.administrative
        for seg in self.message.segments:
            filled = seg.filled()
            if not filled:
                continue
            skip = ignored.get(seg.name, frozenset())
            if seg.position not in self.segments_used:
                remaining = [f for f in filled if f not in skip]
                if not remaining:
                    continue
                severity = "information" if seg.name in administrative else "warning"
                self.issues.add(Issue(
                    severity, "not-supported",
                    f"segment {seg.name} is not mapped: fields "
                    f"{', '.join(str(f) for f in remaining)} hold values that are not converted",
                    seg.label))
                continue
            for f in filled:
                if f in skip or (seg.position, f) in self.consumed:
                    continue
                comps = self.consumed_comps.get((seg.position, f))
                if comps:
                    for n, rep in enumerate(seg.reps(f), 1):
                        for c in rep.filled():
                            if c not in comps:
                                self.issues.add(Issue(
                                    "information", "informational",
                                    f"value {rep.get(c)!r} is not mapped", seg.loc(f, c, rep=n)))
                    continue
                value = seg.raw(f)
                self.issues.add(Issue(
                    "information", "informational",
                    f"value {value[:60]!r} is not mapped", seg.loc(f)))

    def resources(self) -> list[dict[str, Any]]:
        out = [p.body for p in self.planned if p.primary]
        for body in out:
            _compact(body)
        out.extend(self.side[k] for k in self.side_order)
        return out


def _descendants(seg: Segment, name: str) -> list[Segment]:
    out: list[Segment] = []
    stack = list(reversed(seg.children))
    while stack:
        s = stack.pop()
        if s.name == name:
            out.append(s)
        stack.extend(reversed(s.children))
    return out


@lru_cache(maxsize=1024)
def _source(text: str) -> SourceRef:
    from .spec import parse_source

    return parse_source(text, "key")


def _has(seg: Segment, run: Run, loc: str) -> bool:
    ref = _source(loc)
    target = seg if ref.segment == seg.name else run.related_one(seg, ref.segment)
    return bool(target and target.get(ref.field, ref.comp or 1, ref.sub or 1).strip())


def _compact(node: dict[str, Any]) -> bool:
    """Drop None, empty dicts and empty lists (left by indexed paths such as
    ``agent[2]`` when ``agent[1]`` had no source); True when ``node`` is empty."""
    drop = []
    for k, v in node.items():
        t = type(v)
        if v is None or (t is dict and _compact(v)) or (t is list and _compact_list(v)):
            drop.append(k)
    for k in drop:
        del node[k]
    return not node


def _compact_list(items: list[Any]) -> bool:
    keep = []
    for v in items:
        t = type(v)
        if v is None or (t is dict and _compact(v)) or (t is list and _compact_list(v)):
            continue
        keep.append(v)
    if len(keep) != len(items):
        items[:] = keep
    return not items


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
