"""Profile validation of what a case produced, when the validator is there.

``gateway.validation`` is optional for the suite: when it cannot be
imported, every case says validation was "not run" and why, and the rest
of the suite goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import Issue

__all__ = ["Validator", "load_validator"]

Validate = Callable[[dict[str, Any], str | None], list[Issue]]


@dataclass(frozen=True, slots=True)
class Validator:
    """Validates a Bundle (or any resource); ``note`` says why it cannot when
    ``available`` is false."""

    bundle: Validate | None
    resource: Validate | None
    note: str = "run"

    @property
    def available(self) -> bool:
        return self.bundle is not None

    def __call__(self, resource: dict[str, Any], profile: str | None) -> list[Issue]:
        if self.bundle is None:
            raise RuntimeError(self.note)
        if resource.get("resourceType") == "Bundle" or self.resource is None:
            return self.bundle(resource, profile)
        return self.resource(resource, profile)


def load_validator() -> Validator:
    """The profile validator, or one that says why validation is not run."""
    try:
        from ..validation import validate_bundle
    except Exception as exc:  # noqa: BLE001 - any import failure means "not run"
        return Validator(None, None, f"not run: gateway.validation cannot be imported "
                                     f"({type(exc).__name__}: {exc})")
    try:
        from ..validation import validate_resource
    except Exception:  # noqa: BLE001
        validate_resource = None  # type: ignore[assignment]
    return Validator(validate_bundle, validate_resource)
