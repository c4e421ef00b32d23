"""Research donation: the citizen's research Consent (``consent.py``) and
the de-identified export for consenting citizens only (``deidentify.py``)."""

from .consent import CATEGORIES, research_consents
from .deidentify import export_research

__all__ = ["CATEGORIES", "export_research", "research_consents"]
