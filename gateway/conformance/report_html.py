"""The HTML report (``--html OUT.html``): one self-contained page people read
in a browser.

Summary first (totals per format and per country or source), then every
case, filterable by format, source, result and status, each expandable to
its failures, its OperationOutcomes (conversion or refusal, validation) and
its unmapped elements. Everything from the cases is escaped; the page loads
nothing, and its Content-Security-Policy allows only its own style and
script (by hash).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from html import escape
from pathlib import Path

from ..errors import Issue
from .model import ERRORS, CaseResult, SuiteReport, Totals

__all__ = ["report_html", "write_html"]

_SEVERITY_ORDER = {"fatal": 0, "error": 1, "warning": 2, "information": 3}

_CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--pass:#1a7f37;--fail:#cf222e;
  --warn:#9a6700;--info:#0969da;--refused:#6e7781;--crash:#82071e;}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  color:var(--fg);background:#fff;}
main{max-width:1320px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:14px;margin:16px 0 6px}
.meta{color:var(--muted);margin:0 0 14px}
.meta code{background:var(--bg);padding:1px 5px;border-radius:4px}
.verdict{display:inline-block;font-weight:600;font-size:16px;padding:6px 14px;border-radius:6px;
  color:#fff;}
.verdict.pass{background:var(--pass)}
.verdict.fail{background:var(--fail)}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0 4px}
.card{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:112px;
  background:var(--bg);}
.card b{display:block;font-size:20px}
.card span{color:var(--muted);font-size:12px}
table{border-collapse:collapse;width:100%}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--bg);font-weight:600;font-size:12px;color:var(--muted);white-space:nowrap}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;border-top:2px solid var(--line)}
tr.group{cursor:pointer}
tr.group:hover td{background:#eef4ff}
.zero{color:#afb8c1}
.bad{color:var(--fail);font-weight:600}
.warnc{color:var(--warn)}
.problems{color:var(--fail)}
.filters{display:flex;flex-wrap:wrap;gap:12px;align-items:end;padding:12px;background:var(--bg);
  border:1px solid var(--line);border-radius:8px;margin-bottom:12px;position:sticky;top:0;
  z-index:2;}
.filters label{display:flex;flex-direction:column;font-size:12px;color:var(--muted);gap:3px}
.filters select,.filters input{font:inherit;padding:4px 6px;border:1px solid var(--line);
  border-radius:6px;background:#fff;min-width:150px;}
.filters input{min-width:220px}
.filters button{font:inherit;padding:4px 10px;border:1px solid var(--line);border-radius:6px;
  background:#fff;cursor:pointer;}
.shown{margin-left:auto;color:var(--muted);font-size:13px;align-self:center}
details.case{border:1px solid var(--line);border-radius:8px;margin:6px 0;background:#fff}
details.case[open]{box-shadow:0 1px 4px rgba(31,35,40,.12)}
details.case>summary,.listhead{list-style:none;cursor:pointer;padding:7px 12px;display:grid;
  grid-template-columns:54px 84px minmax(260px,1fr) 170px 76px 90px 96px 64px;gap:10px;
  align-items:center;}
.listhead{cursor:default;padding:2px 13px;font-size:11px;font-weight:600;color:var(--muted);
  text-transform:uppercase;letter-spacing:.03em;}
details.case>summary::-webkit-details-marker{display:none}
details.case>summary:hover{background:#f3f6fa}
.path{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;
  overflow-wrap:anywhere;}
.small{font-size:12px;color:var(--muted)}
.badge{display:inline-block;font-size:11px;font-weight:700;padding:2px 7px;border-radius:10px;
  color:#fff;text-align:center;}
.badge.pass{background:var(--pass)}
.badge.fail{background:var(--fail)}
.chip{display:inline-block;font-size:11px;padding:1px 7px;border-radius:10px;
  border:1px solid var(--line);background:var(--bg);white-space:nowrap;}
.chip.converted{color:var(--pass);border-color:#a6dbb4}
.chip.refused{color:var(--refused)}
.chip.crashed,.chip.unreadable{color:#fff;background:var(--crash);border-color:var(--crash)}
.body{padding:4px 16px 14px;border-top:1px solid var(--line)}
.failures{margin:10px 0;padding:8px 12px 8px 28px;background:#ffebe9;border:1px solid #ffcecb;
  border-radius:6px;color:var(--crash);}
.facts{display:flex;flex-wrap:wrap;gap:6px;margin:10px 0}
.sev{font-weight:600;font-size:12px;white-space:nowrap}
.sev.error,.sev.fatal{color:var(--fail)}
.sev.warning{color:var(--warn)}
.sev.information{color:var(--info)}
td.loc,td.expr{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;
  overflow-wrap:anywhere;max-width:400px;}
td.loc{min-width:240px}
td.expr{min-width:190px}
td.msg{overflow-wrap:anywhere}
.issues{font-size:13px;margin-bottom:6px}
.none{color:var(--muted);font-style:italic}
footer{margin-top:30px;color:var(--muted);font-size:12px}
"""

_JS = """
(function(){
  var f=document.getElementById('f-format'),s=document.getElementById('f-source'),
      r=document.getElementById('f-result'),t=document.getElementById('f-status'),
      q=document.getElementById('f-text'),shown=document.getElementById('shown'),
      cases=Array.prototype.slice.call(document.querySelectorAll('details.case'));
  function apply(){
    var n=0,text=q.value.trim().toLowerCase();
    cases.forEach(function(c){
      var ok=(!f.value||c.dataset.format===f.value)&&(!s.value||c.dataset.source===s.value)&&
             (!r.value||c.dataset.result===r.value)&&(!t.value||c.dataset.status===t.value)&&
             (!text||c.dataset.path.toLowerCase().indexOf(text)>=0);
      c.hidden=!ok; if(ok){n++;}
    });
    shown.textContent='showing '+n+' of '+cases.length+' cases';
  }
  [f,s,r,t].forEach(function(el){el.addEventListener('change',apply);});
  q.addEventListener('input',apply);
  document.getElementById('f-reset').addEventListener('click',function(){
    f.value='';s.value='';r.value='';t.value='';q.value='';apply();});
  document.getElementById('f-open').addEventListener('click',function(){
    cases.forEach(function(c){if(!c.hidden){c.open=true;}});});
  document.getElementById('f-close').addEventListener('click',function(){
    cases.forEach(function(c){c.open=false;});});
  Array.prototype.forEach.call(document.querySelectorAll('tr.group'),function(row){
    row.addEventListener('click',function(){
      f.value=row.dataset.format||'';s.value=row.dataset.source||'';apply();
      document.getElementById('cases').scrollIntoView();});
  });
  apply();
})();
"""


def e(value: object) -> str:
    """Escaped text for an element or an attribute value."""
    return escape(str(value), quote=True)


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


def _num(value: int, bad: str = "") -> str:
    if not value:
        return '<td class="n zero">0</td>'
    return f'<td class="n{" " + bad if bad else ""}">{value}</td>'


def _totals_cells(t: Totals) -> str:
    return "".join([
        _num(t.cases), _num(t.converted), _num(t.refused), _num(t.crashed, "bad"),
        _num(t.resources), _num(t.validation_errors, "warnc"), _num(t.validation_warnings),
        _num(t.unmapped), _num(t.passed), _num(t.failed, "bad"),
        f'<td class="n">{t.seconds:.2f}s</td>'])


_TOTAL_HEAD = "".join(f'<th class="n">{h}</th>' for h in (
    "cases", "converted", "refused", "crashed", "resources", "validation errors",
    "validation warnings", "unmapped", "passed", "failed", "time"))


def _summary(report: SuiteReport) -> str:
    total = report.totals
    ok = not report.failed and not report.problems
    cards = "".join(f'<div class="card"><b>{e(v)}</b><span>{e(k)}</span></div>' for k, v in (
        ("cases", total.cases), ("converted", total.converted), ("refused", total.refused),
        ("crashed", total.crashed), ("failed", total.failed),
        ("resources", total.resources), ("validation errors", total.validation_errors),
        ("unmapped elements", total.unmapped), ("time", f"{report.seconds:.1f}s")))
    rows = "".join(
        f'<tr class="group" data-format="{e(name)}" title="show these cases"><td>{e(name)}</td>'
        f"{_totals_cells(t)}</tr>" for name, t in report.by_format().items())
    per_format = (f"<table><thead><tr><th>format</th>{_TOTAL_HEAD}</tr></thead><tbody>{rows}"
                  f'<tr class="total"><td>all</td>{_totals_cells(total)}</tr></tbody></table>')
    rows = "".join(
        f'<tr class="group" data-format="{e(key.split("/", 1)[0])}" '
        f'data-source="{e(key.split("/", 1)[1])}" title="show these cases">'
        f'<td>{e(key.split("/", 1)[0])}</td><td>{e(key.split("/", 1)[1])}</td>'
        f"{_totals_cells(t)}</tr>" for key, t in report.by_source().items())
    per_source = (f"<table><thead><tr><th>format</th><th>country / source</th>{_TOTAL_HEAD}"
                  f"</tr></thead><tbody>{rows}</tbody></table>")
    problems = ""
    if report.problems:
        items = "".join(f"<li>{e(p)}</li>" for p in report.problems)
        problems = f'<h2>Not read</h2><ul class="problems">{items}</ul>'
    verdict = (f'{total.passed} passed · {total.failed} failed' if total.cases
               else "no cases found")
    roots = ", ".join(f"<code>{e(r)}</code>" for r in report.roots)
    return (f"<header><h1>Conformance report</h1>"
            f'<p class="meta">{e(report.generated)} · {roots} · profile <code>{e(report.profile)}'
            f"</code> · validation: {e(report.validation)}</p>"
            f'<div class="verdict {"pass" if ok else "fail"}">{e(verdict)}</div>'
            f'<div class="cards">{cards}</div></header>'
            f'<section id="summary"><h2>Per format</h2>{per_format}'
            f"<h2>Per country / source</h2>{per_source}{problems}</section>")


def _options(values: Sequence[str]) -> str:
    return "".join(f'<option value="{e(v)}">{e(v)}</option>' for v in values)


def _filters(report: SuiteReport) -> str:
    formats = sorted({r.format for r in report.results})
    sources = sorted({r.case.source for r in report.results})
    statuses = sorted({r.status for r in report.results})
    return (
        '<div class="filters">'
        f'<label>format<select id="f-format"><option value="">all</option>{_options(formats)}'
        "</select></label>"
        f'<label>country / source<select id="f-source"><option value="">all</option>'
        f"{_options(sources)}</select></label>"
        '<label>result<select id="f-result"><option value="">all</option>'
        '<option value="fail">failed</option><option value="pass">passed</option></select></label>'
        f'<label>status<select id="f-status"><option value="">all</option>{_options(statuses)}'
        "</select></label>"
        '<label>file name<input id="f-text" type="search" placeholder="part of the path"></label>'
        '<button type="button" id="f-reset">reset</button>'
        '<button type="button" id="f-open">expand shown</button>'
        '<button type="button" id="f-close">collapse all</button>'
        '<span class="shown" id="shown"></span></div>')


def _issue_table(issues: list[Issue], empty: str) -> str:
    if not issues:
        return f'<p class="none">{e(empty)}</p>'
    ordered = sorted(issues, key=lambda i: _SEVERITY_ORDER.get(i.severity, 9))
    rows = "".join(
        f'<tr><td class="sev {e(i.severity)}">{e(i.severity)}</td><td>{e(i.code)}</td>'
        f'<td class="loc">{e(i.location or "")}</td><td class="expr">{e(i.expression or "")}</td>'
        f'<td class="msg">{e(i.message)}</td></tr>' for i in ordered)
    return ('<table class="issues"><thead><tr><th>severity</th><th>code</th><th>location</th>'
            f"<th>expression</th><th>diagnostics</th></tr></thead><tbody>{rows}</tbody></table>")


def _unmapped_table(issues: list[Issue]) -> str:
    if not issues:
        return '<p class="none">nothing reported as unmapped</p>'
    rows = "".join(f'<tr><td class="loc">{e(i.location or "")}</td>'
                   f'<td class="sev {e(i.severity)}">{e(i.severity)}</td>'
                   f'<td class="msg">{e(i.message)}</td></tr>' for i in issues)
    return ('<table class="issues"><thead><tr><th>location</th><th>severity</th>'
            f"<th>what</th></tr></thead><tbody>{rows}</tbody></table>")


def _counts(r: CaseResult) -> str:
    issues = r.validation
    if issues is None:
        return f'<span class="small">{"—" if r.status != "converted" else "not run"}</span>'
    errors = sum(1 for i in issues if i.severity in ERRORS)
    warnings = sum(1 for i in issues if i.severity == "warning")
    err = f'<span class="bad">{errors}E</span>' if errors else '<span class="zero">0E</span>'
    return f'{err} <span class="small">{warnings}W</span>'


def _case(r: CaseResult, index: int) -> str:
    result = "pass" if r.passed else "fail"
    failures = ""
    if r.failures:
        items = "".join(f"<li>{e(x)}</li>" for x in r.failures)
        failures = f'<ul class="failures">{items}</ul>'
    expectation = ", ".join(p.name for p in (r.case.expect_yaml, r.case.expected_json) if p) or \
        "none (passes when it converts or is refused cleanly)"
    chips = "".join(f'<span class="chip">{e(k)} {v}</span>' for k, v in r.resources.items()) or \
        '<span class="none">no resources</span>'
    outcome_title = "Refusal" if r.status == "refused" else "Conversion findings"
    validation = (_issue_table(r.validation, "valid: no issues found") if r.validation is not None
                  else f'<p class="none">{e(r.validation_note or "not run")}</p>')
    note = f" ({e(r.validation_note)})" if r.validation is not None and r.validation_note else ""
    timing = (f"{r.seconds * 1000:.0f} ms (conversion {r.convert_seconds * 1000:.0f} ms, "
              f"validation {r.validate_seconds * 1000:.0f} ms)")
    return (
        f'<details class="case {result}" id="case-{index}" data-format="{e(r.format)}" '
        f'data-source="{e(r.case.source)}" '
        f'data-result="{result}" data-status="{e(r.status)}" data-path="{e(r.case.label)}">'
        f'<summary><span class="badge {result}">{result.upper()}</span>'
        f'<span><span class="chip {e(r.status)}">{e(r.status)}</span></span>'
        f'<span class="path">{e(r.case.label)}</span>'
        f'<span class="small">{e(r.format)} · {e(r.case.source)}</span>'
        f'<span class="small">{r.resource_total} res.</span>'
        f"<span>{_counts(r)}</span>"
        f'<span class="small">{len(r.unmapped)} unmapped</span>'
        f'<span class="small">{r.seconds * 1000:.0f} ms</span></summary>'
        f'<div class="body">{failures}'
        f'<div class="facts"><span class="chip">detected: {e(r.detected or "none")}</span>'
        f'<span class="chip">expectation: {e(expectation)}</span>'
        f'<span class="chip">{e(timing)}</span></div>'
        f"<h3>Resources ({r.resource_total})</h3><div class=\"facts\">{chips}</div>"
        f"<h3>{outcome_title} — OperationOutcome ({len(r.issues)})</h3>"
        f'{_issue_table(r.issues, "no findings")}'
        f"<h3>Validation{note} — OperationOutcome "
        f"({len(r.validation) if r.validation is not None else 'not run'})</h3>{validation}"
        f"<h3>Unmapped ({len(r.unmapped)})</h3>{_unmapped_table(r.unmapped)}"
        "</div></details>")


_LIST_HEAD = ('<div class="listhead"><span>result</span><span>status</span><span>case</span>'
              "<span>format · source</span><span>resources</span><span>validation</span>"
              "<span>unmapped</span><span>time</span></div>")


def report_html(report: SuiteReport) -> str:
    """The whole page."""
    total = report.totals
    csp = (f"default-src 'none'; style-src {_csp_hash(_CSS)}; script-src {_csp_hash(_JS)}; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    failed_first = sorted(report.results, key=lambda r: r.passed)
    cases = "".join(_case(r, i) for i, r in enumerate(failed_first, 1)) or \
        '<p class="none">no cases</p>'
    title = f"Conformance: {total.cases} cases, {total.failed} failed"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{e(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body><main>"
        f"{_summary(report)}"
        f'<section id="cases"><h2>Cases</h2>{_filters(report)}{_LIST_HEAD}{cases}</section>'
        "<footer>gateway conformance · failed cases first · click a row of the summary "
        "to show its cases</footer>"
        f"</main><script>{_JS}</script></body></html>\n")


def write_html(report: SuiteReport, path: Path) -> None:
    path.write_text(report_html(report), encoding="utf-8")
