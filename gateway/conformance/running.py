"""Running cases: read → detect → convert → validate → compare with the
expectation, timed, with every failure kept as a value.

A case that makes the gateway raise anything other than its own refusal
(:class:`gateway.errors.GatewayError`) is a failed case whose reason names
the exception and where it was raised; the suite itself goes on.
"""

from __future__ import annotations

import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

from ..errors import GatewayError
from .discovery import discover
from .expectations import Expectation, check, load_expectation
from .golden import compare_file
from .inputs import fhir_resource
from .model import Case, CaseResult, SuiteReport
from .unmapped import unmapped
from .validating import Validator, load_validator

__all__ = ["crash_summary", "run_case", "run_suite"]

Progress = Callable[[CaseResult], None]


def crash_summary(exc: BaseException) -> str:
    """``Type: message (at gateway/x.py:12 in f)``: the innermost frame, its
    path shortened to start at the package."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        parts = Path(last.filename).parts
        top = max((i for i, part in enumerate(parts) if part == "gateway"), default=len(parts) - 1)
        short = "/".join(parts[top:])
        where = f" (at {short}:{last.lineno} in {last.name})"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"crashed: {type(exc).__name__}{': ' + text if text else ''}{where}"


def _counts(resources: Sequence[Any]) -> dict[str, int]:
    found = Counter(r.get("resourceType", "?") for r in resources if isinstance(r, dict))
    return dict(sorted(found.items()))


def _fhir_resources(resource: dict[str, Any]) -> list[Any]:
    if resource.get("resourceType") == "Bundle" and isinstance(resource.get("entry"), list):
        return [e.get("resource") for e in resource["entry"] if isinstance(e, dict)]
    return [resource]


def _convert(result: CaseResult, data: bytes) -> dict[str, Any] | None:
    """Fill in detection and conversion; the FHIR output to validate, if any."""
    from ..formats.detect import detect
    from ..pipeline import convert

    start = perf_counter()
    try:
        fmt = detect(data)
    except GatewayError as exc:
        resource = fhir_resource(data)
        if resource is None:
            result.status, result.issues = "refused", list(exc.issues)
            return None
        result.status, result.detected = "converted", "fhir"
        result.resources = _counts(_fhir_resources(resource))
        return resource
    result.detected = fmt
    try:
        conv = convert(data, fmt)
        bundle = conv.bundle
    except GatewayError as exc:
        result.status, result.issues = "refused", list(exc.issues)
        return None
    finally:
        result.convert_seconds = perf_counter() - start
    result.status = "converted"
    result.issues = list(conv.issues)
    result.resources = _counts(conv.resources)
    result.unmapped = unmapped(conv.issues, conv.fidelity)
    return bundle


def _validate(result: CaseResult, output: dict[str, Any], validator: Validator,
              profile: str) -> None:
    if not validator.available:
        result.validation_note = validator.note
        return
    start = perf_counter()
    try:
        result.validation = validator(output, profile)
        result.validation_note = f"profile {profile}"
    except Exception as exc:  # noqa: BLE001 - a validator bug fails the case, not the suite
        result.validation_note = "validation " + crash_summary(exc)
        result.failures.append(result.validation_note)
    finally:
        result.validate_seconds = perf_counter() - start


def _expectation(case: Case, result: CaseResult) -> Expectation | None:
    """The case's expectation (the default one without a file); None, with
    the problems noted as failures, when its file is unusable."""
    if case.expect_yaml is None:
        return Expectation()
    expectation, problems = load_expectation(case.expect_yaml)
    result.failures.extend(f"{case.expect_yaml.name}: {p}" for p in problems)
    return expectation


def _golden(case: Case, output: dict[str, Any] | None,
            expectation: Expectation | None) -> list[str]:
    """Differences from ``<case>.expected.json``."""
    if case.expected_json is None:
        return []
    if output is None:
        if case.expect_yaml is not None:  # its own expectation judged the refusal
            return []
        return [f"expected the output in {case.expected_json.name}, but the case was refused"]
    return compare_file(case.expected_json, output, expectation.ignore if expectation else ())


def _run(result: CaseResult, data: bytes, expectation: Expectation | None,
         validator: Validator, profile: str) -> None:
    output = _convert(result, data)
    if output is None:
        result.validation_note = "nothing to validate: the case was refused"
    else:
        _validate(result, output, validator,
                  (expectation.profile if expectation else None) or profile)
    if expectation is not None and result.case.expect_yaml is not None:
        result.failures.extend(check(expectation, result))
    result.failures.extend(_golden(result.case, output, expectation))


def run_case(case: Case, validator: Validator, profile: str = "auto") -> CaseResult:
    """Run one case to its result; never raises for anything the case holds."""
    start = perf_counter()
    result = CaseResult(case, "unreadable")
    expectation = _expectation(case, result)
    try:
        data = case.path.read_bytes()
    except OSError as exc:
        result.failures.append(f"cannot read: {exc.strerror or exc}")
    else:
        try:
            _run(result, data, expectation, validator, profile)
        except Exception as exc:  # noqa: BLE001 - the point: report, never crash the suite
            if result.status == "unreadable":  # the gateway itself raised
                result.status = "crashed"
            result.failures.append(crash_summary(exc))
    result.seconds = perf_counter() - start
    return result


def run_suite(roots: Sequence[str | Path], profile: str = "auto",
              on_start: Callable[[int], None] | None = None,
              on_case: Progress | None = None) -> SuiteReport:
    """Discover and run every case under ``roots``; ``on_start(total)`` and
    ``on_case(result)`` report progress."""
    started = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    t0 = perf_counter()
    found = discover(roots)
    validator = load_validator()
    if on_start is not None:
        on_start(len(found.cases))
    results = []
    for case in found.cases:
        result = run_case(case, validator, profile)
        results.append(result)
        if on_case is not None:
            on_case(result)
    return SuiteReport([str(r) for r in roots], results, found.problems, profile,
                       validator.note, started, perf_counter() - t0)
