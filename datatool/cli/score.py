"""``datatool score``: BCE, top-hat, Gaussian, tolerant BCE and tolerance P/R/F1 of predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datatool.cli._app import app, examples


@app.command(
    epilog=examples(
        "datatool score predict_0417.png --truth 0417_label.png",
        "datatool score predict_*.png --truth label.png --overlay overlays/",
    )
)
def score(
    predictions: Annotated[
        list[Path], typer.Argument(help="Prediction images (8-bit PNG, value / 255).")
    ],
    truth: Annotated[Path, typer.Option("--truth", help="Label image: white lines on black.")],
    sigma: Annotated[float, typer.Option(help="Gaussian and tolerant BCE sigma, px.")] = 3.0,
    kernel_size: Annotated[
        int, typer.Option(help="Gaussian and tolerant BCE window, px (odd).")
    ] = 15,
    tophat_kernel_size: Annotated[int, typer.Option(help="Top-hat halo side, px (odd).")] = 3,
    tolerance: Annotated[float, typer.Option(help="P/R/F1 match distance, px.")] = 2.0,
    matching: Annotated[
        str, typer.Option(help="P/R/F1 matching: 'nearest' or 'one-to-one' (Berkeley).")
    ] = "nearest",
    overlay: Annotated[
        Path | None, typer.Option("--overlay", help="Write overlay PNGs into this folder.")
    ] = None,
    image: Annotated[
        Path | None,
        typer.Option("--image", help="The micrograph: overlays are drawn over it (label's size)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead.")] = False,
    invert_truth: Annotated[
        bool | None,
        typer.Option(
            "--invert-truth/--no-invert-truth",
            help="Invert the truth (black lines on white). Default: automatic when its white "
            "covers most of the image, said on stderr.",
        ),
    ] = None,
    max_pixels: Annotated[
        int,
        typer.Option(
            "--max-pixels", min=1, help="Pixel budget per image; larger files are refused."
        ),
    ] = 100_000_000,
    grains: Annotated[
        bool,
        typer.Option(
            "--grains",
            help="Also grain agreement: count error, KS test of areas, centroid F1 (2nd table).",
        ),
    ] = False,
) -> None:
    """Score predictions against a label; lower losses and higher P/R/F1 are better."""
    from datatool.cli._usage import parse_options, writable_output
    from datatool.metrics.files import score_files
    from datatool.metrics.results import ScoreParams

    params = parse_options(
        ScoreParams,
        sigma=sigma,
        kernel_size=kernel_size,
        tophat_kernel_size=tophat_kernel_size,
        tolerance=tolerance,
        matching=matching,
    )
    writable_output(overlay, "--overlay", folder=True)
    results = score_files(
        predictions,
        truth,
        params,
        overlay_dir=overlay,
        image_path=image,
        invert_truth=invert_truth,
        max_pixels=max_pixels,
        grains=grains,
    )
    for note in dict.fromkeys(n for r in results for n in r.notes):
        typer.echo(f"note: {note}", err=True)
    if as_json:
        import json

        typer.echo(json.dumps([r.model_dump(mode="json") for r in results], indent=2))
    else:
        _render_table(results)
        if grains:
            _render_grains(results)
    raise typer.Exit(0)


def _render_grains(results: list) -> None:
    from datatool.cli._render import Column, make_console, render_table

    def fmt(value: float | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    columns = [Column("prediction", key=True)]
    columns += [
        Column(name, right=True, drop=drop)
        for name, drop in (
            ("true", 0), ("predicted", 0), ("count error", 0), ("KS", 5), ("KS p", 4),
            ("centroid F1", 0), ("orphans", 3), ("disregistry", 2), ("ARE", 1),
        )
    ]  # fmt: skip
    rows = [
        [
            r.prediction,
            str(r.grains.true_grains),
            str(r.grains.predicted_grains),
            fmt(r.grains.count_error, "+.1%"),
            fmt(r.grains.ks_statistic, ".3f"),
            fmt(r.grains.ks_pvalue, ".3f"),
            fmt(r.grains.centroid_f1, ".3f"),
            fmt(r.grains.orphan_fraction, ".3f"),
            fmt(r.grains.disregistry, ".3f"),
            fmt(r.grains.adapted_rand_error, ".3f"),
        ]
        for r in results
    ]
    render_table(
        make_console(),
        columns,
        rows,
        title="grains (complete grains; prediction binarized at 0.5)",
        notes=[
            "count error = (predicted - true) / true; KS: two-sample test of grain areas "
            "(p < 0.05: sizes differ); centroid F1: one-to-one centroid matches within 0.3 x "
            "the mean nearest-neighbour distance of the true grains; disregistry: matched "
            "distance / cutoff; ARE: adapted Rand error; — : undefined"
        ],
    )


def _render_table(results: list) -> None:
    from datatool.cli._render import Column, make_console, render_table

    params = results[0].params
    # Dropped first when narrow: the lab's two tolerant losses, then BCE, then the
    # balanced tolerant BCE; F1 stays.
    columns = [
        Column("prediction", key=True),
        Column("BCE", right=True, drop=4),
        Column("top-hat", right=True, drop=6),
        Column("Gaussian", right=True, drop=5),
        Column("tolerant BCE", right=True, drop=3),
        Column("precision", right=True, drop=2),
        Column("recall", right=True, drop=1),
        Column("F1", right=True),
    ]
    rows = [
        [
            r.prediction,
            f"{r.bce:.4f}",
            f"{r.tophat:.5f}",
            f"{r.gaussian:.5f}",
            f"{r.tolerant_bce:.4f}",
            f"{r.precision:.3f}",
            f"{r.recall:.3f}",
            f"{r.f1:.3f}",
        ]
        for r in results
    ]
    render_table(
        make_console(),
        columns,
        rows,
        title=f"scores against {results[0].truth}",
        notes=[
            f"top-hat k={params.tophat_kernel_size}; Gaussian sigma={params.sigma:g} "
            f"k={params.kernel_size}; P/R/F1 within {params.tolerance:g} px ({params.matching}); "
            "BCE, top-hat, Gaussian, tolerant BCE (same sigma and k): lower is better; "
            "precision, recall, F1: higher is better"
        ],
    )
