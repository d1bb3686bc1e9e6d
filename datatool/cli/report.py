"""``datatool report``: a dataset quality report to read in a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datatool.cli._app import app, examples


@app.command(
    epilog=examples(
        "datatool report data/ --out report.html",
        "datatool report data/ --out report.html --checkpoints runs/",
    )
)
def report(
    root: Annotated[Path, typer.Argument(help="training_validation_data tree or flat set.")],
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")],
    checkpoints: Annotated[
        Path | None, typer.Option(help="Folder of <name>_<epoch>.pth checkpoints to sweep.")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the report's data as JSON.")
    ] = None,
    markdown: Annotated[
        Path | None, typer.Option("--markdown", help="Also write a Markdown summary.")
    ] = None,
    samples: Annotated[
        int,
        typer.Option(
            min=0, max=100_000, help="Clean pairs pictured at random, after all flagged ones."
        ),
    ] = 12,
    seed: Annotated[
        int, typer.Option(min=0, max=2**32 - 1, help="Seed of the random choice of clean pairs.")
    ] = 0,
    max_flagged: Annotated[
        int, typer.Option(min=0, max=100_000, help="Most flagged pairs pictured.")
    ] = 100,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail the check.")] = False,
    fast: Annotated[bool, typer.Option("--fast", help="Skip the pixel alignment search.")] = False,
    workers: Annotated[int, typer.Option(min=0, help="Check processes (0: all cores).")] = 0,
    resolution: Annotated[
        int, typer.Option(help="Model sweep: side images are resized to (multiple of 16).")
    ] = 1024,
    eval_split: Annotated[
        str | None, typer.Option(help="Model sweep: split to score on (default validation).")
    ] = None,
    device: Annotated[str, typer.Option(help="Model sweep: auto, cpu, cuda or cuda:N.")] = "auto",
    scheduler: Annotated[
        str,
        typer.Option(
            help='Where the check (and sweep) run: local, dask (a LocalCluster) or a Dask '
            'scheduler address tcp://HOST:PORT; needs pip install "datatool[dask]".'
        ),
    ] = "local",
) -> None:
    """Write one self-contained HTML page: verdict, findings, composition, pictures, models.

    Exit 0 when the check passed, 1 when it failed (the report is written either way).
    """
    import os

    from datatool.checks import CheckOptions
    from datatool.cli._progress import progress_bar
    from datatool.cli._usage import parse_options, writable_output
    from datatool.report import build_report, write_report

    for path, option in ((out, "--out"), (json_path, "--json"), (markdown, "--markdown")):
        writable_output(path, option)
    models = {}
    if checkpoints is not None:
        # Only a report with checkpoints loads the sweep (and torch).
        from datatool.evaluate.reporting import build_report
        from datatool.metrics.results import SweepOptions

        models = dict(
            checkpoints=checkpoints,
            sweep_options=parse_options(SweepOptions, resolution=resolution, device=device),
            eval_split=eval_split,
        )
    options = parse_options(
        CheckOptions, alignment=not fast, workers=workers or os.cpu_count() or 1, strict=strict
    )
    with progress_bar("checking samples") as progress:
        result, figures = build_report(
            root, options, samples=samples, seed=seed, max_flagged=max_flagged,
            progress=progress, scheduler=scheduler, **models,
        )  # fmt: skip
    written = write_report(result, figures, out, json_path=json_path, markdown_path=markdown)
    s = result.check.summary
    typer.echo(
        f"{'PASS' if result.check.ok else 'FAIL'}: {s.errors} error(s), {s.warnings} warning(s); "
        f"wrote {', '.join(map(str, written))}"
    )
    if result.models is not None and result.models.warning:
        typer.echo(f"warning: {result.models.warning}", err=True)
    raise typer.Exit(0 if result.check.ok else 1)
