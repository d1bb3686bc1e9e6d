"""The one option type and the one result row of scoring, shared by score, evaluate and report.

* :class:`ScoreParams` - how a prediction is scored (Gaussian sigma and window,
  top-hat halo, tolerance and matching of precision/recall);
* :class:`ScoreRow` - every score of one prediction (or a mean of several):
  ``datatool score`` prints it with the file names (:class:`ScoredPrediction`),
  ``datatool evaluate`` writes it per checkpoint and image (:class:`MetricRow`),
  and ``datatool report`` shows the rows of a sweep (:class:`SweepResult`).

Nothing here imports torch: the report and the schema export read these types
without loading the network code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from datatool.metrics.grains import GrainAgreement, grain_columns, mean_agreement
from datatool.metrics.losses import (
    Matching,
    _check_pair,
    bce,
    gaussian_loss,
    tolerance_prf,
    tolerant_bce,
    tophat_loss,
)


def sigma_label(sigma: float) -> str:
    """Key of a sigma in per-sigma columns: ``3.0 -> '3'``, ``1.5 -> '1.5'``.

    >>> sigma_label(3.0), sigma_label(1.5)
    ('3', '1.5')
    """
    return f"{sigma:g}"


#: Bounds of the scoring options: finite, and wide beyond any sensible use (a kernel
#: or tolerance past these says nothing about 2-6 px lines and only costs time).
MAX_KERNEL_SIZE = 1001
MAX_TOLERANCE = 50.0
MAX_SIGMA = 50.0
#: Largest side images are resized to for the network, px.
MAX_RESOLUTION = 8192
MAX_BATCH_SIZE = 1024
#: Largest label line width, px.
MAX_LINE_WIDTH = 64


class _ScoreWindows(BaseModel):
    """The score parameters shared by one scoring run and a sweep (everything but sigma)."""

    model_config = ConfigDict(extra="forbid")

    kernel_size: int = Field(
        15, ge=1, le=MAX_KERNEL_SIZE, description="Window side of the Gaussian loss, px (odd)."
    )
    tophat_kernel_size: int = Field(
        3,
        ge=1,
        le=MAX_KERNEL_SIZE,
        description="Side of the square the truth is dilated by for the top-hat loss (odd).",
    )
    tolerance: float = Field(
        2.0,
        ge=0,
        le=MAX_TOLERANCE,
        description="Distance in px within which a centre-line pixel counts as matched.",
    )
    matching: Matching = Field(
        "nearest",
        description=(
            "'nearest': a pixel is matched if any pixel of the other line is within tolerance; "
            "'one-to-one': each pixel can be matched at most once (Berkeley benchmark)."
        ),
    )

    @field_validator("kernel_size", "tophat_kernel_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"must be odd, got {value}")
        return value


class ScoreParams(_ScoreWindows):
    """Parameters of the scores computed by :func:`score`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sigma: float = Field(
        3.0, gt=0, le=MAX_SIGMA, description="Standard deviation of the Gaussian loss, px."
    )


class ScoreRow(BaseModel):
    """Every score of one prediction against its truth, or their mean over images.

    The Gaussian loss is given at every sigma asked for (``gaussian_sigmas``,
    keyed by :func:`sigma_label`); ``gaussian`` is its value at the first one.
    """

    model_config = ConfigDict(extra="forbid")

    bce: float = Field(description="Binary cross-entropy, mean over pixels (lower is better).")
    tophat: float = Field(description="Top-hat loss in [-1, 1] (lower is better).")
    gaussian: float = Field(
        description="Normalized Gaussian loss in [-1, 1] at the first sigma (lower is better)."
    )
    gaussian_sigmas: dict[str, float] = Field(
        default_factory=dict,
        description="Normalized Gaussian loss per sigma (key: sigma in px; lower is better).",
    )
    tolerant_bce: float = Field(
        description="Balanced tolerant BCE at the first sigma, >= 0 (lower is better)."
    )
    tolerant_bce_sigmas: dict[str, float] = Field(
        default_factory=dict,
        description="Balanced tolerant BCE per sigma (key: sigma in px; lower is better).",
    )
    precision: float = Field(description="Share of predicted centre line near the truth.")
    recall: float = Field(description="Share of the truth centre line found by the prediction.")
    f1: float = Field(description="Harmonic mean of precision and recall.")
    grains: GrainAgreement | None = Field(
        None,
        description="Grain-level agreement (count error, KS test of areas, centroid F1...); "
        "null unless asked for (score --grains, evaluate --grains).",
    )
    params: ScoreParams | None = Field(
        None,
        description="Parameters the scores were computed with (null in a sweep's rows: "
        "the sweep's options hold them).",
    )

    def metric_values(self) -> dict[str, float]:
        """The scores as flat columns, in table order (``gaussian_sigma<s>`` per sigma)."""
        values: dict[str, float] = {"bce": self.bce, "tophat": self.tophat}
        sigmas = self.gaussian_sigmas or {"": self.gaussian}
        for key, value in sigmas.items():
            values[f"gaussian_sigma{key}" if key else "gaussian"] = value
        tolerant = self.tolerant_bce_sigmas or {"": self.tolerant_bce}
        for key, value in tolerant.items():
            values[f"tolerant_bce_sigma{key}" if key else "tolerant_bce"] = value
        values.update(precision=self.precision, recall=self.recall, f1=self.f1)
        if self.grains is not None:
            values.update(grain_columns(self.grains))  # type: ignore[arg-type]
        return values


class ScoredPrediction(ScoreRow):
    """The scores of one prediction file, as ``datatool score --json`` prints them."""

    prediction: str = Field(description="Path of the prediction image.")
    truth: str = Field(description="Path of the label image it was scored against.")
    notes: list[str] = Field(
        default_factory=list,
        description="What was done to the inputs or looks wrong with them (an inverted truth "
        "or prediction), one sentence each.",
    )


def score(
    pred: np.ndarray,
    truth: np.ndarray,
    params: ScoreParams | None = None,
    sigmas: Sequence[float] = (),
) -> ScoreRow:
    """Compute BCE, the top-hat, Gaussian and tolerant BCE losses and the tolerance P/R/F1.

    Parameters
    ----------
    pred : (H, W) float ndarray in [0, 1]
    truth : (H, W) bool ndarray (or 0/1)
    params : ScoreParams, optional
        Defaults to ``ScoreParams()``.
    sigmas : sequence of float, optional
        Further sigmas of the Gaussian and tolerant BCE losses, after ``params.sigma``.

    Returns
    -------
    ScoreRow
    """
    params = params or ScoreParams()
    pred, truth = _check_pair(pred, truth)
    prf = tolerance_prf(pred, truth, params.tolerance, params.matching)
    gaussian: dict[str, float] = {}
    tolerant: dict[str, float] = {}
    for sigma in (params.sigma, *sigmas):
        if sigma_label(sigma) not in gaussian:
            gaussian[sigma_label(sigma)] = gaussian_loss(pred, truth, sigma, params.kernel_size)
            tolerant[sigma_label(sigma)] = tolerant_bce(pred, truth, sigma, params.kernel_size)
    return ScoreRow(
        bce=bce(pred, truth),
        tophat=tophat_loss(pred, truth, params.tophat_kernel_size),
        gaussian=gaussian[sigma_label(params.sigma)],
        gaussian_sigmas=gaussian,
        tolerant_bce=tolerant[sigma_label(params.sigma)],
        tolerant_bce_sigmas=tolerant,
        precision=prf.precision,
        recall=prf.recall,
        f1=prf.f1,
        params=params,
    )


def mean_scores(rows: Sequence[ScoreRow]) -> dict[str, object]:
    """The field values of the mean of several rows (every score averaged).

    Returns a dict of :class:`ScoreRow` fields, to build a row of any subclass.
    """
    if not rows:
        raise ValueError("mean_scores needs at least one row")

    def mean(values: list[float]) -> float:
        return float(np.mean(values))

    first = rows[0]
    return {
        "bce": mean([r.bce for r in rows]),
        "tophat": mean([r.tophat for r in rows]),
        "gaussian": mean([r.gaussian for r in rows]),
        "gaussian_sigmas": {
            k: mean([r.gaussian_sigmas[k] for r in rows]) for k in first.gaussian_sigmas
        },
        "tolerant_bce": mean([r.tolerant_bce for r in rows]),
        "tolerant_bce_sigmas": {
            k: mean([r.tolerant_bce_sigmas[k] for r in rows]) for k in first.tolerant_bce_sigmas
        },
        "precision": mean([r.precision for r in rows]),
        "recall": mean([r.recall for r in rows]),
        "f1": mean([r.f1 for r in rows]),
        "grains": mean_agreement([r.grains for r in rows]),
    }


# --------------------------------------------------------------------------- sweeps


#: Side images are resized to for the network unless told otherwise (the lab's setting).
DEFAULT_RESOLUTION = 1024
DEFAULT_BATCH_SIZE = 4


class SweepOptions(_ScoreWindows):
    """How the loss-versus-epoch sweep preprocesses, runs the network and scores."""

    resolution: int = Field(
        DEFAULT_RESOLUTION,
        ge=16,
        le=MAX_RESOLUTION,
        description="Side images are resized to (multiple of 16).",
    )
    remove_border: bool = Field(False, description="Cut the scale-bar strip off before resizing.")
    line_width: int = Field(
        3, ge=1, le=MAX_LINE_WIDTH, description="Width labels are brought to after resizing, px."
    )
    sigmas: list[float] = Field(
        default_factory=lambda: [3.0],
        min_length=1,
        description="Standard deviations of the Gaussian loss, px (one column each).",
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    batch_size: int = Field(
        DEFAULT_BATCH_SIZE, ge=1, le=MAX_BATCH_SIZE, description="Images per forward pass."
    )
    amp: bool = Field(
        False,
        description="float16 autocast on CUDA (the old --amp, kept for compatibility; "
        "overrides the precision's form on CUDA).",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "fp32",
        description="auto: the fastest form within 1 grey level of float32, measured on a probe; "
        "fp32: plain float32; bf16: bfloat16 autocast + channels_last if within 1 grey level.",
    )
    form: Literal["fp32", "fp32-cl", "bf16-cl"] | None = Field(
        None,
        description="The form the network ran in (fp32, fp32-cl: + channels_last, bf16-cl: "
        "bfloat16 autocast + channels_last), chosen from the precision; null before the run.",
    )
    use_cache: bool = Field(True, description="Read and write the prediction cache.")
    grains: bool = Field(
        False,
        description="Also compute the grain agreement (metrics.grains) per checkpoint and image.",
    )

    @field_validator("sigmas")
    @classmethod
    def _positive(cls, values: list[float]) -> list[float]:
        bad = [v for v in values if not 0 < v <= MAX_SIGMA]
        if bad:
            raise ValueError(f"sigma must be > 0 and <= {MAX_SIGMA:g}, got {bad}")
        if len({sigma_label(v) for v in values}) != len(values):
            raise ValueError(f"sigmas must differ, got {values}")
        return values

    def score_params(self, sigma: float | None = None) -> ScoreParams:
        """The scoring parameters for one sigma (the first by default)."""
        windows = _ScoreWindows.model_fields
        return ScoreParams(
            sigma=self.sigmas[0] if sigma is None else sigma,
            **{name: getattr(self, name) for name in windows},
        )


class MetricRow(ScoreRow):
    """Scores of one checkpoint on one image, or their mean over the images."""

    kind: str = Field(description="'image' for one image, 'mean' for the mean over images.")
    epoch: int = Field(description="Epoch read from the checkpoint's file name.")
    checkpoint: str = Field(description="Checkpoint file path.")
    image: str = Field(description="Image name (stem); empty for a mean row.")
    images: int = Field(description="Number of images the row covers.")


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
        tolerant = [f"tolerant_bce_sigma{sigma_label(s)}" for s in self.options.sigmas]
        return ["bce", "tophat", *sigmas, *tolerant, "precision", "recall", "f1"]
