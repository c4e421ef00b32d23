"""Namespaces of CDA R2 documents and their extensions.

- ``urn:hl7-org:v3``: CDA R2 itself (HL7 CDA R2 normative edition);
- ``urn:hl7-org:pharm``: the HL7 Pharmacy CDA extension used by current
  eHDSI documents (schema ``CDA_Pharma.xsd``);
- ``urn:epsos-org:ep:medication``: the older epSOS medication extension
  (schema ``CDA_extended.xsd``);
- ``urn:hl7-org:sdtc``: the HL7 SDTC extensions used by C-CDA.
"""

from __future__ import annotations

__all__ = ["V3", "PHARM", "EPSOS", "SDTC", "XSI", "NSMAP", "PREFIXES"]

V3 = "urn:hl7-org:v3"
PHARM = "urn:hl7-org:pharm"
EPSOS = "urn:epsos-org:ep:medication"
SDTC = "urn:hl7-org:sdtc"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

NSMAP: dict[str, str] = {"h": V3, "pharm": PHARM, "epsos": EPSOS, "sdtc": SDTC, "xsi": XSI}
PREFIXES: dict[str, str] = {PHARM: "pharm", EPSOS: "epsos", SDTC: "sdtc", XSI: "xsi"}
