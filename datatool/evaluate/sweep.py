"""The loss-versus-epoch sweep: every checkpoint of a run on every image, scored.

This is the central experiment of the lab's report (section 2.1): run each
saved checkpoint of a training run on the same images, score each prediction
against its truth with BCE, the top-hat and Gaussian losses (and tolerance
precision/recall/F1), and plot loss versus epoch to see when training
converged.

Unlike the lab's loop, which reloads the model and runs each image twice,
each checkpoint is loaded once and runs every image in batches without
autograd; images and labels are read and resized once for the whole sweep;
and predictions are cached on disk, keyed by checkpoint hash, image hash and
preprocessing, so re-scoring with other loss parameters does not run the
network again.
"""

from __future__ import annotations

import csv
import functools
import io as _io
import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datatool.errors import DatatoolError, UsageError
from datatool.io import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    figure_pixels,
    read_image,
    sha256_file,
    write_png,
)
from datatool.metrics.results import (
    MetricRow,
    SweepOptions,
    SweepResult,
    mean_scores,
    score,
)
from datatool.schedule import Scheduler, chunks, prefetch
from datatool.torch.checkpoints import Checkpoint, find_checkpoints, load_unet
from datatool.torch.inference import (
    check_resolution,
    predict,
    resize_image,
    select_device,
    strip_scale_bar,
)

if TYPE_CHECKING:
    from datatool.metrics.grains import TruthGrains

#: Version of the cached prediction format and preprocessing; bump to invalidate old caches.
CACHE_VERSION = 1
METRICS_CSV = "metrics.csv"
METRICS_JSON = "metrics.json"
PLOT_FILE = "loss_vs_epoch.png"


@dataclass(frozen=True)
class EvalPair:
    """An image and its truth label to evaluate on."""

    name: str
    image: Path
    truth: Path
    split: str | None = None


def pairs_from_dataset(root: str | os.PathLike[str]) -> list[EvalPair]:
    """Every complete (image, label) pair of a dataset tree or flat set.

    Raises
    ------
    DatatoolError
        The folder holds no complete pair, or two pairs share a name.
    """
    from datatool import layout

    scanned = layout.scan(root)
    pairs = [
        EvalPair(p.name, scanned.path(p.image), scanned.path(p.label), p.split)
        for p in scanned.pairs
        if p.image and p.label
    ]
    if not pairs:
        raise DatatoolError(layout.diagnose_empty(root))
    return _unique(pairs)


def _unique(pairs: list[EvalPair]) -> list[EvalPair]:
    seen: dict[str, Path] = {}
    for pair in pairs:
        if pair.name in seen:
            raise UsageError(
                f"{pair.image}: name {pair.name!r} also used by {seen[pair.name]}; rename one"
            )
        seen[pair.name] = pair.image
    return pairs


def single_pair(image: str | os.PathLike[str], truth: str | os.PathLike[str]) -> list[EvalPair]:
    """The one (image, truth) pair given on the command line."""
    for path in (image, truth):
        if not Path(path).is_file():
            raise UsageError(f"{path}: no such file")
    return [EvalPair(Path(image).stem, Path(image), Path(truth))]


@dataclass(frozen=True)
class _Prepared:
    pair: EvalPair
    pixels: np.ndarray  # (R, R) float32 network input
    truth: np.ndarray  # (R, R) bool
    digest: str  # sha256 of the image file
    # The truth's grains with --grains: measured once per image, not once per checkpoint
    # (the prepared batches are kept for every checkpoint of the sweep).
    truth_grains: TruthGrains | None = None


def prepare_pair(pair: EvalPair, options: SweepOptions) -> _Prepared:
    """Read one pair as the network and the losses need it.

    The image is scaled by its type's maximum and resized (bilinear,
    antialiased) like at inference; the label is read as bool and resized the
    build step's way (binary, ``line_width`` px lines). With ``remove_border``
    both lose the scale-bar strip detected on the image.
    """
    from datatool.io import read_truth
    from datatool.labels import resize_label

    decoded = read_image(pair.image)
    truth = read_truth(pair.truth)
    pixels = decoded.pixels
    if truth.shape != pixels.shape:
        raise DatatoolError(
            f"{pair.truth}: label is {truth.shape[1]}x{truth.shape[0]} px but its image "
            f"{pair.image.name} is {pixels.shape[1]}x{pixels.shape[0]} px"
        )
    if options.remove_border:
        pixels, truth = strip_scale_bar(pixels, truth)
    scaled = pixels.astype(np.float32) / np.float32(decoded.max_value)
    truth = resize_label(np.ascontiguousarray(truth), options.resolution, options.line_width)
    truth_grains = None
    if options.grains:
        from datatool.grains import grain_map
        from datatool.metrics.grains import TruthGrains

        truth_grains = TruthGrains.of(grain_map(truth))
    return _Prepared(
        pair=pair,
        pixels=resize_image(scaled, options.resolution),
        truth=truth,
        digest=sha256_file(pair.image),
        truth_grains=truth_grains,
    )


class PredictionCache:
    """Predictions on disk, one ``.npy`` (float16) per checkpoint x image x preprocessing.

    The key holds the checkpoint's and the image's sha256, the resolution, the
    border option, AMP and the form the network ran in (``options.form``; plain
    float32 keeps the key it had before forms existed), so a changed file or
    setting, or another precision, is a miss, never a stale hit. Files are
    written atomically; a damaged file is recomputed.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    @staticmethod
    def key(checkpoint_digest: str, image_digest: str, options: SweepOptions) -> str:
        """File stem for one prediction."""
        flags = f"r{options.resolution}-b{int(options.remove_border)}-a{int(options.amp)}"
        if options.form not in (None, "fp32"):
            flags += f"-f{options.form}"
        return f"v{CACHE_VERSION}-{checkpoint_digest[:20]}-{image_digest[:20]}-{flags}"

    def get(self, key: str) -> np.ndarray | None:
        """The cached ``(R, R)`` float16 prediction, or ``None``."""
        path = self.folder / f"{key}.npy"
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None

    def put(self, key: str, prediction: np.ndarray) -> None:
        """Store a ``(R, R)`` float16 prediction atomically."""
        with atomic_path(self.folder / f"{key}.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, prediction.astype(np.float16), allow_pickle=False)


def quantize(prediction: np.ndarray) -> np.ndarray:
    """Round probabilities to float16 as the cache stores them.

    Scores are computed on this rounded value whether or not the cache is used,
    so a cached and an uncached sweep give identical numbers.
    """
    return np.asarray(prediction, dtype=np.float32).astype(np.float16)


def _score_row(
    prediction: np.ndarray, item: _Prepared, checkpoint: Checkpoint, options
) -> MetricRow:
    truth = item.truth
    row = score(prediction.astype(np.float32), truth, options.score_params(), options.sigmas[1:])
    if options.grains:
        from datatool.metrics.grains import grain_agreement

        row.grains = grain_agreement(prediction.astype(np.float32), truth, item.truth_grains)
    return MetricRow(
        **dict(row, params=None), kind="image", epoch=checkpoint.epoch,
        checkpoint=str(checkpoint.path), image=item.pair.name, images=1,
    )  # fmt: skip


def _mean_row(rows: list[MetricRow]) -> MetricRow:
    first = rows[0]
    return MetricRow(
        **mean_scores(rows), kind="mean", epoch=first.epoch, checkpoint=first.checkpoint,
        image="", images=len(rows),
    )  # fmt: skip


@dataclass(frozen=True)
class SweepUnit:
    """One unit of sweep work: a checkpoint on a batch of prepared images.

    Plain data, so that it pickles to a Dask worker; ``threads`` is torch's
    intra-op thread count of the client, set in the worker so that every
    unit computes exactly what the plain run computes.
    """

    checkpoint: Checkpoint
    checkpoint_digest: str | None  # sha256 of the checkpoint file, for the cache keys
    items: tuple[_Prepared, ...]
    options: SweepOptions
    cache_dir: str | None
    overlay_dir: str | None  # set only for the epochs that get overlays
    threads: int


@dataclass(frozen=True)
class UnitResult:
    """What a unit hands back to the client: one row per image, and the cache counts."""

    rows: list[MetricRow]
    hits: int
    misses: int


@functools.lru_cache(maxsize=2)
def _cached_model(path: str, stamp: tuple[int, int], device: str):
    """The loaded U-Net of one checkpoint, kept per worker while its batches run."""
    return load_unet(path, select_device(device))


def run_unit(unit: SweepUnit) -> UnitResult:
    """Predict (or read from the cache), score and draw one checkpoint x image batch."""
    import torch

    if torch.get_num_threads() != unit.threads:
        torch.set_num_threads(unit.threads)
    options = unit.options
    cache = PredictionCache(unit.cache_dir) if unit.cache_dir is not None else None
    keys = [
        cache.key(unit.checkpoint_digest or "", item.digest, options) if cache else ""
        for item in unit.items
    ]
    predictions = [cache.get(k) if cache else None for k in keys]
    predictions = [
        p if p is not None and p.shape == item.truth.shape else None
        for p, item in zip(predictions, unit.items, strict=True)
    ]
    todo = [i for i, p in enumerate(predictions) if p is None]
    if todo:
        stat = unit.checkpoint.path.stat()
        model = _cached_model(
            str(unit.checkpoint.path), (stat.st_mtime_ns, stat.st_size), options.device
        )
        probs = predict(
            model,
            [unit.items[i].pixels for i in todo],
            batch_size=options.batch_size,
            amp=options.amp,
            form=options.form or "fp32",
        )
        for i, prob in zip(todo, probs, strict=True):
            predictions[i] = quantize(prob)
            if cache is not None:
                cache.put(keys[i], predictions[i])
    rows = []
    for item, prediction in zip(unit.items, predictions, strict=True):
        rows.append(_score_row(prediction, item, unit.checkpoint, options))
        if unit.overlay_dir is not None:
            from datatool.metrics.overlays import write_overlays

            write_overlays(
                Path(unit.overlay_dir) / f"epoch_{unit.checkpoint.epoch}",
                item.pair.name,
                prediction.astype(np.float32),
                item.truth,
                options.score_params(),
            )
    return UnitResult(rows, len(unit.items) - len(todo), len(todo))


def _check_sweep(
    checkpoints: Sequence[Checkpoint], pairs: Sequence[EvalPair], overlay_epochs: Sequence[int]
) -> None:
    if not checkpoints:
        raise DatatoolError("no checkpoint to evaluate")
    if not pairs:
        raise DatatoolError("no image to evaluate on")
    available = {c.epoch for c in checkpoints}
    missing_epochs = sorted(set(overlay_epochs) - available)
    if missing_epochs:
        raise UsageError(
            f"--overlays {','.join(map(str, missing_epochs))}: no checkpoint for "
            f"{'that epoch' if len(missing_epochs) == 1 else 'those epochs'}; "
            f"epochs available: {', '.join(map(str, sorted(available)))}"
        )


class _PreparedBatches:
    """Batches of prepared pairs: read in a prefetch thread on the first pass, kept after.

    Iterating the first time yields each batch as it is ready (the next one is
    read while the caller runs the network on this one); later passes reuse
    the batches read.
    """

    def __init__(self, pairs: Sequence[EvalPair], options: SweepOptions) -> None:
        def load(batch: Sequence[EvalPair]) -> tuple[_Prepared, ...]:
            return tuple(prepare_pair(p, options) for p in batch)

        self._stream = prefetch(chunks(list(pairs), options.batch_size), load)
        self.first: tuple[_Prepared, ...] = next(self._stream)
        self._read: list[tuple[_Prepared, ...]] = [self.first]
        self._done = False

    def __iter__(self):
        if self._done:
            yield from self._read
            return
        yield self.first
        for batch in self._stream:
            self._read.append(batch)
            yield batch
        self._done = True


def _with_form(
    options: SweepOptions,
    checkpoint: Checkpoint,
    probe: np.ndarray,
    on_precision: Callable[[str], None] | None,
) -> SweepOptions:
    """``options`` with the form chosen from ``options.precision`` on ``probe`` ``(S, S)``."""
    from datatool.torch.inference import choose_precision

    model = None
    if options.precision != "fp32":  # plain float32 needs no model and no probe
        stat = checkpoint.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        model = _cached_model(str(checkpoint.path), stamp, options.device)
    choice = choose_precision(model, probe[None], options.precision)
    if on_precision is not None:
        on_precision(choice.message)
    return options.model_copy(update={"form": choice.form.name})


def run_sweep(
    checkpoints: Sequence[Checkpoint],
    pairs: Sequence[EvalPair],
    options: SweepOptions | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    overlay_dir: str | os.PathLike[str] | None = None,
    overlay_epochs: Sequence[int] = (),
    on_progress: Callable[[int], None] | None = None,
    scheduler: str | Scheduler = "local",
    on_precision: Callable[[str], None] | None = None,
) -> SweepResult:
    """Score every checkpoint on every pair.

    Pairs are read and preprocessed one batch ahead in a thread while the first
    checkpoint runs (:func:`~datatool.schedule.prefetch`), then reused for the
    others. The form the network runs in is chosen once, on this machine, from
    ``options.precision`` (:func:`~datatool.torch.inference.choose_precision`
    with the last checkpoint on the first image) unless ``options.form`` is
    set, and recorded in the result's options.

    Parameters
    ----------
    checkpoints : sequence of Checkpoint
        From :func:`~datatool.torch.checkpoints.find_checkpoints` (ordered by epoch).
    pairs : sequence of EvalPair
    options : SweepOptions, optional
    cache_dir : path-like, optional
        Prediction cache folder; ``None`` (or ``options.use_cache`` False) runs
        the network for every pair.
    overlay_dir, overlay_epochs
        Write the losses' overlay pictures of these epochs under
        ``overlay_dir/epoch_<E>/``.
    on_progress : callable, optional
        Called with 1 for each checkpoint x image scored.
    scheduler : str or Scheduler
        Where the checkpoint x batch units run: ``local`` (this process),
        ``dask`` or a Dask scheduler address (see :mod:`datatool.schedule`),
        or an open :class:`~datatool.schedule.Scheduler`. Rows come back in
        the plain run's order with the same values.
    on_precision : callable, optional
        Receives the precision choice's one-line message.

    Returns
    -------
    SweepResult
    """
    import torch

    options = options or SweepOptions()
    check_resolution(options.resolution)
    _check_sweep(checkpoints, pairs, overlay_epochs)
    select_device(options.device)  # a bad --device fails here, not in a worker
    batches = _PreparedBatches(pairs, options)
    if options.form is None:
        options = _with_form(options, checkpoints[-1], batches.first[0].pixels, on_precision)
    use_cache = cache_dir is not None and options.use_cache
    threads = torch.get_num_threads()
    units = (
        SweepUnit(
            checkpoint=checkpoint,
            checkpoint_digest=sha256_file(checkpoint.path) if use_cache else None,
            items=batch,
            options=options,
            cache_dir=str(cache_dir) if use_cache else None,
            overlay_dir=(
                str(overlay_dir)
                if overlay_dir is not None and checkpoint.epoch in overlay_epochs
                else None
            ),
            threads=threads,
        )
        for checkpoint in checkpoints
        for batch in batches
    )
    context: Any = Scheduler(scheduler) if isinstance(scheduler, str) else nullcontext(scheduler)
    rows: list[MetricRow] = []
    hits = misses = 0
    with context as running:
        for result in running.map(run_unit, units, window=2):
            rows.extend(result.rows)
            hits += result.hits
            misses += result.misses
            if on_progress is not None:
                for _ in result.rows:
                    on_progress(1)
    means = [
        _mean_row(rows[start : start + len(pairs)]) for start in range(0, len(rows), len(pairs))
    ]
    return SweepResult(
        options=options, rows=rows, means=means, cache_hits=hits, cache_misses=misses
    )


# --------------------------------------------------------------------------- outputs


def _flat(row: MetricRow, sigmas: list[float]) -> dict[str, object]:
    flat: dict[str, object] = {
        "kind": row.kind,
        "epoch": row.epoch,
        "checkpoint": row.checkpoint,
        "image": row.image,
        "images": row.images,
    }
    values = row.metric_values()
    values.pop("gaussian", None)
    flat.update(values)
    return flat


def metrics_csv_text(result: SweepResult) -> str:
    """``metrics.csv``: image rows, then mean rows, both by epoch; full float precision."""
    buffer = _io.StringIO()
    sigmas = result.options.sigmas
    rows = [_flat(r, sigmas) for r in [*result.rows, *result.means]]
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def metric_series(result: SweepResult, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Epochs ``(E,)`` and values ``(E, N)`` of one metric over images, by epoch."""
    epochs = [m.epoch for m in result.means]
    sigmas = result.options.sigmas
    values: dict[int, list[float]] = {e: [] for e in epochs}
    for row in result.rows:
        values[row.epoch].append(float(_flat(row, sigmas)[metric]))
    return np.array(epochs), np.array([values[e] for e in epochs], dtype=np.float64)


_TITLES = {
    "bce": "BCE",
    "tophat": "Top-hat loss",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "Tolerance F1 (higher is better)",
}


def plot_loss_vs_epoch(result: SweepResult, path: str | os.PathLike[str]) -> Path:
    """Draw one panel per metric: mean over images by epoch, with the min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in result.metric_names() if m not in ("precision", "recall")]
    columns = min(3, len(metrics))
    rows = -(-len(metrics) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        epochs, values = metric_series(result, metric)
        mean = values.mean(axis=1)
        ax.plot(epochs, mean, marker="o", markersize=3, color="tab:blue", label="mean")
        if values.shape[1] > 1:
            ax.fill_between(
                epochs,
                values.min(axis=1),
                values.max(axis=1),
                alpha=0.25,
                color="tab:blue",
                label="min-max over images",
            )
        title = _TITLES.get(metric)
        if title is None and metric.startswith("tolerant_bce_sigma"):
            title = f"Tolerant BCE, sigma = {metric.removeprefix('tolerant_bce_sigma')} px"
        elif title is None:  # gaussian_sigma<s>
            title = f"Gaussian loss, sigma = {metric.removeprefix('gaussian_sigma')} px"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    images = result.means[0].images if result.means else 0
    fig.suptitle(
        f"Loss vs epoch: {len(result.means)} checkpoints x {images} image(s) at "
        f"{result.options.resolution} px",
        fontsize=11,
    )
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    write_png(path, figure_pixels(fig, dpi=110))
    return path


GRAINS_PLOT_FILE = "grains_vs_epoch.png"

_GRAIN_PANELS = (
    ("grain_count_error", "Grain count error (0 is best)"),
    ("grain_centroid_f1", "Grain centroid F1 (higher is better)"),
)


def plot_grains_vs_epoch(result: SweepResult, path: str | os.PathLike[str]) -> Path:
    """Grain count error and centroid F1 by epoch: mean over images, min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(_GRAIN_PANELS), figsize=(4.2 * len(_GRAIN_PANELS), 3.2))
    epochs = [m.epoch for m in result.means]
    for ax, (column, title) in zip(axes, _GRAIN_PANELS, strict=True):
        per_epoch: dict[int, list[float]] = {e: [] for e in epochs}
        for row in result.rows:
            value = row.metric_values().get(column)
            if value is not None:  # undefined (no true grain) is left out, never NaN
                per_epoch[row.epoch].append(float(value))
        shown = [e for e in epochs if per_epoch[e]]
        if shown:
            mean = [float(np.mean(per_epoch[e])) for e in shown]
            ax.plot(shown, mean, marker="o", markersize=3, color="tab:green", label="mean")
            low = [min(per_epoch[e]) for e in shown]
            high = [max(per_epoch[e]) for e in shown]
            ax.fill_between(shown, low, high, alpha=0.25, color="tab:green", label="min-max")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].axhline(0.0, color="grey", linewidth=0.8)
    fig.suptitle("Grains vs epoch (prediction binarized at 0.5)", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    write_png(path, figure_pixels(fig, dpi=110))
    return path


def write_outputs(result: SweepResult, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``metrics.csv``, ``metrics.json`` and ``loss_vs_epoch.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    paths = {
        "csv": out_dir / METRICS_CSV,
        "json": out_dir / METRICS_JSON,
        "plot": out_dir / PLOT_FILE,
    }
    atomic_write_text(paths["csv"], metrics_csv_text(result))
    atomic_write_json(paths["json"], result)
    plot_loss_vs_epoch(result, paths["plot"])
    if result.options.grains:
        paths["grains_plot"] = plot_grains_vs_epoch(result, out_dir / GRAINS_PLOT_FILE)
    return paths


def evaluate(
    checkpoint_paths: Sequence[str | os.PathLike[str]],
    pairs: Sequence[EvalPair],
    out_dir: str | os.PathLike[str],
    options: SweepOptions | None = None,
    *,
    overlay_epochs: Sequence[int] = (),
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    scheduler: str = "local",
    on_precision: Callable[[str], None] | None = None,
) -> tuple[SweepResult, dict[str, Path]]:
    """Find the checkpoints, run the sweep with the cache under ``out_dir/cache``, write outputs.

    ``on_start`` receives the number of checkpoint x image steps before the work begins;
    ``scheduler`` and ``on_precision`` are :func:`run_sweep`'s.
    """
    checkpoints = find_checkpoints(list(checkpoint_paths))
    if on_start is not None:
        on_start(len(checkpoints) * len(pairs))
    out_dir = Path(out_dir)
    result = run_sweep(
        checkpoints,
        pairs,
        options,
        cache_dir=out_dir / "cache",
        overlay_dir=out_dir / "overlays",
        overlay_epochs=overlay_epochs,
        on_progress=on_progress,
        scheduler=scheduler,
        on_precision=on_precision,
    )
    return result, write_outputs(result, out_dir)


DEMO_SAMPLES = {"0101": "training", "0102": "training", "0201": "validation"}
#: Side of the demo's crops (:func:`datatool.synth.write_tree`'s default), px: the sweep
#: scores whole crops at this size.
DEMO_CROP = 128
#: Side of the random windows the demo trains on, px: at the crops' own scale, a quarter of
#: the work of training on whole crops, which keeps the demo under a minute on 2 CPU cores.
DEMO_TRAIN_RESOLUTION = 64


def run_demo(
    out_dir: str | os.PathLike[str],
    config=None,
    options: SweepOptions | None = None,
    *,
    on_epoch: Callable[[int, float], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_stage: Callable[[str, int | None], None] | None = None,
) -> tuple[SweepResult, dict[str, Path]]:
    """From nothing to a loss-versus-epoch plot: synthetic data, tiny training, sweep.

    Writes ``out_dir/data`` (a synthetic sample tree), ``out_dir/checkpoints``
    (``demo_<epoch>.pth``) and the sweep's outputs in ``out_dir``, with overlays
    of the first and last epochs. Evaluates on the validation split, which the
    training never sees, whole crops at their own size (:data:`DEMO_CROP`), also
    when the network trained on smaller windows of them.

    Parameters
    ----------
    out_dir : path-like
    config : datatool.torch.train.TrainConfig, optional
        Training settings; by default :data:`DEMO_TRAIN_RESOLUTION`-px windows.
    options : SweepOptions, optional
        The sweep's; by default CPU at the larger of the crop and training sizes.
    on_epoch : callable, optional
        ``on_epoch(epoch, training loss)`` after each epoch.
    on_start, on_progress : callable, optional
        The sweep's total of checkpoint x image steps, then each step done.
    on_stage : callable, optional
        ``on_stage(name, steps)`` as each stage begins: ``"data"`` (None),
        ``"training"`` (the epochs to train), ``"evaluating"`` (given by ``on_start``).
    """
    from datatool.synth import write_tree
    from datatool.torch.train import TrainConfig, train_from_dataset

    out_dir = Path(out_dir)
    config = config or TrainConfig(resolution=DEMO_TRAIN_RESOLUTION)
    resolution = max(config.resolution, DEMO_CROP)
    options = options or SweepOptions(resolution=resolution, device="cpu")
    if on_stage is not None:
        on_stage("data", None)
    data = write_tree(out_dir / "data", DEMO_SAMPLES, seed=101, crop=DEMO_CROP)
    if on_stage is not None:
        on_stage("training", config.epochs)
    written = train_from_dataset(
        data, out_dir / "checkpoints", config, split="training", on_epoch=on_epoch
    )
    pairs = [p for p in pairs_from_dataset(data) if p.split == "validation"]
    epochs = sorted({c.epoch for c in find_checkpoints(written)})
    return evaluate(
        written,
        pairs,
        out_dir,
        options,
        overlay_epochs=[epochs[0], epochs[-1]],
        on_start=on_start,
        on_progress=on_progress,
    )
