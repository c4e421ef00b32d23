"""Transforms that build one FHIR element from a field plus its neighbours
(OBX-5 with OBX-2 and OBX-6; IN1-3 with IN1-4/5/7), constants, extensions
and message-level facts. Each is named in the mapping files' ``as:``.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from ... import __version__
from ...formats.hl7v2.er7 import Encoding, Rep
from .datatypes import (
    _hd_system,
    _identifier_type,
    _number,
    hl7_datetime,
    observation_value,
    t_cq,
    t_cwe,
    t_hd_org,
    t_pl,
    unit_coding,
    t_cx,
    t_xad,
    t_xcn,
    t_xpn,
    t_xtn,
    transform,
)

if TYPE_CHECKING:
    from .context import RuleContext

_V5_OBS_VALUE = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.value"


# ------------------------------------------------------------------ constants and extensions

@transform("constant", uses=None)
def t_constant(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """The rule's ``args.value``, written when the source field has a value."""
    return args["value"]


@transform("constant_coding", uses=None)
def t_constant_coding(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    return {"coding": [{k: args[k] for k in ("system", "code", "display") if k in args}]}


@transform("constant_codeable", uses=None)
def t_constant_codeable(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    return t_constant_coding(rep, ctx, args)


@transform("string_identifier", uses={1})
def t_string_identifier(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    value = rep.get(1).strip()
    if not value:
        return None
    ident: dict[str, Any] = {}
    id_type = _identifier_type(args.get("type", ""), ctx)
    if id_type:
        ident["type"] = id_type
    if args.get("system"):
        ident["system"] = args["system"]
    ident["value"] = value
    return ident


@transform("extension_string", uses={1})
def t_ext_string(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    if args.get("component"):
        value = rep.get(int(args["component"])).strip()
    else:
        value = rep.text().strip()
    return {"url": args["url"], "valueString": value} if value else None


@transform("extension_codeable", uses={1, 2, 3, 4, 5, 6, 7, 8, 9})
def t_ext_codeable(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    cc = t_cwe(rep, ctx, {})
    return {"url": args["url"], "valueCodeableConcept": cc} if cc else None


@transform("extension_datetime", uses={1})
def t_ext_datetime(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    value, problem = hl7_datetime(rep.get(1), ctx.default_tz)
    if problem:
        ctx.report(problem, "information" if value else "warning", code="value")
    return {"url": args["url"], "valueDateTime": value} if value else None


@transform("birth_time", uses={1})
def t_birth_time(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """The time of birth, when PID-7 gives one (patient-birthTime extension)."""
    text = rep.get(1).strip()
    if len(text) <= 8:
        return None
    value, problem = hl7_datetime(text, ctx.default_tz)
    if not value or "T" not in value:
        if problem:
            ctx.report(problem, "information", code="value")
        return None
    if value[11:19] == "00:00:00" and len(text.split("+")[0].split("-")[0]) <= 14 and text[8:14].strip("0") == "":
        return None  # midnight padding, not a time of birth
    return {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": value}


@transform("extension_birthplace", uses=None)
def t_ext_birthplace(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    text = rep.text().strip()
    if not text:
        return None
    return {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
            "valueAddress": {"text": text}}


@transform("extension_citizenship", uses={1, 2, 3, 4, 5, 6, 7, 8, 9})
def t_ext_citizenship(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    cc = t_cwe(rep, ctx, {})
    if not cc:
        return None
    return {"url": "http://hl7.org/fhir/StructureDefinition/patient-citizenship",
            "extension": [{"url": "code", "valueCodeableConcept": cc}]}


@transform("extension_nationality", uses={1, 2, 3, 4, 5, 6, 7, 8, 9})
def t_ext_nationality(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    cc = t_cwe(rep, ctx, {})
    if not cc:
        return None
    return {"url": "http://hl7.org/fhir/StructureDefinition/patient-nationality",
            "extension": [{"url": "code", "valueCodeableConcept": cc}]}


# ------------------------------------------------------------------ message level (Provenance)

@transform("recorded_instant", uses={1})
def t_recorded(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """Provenance.recorded: MSH-7 when it is a full instant, else the time of
    conversion (set by the caller)."""
    value, _ = hl7_datetime(rep.get(1), ctx.default_tz)
    if value and "T" in value:
        return value
    return ctx.run.now


@transform("message_activity", uses={1, 2, 3})
def t_activity(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    code, event = rep.get(1).strip(), rep.get(2).strip()
    coding = [{"system": "http://terminology.hl7.org/CodeSystem/v2-0003", "code": event}] if event else []
    return {"coding": coding, "text": f"{code}^{event}" if event else code}


@transform("message_entity", uses={1})
def t_message_entity(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    control = rep.get(1).strip()
    code, event, _ = ctx.run.message.message_type
    return {
        "role": "source",
        "what": {
            "identifier": {"system": "urn:ietf:rfc:3986",
                           "value": f"urn:hl7v2:{ctx.sender}:{control}"},
            "display": f"HL7 v2 {code}^{event} message {control} (sha256 {ctx.run.digest[:16]}…)",
        },
    }


@transform("mapping_agent", uses=None)
def t_mapping_agent(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """The gateway itself, with the version of the mapping set it applied."""
    version = ctx.run.mapping.version
    ref = ctx.emit("Device", ("gateway-mapping", version), {
        "resourceType": "Device",
        "deviceName": [{"name": "gateway HL7 v2 to FHIR mapping", "type": "model-name"}],
        "version": [{"value": version}, {"type": {"text": "software"}, "value": __version__}],
    })
    ref["display"] = f"gateway {__version__}, mappings {version}"
    return {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                             "code": "assembler", "display": "Assembler"}]},
        "who": ref,
    }


# ------------------------------------------------------------------ encounter

@transform("encounter_status", uses=None)
def t_encounter_status(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """Encounter.status from the trigger event; a discharge date makes any
    visit finished."""
    pv1 = ctx.run.message.one("PV1")
    if pv1 is not None and pv1.get(45).strip():
        return "finished"
    status = ctx.lookup("event-encounter-status", rep.get(2).strip())
    return status or "unknown"


@transform("participant", uses={1, 2, 3, 4, 5, 6, 7, 9, 13})
def t_participant(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    who = t_xcn(rep, ctx, args)
    if not who:
        return None
    return {
        "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                              "code": args["type"], "display": args.get("display", args["type"])}]}],
        "individual": who,
    }


@transform("DLD_location", uses={1, 2})
def t_dld(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    code = rep.get(1).strip()
    if not code:
        return None
    ref = ctx.emit("Location", ("discharge-location", ctx.sender, code),
                   {"resourceType": "Location", "name": code, "mode": "kind"})
    ref["display"] = code
    return ref


@transform("facility_organization", uses={1})
def t_facility(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    name = rep.get(1).strip()
    if not name:
        return None
    ref = ctx.emit("Organization", ("facility", ctx.sender, name),
                   {"resourceType": "Organization", "name": name})
    ref["display"] = name
    return ref


@transform("duration_days", uses={1})
def t_duration_days(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    n = _number(rep.get(1))
    if n is None:
        return None
    return {"value": n, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}


# ------------------------------------------------------------------ conditions

@transform("diagnosis_action", uses={1})
def t_diagnosis_action(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """DG1-21 / action code D (delete) marks the diagnosis entered in error."""
    if rep.get(1).strip().upper() == "D":
        return {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                            "code": "entered-in-error"}]}
    return None


@transform("problem_action", uses={1})
def t_problem_action(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    if rep.get(1).strip().upper() == "DE":
        return {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                            "code": "entered-in-error"}]}
    return None


# ------------------------------------------------------------------ coverage

@transform("insurer", uses={1, 4})
def t_insurer(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """IN1-3 (insurance company id) with IN1-4 (name), IN1-5 (address) and
    IN1-7 (phone) to a Reference to the payor Organization."""
    names = ctx.related_field("IN1", 4)
    name = names[0].get(1).strip() if names else ""
    ident = t_cx(rep, ctx, {})
    if not ident and not name:
        return None
    body: dict[str, Any] = {"resourceType": "Organization"}
    if ident:
        body["identifier"] = [ident]
    if name:
        body["name"] = name
    addresses = [a for a in (t_xad(r, ctx, {}) for r in ctx.related_field("IN1", 5)) if a]
    if addresses:
        body["address"] = addresses
    phones = [p for p in (t_xtn(r, ctx, {"use": "work"}) for r in ctx.related_field("IN1", 7)) if p]
    if phones:
        body["telecom"] = phones
    key = ("insurer", ident["value"]) if ident else ("insurer-name", name)
    ref = ctx.emit("Organization", key, body)
    if name:
        ref["display"] = name
    return ref


@transform("coverage_class", uses={1, 2})
def t_coverage_class(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    value = rep.get(1).strip()
    if not value:
        return None
    kind = args.get("type", "plan")
    out: dict[str, Any] = {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                             "code": kind}]},
        "value": value,
    }
    name = rep.get(2).strip()
    if kind == "group":
        names = ctx.related_field("IN1", 9)
        name = names[0].get(1).strip() if names else name
    if name:
        out["name"] = name
    return out


# ------------------------------------------------------------------ results

@transform("OBX_value", uses=None, many=True)
def t_obx_value(reps: list[Rep], ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """OBX-5 typed by OBX-2, with OBX-6 units. ED/RP values (an Attachment,
    which R4's Observation.value[x] cannot hold) go to the R5 cross-version
    extension for Observation.value."""
    vt_reps = ctx.related_field("OBX", 2)
    value_type = vt_reps[0].get(1) if vt_reps else ""
    units_reps = ctx.related_field("OBX", 6)
    units = units_reps[0] if units_reps else Rep("", reps[0]._enc if reps else Encoding())
    if not value_type:
        ctx.report("OBX-2 (value type) is empty: value read as a string", "warning", code="required")
        value_type = "ST"
    result = observation_value([r for r in reps], value_type, units, ctx)
    if result is None:
        return None
    suffix, value = result
    if suffix == "Attachment":
        ctx.resource.setdefault("extension", []).append({"url": _V5_OBS_VALUE, "valueAttachment": value})
        return None
    return (suffix, value)


@transform("NDL_practitioner", uses={1})
def t_ndl(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """NDL (name with date and location): its first component is a CNN, whose
    subcomponents are an XCN's components."""
    return t_xcn(rep.component(1), ctx, args)


@transform("producer_organization", uses={1, 2, 3})
def t_producer(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    code, name = rep.get(1).strip(), rep.get(2).strip()
    if not (code or name):
        return None
    ref = ctx.emit("Organization", ("producer", code or name),
                   {"resourceType": "Organization", "name": name or code,
                    **({"identifier": [{"value": code}]} if code else {})})
    ref["display"] = name or code
    return ref


@transform("EI_device", uses={1, 2, 3, 4})
def t_ei_device(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    value = rep.get(1).strip()
    if not value:
        return None
    ident: dict[str, Any] = {"value": value}
    system = _hd_system(rep, 2, 3, 4, ctx)
    if system:
        ident = {"system": system, **ident}
    ref = ctx.emit("Device", ("ei", system or "", value),
                   {"resourceType": "Device", "identifier": [ident]})
    return ref


@transform("EIP", uses={1, 2})
def t_eip(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """EIP (placer ^ filler, each an EI in subcomponents) to the first identifier."""
    for comp, kind in ((2, "FILL"), (1, "PLAC")):
        part = rep.component(comp)
        value = part.get(1).strip()
        if value:
            ident: dict[str, Any] = {"type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": kind}]}}
            system = _hd_system(part, 2, 3, 4, ctx)
            if system:
                ident["system"] = system
            ident["value"] = value
            placer = rep.component(1).get(1).strip()
            if comp == 2 and placer:
                ctx.report(f"placer specimen id {placer!r} not kept: the filler id is used",
                           "information")
            return ident
    return None


@transform("additive_display", uses={1, 2, 3})
def t_additive(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    text = (rep.get(2) or rep.get(1)).strip()
    if not text:
        return None
    ref = ctx.emit("Substance", ("additive", rep.get(3), rep.get(1) or text),
                   {"resourceType": "Substance", "code": t_cwe(rep, ctx, {}) or {"text": text}})
    ref["display"] = text
    return ref


# ------------------------------------------------------------------ immunization and medication

@transform("LA2_location", uses={1, 2, 3, 4, 9})
def t_la2(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    parts = [rep.get(4).strip(), rep.get(1).strip(), rep.get(2).strip(), rep.get(3).strip(),
             rep.get(9).strip()]
    present = [p for p in parts if p]
    if not present:
        return None
    name = ", ".join(present)
    ref = ctx.emit("Location", ("la2", *parts), {"resourceType": "Location", "name": name,
                                                 "mode": "instance"})
    ref["display"] = name
    return ref


@transform("CWE_organization", uses={1, 2, 3})
def t_cwe_org(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """A coded manufacturer (e.g. MVX) to a Reference to an Organization."""
    code, name, system_name = rep.get(1).strip(), rep.get(2).strip(), rep.get(3).strip()
    if not (code or name):
        return None
    body: dict[str, Any] = {"resourceType": "Organization", "name": name or code}
    system = ctx.system_uri(system_name) if system_name else None
    if code:
        body["identifier"] = [{**({"system": system} if system else {}), "value": code}]
    ref = ctx.emit("Organization", ("coded", system or system_name, code or name), body)
    ref["display"] = name or code
    return ref


@transform("dose_amount", uses={1})
def t_dose_amount(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """RXA-6; 999 means "amount unknown" (CDC IG) and is not a dose."""
    text = rep.get(1).strip()
    if text == "999":
        return None
    n = _number(text)
    if n is None:
        ctx.report(f"{text!r} is not a number", "warning", code="value")
    return n


@transform("immunization_action", uses={1})
def t_immunization_action(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """RXA-21 action code D (delete) marks the record entered in error."""
    if rep.get(1).strip().upper() == "D":
        return "entered-in-error"
    return None


@transform("repeat_pattern", uses={1, 2, 3})
def t_repeat(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    code = rep.get(1).strip()
    if not code:
        return None
    pattern = ctx.lookup("repeat-pattern", code.upper(), quiet=True)
    if pattern is None:
        ctx.report(f"repeat pattern {code!r} is not in table repeat-pattern: kept as timing code only",
                   "information", code="code-invalid")
        return None
    return dict(pattern) or None


@transform("CWE_timing_code", uses={1, 2, 3})
def t_timing_code(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    code = rep.get(1).strip()
    if not code:
        return None
    coding: dict[str, Any] = {"system": "http://terminology.hl7.org/CodeSystem/v2-0335", "code": code}
    if rep.get(2).strip():
        coding["display"] = rep.get(2).strip()
    return {"coding": [coding], "text": rep.get(2).strip() or code}


@transform("request_priority", uses={1})
def t_request_priority(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    code = rep.get(1).strip().upper()
    mapped = {"S": "stat", "A": "asap", "R": "routine", "P": "routine", "C": "routine",
              "T": "urgent", "PRN": "routine"}.get(code)
    if mapped is None:
        ctx.report(f"priority {code!r} has no FHIR request priority", "warning", code="code-invalid")
    return mapped


@transform("substitution", uses={1})
def t_substitution(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """RXE-9 (substitution status, HL7 table 0167) to substitution.allowed."""
    code = rep.get(1).strip().upper()
    allowed = {"N": ("N", "none"), "G": ("G", "generic composition"),
               "T": ("TE", "therapeutic alternative"), "0": ("E", "equivalent")}.get(code)
    if allowed is None:
        ctx.report(f"substitution status {code!r} not known", "warning", code="code-invalid")
        return None
    return {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-substanceAdminSubstitution",
                        "code": allowed[0], "display": allowed[1]},
                       {"system": "http://terminology.hl7.org/CodeSystem/v2-0167", "code": code}]}


@transform("substitution_status", uses={1})
def t_substitution_status(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    code = rep.get(1).strip().upper()
    if code in ("G", "T"):
        return True
    if code in ("N", "0", "1", "2", "3", "4", "5", "7", "8"):
        return False
    return None


@transform("component_is_active", uses={1})
def t_component_active(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """RXC-1 (A = base, B = additive) to ingredient.isActive."""
    code = rep.get(1).strip().upper()
    return True if code == "A" else False if code == "B" else None


# ------------------------------------------------------------------ documents

@transform("document_text", uses=None, many=True)
def t_document_text(reps: list[Rep], ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """The OBX segments under a TXA, in order, as one text/plain attachment.
    Each OBX's lines are joined with a line break."""
    seg = ctx.segment
    if seg is None:
        return None
    lines: list[str] = []
    txa = seg if seg.name == "TXA" else ctx.run.ancestor(seg, ("TXA",))
    obxs = ctx.run.related(txa, "OBX") if txa is not None else []
    for obx in obxs:
        for f in (2, 3, 4, 5, 11):
            ctx.run.consume(obx, f)
        for r in obx.reps(5):
            lines.append(r.text())
    if not lines:
        return None
    text = "\n".join(lines)
    presentation = ctx.related_field("TXA", 3)
    kind = presentation[0].get(1).strip() if presentation else ""
    content_type = "text/plain; charset=utf-8"
    if "/" in kind:
        content_type = kind
    elif kind and kind.upper() not in ("TX", "FT", "ST", "TEXT"):
        ctx.report(f"TXA-3 {kind!r} is not a media type: text/plain used", "information",
                   code="value")
    att: dict[str, Any] = {"contentType": content_type}
    att["data"] = base64.b64encode(text.encode("utf-8")).decode("ascii")
    att["size"] = len(text.encode("utf-8"))
    return att


# ------------------------------------------------------------------ choice elements (value[x])

@transform("choice_dateTime", uses={1})
def t_choice_datetime(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    value, problem = hl7_datetime(rep.get(1), ctx.default_tz)
    if problem:
        ctx.report(problem, "information" if value else "warning", code="value")
    return ("DateTime", value) if value else None


@transform("choice_boolean", uses={1})
def t_choice_boolean(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    v = rep.get(1).strip().upper()
    if v in ("Y", "N"):
        return ("Boolean", v == "Y")
    ctx.report(f"{v!r} is not Y or N", "warning", code="value")
    return None


@transform("choice_integer", uses={1})
def t_choice_integer(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    n = _number(rep.get(1))
    if not isinstance(n, int):
        ctx.report(f"{rep.get(1)!r} is not an integer", "warning", code="value")
        return None
    return ("Integer", n)


@transform("choice_Quantity", uses={1, 2})
def t_choice_quantity(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    q = t_cq(rep, ctx, {})
    return (args.get("type", "Quantity"), q) if q else None


@transform("tq1_period", uses={1})
def t_tq1_period(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """TQ1-7 (start) with TQ1-8 (end) to a Period."""
    start, problem = hl7_datetime(rep.get(1), ctx.default_tz)
    if problem:
        ctx.report(problem, "information" if start else "warning", code="value")
    period: dict[str, Any] = {"start": start} if start else {}
    ends = ctx.related_field("TQ1", 8)
    if ends and ends[0].get(1):
        end, _ = hl7_datetime(ends[0].get(1), ctx.default_tz)
        if end:
            period["end"] = end
    return ("Period", period) if period else None


@transform("give_amount", uses={1})
def t_give_amount(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """RXE-3 (give amount minimum) with RXE-4 (maximum) and RXE-5 (units):
    a Quantity, or a Range when a different maximum is given."""
    low = _number(rep.get(1))
    if low is None:
        ctx.report(f"{rep.get(1)!r} is not a number", "warning", code="value")
        return None
    highs = ctx.related_field("RXE", 4)
    high = _number(highs[0].get(1)) if highs else None
    units = ctx.related_field("RXE", 5)
    unit = unit_coding(units[0], ctx) if units else {}
    if high is not None and high != low:
        return ("Range", {"low": {"value": low, **unit}, "high": {"value": high, **unit}})
    return ("Quantity", {"value": low, **unit})


@transform("encounter_location", uses={1, 2, 3, 4, 7, 8, 9})
def t_encounter_location(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """A PL with the status of the stay there: current (PV1-3), temporary
    (PV1-11) active, pending (PV1-42) planned, prior (PV1-6) completed."""
    ref = t_pl(rep, ctx, args)
    if ref is None:
        return None
    return {"location": ref, "status": args["status"]}


@transform("component_strength", uses={1})
def t_component_strength(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """RXC-5 (strength) with RXC-6 (strength units) per one RXC-4 unit, as a
    Ratio (both terms present, as rat-1 requires)."""
    n = _number(rep.get(1))
    if n is None:
        ctx.report(f"{rep.get(1)!r} is not a number", "warning", code="value")
        return None
    units = ctx.related_field("RXC", 6)
    per = ctx.related_field("RXC", 4)
    numerator = {"value": n, **(unit_coding(units[0], ctx) if units else {})}
    denominator: dict[str, Any] = {"value": 1}
    if per:
        denominator.update(unit_coding(per[0], ctx))
    return {"numerator": numerator, "denominator": denominator}


@transform("report_origin", uses={1, 2, 3})
def t_report_origin(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """RXA-9: a report origin only for historical records (not '00', new)."""
    if rep.get(1).strip() == "00":
        return None
    return t_cwe(rep, ctx, {})


@transform("default_status", uses=None)
def t_default_status(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """A required status the message does not give: ``args.value`` (e.g.
    'unknown'), said as information. List it after the rules that read the
    real status: the first rule that fills an element wins."""
    if ctx.resource.get("status"):
        return None
    ctx.report(f"no status in the message: {args['value']!r} used", "information", code="required")
    return args["value"]


@transform("default_lab_category", uses=None)
def t_default_lab_category(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """An OBX that answers an order (under an OBR) with no category of its
    own (OBR-24 empty) is a laboratory result (v2 chapter 7: ORU results),
    said as information."""
    if ctx.resource.get("category"):
        return None
    ctx.report("no diagnostic service section (OBR-24): result filed as laboratory", "information")
    return {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory", "display": "Laboratory"}]}


@transform("fallback_performer", uses={1, 2, 3})
def t_fallback_performer(rep: Rep, ctx: "RuleContext", args: dict[str, Any]) -> Any:
    """A result with no performer of its own (OBX-15/16/23 empty) was
    produced by the sending facility (MSH-4) of the results message."""
    if ctx.resource.get("performer"):
        return None
    ref = t_hd_org(rep, ctx, args)
    if ref is not None:
        ctx.report("no performer in OBX: the sending facility (MSH-4) is the performer", "information")
    return ref
