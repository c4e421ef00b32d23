"""The one door to the record: who the caller is (tokens, SMART scopes),
what they may see (the patient compartment, later share grants), and the
AuditEvent of every access. Routes never query the store directly."""

from .caller import Caller
from .guard import authenticate, require
from .record import RecordAccess

__all__ = ["Caller", "authenticate", "require", "RecordAccess"]
