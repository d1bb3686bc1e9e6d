"""``datatool merge`` and ``datatool info``: combine datasets with provenance; describe one."""

from __future__ import annotations

from pathlib import Path

import typer

from datatool.cli._app import app, examples


@app.command(
    "merge",
    epilog=examples(
        "datatool merge Gong=OG new_batch/ --into Gong_sum --name Gong_sum",
        "datatool merge Gong_sum GG --into GG_sum --name GG_sum --split validation=0.1",
    ),
)
def merge_command(
    sources: list[str] = typer.Argument(..., help="Source folders, each optionally SRC=TAG."),
    into: Path = typer.Option(..., "--into", help="Destination folder (created atomically)."),
    name: str = typer.Option(..., "--name", help="Name of the merged set, e.g. Gong_sum."),
    layout: str = typer.Option("flat", "--layout", help="Output layout: flat or tree."),
    full: bool = typer.Option(False, "--full", help="Also run the alignment checks on sources."),
    allow_errors: bool = typer.Option(False, "--allow-errors", help="Merge sources with errors."),
    update: bool = typer.Option(False, "--update", help="Add new pairs to an existing merge."),
    split: str | None = typer.Option(None, "--split", help="Group-aware split, validation=0.1."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of the split."),
    workers: int = typer.Option(0, "--workers", min=0, help="Worker processes (0: all cores)."),
    json_out: bool = typer.Option(False, "--json", help="Print the run's counts as JSON."),
) -> None:
    """Merge trees and flat sets into one training set with a manifest; nothing is lost."""
    import json
    import os

    from datatool.cli._render import make_console
    from datatool.cli._usage import parse_options, writable_output
    from datatool.errors import UsageError
    from datatool.merge import MergeOptions, Source, merge, parse_split

    if layout not in ("flat", "tree"):
        raise UsageError(f"--layout {layout!r}: expected flat or tree")
    writable_output(into, "--into", folder=True)
    options = parse_options(
        MergeOptions,
        name=name,
        layout=layout,
        full=full,
        allow_errors=allow_errors,
        update=update,
        split=parse_split(split) if split else None,
        seed=seed,
        workers=workers or os.cpu_count() or 1,
    )
    console = make_console(stderr=json_out)
    result = merge([Source.parse(s) for s in sources], into, options, progress=None)
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "dest": str(result.dest),
                    "ok": result.ok,
                    "counts": {t: c.model_dump() for t, c in result.run_counts.items()},
                    "duplicates": [d.model_dump() for d in result.run_duplicates],
                    "conflicts": [c.model_dump() for c in result.run_conflicts],
                    "refused": [r.model_dump() for r in result.run_refused],
                    "split_shares": [s.model_dump() for s in result.split_shares],
                    "warnings": result.warnings,
                },
                indent=2,
            )
        )
    else:
        render_merge(result, console)
    raise typer.Exit(0 if result.ok else 1)


def render_merge(result, console) -> None:  # noqa: ANN001 - MergeResult, rich Console
    """Counts per source, then the duplicates and problems of this run."""
    from datatool.cli._render import Column, render_table, say

    counted = ("input", "taken", "renamed", "de-duplicated", "refused")
    columns = [Column("source", key=True)] + [Column(name, right=True) for name in counted]
    rows = [
        [tag, *(str(v) for v in (c.input, c.taken, c.renamed, c.deduplicated, c.refused))]
        for tag, c in result.run_counts.items()
    ]
    title = f"merged into {result.dest} ({result.manifest.name})"
    render_table(console, columns, rows, title=title)
    for d in result.run_duplicates[:5]:
        say(
            console,
            f"duplicate: {d.dropped.source_tag}:{d.dropped.image} = {d.kept_source_tag} "
            f"pair {d.kept_name} (stored once)",
            indent="  ",
        )
    if len(result.run_duplicates) > 5:
        say(console, f"... and {len(result.run_duplicates) - 5} more duplicates (manifest.json)")
    for r in result.run_refused:
        say(console, f"refused: {r.source_tag}:{r.name}: {r.reason}", style="red", indent="  ")
    for share in result.split_shares:
        shown = f"{share.pairs} pairs, {share.share:.0%} (asked {share.asked:.0%})"
        say(console, f"split {share.split}: {shown}")
    for warning in result.warnings:
        say(console, f"warning: {warning}", style="yellow", indent="  ")
    say(
        console,
        f"{len(result.manifest.pairs)} pairs in {result.dest}; every input pair accounted for "
        "and every file's sha256 verified against manifest.json",
    )


@app.command("info", epilog=examples("datatool info Gong_sum", "datatool info data/ --json"))
def info_command(
    root: Path = typer.Argument(..., help="A dataset: tree, flat set or merged set."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON, nothing else."),
    max_measured: int = typer.Option(
        500, "--measure", min=1, max=1_000_000, help="Pairs decoded for widths."
    ),
    max_pixels: int = typer.Option(
        100_000_000, "--max-pixels", min=1, help="Pixel budget per image; larger are skipped."
    ),
) -> None:
    """Show what a dataset is made of: pairs per source and split, sizes, widths, lineage."""
    from datatool.cli._render import make_console, render_pairs
    from datatool.info import describe

    info = describe(root, max_measured=max_measured, max_pixels=max_pixels)
    if json_out:
        typer.echo(info.model_dump_json(indent=2))
        raise typer.Exit(0 if info.manifest_matches is not False else 1)
    widths = info.line_width
    pairs = str(info.pairs)
    if info.unpaired:
        pairs += f", {info.unpaired} without its image or label (datatool check names them)"
    items = [("pairs", pairs), ("per split", _counts(info.per_split))]
    if info.per_source:
        items += [
            ("per source", _counts(info.per_source)),
            ("lineage", _counts(info.per_lineage)),
            ("de-duplicated / refused", f"{info.duplicates} / {info.refused}"),
            ("files match manifest", "yes" if info.manifest_matches else "NO"),
        ]
    items += [
        (f"sizes ({info.measured} measured)", _counts(info.sizes)),
        (
            "line width px",
            f"min {widths['min']:g}, median {widths['median']:g}, max {widths['max']:g}"
            if widths
            else "-",
        ),
    ]
    kind = f"{info.kind}{', merge ' + info.name if info.name else ''}"
    console = make_console()
    render_pairs(console, items, title=f"{root} ({kind})")
    _render_grains(console, "split", info.grains_per_split)
    if len(info.grains_per_sample) > 1:
        _render_grains(console, "sample", info.grains_per_sample)
    raise typer.Exit(0 if info.manifest_matches is not False else 1)


def _render_grains(console, group: str, summaries: dict) -> None:  # noqa: ANN001 - rich Console
    """One row of grain statistics per split or sample (see datatool.grains)."""
    from datatool.cli._render import Column, render_table

    def number(value: float | None, digits: int = 1) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    columns = [
        Column(group, key=True),
        Column("crops", right=True),
        Column("grains/crop", right=True),
        Column("fewest", right=True, drop=1),
        Column("area px", right=True, drop=3),
        Column("intercept", right=True, drop=2),
        Column("open ends", right=True, drop=4),
        Column("lines %", right=True, drop=5),
    ]
    rows = [
        [
            key,
            str(s.crops),
            number(s.grains_per_crop),
            str(s.fewest_grains),
            number(s.median_area_px, 0),
            number(s.mean_intercept_px),
            number(s.open_ends_per_crop),
            f"{100 * s.boundary_fraction:.1f}",
        ]
        for key, s in summaries.items()
    ]
    render_table(
        console, columns, rows, title=f"grains per {group} (complete grains of label crops)"
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in counts.items()) or "-"
