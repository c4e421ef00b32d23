"""Validating one JSON instance against compiled profiles.

The walk follows FHIR R4 section 5.1.0.2 ("Validating resources against
profiles") and section 2.17 (ElementDefinition): for each object, every JSON
key must name an element of the definition (choice elements by their typed
name, section 2.6.2); each element's occurrences are counted against
``min``/``max``, typed (primitives by JSON type and the core regex, complex
types by descending into their own definition or the profile given in
``type.profile``), compared with ``fixed[x]`` / ``pattern[x]``, checked
against ``required`` / ``extensible`` bindings, and every invariant on the
element is evaluated with %resource / %rootResource set. Sliced elements are
split into slices by their discriminators (:mod:`.slicing`) and each
occurrence is validated against its slice.

Issues carry the FHIRPath of the offending element in ``expression``
(``Bundle.entry[3].resource.section[1].code``; choice elements as
``value.ofType(Quantity)``) and name the rule (element id or invariant key)
in the message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import Issue
from .bindings import check_code
from .fhirpath import Env, Item, make_item, truthy
from .model import MANY, CompiledProfile, ElementRule, TypeRef
from .packages import get_registry
from .patterns import matches_fixed, matches_pattern
from .primitives import check_primitive
from .references import BundleIndex, Located
from .slicing import slice_occurrences
from .structure import ProfileError, compile_profile, with_type_elements
from .typeinfo import PRIMITIVES, type_info

__all__ = ["Walker", "Occ", "ResCtx", "BASE"]

BASE = "http://hl7.org/fhir/StructureDefinition/"
_PROFILE_SUFFIX = re.compile(r" \(profile [^)]*\)$")


@dataclass(slots=True)
class Occ:
    """One occurrence of an element in the instance."""

    value: Any
    companion: Any
    tref: TypeRef
    expr: str


@dataclass(slots=True)
class ResCtx:
    """The resource being walked: for %resource, %rootResource and reference resolution."""

    resource: dict[str, Any]
    root: dict[str, Any]
    full_url: str | None
    path: str
    env: Env | None = None


@dataclass
class Walker:
    """One validation run (not shared between threads)."""

    index: BundleIndex | None = None
    sink: list[Issue] = field(default_factory=list)
    cache: dict[tuple[int, str], list[Issue]] = field(default_factory=dict)
    noted: set[str] = field(default_factory=set)
    located: dict[int, Located] = field(default_factory=dict)
    elsewhere: list[Issue] = field(default_factory=list)  # about resources found by reference
    claims: bool = True  # apply meta.profile (False: base definitions only)
    verdicts: dict[tuple[int, str, bool], list[Issue] | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ti = type_info()
        self.reg = get_registry()
        if self.index is not None:
            for loc in self.index.entries:
                if loc is not None:
                    self.located[id(loc.resource)] = loc

    # ------------------------------------------------------------------ issues

    def issue(self, severity: str, code: str, message: str, expr: str | None) -> None:
        self.sink.append(Issue(severity, code, message, None, expr))  # type: ignore[arg-type]

    def note_once(self, key: str, message: str, expr: str | None = None,
                  severity: str = "information") -> None:
        if key not in self.noted:
            self.noted.add(key)
            self.issue(severity, "informational", message, expr)

    # --------------------------------------------------------------- resources

    def profile(self, url: str) -> CompiledProfile | None:
        try:
            return compile_profile(url)
        except ProfileError as exc:
            self.note_once("profile:" + url, f"profile {url} not checked: {exc}", None, "warning")
            return None

    def resource(self, res: Any, path: str, profiles: tuple[str, ...] = (),
                 container: ResCtx | None = None, full_url: str | None = None) -> None:
        """Validate a resource against its base definition, the given profiles and meta.profile."""
        if not isinstance(res, dict):
            self.issue("error", "structure", "a resource must be a JSON object", path)
            return
        rt = res.get("resourceType")
        if not isinstance(rt, str) or not self.ti.is_resource(rt):
            self.issue("error", "structure", f"unknown resourceType {rt!r}"
                       if rt is not None else "resourceType is missing", path)
            return
        wanted = list(profiles)
        meta = res.get("meta")
        if self.claims and isinstance(meta, dict) and isinstance(meta.get("profile"), list):
            wanted += [p for p in meta["profile"] if isinstance(p, str)]
        applied: list[CompiledProfile] = []
        for url in dict.fromkeys(wanted):
            if not self.reg.knows(url):
                self.note_once("unknown:" + url, f"profile {url} is not known: not checked",
                               path + ".meta.profile" if url not in profiles else path)
                continue
            prof = self.profile(url)
            if prof is None:
                continue
            if not self.ti.is_a(rt, prof.type):
                self.issue("error", "invalid", f"profile {url} is for {prof.type}, not {rt}", path)
                continue
            applied.append(prof)
        if not applied:
            base = self.profile(BASE + rt)
            if base is None:
                return
            applied.append(base)
        for prof in applied:
            self.sink.extend(self.against(res, prof, path, container, full_url))

    def against(self, res: dict[str, Any], prof: CompiledProfile, path: str,
                container: ResCtx | None, full_url: str | None) -> list[Issue]:
        """Issues of one resource against one profile (cached for the run)."""
        key = (id(res), prof.canonical)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        self.cache[key] = []  # a reference cycle sees "no issues" rather than recursing
        saved, self.sink = self.sink, []
        try:
            if full_url is None and id(res) in self.located:
                full_url = self.located[id(res)].full_url
            ctx = ResCtx(res, container.root if container else res, full_url, path)
            item = make_item(res, res.get("resourceType"))
            self.constraints(prof.root, item, path, ctx, prof)
            self.walk(res, prof.root, path, ctx, resource_root=True)
            found = self.sink
        finally:
            self.sink = saved
        self.cache[key] = found
        return found

    def conforms(self, res: dict[str, Any], url: str, path: str,
                 quick: bool = True) -> list[Issue] | None:
        """Errors of ``res`` against ``url`` (None: the profile is unknown). With ``quick``,
        a resource that visibly cannot conform gets one summary error instead of all."""
        key = (id(res), url, quick)
        if key in self.verdicts:
            return self.verdicts[key]
        found = self._conforms(res, url, path, quick)
        self.verdicts[key] = found
        return found

    def _conforms(self, res: dict[str, Any], url: str, path: str,
                  quick: bool) -> list[Issue] | None:
        if not self.reg.knows(url):
            return None
        prof = self.profile(url)
        if prof is None:
            return None
        if not self.ti.is_a(res.get("resourceType"), prof.type):
            return [Issue("error", "invalid", f"is a {res.get('resourceType')}, not {prof.type}",
                          None, path)]
        if quick and self.quick_reject(res, prof):
            return [Issue("error", "value", f"does not have the fixed values of {prof.name}",
                          None, path)]
        loc = self.located.get(id(res))
        return [i for i in self.against(res, prof, loc.path if loc else path, None,
                                        loc.full_url if loc else None)
                if i.severity in ("error", "fatal")]

    def quick_reject(self, res: dict[str, Any], prof: CompiledProfile) -> bool:
        """Cheap, sure signs that ``res`` cannot conform to ``prof``: an element the profile
        does not allow, a required element missing, a top-level fixed/pattern value, a
        required slice's pattern or a required binding not met."""
        keys = prof.root.keys
        for k in res:
            if k != "resourceType" and (k[1:] if k[:1] == "_" else k) not in keys:
                return True
        for rule_keys, required, want, slices, binding in _quick_rules(prof):
            value = next((res[k] for k in rule_keys if k in res), None)
            if value is None:
                if required and not any("_" + k in res for k in rule_keys):
                    return True
                continue
            if want is not None and not matches_pattern(want, value):
                return True
            items = value if isinstance(value, list) else [value]
            for pattern in slices:
                if not any(matches_pattern(pattern, v) for v in items):
                    return True
            if binding is not None and not any(_in_valueset(binding, v) for v in items):
                return True
        return False

    # ------------------------------------------------------------------ objects

    def walk(self, node: dict[str, Any], owner: ElementRule, path: str, ctx: ResCtx,
             resource_root: bool = False) -> None:
        keys = owner.keys
        seen: dict[int, list[Any]] = {}  # id(rule) -> [rule, count, base expression]
        sliced: dict[int, list[Occ]] | None = None
        for key, value in node.items():
            if key[:1] == "_":
                if key[1:] in node:
                    continue
                key, companion, value = key[1:], value, None
            elif key == "resourceType" and resource_root:
                continue
            else:
                companion = None
            hit = keys.get(key)
            if hit is None:
                self.unknown(owner, key, path)
                continue
            rule, tref = hit
            if companion is None and tref.code in PRIMITIVES:
                companion = node.get("_" + key)
            rid = id(rule)
            entry = seen.get(rid)
            if rule.choice:
                if entry is not None:
                    self.issue("error", "structure", f"{rule.path}: only one type of "
                               f"{rule.name}[x] may be present", f"{path}.{key}")
                    continue
                base = f"{path}.{rule.name}.ofType({tref.code})"
            else:
                base = f"{path}.{rule.name}"
            if entry is None:
                entry = seen[rid] = [rule, 0, base]
            group: list[Occ] | None = None
            if rule.slicing is not None and rule.slices:
                if sliced is None:
                    sliced = {}
                group = sliced.setdefault(rid, [])
            if not rule.array:
                if isinstance(value, list) or isinstance(companion, list):
                    self.issue("error", "structure",
                               f"{rule.path} is a single element, not an array", base)
                    continue
                if value is None and companion is None:
                    self.issue("error", "structure", f"{rule.path}: null is not a value", base)
                    continue
                entry[1] += 1
                if group is not None:
                    group.append(Occ(value, companion, tref, base))
                elif companion is None and rule.plain and tref.code in PRIMITIVES:
                    problem = check_primitive(tref.code, value)
                    if problem:
                        self.issue("error", "value", f"{rule.id}: {problem}", base)
                else:
                    self.occurrence(rule, tref, value, companion, base, ctx)
                continue
            if not isinstance(value, list):
                if value is None and isinstance(companion, list):
                    value = [None] * len(companion)
                else:
                    if value is not None or companion is not None:
                        self.issue("error", "structure", f"{rule.path} must be a JSON array",
                                   base)
                    value = [value] if value is not None else []
                    companion = [companion] if companion is not None else None
            if not value and not companion:
                self.issue("error", "structure", f"{rule.path}: empty array", base)
                continue
            comps = companion if isinstance(companion, list) else None
            n = entry[1]
            for i in range(max(len(value), len(comps) if comps else 0)):
                v = value[i] if i < len(value) else None
                c = comps[i] if comps is not None and i < len(comps) else None
                if v is None and c is None:
                    self.issue("error", "structure", f"{rule.path}: null in an array",
                               f"{base}[{i}]")
                    continue
                n += 1
                if group is not None:
                    group.append(Occ(v, c, tref, f"{base}[{i}]"))
                else:
                    self.occurrence(rule, tref, v, c, f"{base}[{i}]", ctx)
            entry[1] = n
        for child in _required(owner):
            if id(child) not in seen:
                self.cardinality(child, 0, path, [])
        for rule, n, base in seen.values():
            if n > rule.max or n < rule.min:
                self.cardinality(rule, n, path, [
                    Occ(None, None, TypeRef("Element"), f"{base}[{i}]" if rule.array else base)
                    for i in range(n)])
        if sliced is not None:
            for rid, occs in sliced.items():
                if occs:
                    slice_occurrences(self, seen[rid][0], occs, path, ctx)

    def cardinality(self, rule: ElementRule, n: int, path: str, occs: list[Occ],
                    label: str | None = None) -> None:
        name = label or rule.id
        where = occs[0].expr if occs else f"{path}.{rule.name}"
        if n < rule.min:
            self.issue("error", "required",
                       f"{name}: minimum cardinality {rule.min}, found {n}"
                       + (f" (profile {_short(rule.profile_url)})" if rule.slice_name or label
                          else ""), where if n else f"{path}.{rule.name}")
        if rule.max != MANY and n > rule.max:
            extra = occs[rule.max].expr if rule.max < len(occs) else where
            self.issue("error", "structure",
                       f"{name}: maximum cardinality {rule.max}, found {n}", extra)

    def unknown(self, owner: ElementRule, key: str, path: str) -> None:
        _required(owner)
        for child in owner.children:
            if child.choice and key.startswith(child.name) and key[len(child.name):][:1].isupper():
                allowed = ", ".join(t.code for t in child.types)
                suffix = key[len(child.name):]
                tname = suffix if self.ti.kinds.get(suffix) else suffix[:1].lower() + suffix[1:]
                self.issue("error", "structure",
                           f"{child.id}: type {tname} is not allowed here (allowed: {allowed})",
                           f"{path}.{child.name}.ofType({tname})")
                return
        self.issue("error", "structure", f"unknown element {key!r} in {owner.path}",
                   f"{path}.{key}")

    # -------------------------------------------------------------- occurrences

    def occurrence_of(self, rule: ElementRule, occ: Occ, ctx: ResCtx) -> None:
        self.occurrence(rule, occ.tref, occ.value, occ.companion, occ.expr, ctx)

    def occurrence(self, rule: ElementRule, tref: TypeRef, value: Any, companion: Any, expr: str,
                   ctx: ResCtx) -> None:
        code = tref.code
        if code in PRIMITIVES:
            if value is not None:
                problem = check_primitive(code, value)
                if problem:
                    self.issue("error", "value", f"{rule.id}: {problem}", expr)
                    return
            if companion is not None:
                if not isinstance(companion, dict):
                    self.issue("error", "structure", f"{rule.path}: the _ element must be an "
                               "object", expr)
                else:
                    prim = self.profile(BASE + code)
                    if prim is not None:
                        self.walk(companion, prim.root, expr, ctx)
            if rule.fixed is not None or rule.pattern is not None or rule.binding is not None:
                self.values(rule, value, expr)
            if rule.constraints:
                self.constraints(rule, make_item(value, code, companion), expr, ctx)
            return
        if code in ("Resource", "DomainResource") or self.ti.is_resource(code):
            self.resource(value, expr, tref.profiles, ctx if rule.name == "contained" else None)
            return
        if not isinstance(value, dict):
            self.issue("error", "structure", f"{rule.id}: expected a JSON object ({code})", expr)
            return
        if not value or (len(value) <= 2 and all(k in ("id", "fhir_comments") for k in value)):
            self.issue("error", "structure",
                       f"ele-1: {rule.id}: an element must have a value or children", expr)
            return
        type_root: ElementRule | None
        if rule.children:
            owner, type_root = self.listed_owner(rule, tref)
        else:
            url = tref.profiles[0] if tref.profiles else BASE + code
            if code == "Extension" and not tref.profiles and isinstance(value.get("url"), str):
                url = self.extension_url(rule, value["url"], expr) or url
            prof = self.type_profile(url)
            if prof is None:
                return
            owner = type_root = prof.root
        self.walk(value, owner, expr, ctx)
        if rule.constraints or (type_root is not None and type_root.constraints):
            tkey = rule.base_path if code in ("BackboneElement", "Element") else code
            item = make_item(value, tkey)
            self.constraints(rule, item, expr, ctx)
            if type_root is not None and type_root.constraints:
                own = {c.key for c in rule.constraints}
                self.constraints(type_root, item, expr, ctx, skip=own)
        if rule.fixed is not None or rule.pattern is not None or rule.binding is not None:
            self.values(rule, value, expr)
        if code == "Reference" and tref.targets:
            self.reference_target(rule, tref, value, expr, ctx)

    def type_profile(self, url: str) -> CompiledProfile | None:
        """The compiled definition of a data type or type profile (kept for the process)."""
        prof = _TYPE_ROOTS.get(url)
        if prof is None:
            prof = self.profile(url)
            if prof is None:
                return None
            _TYPE_ROOTS[url] = prof
        return prof

    def listed_owner(self, rule: ElementRule,
                     tref: TypeRef) -> tuple[ElementRule, ElementRule | None]:
        """What an object of type ``tref`` is walked against when the snapshot lists children
        of ``rule``: ``rule`` with the type's own elements that it does not list (a choice's
        snapshot often lists only ``id`` and ``extension``), and the type's root when any were
        added (its invariants then apply too, as they do when no child is listed)."""
        url = next((u for u in (*tref.profiles[:1], BASE + tref.code) if self.reg.knows(u)), None)
        prof = self.type_profile(url) if url else None
        if prof is None:
            return rule, None
        key = (id(rule), id(prof.root))
        hit = _WITH_TYPE.get(key)
        if hit is None:  # holds rule and root too, so that their ids stay theirs
            hit = _WITH_TYPE[key] = (rule, prof.root, with_type_elements(rule, prof.root))
        merged = hit[2]
        return merged, (prof.root if merged is not rule else None)

    def extension_url(self, rule: ElementRule, url: str, expr: str) -> str | None:
        if self.reg.knows(url):
            return url
        if ":" not in url:  # a part of a complex extension ("code"): defined by its parent
            return None
        if rule.modifier or rule.name == "modifierExtension":
            self.issue("error", "not-supported", f"modifier extension {url} is not known", expr)
        else:
            self.note_once("ext:" + url, f"extension {url} is not known: only its structure is "
                           "checked", expr)
        return None

    def values(self, rule: ElementRule, value: Any, expr: str) -> None:
        if rule.fixed is not None and not matches_fixed(rule.fixed, value):
            self.issue("error", "value", f"{rule.id}: value must be exactly "
                       f"{_show(rule.fixed)}", expr)
        if rule.pattern is not None and not matches_pattern(rule.pattern, value):
            self.issue("error", "value", f"{rule.id}: value must match the pattern "
                       f"{_show(rule.pattern)}", expr)
        if rule.binding is not None and value is not None:
            self.binding(rule, value, expr)

    def binding(self, rule: ElementRule, value: Any, expr: str) -> None:
        strength, vs = rule.binding  # type: ignore[misc]
        codes: list[tuple[str | None, str]] = []
        if isinstance(value, str):
            codes.append((None, value))
        elif isinstance(value, dict):
            if "coding" in value or "text" in value:
                for c in value.get("coding") or []:
                    if isinstance(c, dict) and isinstance(c.get("code"), str):
                        codes.append((c.get("system"), c["code"]))
            elif isinstance(value.get("code"), str):
                if "unit" in value or "value" in value:  # Quantity: only a coded unit
                    if not value.get("system"):
                        return
                codes.append((value.get("system"), value["code"]))
        if not codes:
            if strength == "required" and isinstance(value, dict) and "text" in value:
                self.issue("error", "code-invalid", f"{rule.id}: a code from {vs} is required "
                           "(required binding), found text only", expr)
            return
        not_checked = ""
        for system, code in codes:
            answer = check_code(vs, code, system)
            if answer.result == "member":
                return
            if answer.result == "not-checked":
                not_checked = answer.message
        if not_checked:
            self.note_once("vs:" + vs, f"{vs}: {not_checked}", None)
            return
        shown = ", ".join(f"{s}|{c}" if s else c for s, c in codes)
        if strength == "required":
            self.issue("error", "code-invalid", f"{rule.id}: {shown} is not in the value set "
                       f"{vs} (required binding)", expr)
        else:
            self.issue("warning", "code-invalid", f"{rule.id}: {shown} is not in the value set "
                       f"{vs} (extensible binding)", expr)

    def reference_target(self, rule: ElementRule, tref: TypeRef, value: dict[str, Any],
                         expr: str, ctx: ResCtx) -> None:
        ref = value.get("reference")
        if not isinstance(ref, str):
            return
        target_type: str | None = None
        if ref.startswith("#"):
            for c in ctx.root.get("contained") or []:
                if isinstance(c, dict) and c.get("id") == ref[1:]:
                    target_type = c.get("resourceType")
        elif self.index is not None:
            hit = self.index.resolve(ref, ctx.full_url)
            if hit is not None:
                target_type = hit.resource.get("resourceType")
        if target_type is None:
            m = re.match(r"^(?:.*/)?([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/.*)?$", ref)
            target_type = m.group(1) if m else None
        if target_type is None:
            return
        allowed = _ALLOWED.get(tref)
        if allowed is None:
            allowed = set()
            for t in tref.targets:
                entry = self.reg._entry(t)  # noqa: SLF001 - same package
                allowed.add(entry.sd_type if entry and entry.sd_type
                            else t.split("|")[0].rsplit("/", 1)[-1])
            _ALLOWED[tref] = allowed
        if allowed & {"Resource", "DomainResource"} or target_type in allowed:
            return
        self.issue("error", "invalid", f"{rule.id}: reference to a {target_type}; allowed: "
                   f"{', '.join(sorted(allowed))}", expr + ".reference")

    # ---------------------------------------------------------------- invariants

    def constraints(self, rule: ElementRule, item: Item, expr: str, ctx: ResCtx,
                    prof: CompiledProfile | None = None, skip: set[str] | None = None) -> None:
        if not rule.constraints:
            return
        env: Env | None = None
        for c in rule.constraints:
            if skip and c.key in skip:
                continue
            if c.compiled is None:
                self.note_once("fp:" + c.key, f"{c.key}: not checked ({c.problem})", expr,
                               "warning")
                continue
            if env is None:
                env = ctx.env
                if env is None:
                    env = ctx.env = Env(make_item(ctx.resource, None), make_item(ctx.root, None),
                                        None, self.resolver(ctx))
                env.context = item
            try:
                # An empty result is not a failure: invariants are written for engines that
                # treat an empty outcome as "nothing to check" (ref-1 on a display-only Reference).
                ok = truthy(c.compiled.evaluate(item, env)) is not False
            except Exception as exc:  # noqa: BLE001 - fhirpathpy raises bare Exception
                self.note_once(f"fpe:{c.key}:{expr}", f"{c.key}: could not be evaluated ({exc})",
                               expr, "warning")
                continue
            if not ok:
                severity = "error" if c.severity == "error" else "warning"
                self.issue(severity, "invariant",
                           f"{c.key}: {c.human} [{c.expression}]", expr)

    def resolver(self, ctx: ResCtx) -> Callable[[str], dict[str, Any] | None]:
        def resolve(ref: str) -> dict[str, Any] | None:
            if ref.startswith("#"):
                for c in ctx.root.get("contained") or []:
                    if isinstance(c, dict) and c.get("id") == ref[1:]:
                        return c
                return None
            if self.index is None:
                return None
            hit = self.index.resolve(ref, ctx.full_url)
            return hit.resource if hit else None
        return resolve


_TYPE_ROOTS: dict[str, CompiledProfile] = {}
_WITH_TYPE: dict[tuple[int, int], tuple[ElementRule, ElementRule, ElementRule]] = {}
_ALLOWED: dict[TypeRef, set[str]] = {}
_REQUIRED: dict[int, tuple[ElementRule, ...]] = {}
_CHILD: dict[int, ElementRule] = {}


def _required(owner: ElementRule) -> tuple[ElementRule, ...]:
    hit = _REQUIRED.get(id(owner))
    if hit is None:
        for c in owner.children:  # before _REQUIRED: another thread may read both at once
            _CHILD[id(c)] = c
        hit = tuple(c for c in owner.children if c.min > 0)
        _REQUIRED[id(owner)] = hit
    return hit


def owner_child(owner: ElementRule, child_id: int) -> ElementRule:
    return _CHILD[child_id]


_QUICK: dict[int, list[tuple[tuple[str, ...], bool, Any, tuple[Any, ...], str | None]]] = {}


def _quick_rules(prof: CompiledProfile) -> list[tuple[tuple[str, ...], bool, Any,
                                                      tuple[Any, ...], str | None]]:
    """Per top-level element: JSON keys, required?, pattern/fixed value, patterns of
    required slices, required value set."""
    rules = _QUICK.get(id(prof))
    if rules is None:
        rules = []
        for child in prof.root.children:
            keys = tuple(k for k, (r, _) in prof.root.keys.items() if r is child)
            want = child.pattern if child.pattern is not None else child.fixed
            required = tuple(s.pattern if s.pattern is not None else s.fixed
                             for s in child.slices
                             if s.min > 0 and (s.pattern is not None or s.fixed is not None))
            vs = child.binding[1] if child.binding and child.binding[0] == "required" else None
            if want is not None or required or child.min > 0 or vs:
                rules.append((keys, child.min > 0, want, required, vs))
        _QUICK[id(prof)] = rules
    return rules


def _in_valueset(vs: str, value: Any) -> bool:
    """Could ``value`` be in ``vs``? (True when the terminology cannot tell.)"""
    codes: list[tuple[str | None, str]] = []
    if isinstance(value, str):
        codes.append((None, value))
    elif isinstance(value, dict):
        for c in value.get("coding") or ([value] if "code" in value else []):
            if isinstance(c, dict) and isinstance(c.get("code"), str):
                codes.append((c.get("system"), c["code"]))
    if not codes:
        return True
    return any(check_code(vs, code, system).result != "not-member" for system, code in codes)


def _short(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def _show(v: Any) -> str:
    import json

    s = json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    return s if len(s) < 160 else s[:157] + "..."


def dedupe(issues: list[Issue]) -> list[Issue]:
    """Drop repeats of the same finding (found again through another profile)."""
    seen: set[tuple[str, str, str | None, str]] = set()
    out = []
    for i in issues:
        key = (i.severity, i.code, i.expression, _PROFILE_SUFFIX.sub("", i.message))
        if key in seen:
            continue
        seen.add(key)
        out.append(i)
    return out
