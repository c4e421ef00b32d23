"""Keys per purpose, kids, and the trust list (pin, publish/import, refusals)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.exchange.errors import Untrusted
from gateway.exchange.keys import generate, init_keys, kid_of, load_keys
from gateway.exchange.trust import TrustStore, own_entry, publish_list


def test_keys_per_purpose_and_kid(ring_a):
    assert set(ring_a.pairs) == {"signing", "tls-client", "trust-list"}
    pair = ring_a["signing"]
    assert pair.jws_alg == "ES256" and pair.kid == kid_of(pair.cert) and len(pair.kid) == 43
    assert len({p.kid for p in ring_a.pairs.values()}) == 3
    rsa = generate("signing", "BE", kind="RSA")
    assert rsa.jws_alg == "PS256"
    with pytest.raises(ValueError):
        generate("signing", "BE", kind="RSA1024")


def test_homes_do_not_trust_each_other(home_a, home_b, ring_a):
    b = TrustStore(home_b)
    assert b.certificate(load_keys(home_b)["signing"].kid, "signing").country == "PT"  # itself
    with pytest.raises(Untrusted, match="not on the trust list"):
        b.certificate(ring_a["signing"].kid, "signing")


def test_pin_purpose_expiry_revocation(trust_b, ring_a, home_b):
    assert trust_b.certificate(ring_a["signing"].kid, "signing").country == "BE"
    with pytest.raises(Untrusted, match="trusted for 'tls-client'"):
        trust_b.certificate(ring_a["tls-client"].kid, "signing")
    with pytest.raises(Untrusted, match="not valid now"):
        trust_b.certificate(ring_a["signing"].kid, "signing",
                            at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=800))
    assert trust_b.remove("BE")
    with pytest.raises(Untrusted):
        trust_b.certificate(ring_a["signing"].kid, "signing")


def test_published_list_import_and_rollback(tmp_path, ring_a, home_b):
    anchor_home = tmp_path / "anchor"
    anchor = init_keys(anchor_home, "EU")["trust-list"]
    entry = own_entry(ring_a, "http://127.0.0.1:9")
    token = publish_list(anchor, [entry], 1, revoked=[])
    store = TrustStore(home_b)
    assert store.import_list(token, anchor.cert) == ["BE"]
    assert store.certificate(ring_a["signing"].kid, "signing").country == "BE"
    with pytest.raises(Untrusted, match="not newer"):
        store.import_list(token, anchor.cert)
    other = init_keys(tmp_path / "other", "XX")["trust-list"]
    with pytest.raises(Untrusted):
        store.import_list(publish_list(other, [entry], 5), anchor.cert)
    # version 2 revokes A's signing cert
    store.import_list(publish_list(anchor, [entry], 2, revoked=[ring_a["signing"].kid]), anchor.cert)
    with pytest.raises(Untrusted, match="revoked"):
        store.certificate(ring_a["signing"].kid, "signing")


def test_expired_certificate_refused(tmp_path, home_b):
    old = generate("signing", "FR", days=1,
                   not_before=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10))
    from gateway.exchange.keys import cert_to_b64

    store = TrustStore(home_b)
    store.add({"country": "FR", "certificates": [{"purpose": "signing", "x5c": cert_to_b64(old.cert)}]})
    with pytest.raises(Untrusted, match="not valid now"):
        store.certificate(old.kid, "signing")


def test_kid_must_match_certificate(home_b, ring_a):
    entry = own_entry(ring_a)
    entry["certificates"][0]["kid"] = "A" * 43
    with pytest.raises(ValueError, match="does not match"):
        TrustStore(home_b).add(entry)


def _gw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                          text=True, timeout=60)


def test_cli_keys_trust(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _gw("keys", "init", "--country", "BE", "--home", str(a)).returncode == 0
    assert _gw("keys", "init", "--country", "BE", "--home", str(a)).returncode == 2  # exists
    out = _gw("trust", "export", "--url", "http://127.0.0.1:8081", "--home", str(a))
    assert out.returncode == 0, out.stderr
    entry = tmp_path / "be.json"
    entry.write_text(out.stdout)
    assert json.loads(out.stdout)["endpoints"]["base"] == "http://127.0.0.1:8081"
    assert _gw("trust", "add", str(entry), "--home", str(b)).returncode == 0
    listed = _gw("trust", "list", "--home", str(b)).stdout
    assert "BE\thttp://127.0.0.1:8081" in listed and "signing" in listed
    # a published list, imported with the anchor's certificate
    lst = tmp_path / "list.jws"
    assert _gw("trust", "publish", str(entry), "--version", "1", "-o", str(lst), "--home", str(a)).returncode == 0
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(load_keys(a)["trust-list"].cert.public_bytes(serialization.Encoding.PEM))
    c = tmp_path / "c"
    done = _gw("trust", "import", str(lst), "--anchor", str(anchor), "--home", str(c))
    assert done.returncode == 0 and "BE" in done.stdout, done.stderr
    assert _gw("trust", "remove", "BE", "--home", str(b)).returncode == 0
    assert _gw("trust", "remove", "BE", "--home", str(b)).returncode == 1


def test_running_store_reloads_on_change(home_b, ring_a):
    store = TrustStore(home_b)
    with pytest.raises(Untrusted):
        store.certificate(ring_a["signing"].kid, "signing")
    other = TrustStore(home_b)  # e.g. the CLI, in another process
    other.add(own_entry(ring_a))
    assert store.certificate(ring_a["signing"].kid, "signing").country == "BE"
    assert isinstance(Path, type)


def test_cli_signs_a_bundle_with_its_decimals_as_written_and_verifies_it(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _gw("keys", "init", "--country", "BE", "--home", str(a)).returncode == 0
    entry = tmp_path / "be.json"
    entry.write_text(_gw("trust", "export", "--url", "http://127.0.0.1:8081", "--home", str(a)).stdout)
    assert _gw("trust", "add", str(entry), "--home", str(b)).returncode == 0
    ips = Path(__file__).resolve().parents[2] / "fixtures" / "fhir" / "ips" / "Bundle-IPS-examples-Bundle-01.json"
    text = ips.read_text()
    assert '"value":7.5,' in text
    source = tmp_path / "in.json"
    source.write_text(text.replace('"value":7.5,', '"value":7.50,', 1))  # a trailing zero, as a sender may write it
    signed = tmp_path / "signed.json"
    done = _gw("sign", str(source), "-o", str(signed), "--home", str(a))
    assert done.returncode == 0, done.stderr
    assert '"value": 7.50,' in signed.read_text()  # written as it came, not 7.5
    checked = _gw("verify", str(signed), "--home", str(b))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rewritten = tmp_path / "rewritten.json"  # the same number written another way
    rewritten.write_text(signed.read_text().replace('"value": 7.50,', '"value": 7.5,', 1))
    assert _gw("verify", str(rewritten), "--home", str(b)).returncode == 1
