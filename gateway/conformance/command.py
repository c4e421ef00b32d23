"""``gateway conformance [DIR...] [--json OUT] [--html OUT] [--profile P]``.

Exit status: 0 every case passed, 1 a case failed (an expectation not met,
or a crash), 2 a directory could not be read (or a report not written).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from .console import WIDTH, print_summary, progress_bar, verdict
from .report_html import write_html
from .report_json import write_json
from .running import run_suite

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_UNREADABLE", "default_root", "run_command"]

EXIT_OK, EXIT_FAILED, EXIT_UNREADABLE = 0, 1, 2


def default_root() -> Path:
    """``fixtures/`` in the working folder, else the one beside the package."""
    here = Path("fixtures")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "fixtures"


def _profile_problem(profile: str) -> str | None:
    """Why ``profile`` cannot be used, if the validator says so (a URL is
    checked per case, where the validator reports it)."""
    try:
        from ..validation import CHOICES
    except Exception:  # noqa: BLE001 - no validator: nothing to check against
        return None
    if profile in CHOICES or "/" in profile:
        return None
    return f"unknown profile (one of {', '.join(CHOICES)}, or a StructureDefinition URL)"


def run_command(dirs: Sequence[str], json_out: str | None = None, html_out: str | None = None,
                profile: str = "auto", progress: bool = True, quiet: bool = False) -> int:
    """Run the suite, print the summary, write the reports; the exit status."""
    out = Console(file=sys.stdout, highlight=False)
    if not out.is_terminal:
        out = Console(file=sys.stdout, highlight=False, width=WIDTH)
    err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    roots = list(dirs) or [str(default_root())]
    problem = _profile_problem(profile)
    if problem:
        err.print(f"gateway: --profile {profile}: {problem}", markup=False)
        return EXIT_UNREADABLE
    with progress_bar(err, enabled=progress and not quiet) as bar:
        report = run_suite(roots, profile, on_start=bar.start, on_case=bar.advance)
    status = EXIT_OK
    writers = ((json_out, write_json), (html_out, write_html))
    for target, write in writers:
        if target:
            try:
                write(report, Path(target))
            except OSError as exc:
                err.print(f"gateway: {target}: cannot write: {exc.strerror or exc}", markup=False)
                status = EXIT_UNREADABLE
    if quiet:
        out.print(verdict(report), markup=False)
    else:
        print_summary(report, out)
    for problem in report.problems:
        err.print(f"gateway: {problem}", markup=False)
    if report.problems:
        return EXIT_UNREADABLE
    if report.failed:
        return EXIT_FAILED
    return status
