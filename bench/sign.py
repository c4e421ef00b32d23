"""Sign + verify per document: IPS Bundles (detached JWS over RFC 8785) and
CDA documents (enveloped XML-DSig), next to the bare library calls
(rfc8785 + joserfc; signxml) in the same run.

    .venv/bin/python bench/sign.py [--rounds N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _ms(fn, rounds: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds * 1000


def main() -> None:
    import rfc8785
    from joserfc import jws as jose
    from lxml import etree
    from signxml import XMLSigner, XMLVerifier

    from gateway.exchange import jws, xmldsig
    from gateway.exchange.keys import init_keys
    from gateway.exchange.trust import TrustStore

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    rounds = ap.parse_args().rounds
    home = Path(tempfile.mkdtemp())
    pair = init_keys(home, "BE")["signing"]
    trust = TrustStore(home)
    key = jws.joserfc_key(pair.key)
    pub = jws.joserfc_public(pair.cert)
    print(f"{'document':60s} {'KB':>6s} {'ours ms':>8s} {'bare ms':>8s}")
    for path in sorted((ROOT / "fixtures" / "fhir" / "ips").glob("*.json")):
        text = path.read_bytes()

        def ours() -> None:
            signed = jws.sign_bundle(jws.loads_precise(text), pair)
            jws.verify_bundle(signed, trust)

        def bare() -> None:
            payload = rfc8785.dumps(jws.loads_precise(text))
            token = jose.serialize_compact({"alg": "ES256"}, payload, key, registry=jws._registry())
            jose.deserialize_compact(token, pub, registry=jws._registry())

        print(f"{path.name[:60]:60s} {len(text) / 1024:6.1f} {_ms(ours, rounds):8.2f} {_ms(bare, rounds):8.2f}")
    cdas = []
    for p in sorted((ROOT / "fixtures" / "cda").rglob("*.xml")):
        try:
            if etree.QName(etree.parse(str(p)).getroot()).localname == "ClinicalDocument":
                cdas.append(p)
        except etree.XMLSyntaxError:
            pass
    signer = XMLSigner(signature_algorithm="ecdsa-sha256", c14n_algorithm=xmldsig.EXC_C14N)
    for path in cdas:
        data = path.read_bytes()

        def ours_x() -> None:
            xmldsig.verify_xml(xmldsig.sign_xml(data, pair), trust)

        def bare_x() -> None:
            signed = signer.sign(etree.fromstring(data), key=pair.key, cert=[pair.cert])
            XMLVerifier().verify(signed, x509_cert=pair.cert)

        rel = str(path.relative_to(ROOT / "fixtures" / "cda"))
        print(f"{rel[:60]:60s} {len(data) / 1024:6.1f} {_ms(ours_x, rounds):8.2f} {_ms(bare_x, rounds):8.2f}")


if __name__ == "__main__":
    main()
