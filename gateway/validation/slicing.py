"""Slicing: which occurrence belongs to which slice (FHIR R4 section 5.1.0.14,
"Slicing"; discriminator types in section 2.17.0.4 ``ElementDefinition.slicing``).

Discriminators supported, as the IPS and EU profiles use them:

- ``value`` / ``pattern`` at a path: the occurrence's value there matches the
  slice's fixed or pattern value at that path (found in the slice's children
  or, for extensions, in the extension definition named by ``type.profile``);
- ``type``: the occurrence's type (``$this``), its ``resource``'s type, or the
  type of the resource a reference ``resolve()``s to inside the Bundle;
- ``profile``: the same targets must conform to the slice's profile (checked
  by a full validation, cached per resource and profile for the run);
- ``exists``: the element at the path is present iff the slice requires it.

An occurrence that matches no slice of an open slicing is validated against
the sliced element itself. When it matches a slice by every discriminator but
``profile``, it is "meant" for that slice: with one such slice its
conformance errors are reported as they are; with several, a warning lists
each candidate's first error. Slice cardinalities are then checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import Issue
from .model import ElementRule
from .packages import get_registry
from .patterns import matches_pattern

if TYPE_CHECKING:
    from .instance import Occ, ResCtx, Walker

__all__ = ["slice_occurrences"]

_NO = object()


_AT: dict[tuple[int, str], ElementRule | None] = {}
_TYPES: dict[tuple[int, str], frozenset[str]] = {}


def _at(rule: ElementRule, path: str, w: "Walker") -> ElementRule | None:
    """The element of a slice reached by a discriminator path (``code``, ``coding.code``)."""
    key = (id(rule), path)
    if key in _AT:
        return _AT[key]
    found = _walk_path(rule, path, w)
    _AT[key] = found
    return found


def _target_types(s: ElementRule, path: str) -> frozenset[str]:
    key = (id(s), path)
    hit = _TYPES.get(key)
    if hit is None:
        el = s.keys.get("resource", (None,))[0] if path == "resource" else s
        types = set()
        for t in (el.types if el else ()):
            if path == "resource":
                types.add(t.code)
            else:
                for tp in t.targets:
                    entry = get_registry()._entry(tp)  # noqa: SLF001
                    types.add(entry.sd_type if entry and entry.sd_type
                              else tp.split("|")[0].rsplit("/", 1)[-1])
        hit = _TYPES[key] = frozenset(types)
    return hit


def _walk_path(rule: ElementRule, path: str, w: "Walker") -> ElementRule | None:
    cur: ElementRule | None = rule
    for step in path.split("."):
        if cur is None:
            return None
        if step in ("$this", ""):
            continue
        if step.startswith("extension(") and step.endswith(")"):
            url = step[len("extension("):-1].strip("'\"")
            ext = next((s for s in (cur.keys.get("extension", (None,))[0] or cur).slices
                        if any(url in t.profiles for t in s.types)), None)
            cur = ext
            continue
        hit = cur.keys.get(step) if cur.children else None
        if hit is None and cur.types and cur.types[0].profiles:
            prof = w.profile(cur.types[0].profiles[0])
            hit = prof.root.keys.get(step) if prof else None
        if hit is None and cur.types and not cur.children:
            prof = w.profile("http://hl7.org/fhir/StructureDefinition/" + cur.types[0].code)
            hit = prof.root.keys.get(step) if prof else None
        cur = hit[0] if hit else None
    return cur


def _values(value: Any, path: str) -> list[Any]:
    items = [value]
    for step in path.split("."):
        if step in ("$this", ""):
            continue
        nxt: list[Any] = []
        for it in items:
            if isinstance(it, dict):
                if step in it:
                    v = it[step]
                else:  # choice element: value -> valueX
                    v = next((it[k] for k in it if k.startswith(step)
                              and k[len(step):][:1].isupper()), None)
                if isinstance(v, list):
                    nxt.extend(v)
                elif v is not None:
                    nxt.append(v)
        items = nxt
    return items


def _target(occ: "Occ", path: str, w: "Walker", ctx: "ResCtx") -> tuple[Any, str | None]:
    """(resource dict, its path) for ``resource`` / ``resolve()`` discriminators."""
    if path == "resource":
        res = occ.value.get("resource") if isinstance(occ.value, dict) else None
        return res, occ.expr + ".resource"
    if path in ("resolve()", "reference.resolve()", "$this.resolve()"):
        ref = occ.value.get("reference") if isinstance(occ.value, dict) else None
        if isinstance(ref, str) and w.index is not None:
            hit = w.index.resolve(ref, ctx.full_url)
            if hit is not None:
                return hit.resource, hit.path
        return None, None
    return _NO, None


def _match(w: "Walker", s: ElementRule, occ: "Occ", ctx: "ResCtx",
           pending: list[tuple[str, Any, str]]) -> bool:
    """Does ``occ`` match slice ``s`` by every discriminator (profile ones queued in pending)?"""
    sliced_by = _DISCRIMINATORS[id(s)]
    for d in sliced_by:
        target, tpath = _target(occ, d.path, w, ctx)
        if d.type in ("value", "pattern"):
            el = _at(s, d.path, w)
            if el is None:
                continue
            want = el.pattern if el.pattern is not None else el.fixed
            if want is None:
                continue
            got = _values(occ.value, d.path)
            if not any(matches_pattern(want, v) for v in got):
                return False
        elif d.type == "exists":
            el = _at(s, d.path, w)
            got = _values(occ.value, d.path)
            if el is not None and ((el.min > 0 and not got) or (el.max == 0 and got)):
                return False
        elif d.type == "type":
            if target is _NO:
                el = _at(s, d.path, w)
                codes = {t.code for t in (el or s).types}
                if d.path in ("$this", "") and occ.tref.code not in codes:
                    return False
                continue
            if not isinstance(target, dict):
                return False
            types = _target_types(s, d.path)
            if "Resource" not in types and target.get("resourceType") not in types:
                return False
        elif d.type == "profile":
            if target is _NO:
                el = _at(s, d.path, w)
                urls = [p for t in (el or s).types for p in t.profiles]
                if urls and isinstance(occ.value, dict):
                    pending.extend((u, occ.value, occ.expr) for u in urls[:1])
                continue
            if not isinstance(target, dict):
                return False
            el = s.keys.get("resource", (None,))[0] if d.path == "resource" else s
            urls = [p for t in (el.types if el else ()) for p in
                    (t.profiles if d.path == "resource" else t.targets)]
            if urls:
                pending.append(("|".join(urls), target, tpath or occ.expr))
    return True


_DISCRIMINATORS: dict[int, tuple[Any, ...]] = {}


def _conforms(w: "Walker", urls: str, target: dict[str, Any], path: str,
              quick: bool = True) -> list[Issue] | None:
    """[] if the target conforms to one of the profiles, its errors otherwise, None if unknown."""
    best: list[Issue] | None = None
    for url in _split_urls(urls):
        found = w.conforms(target, url, path, quick)
        if found is None:
            return None
        if not found:
            return []
        if best is None or len(found) < len(best):
            best = found
    return best


def _split_urls(urls: str) -> list[str]:
    out: list[str] = []
    for part in urls.split("|"):
        if out and not part.startswith("http") and not part.startswith("urn"):
            out[-1] += "|" + part
        else:
            out.append(part)
    return out


_BY_TYPE: dict[int, dict[str, tuple[ElementRule, ...]] | None] = {}


def _type_index(rule: ElementRule) -> dict[str, tuple[ElementRule, ...]] | None:
    """Slices by resource type, when the first discriminator is ``type`` on ``resource``
    (Bundle.entry in IPS): only those of the entry's type can match."""
    key = id(rule)
    if key in _BY_TYPE:
        return _BY_TYPE[key]
    index: dict[str, tuple[ElementRule, ...]] | None = None
    ds = rule.slicing.discriminators if rule.slicing else ()
    if ds and ds[0].type == "type" and ds[0].path == "resource":
        built: dict[str, list[ElementRule]] = {}
        for s in rule.slices:
            for t in _target_types(s, "resource") or frozenset({"Resource"}):
                built.setdefault(t, []).append(s)
        index = {t: tuple(v) for t, v in built.items()}
    _BY_TYPE[key] = index
    return index


_ValueIndex = tuple[dict[tuple[str, ...], list[int]], list[int], tuple[ElementRule, ...]]
_BY_VALUE: dict[int, _ValueIndex | None] = {}


def _keys_of(value: Any) -> set[tuple[str, ...]]:
    """Index keys of a value: a string, or the system|code of a Coding / CodeableConcept."""
    if isinstance(value, str):
        return {("s", value)}
    out: set[tuple[str, ...]] = set()
    if isinstance(value, dict):
        codings = value.get("coding") if "coding" in value else [value]
        for c in codings if isinstance(codings, list) else []:
            if isinstance(c, dict) and isinstance(c.get("code"), str):
                out.add(("c", str(c.get("system")), c["code"]))
    return out


def _value_index(rule: ElementRule, w: "Walker") -> _ValueIndex | None:
    """Slices by their fixed/pattern value when the first discriminator is ``value`` or
    ``pattern`` (sections by code, extensions by url): a pre-filter, every candidate is
    still matched in full."""
    key = id(rule)
    if key in _BY_VALUE:
        return _BY_VALUE[key]
    ds = rule.slicing.discriminators if rule.slicing else ()
    index: _ValueIndex | None = None
    if ds and ds[0].type in ("value", "pattern"):
        table: dict[tuple[str, ...], list[int]] = {}
        always: list[int] = []
        for i, s in enumerate(rule.slices):
            el = _at(s, ds[0].path, w)
            want = None if el is None else (el.pattern if el.pattern is not None else el.fixed)
            keys = _keys_of(want) if want is not None else set()
            if not keys:
                always.append(i)
            for k in keys:
                table.setdefault(k, []).append(i)
        index = (table, always, tuple(rule.slices))
    _BY_VALUE[key] = index
    return index


def _value_candidates(index: _ValueIndex, value: Any, path: str) -> list[ElementRule]:
    table, always, slices = index
    picked = set(always)
    for v in _values(value, path):
        for k in _keys_of(v):
            picked.update(table.get(k, ()))
    return [slices[i] for i in sorted(picked)]


def slice_occurrences(w: "Walker", rule: ElementRule, occs: list["Occ"], path: str,
                      ctx: "ResCtx") -> None:
    slicing = rule.slicing
    assert slicing is not None
    for s in rule.slices:
        _DISCRIMINATORS.setdefault(id(s), slicing.discriminators)
    counts: dict[int, list["Occ"]] = {id(s): [] for s in rule.slices}
    by_type = _type_index(rule)
    by_value = _value_index(rule, w) if by_type is None else None
    for occ in occs:
        chosen: ElementRule | None = None
        candidates: list[tuple[ElementRule, list[Issue] | None, tuple[str, Any, str] | None]] = []
        slices: Sequence[ElementRule] = rule.slices
        if by_type is not None:
            res = occ.value.get("resource") if isinstance(occ.value, dict) else None
            rtype = res.get("resourceType") if isinstance(res, dict) else None
            slices = by_type.get(str(rtype), ()) + by_type.get("Resource", ())
        elif by_value is not None:
            slices = _value_candidates(by_value, occ.value, slicing.discriminators[0].path)
        for s in slices:
            pending: list[tuple[str, Any, str]] = []
            if not _match(w, s, occ, ctx, pending):
                continue
            verdict: list[Issue] | None = []
            failed: tuple[str, Any, str] | None = None
            for urls, target, tpath in pending:
                verdict = _conforms(w, urls, target, tpath)
                if verdict is None or verdict:
                    failed = (urls, target, tpath)
                    break
            if verdict == []:
                chosen = s
                break
            candidates.append((s, verdict, failed))
        if chosen is not None:
            counts[id(chosen)].append(occ)
            w.occurrence_of(chosen, occ, ctx)
            continue
        if slicing.rules == "closed":
            w.issue("error", "structure", f"{rule.id}: matches none of the slices "
                    f"{', '.join(s.slice_name or '' for s in rule.slices)} (closed slicing)",
                    occ.expr)
        w.occurrence_of(rule, occ, ctx)
        if not candidates or any(v is None for _, v, _ in candidates):
            continue
        external = isinstance(occ.value, dict) and "reference" in occ.value
        if len(candidates) == 1:
            s, errs, failed = candidates[0]
            if failed is not None:  # the full findings, not the quick summary
                errs = _conforms(w, *failed, quick=False)
            (w.elsewhere if external else w.sink).extend(errs or [])
        else:
            parts = [f"{s.slice_name}: {errs[0].message} at {errs[0].expression}"
                     for s, errs, _ in candidates if errs]
            note = Issue("warning", "structure", f"{rule.id}: matches no slice; "
                         + "; ".join(parts), None, occ.expr)
            (w.elsewhere if external else w.sink).append(note)
    for s in rule.slices:
        w.cardinality(s, len(counts[id(s)]), path, counts[id(s)], label=s.id)
