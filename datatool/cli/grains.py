"""``datatool grains``: grain count, sizes, chord, intercept and ASTM G of tracings."""

from __future__ import annotations

from pathlib import Path

import typer

from datatool.cli._app import app, examples


@app.command(
    "grains",
    epilog=examples(
        "datatool grains 0101_trace.png --pixel-size 0.5um",
        "datatool grains label/*.png --json --labels-out grains/",
    ),
)
def grains_command(
    tracings: list[Path] = typer.Argument(..., help="Tracings (PNG or TIFF), either polarity."),
    pixel_size: str | None = typer.Option(
        None, "--pixel-size", help="Pixel size, e.g. 0.5um, 500nm, 0.0005mm (default: TIFF tags)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list, one object per file."),
    labels_out: Path | None = typer.Option(
        None, "--labels-out", help="Write 16-bit grain label PNGs and coloured pictures here."
    ),
) -> None:
    """Count the complete grains of tracings and measure their sizes (see README, Grains)."""
    from datatool import grains, io
    from datatool.errors import DatatoolError, UsageError

    size_um = None
    if pixel_size is not None:
        try:
            size_um = grains.parse_pixel_size(pixel_size)
        except ValueError as exc:
            raise UsageError(f"--pixel-size: {exc}") from None
    results, failed = [], []
    for path in tracings:
        try:
            stats, gmap = grains.measure_file(str(path), size_um)
        except DatatoolError as exc:
            # One bad file does not hide the others: say it, measure the rest, exit 1.
            failed.append(str(exc))
            continue
        results.append(stats)
        if labels_out is not None:
            if gmap.regions > 65535:
                raise UsageError(f"{path}: {gmap.regions} regions do not fit a 16-bit PNG")
            io.write_png(labels_out / f"{path.stem}_grains.png", gmap.labels.astype("uint16"))
            io.write_png(labels_out / f"{path.stem}_grains_colour.png", _picture(gmap))
    if as_json:
        import json

        typer.echo(json.dumps([r.model_dump(mode="json") for r in results], indent=2))
    elif results:
        _render(results, labels_out)
    for message in failed:
        typer.echo(f"datatool: error: {message}", err=True)
    raise typer.Exit(1 if failed else 0)


def _picture(gmap) -> object:  # noqa: ANN001 - GrainMap
    """Complete grains in colour, the rest dimmed, the skeleton white."""
    import numpy as np

    from datatool.grains import colour_labels

    picture = colour_labels(gmap.labels)
    partial = ~gmap.complete[gmap.labels] & (gmap.labels > 0)
    picture[partial] = picture[partial] // 4
    picture[gmap.skeleton] = 255
    return np.ascontiguousarray(picture)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _render(results: list, labels_out: Path | None) -> None:
    from datatool.cli._render import Column, make_console, render_table, say

    console = make_console()
    columns = [
        Column("tracing", key=True),
        Column("grains", right=True),
        Column("mean area", right=True, drop=4),
        Column("median area", right=True, drop=6),
        Column("sd area", right=True, drop=7),
        Column("mean diam", right=True, drop=3),
        Column("mean chord", right=True, drop=5),
        Column("intercept", right=True, drop=2),
        Column("ASTM G", right=True),
        Column("open ends", right=True, drop=1),
        Column("triple j.", right=True, drop=8),
        Column("boundary", right=True, drop=9),
    ]
    rows = [
        [
            r.file or "",
            str(r.grains),
            _fmt(r.mean_area_px),
            _fmt(r.median_area_px),
            _fmt(r.std_area_px),
            _fmt(r.mean_diameter_px),
            _fmt(r.mean_chord_px),
            _fmt(r.mean_intercept_px),
            _fmt(r.astm_g, 2),
            str(r.open_ends),
            str(r.triple_junctions),
            f"{r.boundary_fraction:.1%}",
        ]
        for r in results
    ]
    notes = ["areas in px², lengths in px; complete grains only (no image edge, >= 10 px)"]
    for r in results:
        if r.pixel_size_um is not None:
            sizes = [
                f"{name} {value:.2f} µm"
                for name, value in (
                    ("mean diameter", r.mean_diameter_um),
                    ("intercept", r.mean_intercept_um),
                )
                if value is not None
            ]
            notes.append(
                f"{r.file}: pixel size {r.pixel_size_um:g} µm from {r.pixel_size_source}"
                + (f"; {', '.join(sizes)}" if sizes else "")
            )
        else:
            notes.append(f"{r.file}: no pixel size (sizes in px only, no ASTM G)")
        notes += [f"{r.file}: {note}" for note in r.notes]
        if r.open_ends:
            shown = ", ".join(f"({x}, {y})" for x, y in r.open_end_positions[:5])
            notes.append(f"{r.file}: {r.open_ends} open end(s) at (x, y) {shown}")
    render_table(console, columns, rows, title="grains", notes=notes)
    if labels_out is not None:
        say(console, f"grain label images written to {labels_out}")
