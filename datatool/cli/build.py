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

    options = BuildOptions(
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
    size: int = typer.Option(128, "--size", min=1, help="Side of the square crops, px."),
    overlap: float = typer.Option(0.25, "--overlap", min=0, max=0.9, help="Neighbour overlap."),
    min_grains: int = typer.Option(5, "--min-grains", min=0, help="Complete grains per crop."),
    max_untraced: float = typer.Option(
        0.5, "--max-untraced", min=0, max=1, help="Largest untraced share of a crop."
    ),
    line_width: int = typer.Option(3, "--line-width", min=1, help="Label line width, px."),
    border: str = typer.Option(None, "--border", help="As for build: N or 'bottom=24,left=0'."),
    out: Path = typer.Option(None, "--out", help="Write here instead of aligned/crops.json."),
    force: bool = typer.Option(False, "--force", help="Replace an existing plan."),
) -> None:
    """Propose overlapping crop boxes that each hold enough complete grains; write crops.json."""
    from rich.console import Console

    from datatool.build import parse_border
    from datatool.plan import plan_sample

    proposal = plan_sample(
        root,
        sample,
        size,
        overlap,
        min_grains,
        max_untraced=max_untraced,
        line_width=line_width,
        border=parse_border(border) if border is not None else None,
        out=out,
        force=force,
    )
    console = Console()
    h, w = proposal.stripped_shape
    console.print(
        f"{sample}: removed {proposal.border.describe()}, {w} x {h} px; "
        f"{len(proposal.scored)} box(es) of {size} px written to {proposal.path}"
    )
    for m, s in enumerate(proposal.scored, start=1):
        console.print(f"  {m}: {list(s.box)}  {s.grains} grains, {s.untraced:.0%} untraced")
