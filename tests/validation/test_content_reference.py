"""Elements defined as another element (``contentReference``): their children
are that element's, as in the base R4 definitions."""

from __future__ import annotations

from gateway.validation import validate


def _errors(resource: dict) -> list[tuple[str, str | None]]:  # type: ignore[type-arg]
    return [(i.message, i.expression) for i in validate(resource, "r4") if i.severity in ("error", "fatal")]


def test_a_component_reference_range_has_the_children_of_a_reference_range() -> None:
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "blood pressure"},
           "component": [{"code": {"text": "systolic"}, "valueQuantity": {"value": 120},
                          "referenceRange": [{"low": {"value": 90}, "text": "normal"}]}]}
    assert _errors(obs) == []
    obs["component"][0]["referenceRange"][0]["bogus"] = 1  # type: ignore[index]
    assert _errors(obs) == [("unknown element 'bogus' in Observation.component.referenceRange",
                             "Observation.component[0].referenceRange[0].bogus")]


def test_a_capability_statement_rest_operation_is_a_resource_operation() -> None:
    cs = {"resourceType": "CapabilityStatement", "status": "active", "date": "2026-01-01",
          "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"],
          "implementation": {"description": "x"},
          "rest": [{"mode": "server", "operation": [
              {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}]}]}
    assert _errors(cs) == []
    del cs["rest"][0]["operation"][0]["definition"]  # type: ignore[index]
    assert any("definition" in message for message, _ in _errors(cs))
