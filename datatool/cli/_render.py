"""Rich rendering of a check report (the one place that formats findings for people)."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from datatool.findings import Report, Severity

_STYLE = {Severity.error: "bold red", Severity.warning: "yellow", Severity.info: "dim"}


def render_report(report: Report, console: Console, max_rows: int = 40) -> None:
    """Print the verdict, counts per check and the worst findings."""
    s = report.summary
    verdict = "[bold green]PASS[/]" if report.ok else "[bold red]FAIL[/]"
    console.print(
        f"{verdict}  {report.root}: {s.pairs} pairs, {s.files} files, "
        f"[red]{s.errors} error(s)[/], [yellow]{s.warnings} warning(s)[/], {s.infos} info, "
        f"{s.ignored} ignored system file(s) · {s.seconds:.1f} s"
        + (f" · {s.pairs_per_second:.0f} pairs/s" if s.pairs_per_second else "")
    )
    if not report.findings:
        return
    counts = Table(title="Findings per check", show_lines=False)
    for column in ("severity", "code", "count"):
        counts.add_column(column, justify="right" if column == "count" else "left")
    per_code = Counter((f.severity, f.code) for f in report.findings)
    for (severity, code), n in sorted(per_code.items(), key=lambda kv: (kv[0][0].rank, kv[0][1])):
        counts.add_row(f"[{_STYLE[severity]}]{severity.value}[/]", code, str(n))
    console.print(counts)
    table = Table(title="Findings (worst first)")
    table.add_column("severity")
    table.add_column("code")
    table.add_column("file", overflow="fold")
    table.add_column("message", overflow="fold")
    for f in report.findings[:max_rows]:
        table.add_row(f"[{_STYLE[f.severity]}]{f.severity.value}[/]", f.code, f.path, f.message)
    console.print(table)
    if len(report.findings) > max_rows:
        console.print(f"... and {len(report.findings) - max_rows} more (use --json for all)")
