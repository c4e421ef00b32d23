"""Signed cross-border exchange between gateways.

- :mod:`.keys`: key pairs and self-signed X.509 certificates per purpose;
- :mod:`.trust`: the trust list of peer gateways (signed by a trust anchor);
- :mod:`.jws`: detached JWS signatures on FHIR Bundles (RFC 7515, RFC 8785);
- :mod:`.xmldsig`: XML signatures on CDA documents and SAML assertions;
- :mod:`.saml`, :mod:`.soap`, :mod:`.xca_client`: the IHE XCA exchange;
- :mod:`.fhir_client`: SMART backend services token, PDQm and MHD (requesting side);
- :mod:`.outbox`: durable deliveries to peers (worker, leases, retries);
- :mod:`.retrieve`: identify, find, retrieve, verify and ingest a summary;
- :mod:`.replay`: message ids and token ids remembered in the store for their validity.

Nothing here does I/O at import.
"""
