"""The terminal side: a progress bar while the suite runs, summary tables
at the end (rich)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from .model import CaseResult, SuiteReport, Totals

__all__ = [
    "WIDTH",
    "ProgressBar",
    "failure_lines",
    "print_summary",
    "progress_bar",
    "render_summary",
    "summary_tables",
    "verdict",
]

_COLUMNS = ("cases", "converted", "refused", "crashed", "resources", "valid. errors",
            "valid. warnings", "unmapped", "passed", "failed", "time")
WIDTH = 150  # when the output is not a terminal (logs, CI)


@dataclass(slots=True)
class ProgressBar:
    """Callbacks for :func:`gateway.conformance.run_suite`."""

    progress: Progress | None
    task: TaskID | None = None

    def start(self, total: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task("conformance", total=total)

    def advance(self, result: CaseResult) -> None:
        if self.progress is not None and self.task is not None:
            mark = "" if result.passed else " [red]FAILED[/red]"
            self.progress.update(self.task, advance=1,
                                 description=f"{escape(result.case.path.name)}{mark}")


@contextmanager
def progress_bar(console: Console, enabled: bool = True) -> Iterator[ProgressBar]:
    """A progress bar on ``console`` (shown only on a terminal, and when enabled)."""
    if not enabled or not console.is_terminal:
        yield ProgressBar(None)
        return
    with Progress(TextColumn("{task.description:<40.40}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        yield ProgressBar(progress)


def _row(name: str, t: Totals) -> list[str | Text]:
    def n(v: int, style: str) -> str:
        return f"[{style}]{v}[/{style}]" if v else "0"

    return [Text(name), str(t.cases), str(t.converted), str(t.refused), n(t.crashed, "red"),
            str(t.resources), n(t.validation_errors, "yellow"), str(t.validation_warnings),
            str(t.unmapped), n(t.passed, "green"), n(t.failed, "bold red"), f"{t.seconds:.2f}s"]


def _table(title: str, first: str, groups: dict[str, Totals], total: Totals | None) -> Table:
    table = Table(title=title, title_justify="left", show_footer=False)
    table.add_column(first, no_wrap=True)
    for col in _COLUMNS:
        table.add_column(col, justify="right")
    for name, t in groups.items():
        table.add_row(*_row(name, t))
    if total is not None:
        table.add_section()
        table.add_row(*_row("all", total), style="bold")
    return table


def summary_tables(report: SuiteReport) -> list[Table]:
    """Per format, and per country or source."""
    return [_table("Per format", "format", report.by_format(), report.totals),
            _table("Per country / source", "folder", report.by_source(), None)]


def failure_lines(report: SuiteReport) -> list[Text]:
    """One line per failed case, then its reasons indented."""
    out = []
    for r in report.failed:
        line = Text("FAILED ", style="bold red")
        line.append(r.case.label)
        for reason in r.failures:
            line.append("\n    " + reason, style="red")
        out.append(line)
    return out


def verdict(report: SuiteReport) -> str:
    t = report.totals
    words = (f"{t.cases} case(s): {t.passed} passed, {t.failed} failed "
             f"({t.converted} converted, {t.refused} refused, {t.crashed} crashed); "
             f"validation {report.validation}; {report.seconds:.1f}s")
    if report.problems:
        words += f"; {len(report.problems)} folder(s) not read"
    return words


def print_summary(report: SuiteReport, console: Console) -> None:
    for table in summary_tables(report):
        console.print(table)
    for line in failure_lines(report):
        console.print(line)
    style = "bold red" if report.failed or report.problems else "bold green"
    console.print(verdict(report), style=style, highlight=False, markup=False)


def render_summary(report: SuiteReport, width: int = WIDTH) -> str:
    """The summary as plain text (for logs and test output)."""
    console = Console(width=width, color_system=None, force_terminal=False, no_color=True)
    with console.capture() as captured:
        print_summary(report, console)
    return captured.get()
