"""``gateway keys|trust|sign|verify|retrieve``: the exchange's command line.

- ``keys init --country CC [--rsa] [--force]``: a demo key set in the home.
- ``trust export [--url URL]``: this gateway's own entry (JSON) for peers to pin.
- ``trust add FILE``: pin a peer's entry; a running server picks it up.
- ``trust publish ENTRY... --version N [-o LIST]``: sign a trust list with
  the home's ``trust-list`` key (the home acts as a trust anchor).
- ``trust import LIST --anchor CERT``: import a signed trust list.
- ``trust list``, ``trust remove CC``.
- ``sign FILE [-o OUT]``: sign a FHIR Bundle (JSON) or a CDA document (XML).
- ``verify FILE``: exit 0 valid and trusted, 1 not (with the reason).
- ``retrieve --peer CC --identifier SYSTEM|VALUE [--via soap|fhir] [--requester WHO]
  [--point-of-care ID]``.

Imports of cryptography, signxml and friends happen inside the commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_parsers", "COMMANDS"]

EXIT_OK, EXIT_FAIL, EXIT_REFUSED = 0, 1, 2


def add_parsers(sub: "argparse._SubParsersAction[argparse.ArgumentParser]",
                add_home: "object") -> None:
    def home(p: argparse.ArgumentParser) -> None:
        add_home(p)  # type: ignore[operator]

    p = sub.add_parser("keys", help="this gateway's exchange keys")
    ks = p.add_subparsers(dest="keys_command", required=True)
    k = ks.add_parser("init", help="make a demo key set (signing, tls-client, trust-list)")
    k.add_argument("--country", required=True, help="ISO 3166 alpha-2, e.g. BE")
    k.add_argument("--rsa", action="store_true", help="RSA 2048 instead of EC P-256")
    k.add_argument("--force", action="store_true", help="replace existing keys")
    home(k)

    p = sub.add_parser("trust", help="the trust list of peer gateways")
    ts = p.add_subparsers(dest="trust_command", required=True)
    t = ts.add_parser("export", help="print this gateway's own trust-list entry")
    t.add_argument("--url", help="this gateway's base URL, for peers to call")
    home(t)
    t = ts.add_parser("add", help="pin a peer's entry (JSON file)")
    t.add_argument("file")
    home(t)
    t = ts.add_parser("publish", help="sign a trust list of entries with this home's trust-list key")
    t.add_argument("entries", nargs="+")
    t.add_argument("--version", type=int, required=True)
    t.add_argument("--revoke", action="append", default=[], metavar="KID")
    t.add_argument("-o", "--output")
    home(t)
    t = ts.add_parser("import", help="import a signed trust list")
    t.add_argument("list")
    t.add_argument("--anchor", required=True, help="the trust anchor's certificate (PEM)")
    home(t)
    t = ts.add_parser("list", help="print the trusted peers")
    home(t)
    t = ts.add_parser("remove", help="forget a peer")
    t.add_argument("country")
    home(t)

    p = sub.add_parser("sign", help="sign a FHIR Bundle (JWS) or a CDA document (XML-DSig)")
    p.add_argument("file")
    p.add_argument("-o", "--output")
    home(p)
    p = sub.add_parser("verify", help="verify a signed FHIR Bundle or CDA document against the trust list")
    p.add_argument("file")
    home(p)

    p = sub.add_parser("retrieve", help="fetch a citizen's signed summary from a peer gateway")
    p.add_argument("--peer", required=True, help="the peer's country code (on the trust list)")
    p.add_argument("--identifier", required=True, metavar="SYSTEM|VALUE")
    p.add_argument("--via", choices=["soap", "fhir"], default="fhir")
    p.add_argument("--purpose", default="TREATMENT", help="purpose of use (SAML / token)")
    p.add_argument("--requester", default="gateway-operator",
                   help="who asks (SAML subject over soap; the peer counts their distinct patients)")
    p.add_argument("--point-of-care", dest="point_of_care",
                   help="the requester's healthcare facility id (SAML subject:organization-id over soap)")
    home(p)


def _home(args: argparse.Namespace) -> Path:
    from ..settings import Settings

    settings = Settings.resolve(args.home, getattr(args, "db", None))
    settings.ensure_home()
    return settings.home


def _fail(what: str, exc: BaseException, code: int = EXIT_FAIL) -> int:
    from ..errors import GatewayError

    why = exc.issues[0].message if isinstance(exc, GatewayError) and exc.issues else str(exc)
    print(f"gateway: {what}: {why}", file=sys.stderr)
    return code


def cmd_keys(args: argparse.Namespace) -> int:
    from .keys import init_keys

    try:
        ring = init_keys(_home(args), args.country, kind="RSA" if args.rsa else "EC", force=args.force)
    except (FileExistsError, ValueError) as exc:
        return _fail("keys init", exc, EXIT_REFUSED)
    for purpose, pair in ring.pairs.items():
        print(f"{ring.country} {purpose}: kid {pair.kid}")
    return EXIT_OK


def cmd_trust(args: argparse.Namespace) -> int:
    from cryptography import x509

    from ..errors import GatewayError
    from .keys import ensure_keys
    from .trust import TrustStore, own_entry, publish_list

    home = _home(args)
    store = TrustStore(home)
    cmd = args.trust_command
    try:
        if cmd == "export":
            ring = ensure_keys(home)
            if args.url:
                store.set_own_endpoint(args.url)
            print(json.dumps(own_entry(ring, args.url), indent=2))
        elif cmd == "add":
            entry = store.add(json.loads(Path(args.file).read_text()))
            print(f"{entry.country}: pinned ({len(entry.certs)} certificates)")
        elif cmd == "publish":
            ring = ensure_keys(home)
            entries = [json.loads(Path(f).read_text()) for f in args.entries]
            token = publish_list(ring["trust-list"], entries, args.version, args.revoke)
            if args.output:
                Path(args.output).write_text(token + "\n")
            else:
                print(token)
        elif cmd == "import":
            anchor = x509.load_pem_x509_certificate(Path(args.anchor).read_bytes())
            countries = store.import_list(Path(args.list).read_text(), anchor)
            print(f"imported: {', '.join(countries) or 'no entries'}")
        elif cmd == "list":
            revoked = store.revoked()
            for cc, entry in sorted(store.peers().items()):
                print(f"{cc}\t{entry.endpoints.get('base', '-')}")
                for c in entry.certs:
                    flag = " REVOKED" if c.kid in revoked else ""
                    print(f"  {c.purpose}\t{c.kid}\t{c.not_before:%Y-%m-%d}..{c.not_after:%Y-%m-%d}{flag}")
        elif cmd == "remove":
            if not store.remove(args.country):
                print(f"gateway: {args.country.upper()} is not pinned", file=sys.stderr)
                return EXIT_FAIL
            print(f"{args.country.upper()}: removed")
    except (GatewayError, ValueError, KeyError, OSError) as exc:
        return _fail(f"trust {cmd}", exc, EXIT_REFUSED)
    return EXIT_OK


def _is_xml(data: bytes) -> bool:
    return data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<"


def cmd_sign(args: argparse.Namespace) -> int:
    from ..errors import GatewayError
    from .keys import ensure_keys

    home = _home(args)
    try:
        data = Path(args.file).read_bytes()
        pair = ensure_keys(home)["signing"]
        if _is_xml(data):
            from .xmldsig import sign_xml

            out = sign_xml(data, pair)
        else:
            from ..fhir.jsonio import dumps_pretty
            from .jws import loads_precise, sign_bundle

            out = dumps_pretty(sign_bundle(loads_precise(data), pair))
    except (GatewayError, ValueError, OSError) as exc:
        return _fail(args.file, exc, EXIT_REFUSED)
    if args.output:
        Path(args.output).write_bytes(out)
    else:
        sys.stdout.buffer.write(out)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from ..errors import GatewayError
    from .trust import TrustStore

    store = TrustStore(_home(args))
    try:
        data = Path(args.file).read_bytes()
        if _is_xml(data):
            from .xmldsig import verify_xml

            who = verify_xml(data, store).signer.country
        else:
            from .jws import loads_precise, verify_bundle

            who = verify_bundle(loads_precise(data), store).country
    except (GatewayError, ValueError, OSError) as exc:
        return _fail(f"{args.file}: not valid", exc)
    print(f"{args.file}: valid signature by {who}")
    return EXIT_OK


def cmd_retrieve(args: argparse.Namespace) -> int:
    from ..errors import GatewayError
    from ..records import Store
    from ..settings import Settings
    from .retrieve import retrieve

    settings = Settings.resolve(args.home, args.db)
    settings.ensure_home()
    store = Store(settings.db_url)
    try:
        done = retrieve(settings.home, store, args.peer, args.identifier, via=args.via,
                        purpose=args.purpose, requester=args.requester,
                        point_of_care=args.point_of_care)
    except GatewayError as exc:
        return _fail(f"retrieve from {args.peer.upper()}", exc)
    finally:
        store.close()
    print(f"{args.peer.upper()}: {done.describe()}")
    return EXIT_OK


COMMANDS = {"keys": cmd_keys, "trust": cmd_trust, "sign": cmd_sign, "verify": cmd_verify,
            "retrieve": cmd_retrieve}
