"""eHDSI eDispensation out: a CDA document from a stored MedicationRequest and
a dispense (``writer.py``), and the ``gateway dispense`` command logic
(``dispense.py``)."""

from .writer import Dispense, edispensation_cda

__all__ = ["Dispense", "edispensation_cda"]
