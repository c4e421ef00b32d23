"""Character sets of HL7 v2 messages (HL7 table 0211, MSH-18).

A UTF-8 byte order mark wins over MSH-18. Otherwise MSH-18 names the
encoding; with no MSH-18 the bytes are read as UTF-8 and, failing that, as
ISO 8859-1 with a warning, because that is what senders without MSH-18 send
in practice.
"""

from __future__ import annotations

from ...errors import Issue, Issues, RejectedInput

__all__ = ["decode_message", "CHARSETS"]

# HL7 table 0211 value -> Python codec.
CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "UTF-8": "utf-8",
    "UNICODE UTF-16": "utf-16",
    "UNICODE UTF-32": "utf-32",
    "ISO IR6": "ascii",
    "ISO IR100": "latin-1",
    "ISO IR101": "iso8859-2",
    "ISO IR144": "iso8859-5",
    "ISO IR192": "utf-8",
}

_BOM = b"\xef\xbb\xbf"


def _msh18(data: bytes) -> str:
    """MSH-18 read from the raw bytes (the delimiters are ASCII in every
    character set HL7 allows for ER7)."""
    end = len(data)
    for sep in (b"\r", b"\n"):
        k = data.find(sep)
        if k != -1:
            end = min(end, k)
    line = data[:end].decode("latin-1")
    if not line.startswith("MSH") or len(line) < 4:
        return ""
    fs, comp = line[3], line[4:5]
    parts = line.split(fs)
    # parts[0] = "MSH", parts[1] = MSH-2, so MSH-n is parts[n-1].
    if len(parts) < 18:
        return ""
    value = parts[17]
    rep = line[5:6]
    if rep and rep in value:
        value = value.split(rep)[0]
    if comp and comp in value:
        value = value.split(comp)[0]
    return value.strip()


def decode_message(data: bytes, issues: Issues) -> tuple[str, str]:
    """Decode message bytes to text; return (text, charset name used)."""
    if data.startswith(_BOM):
        return data[len(_BOM):].decode("utf-8", errors="replace"), "UNICODE UTF-8"
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16"), "UNICODE UTF-16"
        except UnicodeDecodeError as exc:
            raise RejectedInput(
                "bytes do not match the UTF-16 byte order mark",
                [Issue("error", "value", f"undecodable UTF-16 at byte offset {exc.start}", "MSH[1]")],
            ) from exc
    declared = _msh18(data)
    if declared:
        codec = CHARSETS.get(declared.upper())
        if codec is None:
            issues.warning(
                f"unknown character set {declared!r} in MSH-18; reading as UTF-8",
                "MSH[1]-18",
                code="not-supported",
            )
            codec = "utf-8"
        try:
            return data.decode(codec), declared
        except UnicodeDecodeError as exc:
            if codec == "ascii":
                issues.warning(
                    f"MSH-18 declares ASCII but byte {data[exc.start]:#04x} at offset {exc.start} "
                    "is not ASCII; read as ISO 8859-1",
                    "MSH[1]-18",
                    code="value",
                )
                return data.decode("latin-1"), declared
            if codec == "utf-8":
                issues.warning(
                    f"MSH-18 declares UTF-8 but the bytes at offset {exc.start} are not UTF-8; "
                    "read as ISO 8859-1",
                    "MSH[1]-18",
                    code="value",
                )
                return data.decode("latin-1"), declared
            raise RejectedInput(
                f"bytes do not match the character set {declared!r} of MSH-18",
                [Issue("error", "value", f"undecodable byte at offset {exc.start}", "MSH[1]-18")],
            ) from exc
    try:
        return data.decode("utf-8"), "UNICODE UTF-8"
    except UnicodeDecodeError as exc:
        issues.warning(
            f"no MSH-18 and the bytes are not UTF-8 (offset {exc.start}); read as ISO 8859-1",
            "MSH[1]-18",
            code="value",
        )
        return data.decode("latin-1"), "8859/1"
