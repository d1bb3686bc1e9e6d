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
import io as _io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

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
from datatool.torch.checkpoints import Checkpoint, find_checkpoints, load_unet
from datatool.torch.inference import (
    check_resolution,
    predict,
    resize_image,
    select_device,
    strip_scale_bar,
)

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
    return _Prepared(
        pair=pair,
        pixels=resize_image(scaled, options.resolution),
        truth=resize_label(np.ascontiguousarray(truth), options.resolution, options.line_width),
        digest=sha256_file(pair.image),
    )


class PredictionCache:
    """Predictions on disk, one ``.npy`` (float16) per checkpoint x image x preprocessing.

    The key holds the checkpoint's and the image's sha256, the resolution, the
    border option and AMP, so a changed file or setting is a miss, never a
    stale hit. Files are written atomically; a damaged file is recomputed.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    @staticmethod
    def key(checkpoint_digest: str, image_digest: str, options: SweepOptions) -> str:
        """File stem for one prediction."""
        flags = f"r{options.resolution}-b{int(options.remove_border)}-a{int(options.amp)}"
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
    prediction: np.ndarray, truth: np.ndarray, checkpoint: Checkpoint, name: str, options
) -> MetricRow:
    row = score(prediction.astype(np.float32), truth, options.score_params(), options.sigmas[1:])
    if options.grains:
        from datatool.metrics.grains import grain_agreement

        row.grains = grain_agreement(prediction.astype(np.float32), truth)
    return MetricRow(
        **dict(row, params=None), kind="image", epoch=checkpoint.epoch,
        checkpoint=str(checkpoint.path), image=name, images=1,
    )  # fmt: skip


def _mean_row(rows: list[MetricRow]) -> MetricRow:
    first = rows[0]
    return MetricRow(
        **mean_scores(rows), kind="mean", epoch=first.epoch, checkpoint=first.checkpoint,
        image="", images=len(rows),
    )  # fmt: skip


def run_sweep(
    checkpoints: Sequence[Checkpoint],
    pairs: Sequence[EvalPair],
    options: SweepOptions | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    overlay_dir: str | os.PathLike[str] | None = None,
    overlay_epochs: Sequence[int] = (),
    on_progress: Callable[[int], None] | None = None,
) -> SweepResult:
    """Score every checkpoint on every pair.

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
        Called with 1 after each checkpoint x image is scored.

    Returns
    -------
    SweepResult
    """
    options = options or SweepOptions()
    check_resolution(options.resolution)
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
    device = select_device(options.device)
    prepared = [prepare_pair(p, options) for p in pairs]
    cache = PredictionCache(cache_dir) if cache_dir is not None and options.use_cache else None
    rows: list[MetricRow] = []
    means: list[MetricRow] = []
    hits = misses = 0
    for checkpoint in checkpoints:
        predictions: list[np.ndarray | None] = [None] * len(prepared)
        keys: list[str] = []
        if cache is not None:
            digest = sha256_file(checkpoint.path)
            keys = [cache.key(digest, item.digest, options) for item in prepared]
            predictions = [cache.get(k) for k in keys]
            predictions = [
                p if p is not None and p.shape == item.truth.shape else None
                for p, item in zip(predictions, prepared, strict=True)
            ]
        todo = [i for i, p in enumerate(predictions) if p is None]
        hits += len(prepared) - len(todo)
        misses += len(todo)
        if todo:
            model = load_unet(checkpoint.path, device)
            for start in range(0, len(todo), options.batch_size):
                chunk = todo[start : start + options.batch_size]
                probs = predict(
                    model,
                    [prepared[i].pixels for i in chunk],
                    batch_size=options.batch_size,
                    amp=options.amp,
                )
                for i, prob in zip(chunk, probs, strict=True):
                    predictions[i] = quantize(prob)
                    if cache is not None:
                        cache.put(keys[i], predictions[i])
            del model
        checkpoint_rows = []
        for item, prediction in zip(prepared, predictions, strict=True):
            row = _score_row(prediction, item.truth, checkpoint, item.pair.name, options)
            checkpoint_rows.append(row)
            if overlay_dir is not None and checkpoint.epoch in overlay_epochs:
                from datatool.metrics.overlays import write_overlays

                write_overlays(
                    Path(overlay_dir) / f"epoch_{checkpoint.epoch}",
                    item.pair.name,
                    prediction.astype(np.float32),
                    item.truth,
                    options.score_params(),
                )
            if on_progress is not None:
                on_progress(1)
        rows.extend(checkpoint_rows)
        means.append(_mean_row(checkpoint_rows))
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
) -> tuple[SweepResult, dict[str, Path]]:
    """Find the checkpoints, run the sweep with the cache under ``out_dir/cache``, write outputs.

    ``on_start`` receives the number of checkpoint x image steps before the work begins.
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
    )
    return result, write_outputs(result, out_dir)


DEMO_SAMPLES = {"0101": "training", "0102": "training", "0201": "validation"}


def run_demo(
    out_dir: str | os.PathLike[str],
    config=None,
    options: SweepOptions | None = None,
    *,
    on_epoch: Callable[[int, float], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[SweepResult, dict[str, Path]]:
    """From nothing to a loss-versus-epoch plot: synthetic data, tiny training, sweep.

    Writes ``out_dir/data`` (a synthetic sample tree), ``out_dir/checkpoints``
    (``demo_<epoch>.pth``) and the sweep's outputs in ``out_dir``, with overlays
    of the first and last epochs. Evaluates on the validation split, which the
    training never sees.
    """
    from datatool.synth import write_tree
    from datatool.torch.train import TrainConfig, train_from_dataset

    out_dir = Path(out_dir)
    config = config or TrainConfig()
    options = options or SweepOptions(resolution=config.resolution, device="cpu")
    data = write_tree(out_dir / "data", DEMO_SAMPLES, seed=101)
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
