"""Signed cross-border exchange between gateways.

- :mod:`.keys`: key pairs and self-signed X.509 certificates per purpose;
- :mod:`.trust`: the trust list of peer gateways (signed by a trust anchor);
- :mod:`.jws`: detached JWS signatures on FHIR Bundles (RFC 7515, RFC 8785);
- :mod:`.xmldsig`: XML signatures on CDA documents and SAML assertions;
- :mod:`.saml`, :mod:`.soap`, :mod:`.xca_client`: the IHE XCA exchange;
- :mod:`.backend`, :mod:`.fhir_client`: SMART backend services and PDQm/MHD;
- :mod:`.retrieve`: identify, find, retrieve, verify and ingest a summary;
- :mod:`.replay`: message ids and token ids remembered for their validity.

Nothing here does I/O at import.
"""
