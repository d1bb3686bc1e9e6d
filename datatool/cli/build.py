"""``datatool build`` and ``datatool plan``: cut crop pairs from originals, propose crop plans."""

from __future__ import annotations

from pathlib import Path

import typer

from datatool.cli._app import app, examples


def _render_build(result, console, limit: int = 10, otsu: bool = True) -> None:
    """Per sample what was removed and built, then files kept, stale and the manifest."""
    from datatool.cli._render import print_lines, say

    how = "Otsu's threshold" if otsu else "--threshold"
    for s in result.samples:
        line = (
            f"{s.id} ({s.split}): removed {s.border.describe()} ({s.border_from}), "
            f"{s.fields_of_view} field(s) of view x {s.boxes} box(es), tracing split into "
            f"lines and background at grey level {s.threshold:g} ({how})"
        )
        say(console, line, hang="  ")
        if s.border_note:
            say(console, f"note: {s.border_note}", style="yellow", indent="    ")
    say(
        console,
        f"{len(result.written)} file(s) written, {len(result.unchanged)} unchanged, "
        f"{len(result.kept)} kept (edited), {len(result.replaced)} edited file(s) replaced",
    )
    for title, paths in (
        ("kept edited crop(s), not overwritten (use --force to replace)", result.kept),
        ("replaced edited crop(s) (--force)", result.replaced),
        ("crop(s) not in the plan, left in place", result.stale),
        ("leftover temporary file(s) of an interrupted build removed", result.removed_temp),
    ):
        if paths:
            say(console, f"{len(paths)} {title}:", style="yellow")
            print_lines(console, [f"  {rel}" for rel in paths[:limit]])
            if len(paths) > limit:
                say(console, f"  ... and {len(paths) - limit} more")
    state = "written" if result.manifest_written else "unchanged"
    say(console, f"manifest {result.manifest} {state}")


@app.command(
    "build",
    epilog=examples(
        "datatool build data/",
        "datatool build data/ --sample 0417 --line-width 3",
    ),
)
def build_command(
    root: Path = typer.Argument(..., help="training_validation_data tree with originals."),
    sample: list[str] = typer.Option(None, "--sample", help="Build only this sample (repeatable)."),
    plan: Path = typer.Option(None, "--plan", help="Crop plan to use instead of crops.json."),
    line_width: int = typer.Option(3, "--line-width", min=1, help="Label line width, px."),
    threshold: float = typer.Option(None, "--threshold", min=0, help="Tracing threshold."),
    border: str = typer.Option(
        None, "--border", help="Strip to remove: N rows at the bottom, or 'bottom=24,left=0'."
    ),
    resolution: int = typer.Option(None, "--resolution", min=1, help="Resize crops to N x N."),
    force: bool = typer.Option(False, "--force", help="Overwrite edited crops."),
    no_check: bool = typer.Option(False, "--no-check", help="Skip the check after building."),
    max_pixels: int = typer.Option(
        100_000_000, "--max-pixels", min=1, help="Pixel budget per image; larger are refused."
    ),
    follow_links: bool = typer.Option(
        False, "--follow-links", help="Read through links leaving ROOT (never written through)."
    ),
) -> None:
    """Cut every field of view and its tracing into aligned crop pairs, then check them."""
    import os

    from rich.console import Console

    from datatool.build import BuildOptions, build, parse_border
    from datatool.check import run_check
    from datatool.checks import CheckOptions
    from datatool.cli._render import render_report
    from datatool.cli._usage import parse_options

    options = parse_options(
        BuildOptions,
        line_width=line_width,
        threshold=threshold,
        border=parse_border(border) if border is not None else None,
        resolution=resolution,
        force=force,
    )
    console = Console()
    result = build(
        root,
        options,
        samples=sample or None,
        plan_override=plan,
        max_pixels=max_pixels,
        follow_links=follow_links,
    )
    _render_build(result, console, otsu=threshold is None)
    if no_check:
        raise typer.Exit(0)
    check_options = CheckOptions(
        line_width=line_width,
        workers=os.cpu_count() or 1,
        max_pixels=max_pixels,
        follow_links=follow_links,
    )
    report = run_check(root, check_options)
    render_report(report, console)
    raise typer.Exit(0 if report.ok else 1)


@app.command(
    "plan",
    epilog=examples(
        "datatool plan data/ --sample 0417 --preview plan.png",
        "datatool plan data/ --sample 0417 --size 256 --out plan.json",
    ),
)
def plan_command(
    root: Path = typer.Argument(..., help="training_validation_data tree."),
    sample: str = typer.Option(..., "--sample", help="Sample id to plan."),
    size: str = typer.Option(
        "auto",
        "--size",
        help="Side of the square crops, px, or auto: from the tracing's mean intercept, a "
        "multiple of 32 grown until the boxes cover 80% of the image.",
    ),
    overlap: float = typer.Option(0.25, "--overlap", min=0, max=0.75, help="Neighbour overlap."),
    criterion: str = typer.Option(
        "auto",
        "--criterion",
        help="How a box is judged: grains (complete grains), crossings (test-line crossings, "
        "for lamellar or open-ended tracings) or auto (from the open ends).",
    ),
    min_grains: int = typer.Option(
        5, "--min-grains", min=0, max=10_000, help="Complete grains per crop."
    ),
    min_crossings: int = typer.Option(
        40,
        "--min-crossings",
        min=0,
        max=100_000,
        help="Test-line crossings per crop (crossings criterion).",
    ),
    max_untraced: float = typer.Option(
        0.5, "--max-untraced", min=0, max=1, help="Largest untraced share of a crop."
    ),
    line_width: int = typer.Option(3, "--line-width", min=1, max=64, help="Label line width, px."),
    border: str = typer.Option(None, "--border", help="As for build: N or 'bottom=24,left=0'."),
    out: Path = typer.Option(None, "--out", help="Write here instead of aligned/crops.json."),
    preview: Path = typer.Option(
        None, "--preview", help="Also draw the micrograph, tracing and numbered boxes (PNG)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing plan."),
) -> None:
    """Propose overlapping crop boxes that cover the micrograph; write crops.json."""
    from datatool.build import parse_border
    from datatool.cli._render import Column, make_console, render_table, say
    from datatool.cli._usage import writable_output
    from datatool.errors import UsageError
    from datatool.plan import CRITERIA, plan_sample

    if size != "auto" and not (size.isdigit() and 32 <= int(size) <= 8192):
        raise UsageError(f"--size {size!r}: expected auto or a whole number of px, 32 to 8192")
    writable_output(out, "--out")
    writable_output(preview, "--preview")
    if preview is not None and preview.suffix.lower() != ".png":
        raise UsageError(f"--preview {preview}: the preview is a PNG picture; name it *.png")
    if criterion not in CRITERIA:
        raise UsageError(f"--criterion {criterion!r}: expected one of {', '.join(CRITERIA)}")
    proposal = plan_sample(
        root,
        sample,
        None if size == "auto" else int(size),
        overlap,
        min_grains,
        max_untraced=max_untraced,
        line_width=line_width,
        border=parse_border(border) if border is not None else None,
        out=out,
        force=force,
        criterion=criterion,
        min_crossings=min_crossings,
        preview=preview,
    )
    console = make_console()
    h, w = proposal.stripped_shape
    side = proposal.plan.crop_size
    say(console, f"{sample}: removed {proposal.border.describe()}, {w} x {h} px", hang="  ")
    say(console, f"size {side} px: {proposal.size_reason}", hang="  ")
    say(console, f"criterion {proposal.criterion}: {proposal.criterion_reason}", hang="  ")
    crossings = proposal.criterion == "crossings"
    columns = [Column("#", right=True), Column("left, top, width, height")]
    columns += [Column("crossings" if crossings else "grains", right=True)]
    columns += [Column("far from lines" if crossings else "untraced", right=True)]
    rows = [
        [str(m), ", ".join(map(str, s.box))]
        + [str(s.crossings if crossings else s.grains), f"{s.untraced:.0%}"]
        for m, s in enumerate(proposal.scored, start=1)
    ]
    render_table(console, columns, rows)
    say(
        console,
        f"{len(proposal.scored)} box(es) of {side} px cover {proposal.coverage:.0%} of the "
        f"image; written to {proposal.path}"
        + (f"; preview {proposal.preview}" if proposal.preview else ""),
    )
