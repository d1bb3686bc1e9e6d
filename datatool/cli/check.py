"""``datatool check``: verify a dataset before training."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from datatool.cli._app import app, examples


class OutputFormat(StrEnum):
    """How ``check`` prints its report."""

    text = "text"
    json = "json"
    github = "github"


@app.command(
    "check",
    epilog=examples(
        "datatool check fixtures/training_validation_data",
        "datatool check data/ --fast --format github",
    ),
)
def check_command(
    root: Path = typer.Argument(..., help="training_validation_data tree or flat image/label set."),
    output_format: OutputFormat = typer.Option(
        OutputFormat.text,
        "--format",
        help="text for people; json (one report, schemas/check-report.schema.json); "
        "github (one workflow annotation per finding, for CI logs).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Same as --format json."),
    strict: bool = typer.Option(False, "--strict", help="Warnings fail the check too."),
    line_width: int = typer.Option(3, "--line-width", min=1, help="Expected label width, px."),
    max_offset: float = typer.Option(1.0, "--max-offset", min=0, help="Alignment tolerance, px."),
    fast: bool = typer.Option(False, "--fast", help="Skip the pixel alignment search."),
    workers: int = typer.Option(0, "--workers", min=0, help="Worker processes (0: all cores)."),
    scheduler: str = typer.Option(
        "local",
        "--scheduler",
        help='Where samples are checked: local, dask (a LocalCluster of --workers processes) or '
        'a Dask scheduler address tcp://HOST:PORT; needs pip install "datatool[dask]".',
    ),
    max_pixels: int = typer.Option(
        100_000_000, "--max-pixels", min=1, help="Pixel budget per image; larger are refused."
    ),
    follow_links: bool = typer.Option(
        False, "--follow-links", help="Read through symbolic links that leave ROOT."
    ),
) -> None:
    """Check names, pairing, labels and alignment; exit 1 when there are errors."""
    import os

    from datatool.check import run_check
    from datatool.checks import CheckOptions
    from datatool.cli._progress import progress_bar
    from datatool.cli._render import github_annotations, make_console, render_report
    from datatool.cli._usage import parse_options

    options = parse_options(
        CheckOptions,
        line_width=line_width,
        max_offset=max_offset,
        alignment=not fast,
        workers=workers or os.cpu_count() or 1,
        strict=strict,
        max_pixels=max_pixels,
        follow_links=follow_links,
    )
    fmt = OutputFormat.json if json_out else output_format
    with progress_bar("checking samples", enabled=fmt is OutputFormat.text) as progress:
        report = run_check(root, options, progress=progress, scheduler=scheduler)
    if fmt is OutputFormat.json:
        typer.echo(report.model_dump_json(indent=2))
    elif fmt is OutputFormat.github:
        for line in github_annotations(report):
            typer.echo(line)
    else:
        render_report(report, make_console())
    raise typer.Exit(0 if report.ok else 1)
