"""``datatool infer``, ``datatool evaluate`` and ``datatool demo``: the U-Net evaluator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datatool.cli._app import app, examples
from datatool.cli._usage import PRECISION_HELP, Precision

_RESOLUTION = typer.Option(help="Side the images are resized to (multiple of 16).")
_DEVICE = typer.Option(help="auto (CUDA if available), cpu, cuda or cuda:N.")
_BORDER = typer.Option(
    "--remove-border/--keep-border", help="Cut the scale-bar strip off before resizing."
)
_BATCH = typer.Option(help="Images per forward pass.")
_AMP = typer.Option(help="float16 autocast on CUDA (off by default: see the README).")
_PRECISION = typer.Option(help=PRECISION_HELP)
_SCHEDULER = typer.Option(
    help='Where checkpoint x image batches run: local, dask (a LocalCluster) or a Dask '
    'scheduler address tcp://HOST:PORT; needs pip install "datatool[dask]".'
)


@app.command(epilog=examples("datatool infer runs/unet_300.pth micrograph.png --out predictions/"))
def infer(
    checkpoint: Annotated[Path, typer.Argument(help="A .pth/.pt U-Net checkpoint.")],
    images: Annotated[list[Path], typer.Argument(help="Input images (PNG or TIFF).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for predict_<name>.png.")],
    resolution: Annotated[int, _RESOLUTION] = 1024,
    device: Annotated[str, _DEVICE] = "auto",
    remove_border: Annotated[bool, _BORDER] = False,
    batch_size: Annotated[int, _BATCH] = 4,
    amp: Annotated[bool, _AMP] = False,
    precision: Annotated[Precision, _PRECISION] = Precision.auto,
) -> None:
    """Predict grain boundaries: write 8-bit predict_<name>.png (sigmoid x 255).

    Each image is scaled to --resolution keeping its aspect ratio (padded square), and its
    prediction is written at the image's own size; one line per image says what was done.
    """
    from datatool.cli._usage import parse_options, writable_output
    from datatool.metrics.results import SweepOptions

    # The sweep's option model holds the bounds of the shared options.
    parse_options(
        SweepOptions, resolution=resolution, device=device, remove_border=remove_border,
        batch_size=batch_size, amp=amp,
    )  # fmt: skip
    writable_output(out, "--out", folder=True)
    from datatool.torch.inference import infer_files

    written = infer_files(
        checkpoint, images, out, resolution=resolution, device=device,
        batch_size=batch_size, remove_border=remove_border, amp=amp,
        precision=precision.value, on_precision=_say,
    )  # fmt: skip
    from datatool.cli._render import make_console, say

    console = make_console()
    for item in written:
        say(console, f"{item.path.name}: {item.fit.describe()}", hang="  ")
    say(console, f"wrote {len(written)} prediction(s) to {out}, each at its image's own size")
    raise typer.Exit(0)


@app.command(
    epilog=examples(
        "datatool evaluate runs/ --image 0417_1.png --truth 0417_trace.png",
        "datatool evaluate runs/ --dataset data/ --overlays 50,300",
    )
)
def evaluate(
    checkpoints: Annotated[
        list[Path], typer.Argument(help="Checkpoint files and/or folders of *.pth/*.pt.")
    ],
    image: Annotated[Path | None, typer.Option(help="One input image...")] = None,
    truth: Annotated[Path | None, typer.Option(help="...and its truth label.")] = None,
    dataset: Annotated[
        Path | None, typer.Option(help="Or a dataset tree / flat set: every complete pair.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("evaluation"),
    resolution: Annotated[int, _RESOLUTION] = 1024,
    device: Annotated[str, _DEVICE] = "auto",
    remove_border: Annotated[bool, _BORDER] = False,
    sigma: Annotated[
        list[float] | None, typer.Option(help="Gaussian loss sigma, px; repeat for several.")
    ] = None,
    kernel_size: Annotated[int, typer.Option(help="Gaussian loss window, px (odd).")] = 15,
    tophat_kernel_size: Annotated[int, typer.Option(help="Top-hat halo side, px (odd).")] = 3,
    tolerance: Annotated[float, typer.Option(help="P/R/F1 match distance, px.")] = 2.0,
    overlays: Annotated[
        str | None, typer.Option(help="Epochs to draw overlays for, e.g. 50,300.")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Always run the network.")] = False,
    batch_size: Annotated[int, _BATCH] = 4,
    amp: Annotated[bool, _AMP] = False,
    precision: Annotated[Precision, _PRECISION] = Precision.auto,
    grains: Annotated[
        bool,
        typer.Option(
            "--grains", help="Also grain count error, KS, centroid F1 per checkpoint, and a plot."
        ),
    ] = False,
    scheduler: Annotated[str, _SCHEDULER] = "local",
) -> None:
    """Score every checkpoint on the images and plot loss versus epoch."""
    from datatool.errors import UsageError
    from datatool.evaluate import sweep

    if (dataset is None) == (image is None and truth is None) or (image is None) != (truth is None):
        raise UsageError("give either --image IMG --truth LABEL, or --dataset ROOT")
    pairs = sweep.pairs_from_dataset(dataset) if dataset else sweep.single_pair(image, truth)
    options = _options(
        sweep, resolution=resolution, device=device, remove_border=remove_border,
        sigmas=sigma or [3.0], kernel_size=kernel_size, tophat_kernel_size=tophat_kernel_size,
        tolerance=tolerance, batch_size=batch_size, amp=amp, use_cache=not no_cache,
        grains=grains, precision=precision.value,
    )  # fmt: skip
    epochs = _parse_epochs(overlays)
    _writable(out)
    with _Progress("evaluating") as progress:
        result, paths = sweep.evaluate(
            checkpoints, pairs, out, options, overlay_epochs=epochs,
            on_start=progress.start, on_progress=progress.advance, scheduler=scheduler,
            on_precision=_say,
        )  # fmt: skip
    _render(result, paths)
    raise typer.Exit(0)


@app.command(epilog=examples("datatool demo --out demo/", "datatool demo --out demo/ --epochs 10"))
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("demo"),
    epochs: Annotated[int, typer.Option(min=1, max=100_000, help="Training epochs.")] = 40,
    seed: Annotated[
        int, typer.Option(min=0, max=2**32 - 1, help="Seed of data, weights and shuffling.")
    ] = 0,
) -> None:
    """Sample data -> tiny U-Net training -> loss-versus-epoch plot, on the CPU."""
    from datatool.cli._render import make_console, say
    from datatool.evaluate.sweep import DEMO_CROP, DEMO_TRAIN_RESOLUTION, run_demo
    from datatool.torch.train import TrainConfig

    _writable(out)
    config = TrainConfig(
        epochs=epochs, seed=seed, save_every=max(1, epochs // 8), resolution=DEMO_TRAIN_RESOLUTION
    )
    console = make_console()
    say(
        console,
        f"training a width-{config.base_width} U-Net for {epochs} epochs on the CPU "
        f"({config.resolution}-px windows of {DEMO_CROP}-px crops), then scoring every "
        "checkpoint on the validation split",
    )
    with _DemoProgress() as progress:
        result, paths = run_demo(
            out, config, on_stage=progress.stage, on_epoch=progress.epoch,
            on_start=progress.evaluating, on_progress=progress.advance,
        )  # fmt: skip
    _render(result, paths)
    say(console, f"checkpoints in {out / 'checkpoints'}, overlays in {out / 'overlays'}")
    raise typer.Exit(0)


class _DemoProgress:
    """One rich bar per stage of the demo (data, training per epoch, evaluation), with ETA.

    Shown on a terminal only (stderr); elsewhere every method does nothing.
    """

    _NAMES = {"data": "sample data", "training": "training", "evaluating": "evaluating"}

    def __init__(self, console=None) -> None:  # noqa: ANN001 - rich Console, for tests
        self._console = console
        self._bar = None
        self._task = None

    def __enter__(self) -> _DemoProgress:
        import sys

        if self._console is None and sys.stderr.isatty():
            from rich.console import Console

            self._console = Console(stderr=True)
        if self._console is not None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description:<11}"),
                BarColumn(bar_width=None),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self._console,
                expand=True,
            )
            self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._finish()
            self._bar.__exit__(*exc)

    def _finish(self) -> None:
        if self._task is not None:
            task = self._bar.tasks[self._task]
            self._bar.update(self._task, completed=task.total or 1, total=task.total or 1)

    def stage(self, name: str, steps: int | None) -> None:
        """A stage begins: the previous one is complete; ``steps`` None: one step."""
        if self._bar is None:
            return
        self._finish()
        self._task = self._bar.add_task(self._NAMES.get(name, name), total=steps or 1, note="")

    def epoch(self, epoch: int, loss: float) -> None:
        """An epoch is done: advance the training bar, show its loss."""
        if self._bar is not None:
            self._bar.update(self._task, advance=1, note=f"loss {loss:.3f}")

    def evaluating(self, total: int) -> None:
        """The sweep begins with ``total`` checkpoint x image steps."""
        self.stage("evaluating", total)

    def advance(self, step: int) -> None:
        """``step`` sweep steps are done."""
        if self._bar is not None:
            self._bar.update(self._task, advance=step)


def _options(sweep, **values):
    from datatool.cli._usage import parse_options

    return parse_options(sweep.SweepOptions, {"sigmas": "--sigma"}, **values)


def _say(message: str) -> None:
    """One message wrapped at the terminal's width (paths whole)."""
    from datatool.cli._render import make_console, say

    say(make_console(), message)


def _writable(out: Path) -> None:
    from datatool.cli._usage import writable_output

    writable_output(out, "--out", folder=True)


def _parse_epochs(text: str | None) -> list[int]:
    from datatool.errors import UsageError

    if not text:
        return []
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--overlays {text!r}: expected epochs like 50,300") from None


class _Progress:
    """Checkpoint x image progress bar on a terminal; silent otherwise."""

    def __init__(self, description: str) -> None:
        from datatool.cli._progress import progress_bar

        self._context = progress_bar(description)
        self._done = 0
        self._total = 0
        self._update = None

    def __enter__(self) -> _Progress:
        self._update = self._context.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._context.__exit__(*exc)

    def start(self, total: int) -> None:
        self._total = total
        if self._update:
            self._update(0, total)

    def advance(self, step: int) -> None:
        self._done += step
        if self._update:
            self._update(self._done, self._total)


def _render(result, paths) -> None:
    from datatool.cli._render import Column, make_console, render_table, say

    short = {"precision": "P", "recall": "R", "f1": "F1", "tophat": "top-hat"}
    prefixes = {"gaussian_sigma": "gauss s=", "tolerant_bce_sigma": "tol-BCE s="}
    names = []
    for name in result.metric_names():
        for long, brief in prefixes.items():
            name = name.replace(long, brief)
        names.append(short.get(name, name))
    # Narrow terminals lose the checkpoint name first (the epoch says it), then the
    # image count, recall and precision, the extra losses; epoch and F1 always stay.
    drop = {"checkpoint": 20, "n": 19, "R": 18, "P": 17, "BCE": 3, "top-hat": 4, "F1": 0}
    columns = [
        Column("epoch", right=True),
        Column("checkpoint", drop=drop["checkpoint"]),
        Column("n", right=True, drop=drop["n"]),
    ]
    # The tolerant BCE at further sigmas goes before the checkpoint name; at the first it stays.
    first_tolerant = next((n for n in names if n.startswith("tol-BCE")), None)
    for i, n in enumerate(names):
        extra_tolerant = n.startswith("tol-BCE") and n != first_tolerant
        drop[n] = drop.get(n, 21 + i if extra_tolerant else 5 + i)
    columns += [Column(n, right=True, drop=drop[n]) for n in names]
    rows = [
        [
            str(row.epoch),
            Path(row.checkpoint).name,
            str(row.images),
            *(
                f"{v:.4f}"
                for k, v in row.metric_values().items()
                if k != "gaussian" and not k.startswith("grain_")
            ),
        ]
        for row in result.means
    ]
    console = make_console()
    render_table(
        console, columns, rows, title="Mean over images, by epoch (losses: lower is better)"
    )
    say(
        console,
        f"predictions: {result.cache_misses} computed, {result.cache_hits} from cache; "
        f"wrote {paths['csv']}, {paths['json']}, {paths['plot']}",
    )
    if "grains_plot" in paths:
        _render_grains(console, result, paths["grains_plot"])


def _render_grains(console, result, plot) -> None:  # noqa: ANN001 - rich Console, SweepResult
    from datatool.cli._render import Column, render_table, say

    def fmt(value: float | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    columns = [Column("epoch", right=True), Column("true", right=True)]
    columns += [Column(n, right=True) for n in ("predicted", "count error", "KS p", "centroid F1")]
    rows = [
        [
            str(row.epoch),
            str(row.grains.true_grains),
            str(row.grains.predicted_grains),
            fmt(row.grains.count_error, "+.1%"),
            fmt(row.grains.ks_pvalue, ".3f"),
            fmt(row.grains.centroid_f1, ".3f"),
        ]
        for row in result.means
        if row.grains is not None
    ]
    render_table(console, columns, rows, title="Grains, by epoch (counts summed over images)")
    say(console, f"wrote {plot}")
