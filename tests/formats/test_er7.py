"""The ER7 reader: delimiters, segment ends, escapes, character sets."""

from __future__ import annotations

import pytest

from gateway.errors import RejectedInput
from gateway.formats.hl7v2 import parse
from gateway.formats.hl7v2.er7 import Encoding, escape, unescape

ADT = (
    "MSH|^~\\&|APP|FAC|RAPP|RFAC|20240102101500+0100||ADT^A01^ADT_A01|MSG1|P|2.5.1\r"
    "PID|1||123^^^HOSP&1.2.3&ISO^MR~456^^^NAT^NI||Doe^Jane^Q^^Dr||19800101|F\r"
    "ZPI|1|custom^value\r"
)


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_segment_terminators(sep: str) -> None:
    msg = parse(ADT.replace("\r", sep).encode())
    assert [s.name for s in msg.segments] == ["MSH", "PID", "ZPI"]
    assert msg.control_id == "MSG1"


def test_bom_is_skipped_and_means_utf8() -> None:
    msg = parse(b"\xef\xbb\xbf" + ADT.replace("Jane", "Jos\u00e9").encode("utf-8"))
    assert msg.one("PID").first(5).get(2) == "Jos\u00e9"
    assert msg.charset == "UNICODE UTF-8"


def test_fields_repetitions_components_subcomponents() -> None:
    pid = parse(ADT.encode()).one("PID")
    reps = pid.reps(3)
    assert [r.get(1) for r in reps] == ["123", "456"]
    assert reps[0].get(4, 1) == "HOSP" and reps[0].get(4, 2) == "1.2.3"
    assert reps[0].component(4).get(3) == "ISO"
    assert pid.get(5, 1) == "Doe" and pid.get(5, 5) == "Dr"
    assert pid.get(99) == "" and pid.get(5, 42) == ""
    assert pid.loc(3, 1, rep=2) == "PID[1]-3[2].1"


def test_msh_field_numbers_match_the_standard() -> None:
    msh = parse(ADT.encode()).msh
    assert msh.get(1) == "|"
    assert msh.get(2) == "^~\\&"
    assert msh.get(9, 2) == "A01"
    assert msh.get(12) == "2.5.1"


def test_z_segments_are_kept() -> None:
    z = parse(ADT.encode()).one("ZPI")
    assert z is not None and z.get(2, 2) == "value"


def test_custom_delimiters_from_msh() -> None:
    text = "MSH#$*!%#A#B#C#D#20240101##ADT$A04#X1#P#2.3\rPID#1##9$$$A#\r"
    msg = parse(text.encode())
    assert msg.enc == Encoding("#", "$", "*", "!", "%")
    assert msg.message_type[:2] == ("ADT", "A04")
    assert msg.one("PID").get(3, 4) == "A"


def test_truncation_character_of_v27() -> None:
    msg = parse(b"MSH|^~\\&#|A|B|C|D|20240101||ADT^A01|X|P|2.8\rPID|1||1\r")
    assert msg.enc.truncation == "#"
    assert msg.version == "2.8"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("a\\F\\b", "a|b"),
        ("a\\S\\b", "a^b"),
        ("a\\T\\b", "a&b"),
        ("a\\R\\b", "a~b"),
        ("a\\E\\b", "a\\b"),
        ("line1\\.br\\line2", "line1\nline2"),
        ("\\X41\\\\X42\\", "AB"),
        ("caf\\XC3A9\\", "caf\u00e9"),
        ("\\H\\bold\\N\\", "bold"),
        ("unterminated \\F", "unterminated \\F"),
        ("unknown \\Q\\ kept", "unknown \\Q\\ kept"),
    ],
)
def test_escapes(raw: str, expected: str) -> None:
    assert unescape(raw, Encoding()) == expected


def test_escape_roundtrip() -> None:
    text = "a|b^c&d~e\\f\nline"
    assert unescape(escape(text, Encoding()), Encoding()) == text


def test_escape_inside_component_is_resolved_on_read() -> None:
    msg = parse(b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|X|P|2.5\rNTE|1||Salmonella \\T\\ Shigella\r")
    assert msg.one("NTE").get(3) == "Salmonella & Shigella"


def test_charset_latin1_from_msh18() -> None:
    text = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X|P|2.5|||||DEU|8859/1\rPID|1||1||M\u00fcller^J\u00fcrgen\r"
    msg = parse(text.encode("latin-1"))
    assert msg.one("PID").get(5) == "M\u00fcller"
    assert msg.charset == "8859/1"
    assert not msg.issues.items


def test_charset_utf8_from_msh18() -> None:
    text = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X|P|2.5|||||POL|UNICODE UTF-8\rPID|1||1||\u0141\u00f3d\u017a^Ewa\r"
    assert parse(text.encode("utf-8")).one("PID").get(5) == "\u0141\u00f3d\u017a"


def test_ascii_declared_but_not_ascii_is_reported_not_crashing() -> None:
    text = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X|P|2.5|||||USA|ASCII\rPID|1||1||M\u00fcller\r"
    msg = parse(text.encode("latin-1"))
    assert msg.one("PID").get(5) == "M\u00fcller"
    assert any(i.location == "MSH[1]-18" for i in msg.issues)


def test_undeclared_non_utf8_falls_back_to_latin1_with_warning() -> None:
    msg = parse("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X|P|2.5\rPID|1||1||G\u00f6mez\r".encode("latin-1"))
    assert msg.one("PID").get(5) == "G\u00f6mez"
    assert msg.issues.items[0].severity == "warning"


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8"])
def test_versions(version: str) -> None:
    assert parse(f"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X|P|{version}\r".encode()).version == version


@pytest.mark.parametrize(
    "data, location",
    [
        (b"", "MSH[1]"),
        (b"PID|1||123\r", "MSH[1]"),
        (b"MSH|^~\r", "MSH[1]-2"),
        (b"MSH|^^\\&|A|B\r", "MSH[1]-2"),
        (b"MSH|^~\\&|A|B|C|D|20240101||\rPID|1\r", "MSH[1]-9"),
    ],
)
def test_unreadable_messages_are_refused_with_a_location(data: bytes, location: str) -> None:
    with pytest.raises(RejectedInput) as err:
        parse(data)
    assert err.value.location == location


def test_garbage_lines_are_reported_and_skipped() -> None:
    msg = parse(b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X|P|2.5\rthis is not a segment\rPID|1||1\r")
    assert [s.name for s in msg.segments] == ["MSH", "PID"]
    assert any("not a segment" in i.message for i in msg.issues)


def test_two_messages_glued_read_only_the_first() -> None:
    one = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5\rPID|1||1\r"
    msg = parse((one + one.replace("X1", "X2")).encode())
    assert msg.control_id == "X1" and len(msg.all("PID")) == 1
    assert any(i.location == "MSH[2]" for i in msg.issues)
