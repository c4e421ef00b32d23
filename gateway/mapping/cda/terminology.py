"""Optional terminology services, guarded so conversion works without them.

When ``gateway.terminology`` is importable, codings gain the translations
its ConceptMaps know (the original coding always stays first). A target
that is not ``equivalent`` is kept as a separate coding marked as such
(``userSelected: false`` and the engine's equivalence extension) and an
information issue says so: it is never presented as the same concept.
``check_ehdsi_document(tree, doc_type)``, when provided, adds its findings
for eHDSI documents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import Issue

__all__ = ["TerminologyHook", "load_hook", "ehdsi_checks"]


class TerminologyHook:
    """``translate(system, code)`` through the terminology engine, cached."""

    def __init__(self, engine: Any, coding_for: Callable[[Any], dict[str, Any]] | None) -> None:
        self.engine = engine
        self.coding_for = coding_for
        self.cache: dict[tuple[str, str], list[tuple[dict[str, Any], str | None]]] = {}
        self.failed = False

    def translations(self, system: str, code: str) -> list[tuple[dict[str, Any], str | None]]:
        """``[(coding, note)]``: note is ``None`` for equivalent targets, else
        what the relationship is."""
        key = (system, code)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        out: list[tuple[dict[str, Any], str | None]] = []
        if not self.failed:
            try:
                found = self.engine.translate(system, code)
            except Exception:  # a terminology failure must not stop a conversion
                self.failed = True
                found = []
            for t in found:
                if not getattr(t, "code", None) or t.relationship == "not-related-to":
                    continue
                if self.coding_for is not None:
                    coding = self.coding_for(t)
                else:
                    coding = {"system": t.system, "code": t.code}
                    if t.display:
                        coding["display"] = t.display
                    if t.relationship != "equivalent":
                        coding["userSelected"] = False
                note = None if t.relationship == "equivalent" else str(t.relationship)
                out.append((coding, note))
        self.cache[key] = out
        return out


def load_hook() -> TerminologyHook | None:
    """The terminology engine, if the package provides one (else ``None``)."""
    try:
        from ...terminology import get_terminology  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        from ...terminology import coding_for  # type: ignore[attr-defined]
    except ImportError:
        coding_for = None
    try:
        engine = get_terminology()
    except Exception:
        return None
    return TerminologyHook(engine, coding_for)


def ehdsi_checks(tree: Any, doc_type: str) -> list[Issue]:
    """Findings of ``gateway.terminology.check_ehdsi_document``, if provided."""
    try:
        from ...terminology import check_ehdsi_document  # type: ignore[attr-defined]
    except ImportError:
        return []
    try:
        found = check_ehdsi_document(tree, doc_type)
    except Exception as exc:  # the check is advisory
        return [
            Issue(
                "information", "exception", f"eHDSI terminology check not run: {type(exc).__name__}"
            )
        ]
    out: list[Issue] = []
    for item in found or ():
        if isinstance(item, Issue):
            out.append(item)
        else:
            msg = getattr(item, "message", None) or str(item)
            out.append(Issue("warning", "code-invalid", msg, getattr(item, "location", None)))
    return out
