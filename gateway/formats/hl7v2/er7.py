"""A fast ER7 (pipe-and-hat) reader for HL7 v2.3 to v2.8.

HL7 v2.5.1 chapter 2, sections 2.5 (message construction rules), 2.7 (use of
escape sequences in text fields) and 2.14.9.18 (MSH-18 character set).

The reader splits the message into segments and fields once; repetitions,
components and subcomponents are split on demand and unescaped only when read.
This is the hot path: hl7apy builds a full object tree and is ~100x slower,
so it is kept for the strict validation mode only (see ``strict.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...errors import Issue, Issues, RejectedInput
from .charset import decode_message

__all__ = ["Encoding", "Segment", "Message", "Rep", "parse", "SEGMENT_NAME", "numeral"]

SEGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")
MAX_SEGMENTS = 5_000
MAX_REPETITIONS = 1_000
_LINE_SPLIT = re.compile(r"\r\n|\r|\n")
_MAX_NUMERAL = 1000
_NUMERALS = tuple(str(n) for n in range(_MAX_NUMERAL))


def numeral(n: int) -> str:
    """``str(n)``; the small numbers of HL7 locations come from a table
    (formatting ints is a visible part of reporting many issues)."""
    return _NUMERALS[n] if 0 <= n < _MAX_NUMERAL else str(n)


@dataclass(frozen=True, slots=True)
class Encoding:
    """The delimiters declared in MSH-1 and MSH-2."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str | None = None  # v2.7+: a fifth character, usually '#'

    @property
    def msh2(self) -> str:
        return (
            self.component + self.repetition + self.escape + self.subcomponent
            + (self.truncation or "")
        )


class Rep:
    """One repetition of a field: components, each a list of subcomponents.

    Text returned by :meth:`get` is unescaped. Indexes are 1-based as in the
    HL7 standard (``get(4, 2)`` is component 4, subcomponent 2).
    """

    __slots__ = ("raw", "_enc", "_esc", "_sub", "_parts", "_comps")

    def __init__(self, raw: str, enc: Encoding) -> None:
        self.raw = raw
        self._enc = enc
        self._esc = enc.escape
        self._sub = enc.subcomponent
        # Components as written, split once; subcomponents are split only
        # where a subcomponent separator occurs (most components have none).
        self._parts: list[str] | None = None
        self._comps: list[list[str]] | None = None

    def _split(self) -> list[str]:
        parts = self._parts = self.raw.split(self._enc.component)
        return parts

    @property
    def components(self) -> list[list[str]]:
        comps = self._comps
        if comps is None:
            sub = self._sub
            comps = self._comps = [c.split(sub) for c in (self._parts or self._split())]
        return comps

    def get(self, comp: int = 1, sub: int = 1) -> str:
        """Component ``comp``, subcomponent ``sub``, unescaped ('' when absent)."""
        parts = self._parts or self._split()
        if comp > len(parts):
            return ""
        text = parts[comp - 1]
        if self._sub in text:
            subs = text.split(self._sub)
            if sub > len(subs):
                return ""
            text = subs[sub - 1]
        elif sub > 1:
            return ""
        if self._esc in text:
            return unescape(text, self._enc)
        return text

    def component(self, comp: int) -> "Rep":
        """Component ``comp`` read as a composite of its own (its subcomponents
        become components), e.g. the HD inside CX-4."""
        parts = self._parts or self._split()
        enc = self._enc
        if comp > len(parts):
            return Rep("", enc)
        return Rep(parts[comp - 1].replace(self._sub, enc.component), enc)

    def text(self) -> str:
        """The whole repetition as text, delimiters kept but escapes resolved."""
        if self._esc in self.raw:
            return unescape(self.raw, self._enc)
        return self.raw

    def filled(self, start: int = 1) -> list[int]:
        """1-based indexes (from ``start`` on) of the components that hold a value."""
        parts = self._parts or self._split()
        if start > len(parts):
            return []
        sub = self._sub
        # a component holds a value when it is not only subcomponent separators
        return [i for i, c in enumerate(parts[start - 1:] if start > 1 else parts, start)
                if c and c.strip(sub)]

    def __bool__(self) -> bool:
        return bool(self.raw) and self.raw != '""'

    def __repr__(self) -> str:
        return f"Rep({self.raw!r})"


@dataclass(slots=True)
class Segment:
    """A segment: ``fields[0]`` is the name; for MSH, ``fields[1]`` is MSH-1
    (the field separator) and ``fields[2]`` MSH-2, so indexes match the
    standard's field numbers for every segment."""

    name: str
    fields: list[str]
    enc: Encoding
    occurrence: int  # 1-based count of this segment name in the message
    position: int  # 1-based position of the segment in the message
    line: str = field(default="", repr=False, compare=False)  # the segment as read
    # Repetitions by field number, split once: mapping rules, keys and
    # accounting read the same fields several times. Shared: not to be mutated.
    _reps: dict[int, list[Rep]] | None = field(default=None, repr=False, compare=False)
    _label: str | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        label = self._label
        if label is None:
            label = self._label = f"{self.name}[{self.occurrence}]"
        return label

    def raw(self, n: int) -> str:
        """Field ``n`` as received ('' when absent)."""
        f = self.fields
        return f[n] if n < len(f) else ""

    def reps(self, n: int) -> list[Rep]:
        """The repetitions of field ``n`` (empty list when the field is empty).
        The list is shared by every caller: read it, do not change it.

        MSH-2 is never split: it holds the delimiters themselves."""
        cache = self._reps
        if cache is None:
            cache = self._reps = {}
        else:
            cached = cache.get(n)
            if cached is not None:
                return cached
        f = self.fields
        raw = f[n] if n < len(f) else ""
        enc = self.enc
        out: list[Rep]
        if not raw:
            out = []
        elif self.name == "MSH" and n <= 2:
            out = [_Literal(raw, enc)]
        elif enc.repetition in raw:
            out = [Rep(r, enc) for r in raw.split(enc.repetition)]
        else:
            out = [Rep(raw, enc)]
        cache[n] = out
        return out

    def first(self, n: int) -> Rep:
        reps = self.reps(n)
        return reps[0] if reps else Rep("", self.enc)

    def get(self, n: int, comp: int = 1, sub: int = 1, rep: int = 1) -> str:
        reps = self.reps(n)
        if rep > len(reps):
            return ""
        return reps[rep - 1].get(comp, sub)

    def filled(self) -> list[int]:
        """Field numbers that hold a value."""
        start = 3 if self.name == "MSH" else 1
        fields = self.fields
        return [i for i in range(start, len(fields)) if fields[i]]

    def loc(self, n: int | None = None, comp: int | None = None, rep: int | None = None) -> str:
        """An HL7 location such as ``OBX[4]-5[2].1``."""
        # Every issue has a location: numbers come from a table, formatting
        # ints is the slowest part of it.
        out = self.label
        if n is None:
            return out
        out += "-" + (_NUMERALS[n] if 0 <= n < _MAX_NUMERAL else str(n))
        if rep is not None and rep > 1:
            out += "[" + (_NUMERALS[rep] if rep < _MAX_NUMERAL else str(rep)) + "]"
        if comp is not None:
            out += "." + (_NUMERALS[comp] if 0 <= comp < _MAX_NUMERAL else str(comp))
        return out


class _Literal(Rep):
    """MSH-1 / MSH-2: returned as is, never split or unescaped."""

    __slots__ = ()

    def _split(self) -> list[str]:
        parts = self._parts = [self.raw]
        return parts

    @property
    def components(self) -> list[list[str]]:
        return [[self.raw]]

    def get(self, comp: int = 1, sub: int = 1) -> str:
        return self.raw if comp == 1 and sub == 1 else ""

    def component(self, comp: int) -> Rep:
        return Rep(self.raw if comp <= 1 else "", self._enc)

    def filled(self, start: int = 1) -> list[int]:
        return [1] if self.raw and start <= 1 else []


@dataclass(slots=True)
class Message:
    """A parsed ER7 message."""

    segments: list[Segment]
    enc: Encoding
    charset: str
    issues: Issues
    by_name: dict[str, list[Segment]] = field(default_factory=dict)

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    @property
    def version(self) -> str:
        return self.msh.get(12)

    @property
    def message_type(self) -> tuple[str, str, str]:
        """(MSH-9.1, MSH-9.2, MSH-9.3): code, trigger event, structure."""
        r = self.msh.first(9)
        return r.get(1), r.get(2), r.get(3)

    @property
    def control_id(self) -> str:
        return self.msh.get(10)

    def all(self, name: str) -> list[Segment]:
        return self.by_name.get(name, [])

    def one(self, name: str) -> Segment | None:
        segs = self.by_name.get(name)
        return segs[0] if segs else None


def parse(data: bytes | str) -> Message:
    """Parse ER7 bytes (or already decoded text) into a :class:`Message`.

    Raises :class:`RejectedInput` with a located issue when the message cannot
    be read at all (no MSH, bad delimiters, undecodable bytes). Problems that
    still leave a usable message are collected in ``Message.issues``.
    """
    issues = Issues()
    if isinstance(data, bytes):
        text, charset = decode_message(data, issues)
    else:
        text, charset = data.lstrip("\ufeff"), "UNICODE UTF-8"
    text = text.lstrip("\r\n\t ")
    if not text.startswith("MSH"):
        head = text[:20].replace("\r", "\\r").replace("\n", "\\n")
        raise RejectedInput(
            "not an HL7 v2 message: it must start with an MSH segment",
            [Issue("error", "structure", f"expected 'MSH' at the start, found {head!r}", "MSH[1]")],
        )
    if len(text) < 8:
        raise RejectedInput(
            "MSH segment too short",
            [Issue("error", "structure", "MSH segment too short for its delimiters", "MSH[1]-2")],
        )
    nul = text.find("\x00")
    if nul != -1:
        raise RejectedInput(
            "NUL character in the message",
            [Issue("error", "value", f"NUL character at offset {nul}: HL7 v2 text cannot hold it",
                   _location(text, nul))],
        )
    fs = text[3]
    enc_end = text.find(fs, 4)
    msh2 = text[4:enc_end] if enc_end != -1 else ""
    # Letters and digits cannot be delimiters: the answer's own fields
    # ("ACK", dates) would be cut apart by them.
    if (len(msh2) not in (4, 5) or any(c.isalnum() or c.isspace() for c in fs + msh2)
            or len(set(fs + msh2)) != len(msh2) + 1):
        raise RejectedInput(
            "invalid encoding characters in MSH-1/MSH-2",
            [Issue("error", "structure",
                   f"MSH-1 {fs!r} and MSH-2 {msh2!r} must be five (or six) distinct delimiters, "
                   "none a letter, digit or space",
                   "MSH[1]-2")],
        )
    enc = Encoding(fs, msh2[0], msh2[1], msh2[2], msh2[3], msh2[4] if len(msh2) == 5 else None)

    segments: list[Segment] = []
    by_name: dict[str, list[Segment]] = {}
    position = 0
    # Segments end with CR (the standard) or, from some senders, LF or CRLF.
    if "\n" not in text:
        lines = text.split("\r")
    elif "\r" not in text:
        lines = text.split("\n")
    else:
        lines = _LINE_SPLIT.split(text)
    for line in lines:
        if not line or line.isspace():
            continue
        line = line.rstrip(" \t")
        position += 1
        name = line[:3]
        if (name not in _NAMES and not _segment_name(name)) or (len(line) > 3 and line[3] != fs):
            issues.warning(
                f"line {position} is not a segment (name {name!r}); skipped, its text was: "
                f"{line[:60]!r}",
                f"segment {position}",
                code="structure",
            )
            continue
        if name == "MSH":
            parts = line.split(fs)
            # MSH-1 is the separator itself; shift so fields[n] is MSH-n.
            fields = ["MSH", fs] + parts[1:]
        else:
            fields = line.split(fs)
        occ = by_name.get(name)
        if occ is None:
            occ = by_name[name] = []
        seg = Segment(name, fields, enc, len(occ) + 1, position, line)
        occ.append(seg)
        segments.append(seg)
    if not segments or segments[0].name != "MSH":
        raise RejectedInput("no MSH segment", [Issue("error", "structure", "no MSH segment", "MSH[1]")])
    if len(by_name["MSH"]) > 1:
        # Batches are split by the caller; several MSH here means a glued stream.
        issues.warning(
            "more than one MSH segment: only the first message is read",
            by_name["MSH"][1].label,
            code="structure",
        )
        cut = by_name["MSH"][1].position
        segments = [s for s in segments if s.position < cut]
        by_name = {}
        for s in segments:
            by_name.setdefault(s.name, []).append(s)
    msh = segments[0]
    if not msh.get(9):
        raise RejectedInput(
            "MSH-9 (message type) is empty",
            [Issue("error", "required", "MSH-9 message type is required", "MSH[1]-9")],
        )
    if not msh.get(10):
        issues.warning("MSH-10 (message control id) is empty", "MSH[1]-10", code="required")
    _check_size(segments, enc, text)
    return Message(segments, enc, charset, issues, by_name)


_NAMES: set[str] = set()  # valid segment names met so far (at most 26 * 36 * 36)


def _segment_name(name: str) -> bool:
    """Is ``name`` a segment name (``SEGMENT_NAME``)? Remembered when it is."""
    if SEGMENT_NAME.match(name):
        _NAMES.add(name)
        return True
    return False


def _check_size(segments: list[Segment], enc: Encoding, text: str) -> None:
    """Refuse messages beyond ``MAX_SEGMENTS`` segments or with a field of
    more than ``MAX_REPETITIONS`` repetitions."""
    if len(segments) > MAX_SEGMENTS:
        raise RejectedInput(
            "too many segments",
            [Issue("error", "too-long", f"the message has {len(segments)} segments; at most "
                   f"{MAX_SEGMENTS} are accepted", segments[MAX_SEGMENTS].label)],
        )
    if text.count(enc.repetition) < MAX_REPETITIONS:
        return
    for seg in segments:
        for n in range(3 if seg.name == "MSH" else 1, len(seg.fields)):
            reps = seg.fields[n].count(enc.repetition) + 1
            if reps > MAX_REPETITIONS:
                raise RejectedInput(
                    "too many repetitions",
                    [Issue("error", "too-long", f"{reps} repetitions in one field; at most "
                           f"{MAX_REPETITIONS} are accepted", seg.loc(n))],
                )


def _location(text: str, at: int) -> str:
    """The ER7 location (``PID[1]-5``) of character offset ``at``."""
    if at < 8:
        return "MSH[1]-1" if at == 3 else "MSH[1]-2"
    lines = _LINE_SPLIT.split(text[:at])
    name = lines[-1][:3]
    field = lines[-1].count(text[3]) + (name == "MSH")
    if not SEGMENT_NAME.match(name) or field < 1:
        return f"segment {len(lines)}"
    occurrence = sum(1 for line in lines if line[:3] == name)
    return f"{name}[{occurrence}]-{field}"


_ESCAPE_TEXT = {"F": "field", "S": "component", "T": "subcomponent", "R": "repetition", "E": "escape"}
_FORMATTING = {".br": "\n", ".sp": "\n", ".fi": "", ".nf": "", ".ce": "", "H": "", "N": ""}


def unescape(text: str, enc: Encoding) -> str:
    """Resolve HL7 escape sequences (v2.5.1 section 2.7).

    ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`` become the delimiters, ``\\.br\\`` a line
    break, ``\\Xhh..\\`` the bytes it names (decoded as UTF-8, else Latin-1);
    highlighting and other formatting commands are removed. An unterminated or
    unknown sequence is kept as written.
    """
    esc = enc.escape
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        j = text.find(esc, i)
        if j == -1:
            out.append(text[i:])
            break
        out.append(text[i:j])
        k = text.find(esc, j + 1)
        if k == -1:
            out.append(text[j:])
            break
        seq = text[j + 1 : k]
        if seq in _ESCAPE_TEXT:
            out.append(getattr(enc, _ESCAPE_TEXT[seq]))
        elif seq in _FORMATTING:
            out.append(_FORMATTING[seq])
        elif seq[:1] == "X" and len(seq) > 1 and len(seq) % 2 == 1:
            raw: bytes | None
            try:
                raw = bytes.fromhex(seq[1:])
            except ValueError:
                raw = None
            if raw is None or 0 in raw:
                out.append(text[j : k + 1])
            else:
                try:
                    out.append(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    out.append(raw.decode("latin-1"))
        elif seq[:3] in (".sk", ".in", ".ti") or seq[:1] in ("C", "M", "Z"):
            # Indentation / skip, character-set switching and locally defined
            # escapes carry no text of their own.
            pass
        else:
            out.append(text[j : k + 1])
        i = k + 1
    return "".join(out)


def escape(text: str, enc: Encoding) -> str:
    """The inverse of :func:`unescape` for plain text (used when writing ACKs)."""
    e = enc.escape
    return (
        text.replace(e, f"{e}E{e}")
        .replace(enc.field, f"{e}F{e}")
        .replace(enc.component, f"{e}S{e}")
        .replace(enc.subcomponent, f"{e}T{e}")
        .replace(enc.repetition, f"{e}R{e}")
        .replace("\r\n", f"{e}.br{e}")
        .replace("\n", f"{e}.br{e}")
        .replace("\r", f"{e}.br{e}")
    )
