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
from pydantic import BaseModel, ConfigDict, Field, field_validator

from datatool.errors import DatatoolError, UsageError
from datatool.evaluate.checkpoints import Checkpoint, find_checkpoints, load_unet
from datatool.evaluate.inference import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_RESOLUTION,
    check_resolution,
    predict,
    resize_image,
    select_device,
    strip_scale_bar,
)
from datatool.evaluate.losses import Matching, ScoreParams, gaussian_loss, score
from datatool.io import atomic_path, atomic_write_json, atomic_write_text, read_image, sha256_file

#: Version of the cached prediction format and preprocessing; bump to invalidate old caches.
CACHE_VERSION = 1
METRICS_CSV = "metrics.csv"
METRICS_JSON = "metrics.json"
PLOT_FILE = "loss_vs_epoch.png"


class SweepOptions(BaseModel):
    """How the sweep preprocesses, runs and scores."""

    model_config = ConfigDict(extra="forbid")

    resolution: int = Field(
        DEFAULT_RESOLUTION, ge=16, description="Side images are resized to (multiple of 16)."
    )
    remove_border: bool = Field(False, description="Cut the scale-bar strip off before resizing.")
    line_width: int = Field(3, ge=1, description="Width labels are brought to after resizing, px.")
    sigmas: list[float] = Field(
        default_factory=lambda: [3.0],
        min_length=1,
        description="Standard deviations of the Gaussian loss, px (one column each).",
    )
    kernel_size: int = Field(15, ge=1, description="Window side of the Gaussian loss, px (odd).")
    tophat_kernel_size: int = Field(3, ge=1, description="Top-hat halo side, px (odd).")
    tolerance: float = Field(2.0, ge=0, description="Distance tolerance of precision/recall, px.")
    matching: Matching = Field("nearest", description="Matching rule of precision/recall.")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, description="Images per forward pass.")
    amp: bool = Field(False, description="float16 autocast on CUDA.")
    use_cache: bool = Field(True, description="Read and write the prediction cache.")

    @field_validator("kernel_size", "tophat_kernel_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"must be odd, got {value}")
        return value

    @field_validator("sigmas")
    @classmethod
    def _positive(cls, values: list[float]) -> list[float]:
        bad = [v for v in values if not v > 0]
        if bad:
            raise ValueError(f"sigma must be > 0, got {bad}")
        if len({sigma_label(v) for v in values}) != len(values):
            raise ValueError(f"sigmas must differ, got {values}")
        return values

    def score_params(self, sigma: float | None = None) -> ScoreParams:
        """The losses module's parameters for one sigma (the first by default)."""
        return ScoreParams(
            sigma=self.sigmas[0] if sigma is None else sigma,
            kernel_size=self.kernel_size,
            tophat_kernel_size=self.tophat_kernel_size,
            tolerance=self.tolerance,
            matching=self.matching,
        )


def sigma_label(sigma: float) -> str:
    """Column suffix of a sigma: ``3.0 -> '3'``, ``1.5 -> '1.5'``."""
    return f"{sigma:g}"


class MetricRow(BaseModel):
    """Scores of one checkpoint on one image, or their mean over the images."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="'image' for one image, 'mean' for the mean over images.")
    epoch: int = Field(description="Epoch read from the checkpoint's file name.")
    checkpoint: str = Field(description="Checkpoint file path.")
    image: str = Field(description="Image name (stem); empty for a mean row.")
    images: int = Field(description="Number of images the row covers.")
    bce: float = Field(description="Binary cross-entropy (lower is better).")
    tophat: float = Field(description="Top-hat loss in [-1, 1] (lower is better).")
    gaussian: dict[str, float] = Field(
        description="Normalized Gaussian loss per sigma (key: sigma in px; lower is better)."
    )
    precision: float = Field(description="Tolerance precision of the centre lines.")
    recall: float = Field(description="Tolerance recall of the centre lines.")
    f1: float = Field(description="Tolerance F1 of the centre lines.")


class SweepResult(BaseModel):
    """Everything ``datatool evaluate`` computed (written as ``metrics.json``)."""

    model_config = ConfigDict(extra="forbid")

    options: SweepOptions = Field(description="Options of the sweep.")
    rows: list[MetricRow] = Field(description="One row per checkpoint and image, by epoch.")
    means: list[MetricRow] = Field(description="Per-checkpoint means over the images, by epoch.")
    cache_hits: int = Field(0, description="Predictions read from the cache.")
    cache_misses: int = Field(0, description="Predictions computed by running the network.")

    def metric_names(self) -> list[str]:
        """Column names of the scores, in table order."""
        sigmas = [f"gaussian_sigma{sigma_label(s)}" for s in self.options.sigmas]
        return ["bce", "tophat", *sigmas, "precision", "recall", "f1"]


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
        raise DatatoolError(f"{root}: no image with a matching label to evaluate on")
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
    pred = prediction.astype(np.float32)
    main = score(pred, truth, options.score_params())
    gaussian = {sigma_label(options.sigmas[0]): main.gaussian}
    for sigma in options.sigmas[1:]:
        gaussian[sigma_label(sigma)] = gaussian_loss(pred, truth, sigma, options.kernel_size)
    return MetricRow(
        kind="image",
        epoch=checkpoint.epoch,
        checkpoint=str(checkpoint.path),
        image=name,
        images=1,
        bce=main.bce,
        tophat=main.tophat,
        gaussian=gaussian,
        precision=main.precision,
        recall=main.recall,
        f1=main.f1,
    )


def _mean_row(rows: list[MetricRow]) -> MetricRow:
    first = rows[0]

    def mean(values: list[float]) -> float:
        return float(np.mean(values))

    return MetricRow(
        kind="mean",
        epoch=first.epoch,
        checkpoint=first.checkpoint,
        image="",
        images=len(rows),
        bce=mean([r.bce for r in rows]),
        tophat=mean([r.tophat for r in rows]),
        gaussian={k: mean([r.gaussian[k] for r in rows]) for k in first.gaussian},
        precision=mean([r.precision for r in rows]),
        recall=mean([r.recall for r in rows]),
        f1=mean([r.f1 for r in rows]),
    )


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
        From :func:`~datatool.evaluate.checkpoints.find_checkpoints` (ordered by epoch).
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
                from datatool.evaluate.overlays import write_overlays

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
        "bce": row.bce,
        "tophat": row.tophat,
    }
    for sigma in sigmas:
        flat[f"gaussian_sigma{sigma_label(sigma)}"] = row.gaussian[sigma_label(sigma)]
    flat.update(precision=row.precision, recall=row.recall, f1=row.f1)
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
        if title is None:  # gaussian_sigma<s>
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
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
    from datatool.evaluate.train import TrainConfig, train_from_dataset
    from datatool.synth import write_tree

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
