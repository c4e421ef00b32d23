"""Hostile XML, JSON and ER7: DTDs and entities (billion laughs, external
entities to a file and to the network), deep nesting, gigantic attributes and
strings, wrong and mixed encodings, BOMs, NUL bytes, surrogate halves. Each
is run by ``gateway.fuzz`` in a watched worker: a clear refusal or a correct
result within a fixed time (20 s) and memory (256 MB above the start). The
command line answers exit 0 or exit 2 with one line."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gateway.errors import GatewayError
from gateway.fuzz import encode_request, run
from gateway.pipeline import convert
from tests.conftest import ROOT

CDA_ROOT = b'<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
CDA = (CDA_ROOT + b'<typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>'
       b'<id root="1.2.3" extension="%s"/><code code="60591-5" codeSystem="2.16.840.1.113883.6.1"/>'
       b'<effectiveTime value="20240101"/><recordTarget><patientRole><id root="1.2.3.4" extension="P1"/>'
       b'<patient><name><given>A</given><family>%s</family></name></patient></patientRole></recordTarget>'
       b'<component><structuredBody/></component></ClinicalDocument>')


def cda(ident: bytes = b"X", family: bytes = b"Doe", head: bytes = b"") -> bytes:
    return head + CDA % (ident, family)


LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE ClinicalDocument [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                     for i in range(1, 10)) + b"]>\n")
QUADRATIC = b'<!DOCTYPE ClinicalDocument [<!ENTITY a "' + b"a" * 100_000 + b'">]>\n'
XXE_FILE = b'<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
PARAMETER = b'<!DOCTYPE ClinicalDocument [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>\n'


def xml_cases(port: int) -> dict[str, bytes]:
    net = b'<!DOCTYPE ClinicalDocument SYSTEM "http://127.0.0.1:%d/cda.dtd">\n' % port
    net_entity = b'<!DOCTYPE ClinicalDocument [<!ENTITY n SYSTEM "http://127.0.0.1:%d/x">]>\n' % port
    deep = CDA.replace(b"<structuredBody/>", b"<structuredBody>" + b"<x>" * 100_000 + b"</x>" * 100_000
                       + b"</structuredBody>")
    return {
        "billion laughs": cda(family=b"&lol9;", head=LAUGHS),
        "quadratic blowup": cda(family=b"&a;" * 50_000, head=QUADRATIC),
        "external entity (file)": cda(family=b"&xxe;", head=XXE_FILE),
        "parameter entity": cda(head=PARAMETER),
        "external DTD (network)": cda(head=net),
        "external entity (network)": cda(family=b"&n;", head=net_entity),
        "deep nesting": deep,
        "gigantic attribute": cda(ident=b"x" * 2_000_000),
        "many attributes": CDA_ROOT.replace(b">", b" " + b" ".join(b'a%d="1"' % i for i in range(50_000)) + b">")
                           + CDA[len(CDA_ROOT):] % (b"X", b"Doe"),
        "gigantic text": cda(family=b"y" * 3_000_000),
        "utf-16 document": cda().decode().replace("<ClinicalDocument", '<?xml version="1.0" encoding="UTF-16"?>'
                                                  "<ClinicalDocument", 1).encode("utf-16"),
        "utf-32 document": b'<?xml version="1.0" encoding="UTF-32"?>' .decode().encode("utf-32") + cda(),
        "declared latin-1, bytes utf-8": b'<?xml version="1.0" encoding="ISO-8859-1"?>' + cda(family="Müller".encode()),
        "declared utf-8, bytes latin-1": b'<?xml version="1.0" encoding="UTF-8"?>' + cda(family="Müller".encode("latin-1")),
        "BOM then latin-1 declaration": b"\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>" + cda(),
        "two BOMs": b"\xef\xbb\xbf\xef\xbb\xbf" + cda(),
        "NUL byte": cda(family=b"Do\x00e"),
        "surrogate reference": cda(family=b"&#xD800;"),
        "encoded surrogate": cda(family=b"\xed\xa0\x80"),
        "invalid utf-8": cda(family=b"\xff\xfe\xc3"),
        "unclosed": cda()[:-30],
        "processing instructions": cda(head=b"<?xml-stylesheet href='http://127.0.0.1:%d/x.xsl'?>" % port),
        "xinclude": cda(family=b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd" '
                               b'parse="text"/>'),
        "many namespaces": cda().replace(b"<ClinicalDocument ", b"<ClinicalDocument "
                                         + b" ".join(b'xmlns:n%d="urn:x:%d"' % (i, i) for i in range(20_000)) + b" ", 1),
    }


JSON_CASES: dict[str, bytes] = {
    "deep arrays": b"[" * 100_000 + b"]" * 100_000,
    "deep objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "many empty arrays": b'{"resourceType":"Patient","x":[' + b"[]," * 300_000 + b"[]]}",
    "many keys": b'{"resourceType":"Patient",' + b",".join(b'"k%d":1' % i for i in range(50_000)) + b"}",
    "gigantic string": b'{"resourceType":"Patient","id":"' + b"x" * 8_000_000 + b'"}',
    "gigantic number": b'{"resourceType":"Observation","valueInteger":' + b"9" * 100_000 + b"}",
    "infinity": b'{"resourceType":"Observation","valueDecimal":1e999}',
    "lone surrogate": b'{"resourceType":"Patient","id":"\\ud800"}',
    "encoded surrogate": b'{"resourceType":"Patient","id":"\xed\xa0\x80"}',
    "NUL escape": b'{"resourceType":"Patient","name":[{"family":"Do\\u0000e"}]}',
    "raw NUL": b'{"resourceType":"Patient"}\x00',
    "BOM": b'\xef\xbb\xbf{"resourceType":"Patient"}',
    "utf-16": '{"resourceType":"Patient"}'.encode("utf-16"),
    "latin-1": '{"resourceType":"Patient","name":[{"family":"Müller"}]}'.encode("latin-1"),
    "duplicate keys": b'{"resourceType":"Patient","resourceType":"Bundle","entry":[]}',
    "not an object": b'[{"resourceType":"Patient"}]',
    "bundle of bundles": b'{"resourceType":"Bundle","entry":[' + b",".join(
        [b'{"resource":{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient"}}]}}'] * 2_000) + b"]}",
}

ER7_HEAD = b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\rPID|1||P1^^^A^MR||Doe^J\r"
ER7_CASES: dict[str, bytes] = {
    "1 MB number": ER7_HEAD + b"OBX|1|NM|1^x^LN||" + b"9" * 1_000_000 + b"|mg\r",
    "100k repetitions": ER7_HEAD + b"PID|1||" + b"X^^^A^MR~" * 100_000 + b"\r",
    "100k components": ER7_HEAD + b"OBX|1|CWE|1^x^LN||" + b"^" * 100_000 + b"\r",
    "50k segments": ER7_HEAD + b"OBX|1|NM|1^x^LN||5|mg\r" * 50_000,
    "100k escapes": ER7_HEAD + b"NTE|1||" + b"\\X41\\\\.br\\" * 100_000 + b"\r",
    "5 MB line": b"MSH|^~\\&|" + b"A" * 5_000_000,
    "many MSH": (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\r") * 20_000,
    "NUL bytes": ER7_HEAD.replace(b"Doe", b"D\x00oe"),
    "NUL separator": b"MSH\x00^~\\&\x00A\x00B\x00C\x00D\x002024\x00\x00ADT^A01\x001\x00P\x002.5\r",
    "UTF-16 with BOM, odd length": b"\xff\xfe" + ER7_HEAD.decode().encode("utf-16-le") + b"x",
    "UTF-16 lone surrogate": b"\xff\xfe" + ER7_HEAD.decode().encode("utf-16-le") + b"\x00\xd8",
    "declared UTF-16, bytes UTF-8": b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5||||||UNICODE UTF-16\r",
    "declared ASCII, bytes latin-1": b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5||||||ASCII\rPID|1||1^^^A||M\xfcller\r",
    "encoded surrogate": ER7_HEAD.replace(b"Doe", b"\xed\xa0\x80"),
    "two BOMs": b"\xef\xbb\xbf\xef\xbb\xbf" + ER7_HEAD,
    "delimiters from latin-1": b"MSH|^\xef\xbb\xbf|||||||A|||||||||8859/1",
    "date extremes": ER7_HEAD + b"OBX|1|TS|1^x^LN||00010101000000+1400|||||F|||99991231235959-1400\r",
    "numbers": ER7_HEAD + b"OBX|1|NM|1^x^LN||1e999\rOBX|2|NM|1^x^LN||-99999999999999999999999\r"
                          b"OBX|3|SN|1^x^LN||>^1e400\r",
}


class _Listener:
    """A loopback socket that records whether anything connected to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture(scope="module")
def listener() -> _Listener:
    running = _Listener()
    yield running  # type: ignore[misc]
    running.close()


def _assert_clean(report: object) -> None:
    findings = report.unique()  # type: ignore[attr-defined]
    assert not findings, "\n\n".join(f"{f.target} {f.kind} {f.signature}\n{f.detail[-1500:]}" for f in findings)


def test_hostile_xml_is_refused_or_converted_in_bounded_time_and_memory(listener: _Listener) -> None:
    cases = xml_cases(listener.port)
    report = run(corpus={"cda": list(cases.values())}, case_timeout=20, memory_mb=256, reduce_seconds=0)
    _assert_clean(report)
    assert listener.connections == 0, "an XML reader fetched something over the network"


def test_no_xml_reader_reads_local_files() -> None:
    for name, body in (("file", cda(family=b"&xxe;", head=XXE_FILE)), ("parameter", cda(head=PARAMETER))):
        try:
            conv = convert(body)
        except GatewayError:
            continue
        assert b"root:" not in conv.to_json(), name


def test_hostile_er7_is_refused_or_converted_in_bounded_time_and_memory() -> None:
    report = run(corpus={"hl7v2": list(ER7_CASES.values()),
                         "mllp-server": [b"\x0b" + c.replace(b"\x0b", b"").replace(b"\x1c", b"") + b"\x1c\r"
                                         for c in ER7_CASES.values()]},
                 case_timeout=20, memory_mb=256, reduce_seconds=0)
    _assert_clean(report)


def test_hostile_bodies_over_http_get_4xx_outcomes_in_bounded_time_and_memory() -> None:
    system = {"Authorization": "system"}
    requests = []
    for body in JSON_CASES.values():
        requests.append(encode_request("POST", "/fhir/$validate", {**system, "Content-Type": "application/fhir+json"},
                                       body))
    for body in list(xml_cases(9).values())[:12]:
        requests.append(encode_request("POST", "/ingest", {**system, "Content-Type": "application/hl7-cda+xml"},
                                       body))
    for body in list(ER7_CASES.values()):
        requests.append(encode_request("POST", "/ingest", {**system, "Content-Type": "x-application/hl7-v2+er7"},
                                       body))
    report = run(corpus={"http": requests}, case_timeout=30, memory_mb=384, reduce_seconds=0)
    _assert_clean(report)


def _cli(path: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "convert", str(path)], cwd=ROOT, check=False,
                          capture_output=True, timeout=120)


@pytest.mark.parametrize("name", ["billion laughs", "NUL bytes", "UTF-16 with BOM, odd length", "empty",
                                  "binary junk", "1 MB number"])
def test_the_command_line_exits_0_or_2_with_one_line(name: str, tmp_path: Path) -> None:
    special = {"billion laughs": cda(family=b"&lol9;", head=LAUGHS), "empty": b"",
               "binary junk": bytes(range(256)) * 40}
    body = special[name] if name in special else ER7_CASES[name]
    path = tmp_path / "input"
    path.write_bytes(body)
    r = _cli(path)
    assert r.returncode in (0, 2), r.stderr[-2000:]
    if r.returncode == 2:
        lines = r.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"gateway: {path}"), r.stderr
