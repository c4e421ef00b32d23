"""``gateway`` command line.

Subcommands:

- ``convert FILE [--from hl7v2|cda|auto] [-o OUT] [--strict]``: print a FHIR R4
  transaction Bundle (a document Bundle for CDA input); findings go to
  stderr; exit 0 converted, 2 refused (one line naming the file and the
  location: HL7 field or XPath and line).
- ``ingest FILE... [--home DIR] [--db URL]``: convert and store.
- ``serve [--host H] [--port P] [--mllp-port N] [--demo]``: the HTTP API (and
  MLLP when asked), and the outbox worker delivering to peer gateways.
- ``send FILE --mllp HOST:PORT``: send a message over MLLP and print the ACK.
- ``validate FILE... [--profile auto|ips|ips-1.1.0|eps|r4|URL]``: validate FHIR JSON or
  XML against the profiles in ``profiles/``; prints the OperationOutcome (a
  ``collection`` Bundle of them for several files); exit 0 no errors, 1 errors,
  2 a file could not be read.
- ``terminology load DIR [--local] [--check]``: check and install a terminology
  package (FHIR JSON); ``terminology lookup|translate|info``.
- ``keys init``, ``trust export|add|publish|import|list|remove``, ``sign``,
  ``verify``, ``retrieve``: signed cross-border exchange
  (:mod:`gateway.exchange.commands`).
- ``export --citizen ID OUT.zip`` (the citizen's record: NDJSON per type,
  the IPS document, the audit trail) and ``export --research OUT/ --project
  NAME`` (de-identified NDJSON of consenting citizens, with a manifest).
- ``fuzz [--minutes N] [--out DIR] [--seed S] [--target NAME]``: fuzz every
  reader and route (:mod:`gateway.fuzz`); findings (inputs and tracebacks)
  go to DIR; exit 0 nothing found, 1 findings.
- ``conformance [DIR...] [--json OUT] [--html OUT] [--profile P]``: run every
  fixture (default ``fixtures/``) through detection, conversion, validation
  and its expectation; summary tables, JSON and HTML reports; exit 0 all
  passed, 1 a case failed, 2 a folder could not be read.

Heavy imports (FastAPI, SQLAlchemy, uvicorn) are deferred to the commands
that need them, so ``gateway convert`` starts fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_REFUSED = 0, 1, 2


def _add_home(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", help="folder with the database and configuration "
                                  "(env GATEWAY_HOME, default ./.gateway)")
    p.add_argument("--db", help="database URL, overrides the home's SQLite file (env GATEWAY_DB)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Cross-border health-data gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="convert one message to a FHIR R4 Bundle")
    p.add_argument("file", help="the message file ('-' for standard input)")
    p.add_argument("--from", dest="source_format", default="auto", choices=["auto", "hl7v2", "cda", "dk-fmk"])
    p.add_argument("-o", "--output", help="write the Bundle here instead of standard output")
    p.add_argument("--strict", action="store_true",
                   help="also check the message structure with hl7apy (slow)")
    p.add_argument("--outcome", help="write the OperationOutcome (all findings) as JSON here")
    p.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors")

    p = sub.add_parser("ingest", help="convert and store messages")
    p.add_argument("files", nargs="+")
    p.add_argument("--from", dest="source_format", default="auto", choices=["auto", "hl7v2", "cda", "dk-fmk"])
    _add_home(p)

    p = sub.add_parser("serve", help="run the HTTP API (and an MLLP listener)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--mllp-port", type=int, default=None, help="also listen for HL7 v2 over MLLP")
    p.add_argument("--demo", action="store_true", help="load the demo data (fixtures/) first")
    p.add_argument("--workers", type=int, default=1,
                   help="processes serving HTTP and MLLP on the same ports (default 1; one per core)")
    _add_home(p)

    p = sub.add_parser("token", help="print a short-lived development token (demo key of the home)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--system", action="store_true", help="a national system: system/*.cruds")
    who.add_argument("--patient", metavar="ID", help="a citizen: patient/*.rs on Patient/ID")
    who.add_argument("--practitioner", metavar="ID", help="a clinician: user/*.rs")
    p.add_argument("--scope", help="scopes instead of the default for the role")
    p.add_argument("--point-of-care", metavar="ID",
                   help="the caller's healthcare facility (claim extensions.ihe_iua."
                        "subject_organization_id; rate thresholds count per point of care too)")
    p.add_argument("--minutes", type=int, default=60, help="lifetime (default 60)")
    _add_home(p)

    p = sub.add_parser("send", help="send one HL7 v2 message over MLLP and print the ACK")
    p.add_argument("file")
    p.add_argument("--mllp", required=True, metavar="HOST:PORT")
    p.add_argument("--timeout", type=float, default=10.0)

    p = sub.add_parser("terminology", help="terminology content: install a package, look codes up")
    tsub = p.add_subparsers(dest="term_command", required=True)
    t = tsub.add_parser("load", help="check a folder (or .tgz FHIR package) of CodeSystem/ValueSet/"
                                     "ConceptMap JSON and install it")
    t.add_argument("dir", help="folder, .tgz package or JSON file")
    t.add_argument("--name", help="package folder name (default: package.json name-version or the folder name)")
    t.add_argument("--local", action="store_true",
                   help="install into mappings/terminology/local instead of the home's terminology folder")
    t.add_argument("--check", action="store_true", help="only check, install nothing")
    _add_home(t)
    t = tsub.add_parser("lookup", help="look a code up ($lookup)")
    t.add_argument("system")
    t.add_argument("code")
    t.add_argument("--lang", help="display language, e.g. de")
    _add_home(t)
    t = tsub.add_parser("translate", help="translate a code with the loaded ConceptMaps ($translate)")
    t.add_argument("system")
    t.add_argument("code")
    t.add_argument("--target", help="target code system")
    _add_home(t)
    t = tsub.add_parser("info", help="what is loaded")
    _add_home(t)

    p = sub.add_parser("validate", help="validate FHIR resources against profiles (IPS, EU PS)")
    p.add_argument("files", nargs="+", help="FHIR JSON or XML files ('-' for standard input)")
    p.add_argument("--profile", default="auto",
                   help="auto (meta.profile; IPS for Patient Summary documents), ips, "
                        "ips-1.1.0, eps, r4, or a StructureDefinition URL")

    p = sub.add_parser("conformance", help="run the conformance suite over fixture folders")
    p.add_argument("dirs", nargs="*", metavar="DIR", help="fixture folders (default: fixtures/)")
    p.add_argument("--json", dest="json_out", metavar="OUT.json", help="write the JSON report")
    p.add_argument("--html", dest="html_out", metavar="OUT.html", help="write the HTML report")
    p.add_argument("--profile", default="auto",
                   help="validation profile for the produced Bundles (as for validate)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-q", "--quiet", action="store_true", help="print one summary line only")

    p = sub.add_parser("export", help="a citizen's record as a ZIP, or a de-identified research export")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--citizen", metavar="ID", help="Patient id: write OUT as a ZIP (GDPR Art. 15/20)")
    what.add_argument("--research", action="store_true",
                      help="de-identified NDJSON of consenting citizens into the folder OUT")
    p.add_argument("out", metavar="OUT", help="the ZIP file (--citizen) or folder (--research)")
    p.add_argument("--project", help="research project name (pseudonyms are per project)")
    p.add_argument("--purpose", default="HRESCH", help="research purpose (v3 ActReason, default HRESCH)")
    _add_home(p)

    p = sub.add_parser("dispense", help="an eHDSI eDispensation CDA for a stored MedicationRequest")
    p.add_argument("prescription_id", metavar="PRESCRIPTION_ID", help="the MedicationRequest id")
    p.add_argument("--quantity", type=float, required=True, help="number of packages dispensed")
    p.add_argument("--substituted", action="store_true", help="another product was dispensed")
    p.add_argument("-o", "--output", help="write the CDA here (default: stdout)")
    p.add_argument("--send-to", metavar="CC", help="also sign it and queue it (durable outbox) for "
                   "that country's gateway, e.g. the prescribing country")
    _add_home(p)

    p = sub.add_parser("fuzz", help="fuzz every reader and route; findings to a folder")
    from .fuzz import add_arguments as add_fuzz_arguments

    add_fuzz_arguments(p)

    from .exchange.commands import add_parsers  # keys, trust, sign, verify, retrieve

    add_parsers(sub, _add_home)
    return parser


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def _refuse(path: str, exc: BaseException) -> int:
    from .errors import GatewayError

    where = exc.location if isinstance(exc, GatewayError) else None
    detail = exc.issues[0].message if isinstance(exc, GatewayError) and exc.issues else str(exc)
    print(f"gateway: {path}{': ' + where if where else ''}: refused: {detail}", file=sys.stderr)
    return EXIT_REFUSED


def cmd_convert(args: argparse.Namespace) -> int:
    from .errors import GatewayError
    from .fhir.jsonio import dumps_pretty
    from .pipeline import convert

    try:
        data = _read(args.file)
    except OSError as exc:
        print(f"gateway: {args.file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        conv = convert(data, args.source_format, strict=args.strict)
    except GatewayError as exc:
        return _refuse(args.file, exc)
    for issue in conv.issues:
        if args.quiet and issue.severity == "information":
            continue
        print(f"{args.file}: {issue.render()}", file=sys.stderr)
    out = conv.to_json(pretty=True)
    if args.output:
        Path(args.output).write_bytes(out)
    else:
        sys.stdout.buffer.write(out)
    if args.outcome:
        Path(args.outcome).write_bytes(dumps_pretty(conv.outcome()))
    return EXIT_OK


def cmd_ingest(args: argparse.Namespace) -> int:
    from .errors import GatewayError
    from .ingest import ingest
    from .records import Store
    from .settings import Settings

    settings = Settings.resolve(args.home, args.db)
    settings.ensure_home()
    store = Store(settings.db_url)
    status = EXIT_OK
    for path in args.files:
        try:
            done = ingest(store, _read(path), args.source_format)
        except GatewayError as exc:
            status = _refuse(path, exc)
            continue
        except OSError as exc:
            print(f"gateway: {path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            status = EXIT_REFUSED
            continue
        r = done.result
        counts = {s: sum(1 for e in r.entries if e.status == s) for s in ("created", "updated", "unchanged")}
        note = " (already stored)" if r.replay else ""
        print(f"{path}: stored{note}: {counts['created']} created, {counts['updated']} updated, "
              f"{counts['unchanged']} unchanged")
    store.close()
    return status


def load_demo(store: "object") -> int:
    """Ingest the demo data (idempotent): every HL7 v2 fixture and the CDA
    patient summaries under fixtures/."""
    from .errors import GatewayError
    from .ingest import ingest
    from .pipeline import mappings_root

    fixtures = mappings_root().parent / "fixtures"
    paths = sorted((fixtures / "hl7v2").rglob("*.hl7")) + sorted((fixtures / "cda" / "ehdsi-ps").rglob("*.xml"))
    n = 0
    for path in paths:
        try:
            ingest(store, path.read_bytes(), "auto")  # type: ignore[arg-type]
            n += 1
        except GatewayError:
            continue
    return n


def cmd_serve(args: argparse.Namespace) -> int:
    from .api import create_app
    from .records import Store
    from .settings import Settings

    from .api.limits import Limits

    settings = Settings.resolve(args.home, args.db)
    settings.ensure_home()
    limits = Limits.from_env()
    store = Store(settings.db_url, db_timeout=limits.db_timeout)
    if args.demo:
        n = load_demo(store)
        print(f"gateway: demo data loaded ({n} messages)")
    app = create_app(settings, store, limits)
    base = f"http://{args.host}:{args.port}"
    from ._compiled import compiled

    print(f"gateway: home {settings.home}; message path "
          f"{'compiled (mypyc)' if compiled() else 'pure Python'}")
    from .exchange.keys import ensure_keys  # exchange keys: a demo set when absent

    ring = ensure_keys(settings.home)
    print(f"gateway: exchange country {ring.country}, signing kid {ring['signing'].kid}")
    print(f"gateway: API {base}  (docs {base}/docs, health {base}/health, "
          f"capabilities {base}/fhir/metadata)")
    if args.demo and app.state.auth.signing_key is not None:
        from .access.tokens import mint

        token = mint(app.state.auth, scope="system/*.cruds", subject="demo-national-system",
                     minutes=12 * 60)
        print("gateway: a 12-hour national-system token for the demo (more: gateway token --help):")
        print(f"  TOKEN={token}")
        print(f'  curl -H "Authorization: Bearer $TOKEN" {base}/fhir/Patient')
        print(f'  curl -H "Authorization: Bearer $TOKEN" \'{base}/fhir/Patient/$summary?'
              "identifier=urn:oid:1.3.6.1.4.1.12559.11.10.1.3.1.1.3|123456789'")

    from .exchange.outbox import OutboxWorker  # deliveries to peers; replicas share the work

    outbox_worker = OutboxWorker(settings.home, store).start()
    # Every process serves HTTP and MLLP on the same ports (SO_REUSEPORT: the
    # kernel spreads connections), so conversion uses every core whichever
    # transport the messages come by. Port 0 is resolved here, once. MLLP
    # connections last for hours: a balancer evens them out (gateway.balance).
    http_sock = _bind(args.host, args.port)
    mllp_sock = _bind(args.host, args.mllp_port) if args.mllp_port is not None else None
    mllp_port = mllp_sock.getsockname()[1] if mllp_sock is not None else None
    balancers: list[Any] = [None] * args.workers
    if args.workers > 1 and mllp_sock is not None:
        from .balance import ConnectionBalancer

        balancers = list(ConnectionBalancer.group(args.workers))
    workers = []
    if args.workers > 1:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        for i in range(1, args.workers):
            w = ctx.Process(target=_worker_process, args=(str(settings.home), settings.db_url,
                                                          args.host, http_sock.getsockname()[1],
                                                          mllp_port, balancers[i]), daemon=True)
            w.start()
            workers.append(w)
            if balancers[i] is not None:
                balancers[i].close()  # the worker has its own copies now
        print(f"gateway: {args.workers} worker processes (HTTP and MLLP)")
    if mllp_sock is not None:
        print(f"gateway: MLLP {args.host}:{mllp_port}")

    try:
        _run_loop(_serve(app, store, http_sock, mllp_sock, balancers[0]))
    except KeyboardInterrupt:
        pass
    finally:
        outbox_worker.stop()
        for w in workers:
            w.terminate()
    return EXIT_OK


def _run_loop(main: Any) -> None:
    """Run the serving coroutine on uvloop when installed (a faster event
    loop for the HTTP and MLLP connections), else on asyncio's own."""
    try:
        import uvloop
    except ImportError:
        import asyncio

        asyncio.run(main)
    else:
        uvloop.run(main)


async def _serve(app: Any, store: Any, http_sock: Any, mllp_sock: Any,
                 balancer: Any = None) -> None:
    """HTTP (uvicorn) and, with a socket for it, MLLP in this process."""
    import asyncio

    import uvicorn

    from .api.limits import server_options
    from .ingest import bad_frame_reply, mllp_handler
    from .mllp import MLLPServer
    from .warmup import warm_up

    # Loaded before the sockets listen: until then the kernel sends this
    # port's connections to the processes that are ready (or refuses them
    # when none is), so no caller waits for loading, here or at first use.
    warm_up(app.state.settings.home)
    # What is loaded now lives as long as the process: out of the garbage
    # collector's sight, so that collections do not walk it over and over.
    # A message makes and drops many small objects, freed by reference
    # counting; collecting the young generation every 700 allocations (the
    # default) finds little: every 50,000 took 3-5 % less CPU per message.
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    # Threads for blocking work (conversion of large messages and documents,
    # other routes' storage) up to the limit of messages in progress, so
    # that every admitted message is being worked on rather than queued
    # behind a few threads; beyond the limit the answer is "busy" at once.
    # Small HL7 v2 messages are converted on the loop and wait for their
    # group commit there (ingest.ingest_async).
    from concurrent.futures import ThreadPoolExecutor

    threads = app.state.limits.max_inflight_ingest + 8
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gateway-work"))
    if balancer is not None:
        await balancer.assemble(timeout=_ASSEMBLE_SECONDS)  # the processes listen together
    for sock in (http_sock, mllp_sock):
        if sock is not None:
            sock.listen(_BACKLOG)
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", **server_options(app.state.limits)))
    mllp = None
    if mllp_sock is not None:
        mllp = MLLPServer(mllp_handler(store, app.state.ingest_slots), sock=mllp_sock,
                          on_bad_frame=bad_frame_reply, handler_workers=threads,
                          idle_timeout=app.state.limits.mllp_idle_timeout, balancer=balancer)
        await mllp.start()
    try:
        await server.serve(sockets=[http_sock])
    finally:
        if mllp is not None:
            await mllp.close()


_BACKLOG = 2048
_ASSEMBLE_SECONDS = 120.0  # the longest a worker process waits for the others to be loaded


def _bind(host: str, port: int) -> Any:
    """A TCP socket on a port shared by the worker processes (SO_REUSEPORT:
    the kernel spreads connections over the processes listening on it).
    Created in each process, not inherited, so that asyncio sets TCP_NODELAY
    on the connections it accepts. Bound, not yet listening: a process
    listens once it is ready to serve (``_serve``)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(False)
    return sock


def _worker_process(home: str, db: str, host: str, port: int, mllp_port: int | None,
                    balancer: Any = None) -> None:
    """One more worker process: its own store connection, same ports. It ends
    when the serving process ends, however that one ends."""
    import os
    import signal

    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:
            return

    from .api import create_app
    from .settings import Settings

    app = create_app(Settings.resolve(home, db))
    mllp_sock = _bind(host, mllp_port) if mllp_port is not None else None
    try:
        _run_loop(_serve(app, app.state.store, _bind(host, port), mllp_sock, balancer))
    except KeyboardInterrupt:
        pass


def cmd_token(args: argparse.Namespace) -> int:
    from .access.tokens import load_auth, mint
    from .settings import Settings

    settings = Settings.resolve(args.home, args.db)
    settings.ensure_home()
    config = load_auth(settings.home)
    if args.system:
        scope, subject, kw = args.scope or "system/*.cruds", "national-system", {}
    elif args.patient:
        scope, subject, kw = args.scope or "patient/*.rs", f"citizen-{args.patient}", {"patient": args.patient}
    else:
        scope, subject, kw = (args.scope or "user/*.rs", f"clinician-{args.practitioner}",
                              {"practitioner": args.practitioner})
    try:
        token = mint(config, scope=scope, subject=subject, minutes=args.minutes,
                     point_of_care=args.point_of_care, **kw)
    except ValueError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(token)
    return EXIT_OK


def cmd_send(args: argparse.Namespace) -> int:
    from .mllp import send_message

    host, _, port = args.mllp.rpartition(":")
    if not host or not port.isdigit():
        print(f"gateway: --mllp {args.mllp!r}: expected HOST:PORT", file=sys.stderr)
        return EXIT_REFUSED
    try:
        data = _read(args.file).lstrip(b"\xef\xbb\xbf").replace(b"\r\n", b"\r").replace(b"\n", b"\r")
        ack = send_message(host, int(port), data, timeout=args.timeout)
    except (OSError, TimeoutError) as exc:
        print(f"gateway: {args.file}: not sent: {exc}", file=sys.stderr)
        return EXIT_FAIL
    sys.stdout.write(ack.decode("utf-8", "replace").replace("\r", "\n"))
    return EXIT_OK if b"|AA|" in ack else EXIT_REFUSED


def cmd_terminology(args: argparse.Namespace) -> int:
    """``gateway terminology load|lookup|translate|info`` (see gateway.terminology)."""
    import json

    from .errors import GatewayError
    from .settings import Settings
    from .terminology import Terminology
    from .terminology.install import check_package, install_package
    from .terminology.sources import terminology_dir

    home = Settings.resolve(args.home, getattr(args, "db", None)).home
    if args.term_command == "load":
        src = Path(args.dir)
        try:
            if args.check:
                if not src.is_dir():
                    print(f"gateway: {src}: --check needs a folder", file=sys.stderr)
                    return EXIT_REFUSED
                report = check_package(src)
            else:
                dest = terminology_dir() / "local" if args.local else home / "terminology"
                report = install_package(src, dest, args.name)
        except GatewayError as exc:
            return _refuse(args.dir, exc)
        for problem in report.problems:
            print(f"{args.dir}: warning: {problem}", file=sys.stderr)
        what = ", ".join(f"{n} {k}" for k, n in sorted(report.counts.items())) or "nothing"
        where = f" into {report.target}" if report.target else " (checked, not installed)"
        print(f"{args.dir}: {what}{where}")
        return EXIT_OK if report.files else EXIT_REFUSED
    term = Terminology(home)
    if args.term_command == "lookup":
        info = term.lookup(args.system, args.code, args.lang)
        if info is None:
            print(f"gateway: {args.system}#{args.code}: not found", file=sys.stderr)
            return EXIT_FAIL
        print(json.dumps({"system": info.system, "code": info.code, "display": info.display,
                          "designations": info.designations, "parents": list(info.parents),
                          "version": info.version}, ensure_ascii=False, indent=2))
        return EXIT_OK
    if args.term_command == "translate":
        found = term.translate(args.system, args.code, target_system=args.target)
        for tr in found:
            print(f"{tr.system}#{tr.code or '-'}\t{tr.relationship}\t{tr.display or ''}\t{tr.conceptmap}")
        return EXIT_OK if found else EXIT_FAIL
    print(json.dumps(term.stats(), indent=2))
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from .fhir.jsonio import dumps_pretty
    from .fhir.outcome import operation_outcome
    from .validation import validate
    from .validation.inputs import InputError, read_resource

    status = EXIT_OK
    outcomes = []
    for path in args.files:
        try:
            resource = read_resource(_read(path))
        except OSError as exc:
            print(f"gateway: {path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            status = EXIT_REFUSED
            continue
        except InputError as exc:
            where = f" ({exc.issue.location})" if exc.issue.location else ""
            print(f"gateway: {path}: cannot read: {exc.issue.message}{where}", file=sys.stderr)
            status = EXIT_REFUSED
            continue
        issues = validate(resource, args.profile)
        if any(i.severity in ("error", "fatal") for i in issues) and status == EXIT_OK:
            status = EXIT_FAIL
        outcomes.append((path, operation_outcome(issues, ok_text="valid: no issues found")))
    if len(args.files) == 1:
        if outcomes:
            sys.stdout.buffer.write(dumps_pretty(outcomes[0][1]))
    else:
        sys.stdout.buffer.write(dumps_pretty({
            "resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"file:{p}", "resource": oo} for p, oo in outcomes]}))
    return status


def cmd_conformance(args: argparse.Namespace) -> int:
    from .conformance.command import run_command

    return run_command(args.dirs, args.json_out, args.html_out, args.profile,
                       progress=not args.no_progress, quiet=args.quiet)


def cmd_export(args: argparse.Namespace) -> int:
    from .errors import GatewayError
    from .records import Store
    from .settings import Settings

    settings = Settings.resolve(args.home, args.db)
    settings.ensure_home()
    store = Store(settings.db_url)
    try:
        if args.citizen:
            from .export import export_citizen

            manifest = export_citizen(store, args.citizen, Path(args.out))
            print(f"{args.out}: {sum(manifest['files'].values())} items in {len(manifest['files'])} files")
            return EXIT_OK
        if not args.project:
            print("gateway: export --research needs --project NAME", file=sys.stderr)
            return EXIT_REFUSED
        from .research import export_research

        manifest = export_research(store, settings.home, Path(args.out), args.project, args.purpose)
        print(f"{args.out}: {manifest['citizens']} consenting citizen(s); {manifest['files']}")
        return EXIT_OK
    except GatewayError as exc:
        print(f"gateway: export: {exc.issues[0].message}", file=sys.stderr)
        return EXIT_REFUSED
    except ValueError as exc:
        print(f"gateway: export: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        store.close()


def cmd_dispense(args: argparse.Namespace) -> int:
    from .eprescription import Dispense
    from .eprescription.dispense import dispense_document
    from .errors import GatewayError
    from .records import Store
    from .settings import Settings

    settings = Settings.resolve(args.home, args.db)
    store = Store(settings.db_url)
    try:
        xml = dispense_document(store, args.prescription_id,
                                Dispense(args.quantity, substituted=args.substituted))
        if args.send_to:  # signed, queued; `gateway serve` delivers it (exchange/outbox.py)
            from .exchange.outbox import queue_document

            settings.ensure_home()
            delivery = queue_document(settings.home, store, xml, args.send_to)
            print(f"gateway: eDispensation queued for {args.send_to.upper()} (delivery {delivery})",
                  file=sys.stderr)
    except GatewayError as exc:
        return _refuse(args.prescription_id, exc)
    finally:
        store.close()
    if args.output:
        Path(args.output).write_bytes(xml)
    elif not args.send_to:
        sys.stdout.buffer.write(xml)
    return EXIT_OK


def cmd_fuzz(args: argparse.Namespace) -> int:
    from .fuzz import main as fuzz_main

    return fuzz_main(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"convert": cmd_convert, "ingest": cmd_ingest, "serve": cmd_serve,
               "send": cmd_send, "token": cmd_token, "terminology": cmd_terminology,
               "validate": cmd_validate, "conformance": cmd_conformance,
               "export": cmd_export, "dispense": cmd_dispense, "fuzz": cmd_fuzz}.get(args.command)
    if handler is None:
        from .exchange.commands import COMMANDS

        handler = COMMANDS[args.command]
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
