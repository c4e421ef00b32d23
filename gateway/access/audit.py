"""AuditEvents for every access, after IHE Basic Audit Log Patterns (BALP):
one AuditEvent per patient concerned, naming who (client id, user), what
(the resources or the query), when, the outcome and the request id (and
the caller's point of care, when its token names one). Stored
in the record, so a citizen can list who looked at their data. Nothing of
the accessed data goes into the application log.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timezone
from typing import Any

from .caller import Caller

__all__ = ["audit_event"]

_ACTION = {"read": "R", "vread": "R", "history-instance": "R", "search-type": "E",
           "create": "C", "update": "U", "operation": "E", "delete": "D"}
_OUTCOME = {"success": "0", "minor": "4", "serious": "8", "major": "12"}


def audit_event(caller: Caller | None, interaction: str, *, patient: str | None,
                what: list[str], request_id: str, outcome: str = "success",
                query: str | None = None, client_address: str | None = None,
                description: str | None = None) -> dict[str, Any]:
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                             "code": "IRCP", "display": "information recipient"}]},
        "who": {"identifier": {"system": caller.issuer if caller else "urn:gateway:anonymous",
                               "value": caller.client_id if caller else "anonymous"}},
        "requestor": True,
    }
    if caller and caller.subject:
        agent["altId"] = caller.subject
    if client_address:
        agent["network"] = {"address": client_address, "type": "2"}
    agents = [agent]
    if caller and caller.point_of_care:  # the facility, searchable as AuditEvent?agent=
        agents.append({
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass",
                                 "code": "PROV", "display": "healthcare provider"}]},
            "who": {"type": "Organization", "identifier": {"value": caller.point_of_care}},
            "requestor": False,
        })
    entities: list[dict[str, Any]] = []
    if patient:
        entities.append({
            "what": {"reference": f"Patient/{patient}"},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1",
                     "display": "Person"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1",
                     "display": "Patient"},
        })
    for ref in what:
        if ref != f"Patient/{patient}":
            entities.append({
                "what": {"reference": ref},
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                         "code": "2", "display": "System Object"},
                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role",
                         "code": "4", "display": "Domain Resource"},
            })
    if query is not None:
        entities.append({
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24",
                     "display": "Query"},
            "query": base64.b64encode(query.encode()).decode(),
        })
    entities.append({
        "type": {"system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType",
                 "code": "XrequestId"},
        "what": {"identifier": {"value": request_id}},
    })
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid4()),
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
                 "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": interaction}],
        "action": _ACTION.get(interaction, "E"),
        "recorded": now,
        "outcome": _OUTCOME[outcome],
        "agent": agents,
        "source": {"observer": {"display": "gateway"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                             "code": "4", "display": "Application Server"}]},
        "entity": entities,
    }
    if description:
        event["outcomeDesc"] = description
    return event
