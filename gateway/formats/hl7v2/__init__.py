"""HL7 v2 ER7 reading: tokeniser, escapes, character sets, ACKs, strict checks."""

from .er7 import Encoding, Message, Rep, Segment, parse

__all__ = ["Encoding", "Message", "Rep", "Segment", "parse"]
