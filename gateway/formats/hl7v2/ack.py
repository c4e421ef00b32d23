"""HL7 v2 acknowledgements (original mode): ACK with MSA and, for errors,
ERR segments that point at the problem.

HL7 v2.5.1 sections 2.9 (acknowledgement rules), 2.15.5 (ERR: ERR-2 error
location as ERL, ERR-3 HL7 error code from table 0357, ERR-4 severity) and
2.15.8 (MSA). Versions before 2.5 get ERR-1 (ELD) instead.

An ACK is two or three short segments; writing them directly keeps the MLLP
reply path free of any heavy object model.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timezone

from ...errors import Issue, Issues, RejectedInput
from .charset import CHARSETS, decode_message
from .er7 import Encoding, Message, escape

__all__ = ["build_ack", "AckCode", "error_location"]

AckCode = str  # "AA" | "AE" | "AR"

_LOC = re.compile(r"^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+)(?:\[(\d+)\])?(?:\.(\d+))?(?:\.(\d+))?)?$")
_counter = itertools.count(1)

# HL7 table 0357 (message error condition codes)
_ERROR_CODE = {
    "structure": ("100", "Segment sequence error"),
    "required": ("101", "Required field missing"),
    "value": ("102", "Data type error"),
    "code-invalid": ("103", "Table value not found"),
    "not-supported": ("200", "Unsupported message type"),
    "duplicate": ("205", "Duplicate key identifier"),
    "conflict": ("205", "Duplicate key identifier"),
    "exception": ("207", "Application internal error"),
}


def error_location(location: str | None) -> tuple[str, ...] | None:
    """``OBX[4]-5[2].1`` -> (segment, sequence, field, repetition, component, sub)."""
    if not location:
        return None
    m = _LOC.match(location)
    if not m:
        return None
    seg, seq, fld, rep, comp, sub = m.groups()
    return (seg, seq or "1", fld or "", rep or ("1" if fld else ""), comp or "", sub or "")


def _err(issue: Issue, enc: Encoding, version: str) -> str:
    f, c = enc.field, enc.component
    code, text = _ERROR_CODE.get(issue.code, ("207", "Application internal error"))
    sev = {"fatal": "E", "error": "E", "warning": "W", "information": "I"}[issue.severity]
    loc = error_location(issue.location)
    erl = c.join(x for x in loc) if loc else ""
    erl = erl.rstrip(c)
    msg = escape(issue.message[:200], enc)
    if version[:3] in ("2.3", "2.4"):
        eld = c.join([loc[0], loc[1], loc[2] or ""]) if loc else ""
        return f"ERR{f}{eld}{c}{code}{enc.subcomponent}{text}{enc.subcomponent}HL70357"
    return (f"ERR{f}{f}{erl}{f}{code}{c}{text}{c}HL70357{f}{sev}"
            f"{f}{f}{f}{f}{msg}")


def build_ack(message: Message | None, code: AckCode, issues: list[Issue] | None = None,
              text: str = "", now: datetime | None = None) -> bytes:
    """An ACK for ``message`` (or, when it could not be read, a generic one).

    Sender and receiver are swapped from the original MSH; MSA-2 echoes MSH-10;
    each error or warning issue becomes an ERR segment."""
    enc = message.enc if message else Encoding()
    f = enc.field
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d%H%M%S%z")
    if message is not None:
        msh = message.msh
        send_app, send_fac = msh.raw(5), msh.raw(6)
        recv_app, recv_fac = msh.raw(3), msh.raw(4)
        event = message.message_type[1]
        control = msh.raw(10)
        processing = msh.raw(11) or "P"
        version = msh.raw(12) or "2.5.1"
        charset = msh.raw(18)
        if charset and CHARSETS.get(charset.upper()) is None:
            # an unknown declaration would make the ACK's own bytes ambiguous:
            # say what the ACK is written in
            charset = "UNICODE UTF-8"
    else:
        send_app, send_fac, recv_app, recv_fac = "GATEWAY", "", "", ""
        event, control, processing, version, charset = "", "", "P", "2.5.1", ""
    ack_id = f"ACK{stamp[:14]}{next(_counter):06d}"
    msh_fields = ["MSH", enc.msh2, send_app, send_fac, recv_app, recv_fac, stamp, "",
                  f"ACK{enc.component}{event}{enc.component}ACK" if event else "ACK",
                  ack_id, processing, version]
    if charset:
        msh_fields += ["", "", "", "", "", charset]
    segments = [f.join(msh_fields)]
    segments.append(f.join(["MSA", code, control, escape(text[:80], enc)]) if text
                    else f.join(["MSA", code, control]))
    for issue in issues or []:
        if issue.severity in ("fatal", "error") or (code != "AA" and issue.severity == "warning"):
            segments.append(_err(issue, enc, version))
    declared = charset if message is not None else ""
    return _encode("\r".join(segments) + "\r", declared)


def _encode(text: str, declared: str) -> bytes:
    """The ACK as bytes in the character set it declares, or failing that in
    UTF-8 or ISO 8859-1: the first whose bytes read back as ``text``."""
    for codec in (CHARSETS.get(declared.upper()), "utf-8", "latin-1"):
        if codec is None:
            continue
        try:
            data = text.encode(codec)
        except UnicodeEncodeError:
            continue
        try:
            if decode_message(data, Issues())[0] == text:
                return data
        except RejectedInput:
            continue
    return text.encode("utf-8", "replace")
