"""``datatool check``: verify a dataset before training."""

from __future__ import annotations

from pathlib import Path

import typer

from datatool.cli._app import app


@app.command("check")
def check_command(
    root: Path = typer.Argument(..., help="training_validation_data tree or flat image/label set."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON report, nothing else."),
    strict: bool = typer.Option(False, "--strict", help="Warnings fail the check too."),
    line_width: int = typer.Option(3, "--line-width", min=1, help="Expected label width, px."),
    max_offset: float = typer.Option(1.0, "--max-offset", min=0, help="Alignment tolerance, px."),
    fast: bool = typer.Option(False, "--fast", help="Skip the pixel alignment search."),
    workers: int = typer.Option(0, "--workers", min=0, help="Worker processes (0: all cores)."),
) -> None:
    """Check names, pairing, labels and alignment; exit 1 when there are errors."""
    import os

    from rich.console import Console

    from datatool.check import run_check
    from datatool.checks import CheckOptions
    from datatool.cli._progress import progress_bar
    from datatool.cli._render import render_report

    options = CheckOptions(
        line_width=line_width,
        max_offset=max_offset,
        alignment=not fast,
        workers=workers or os.cpu_count() or 1,
        strict=strict,
    )
    with progress_bar("checking samples", enabled=not json_out) as progress:
        report = run_check(root, options, progress=progress)
    if json_out:
        typer.echo(report.model_dump_json(indent=2))
    else:
        render_report(report, Console())
    raise typer.Exit(0 if report.ok else 1)
