"""Terminology engine throughput: in-process validate-code and translate
lookups per second, next to a plain dict lookup (the floor), and the load time.

    .venv/bin/python bench/terminology.py [--n 200000]

Load time is measured twice: cold (no compiled cache: every package parsed)
and warm (the per-package pickles under the cache folder). Lookups cycle over
a mix of codes (members, non-members, not-checked) so that both the memo and
the compiled tables are exercised.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

V2 = "http://terminology.hl7.org/CodeSystem/"


def _rate(fn, items, n: int) -> float:  # type: ignore[no-untyped-def]
    k = len(items)
    t0 = time.perf_counter()
    for i in range(n):
        fn(*items[i % k])
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    args = ap.parse_args()
    from gateway.terminology import Terminology, get_terminology

    with tempfile.TemporaryDirectory() as cache:
        os.environ["GATEWAY_TERMINOLOGY_CACHE"] = cache
        t0 = time.perf_counter()
        cold = Terminology(Path(cache) / "home")
        cold_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        term = Terminology(Path(cache) / "home")
        warm_s = time.perf_counter() - t0
        stats = term.stats()
        del cold
    get_terminology.cache_clear()

    vs_cases = [
        ("http://hl7.org/fhir/ValueSet/administrative-gender", c, "http://hl7.org/fhir/administrative-gender", None)
        for c in ("male", "female", "other", "unknown", "X")
    ] + [
        ("http://hl7.org/fhir/ValueSet/observation-status", c, "http://hl7.org/fhir/observation-status", None)
        for c in ("final", "preliminary", "corrected", "bogus")
    ] + [
        ("urn:oid:1.3.6.1.4.1.12559.11.10.1.3.1.42.26", c, "http://loinc.org", None)
        for c in ("48765-2", "10160-0", "11450-4", "1234-5")
    ] + [("http://hl7.org/fhir/uv/ips/ValueSet/allergies-intolerances-uv-ips", "716186003",
          "http://snomed.info/sct", None)]
    tr_cases = [(V2 + "v2-0001", c) for c in "MFOUAN"] + [(V2 + "v2-0002", c) for c in "MSDWAU"] + \
               [(V2 + "v2-0085", c) for c in "FPCXN"] + [(V2 + "v2-0078", c) for c in ("H", "L", "N", "HH")]
    table = {(s, c): i for i, (s, c) in enumerate(tr_cases)}

    def translate(system: str, code: str) -> object:
        return term.translate(system, code)

    n = args.n
    floor = _rate(table.get, tr_cases, n)
    validate = _rate(term.validate_code, vs_cases, n)
    trans = _rate(translate, tr_cases, n)
    # cold path: a fresh memo each round, so every call compiles nothing but looks up the tables
    distinct = [(vs, f"{code}", system, f"d{i}") for i in range(2000) for vs, code, system, _ in vs_cases[:9]]
    uncached = _rate(term.validate_code, distinct, len(distinct))
    print(f"content: {stats['codeSystems']} CodeSystems, {stats['valueSets']} ValueSets, "
          f"{stats['conceptMaps']} ConceptMaps in {len(stats['units'])} packages")
    print(f"load: cold {cold_s:.3f} s (parse every package), warm {warm_s:.3f} s (compiled cache)")
    print(f"dict lookup (floor):        {floor:12,.0f} /s")
    print(f"validate_code (memoised):   {validate:12,.0f} /s")
    print(f"validate_code (first call): {uncached:12,.0f} /s")
    print(f"translate:                  {trans:12,.0f} /s")


if __name__ == "__main__":
    main()
