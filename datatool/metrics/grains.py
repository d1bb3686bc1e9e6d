"""Grain-level agreement of a prediction with its truth (``score --grains``, ``evaluate --grains``).

Both are turned into grains by :mod:`datatool.grains` (the prediction binarized
at :data:`PREDICTION_THRESHOLD`); their complete grains are compared:

* ``count_error`` = (predicted - true) / true complete grains;
* ``ks_statistic``, ``ks_pvalue``: two-sample Kolmogorov-Smirnov test of the
  grain areas (``scipy.stats.ks_2samp``);
* centroid matching, the lab's ``validation_functions.get_objectives`` made
  one-to-one: the cutoff is :data:`CUTOFF_SHARE` x the mean nearest-neighbour
  distance between the true grains' centroids; predicted and true grains are
  matched one-to-one by centroid distance (``linear_sum_assignment``), a pair
  allowed only below the cutoff. ``centroid_f1 = 2 matches / (predicted + true)``,
  ``orphan_fraction = 1 - centroid_f1`` (unmatched grains of both over all
  grains of both), ``disregistry = sum of matched distances / (matches x cutoff)``;
* ``adapted_rand_error`` of the grain label images (``skimage.metrics``).

A value that is undefined (no true grain, fewer than two true grains for the
cutoff, no match) is ``None``, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from datatool import grains as grain_defs

#: The prediction's grains are those of ``pred > PREDICTION_THRESHOLD``.
PREDICTION_THRESHOLD = 0.5

#: Centroids closer than this share of the true grains' mean nearest-neighbour distance may match.
CUTOFF_SHARE = 0.3


class GrainAgreement(BaseModel):
    """How well the grains of a prediction agree with the grains of its truth."""

    model_config = ConfigDict(extra="forbid")

    true_grains: int = Field(description="Complete grains of the truth.")
    predicted_grains: int = Field(
        description=f"Complete grains of the prediction binarized at {PREDICTION_THRESHOLD}."
    )
    count_error: float | None = Field(
        description="(predicted - true) / true complete grains; null without a true grain."
    )
    ks_statistic: float | None = Field(
        description="Two-sample Kolmogorov-Smirnov statistic of the grain areas (0 = same "
        "distribution); null when either side has no grain."
    )
    ks_pvalue: float | None = Field(
        description="p-value of the KS test (small: the area distributions differ)."
    )
    cutoff_px: float | None = Field(
        description=f"Matching cutoff: {CUTOFF_SHARE} x the mean nearest-neighbour distance of "
        "the true centroids, px; null with fewer than 2 true grains."
    )
    matches: int | None = Field(description="One-to-one centroid matches below the cutoff.")
    centroid_f1: float | None = Field(
        description="2 matches / (predicted + true grains), in [0, 1] (higher is better)."
    )
    orphan_fraction: float | None = Field(
        description="Unmatched grains of both / all grains of both (= 1 - centroid_f1)."
    )
    disregistry: float | None = Field(
        description="Sum of matched centroid distances / (matches x cutoff): 0 for a perfect "
        "match, 1 at the cutoff; null without a match."
    )
    adapted_rand_error: float | None = Field(
        description="Adapted Rand error of the grain label images (0 = same segmentation)."
    )


def match_centroids(
    true_centroids: np.ndarray, pred_centroids: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray]:
    """Match centroids one-to-one, the most pairs closer than ``cutoff``, then the closest.

    Parameters
    ----------
    true_centroids : (n, 2) float
    pred_centroids : (m, 2) float
    cutoff : float
        Pairs at this distance or more are not allowed.

    Returns
    -------
    pairs : (k, 2) int64
        ``(true index, predicted index)`` of each match.
    distances : (k,) float64

    >>> t = np.array([[0.0, 0.0], [10.0, 0.0]]); p = np.array([[10.0, 1.0], [50.0, 50.0]])
    >>> pairs, d = match_centroids(t, p, 5.0)
    >>> pairs.tolist(), d.tolist()
    ([[1, 0]], [1.0])
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    if true_centroids.size == 0 or pred_centroids.size == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    distance = cdist(true_centroids, pred_centroids)
    allowed = distance < cutoff
    # A forbidden pair costs more than any set of allowed ones, so the assignment
    # first maximizes the number of allowed pairs, then minimizes their distance.
    forbidden_cost = cutoff * min(distance.shape) + 1.0
    cost = np.where(allowed, distance, forbidden_cost)
    rows, cols = linear_sum_assignment(cost)
    keep = allowed[rows, cols]
    pairs = np.stack([rows[keep], cols[keep]], axis=1).astype(np.int64)
    return pairs, distance[rows[keep], cols[keep]]


def mean_nearest_neighbour(centroids: np.ndarray) -> float | None:
    """Mean distance from each point to its nearest other point; None for fewer than 2.

    >>> mean_nearest_neighbour(np.array([[0.0, 0.0], [0.0, 3.0], [0.0, 7.0]]))
    3.3333333333333335
    """
    from scipy.spatial import cKDTree

    if len(centroids) < 2:
        return None
    distances, _ = cKDTree(centroids).query(centroids, k=2)
    return float(distances[:, 1].mean())


@dataclass(frozen=True)
class TruthGrains:
    """What :func:`grain_agreement` needs of a truth's grains, small enough to keep per image.

    A sweep scores every checkpoint against the same truths, so it measures each
    truth's grains once and keeps them for the whole sweep: the region labels in the
    smallest unsigned type (a 1024 px ``GrainMap`` holds 6 MiB with its boundary and
    skeleton; this, 2 MiB), the complete grains' count, areas and centroids.
    """

    labels: np.ndarray
    count: int
    complete_areas: np.ndarray
    complete_centroids: np.ndarray

    @classmethod
    def of(cls, gmap: grain_defs.GrainMap) -> TruthGrains:
        """The parts of ``gmap`` that the agreement reads."""
        dtype = np.uint16 if gmap.regions <= np.iinfo(np.uint16).max else np.uint32
        return cls(gmap.labels.astype(dtype), gmap.count, gmap.complete_areas, gmap.centroids())

    def centroids(self) -> np.ndarray:
        """``(count, 2)`` centroids (row, column) of the complete grains, as ``GrainMap``'s."""
        return self.complete_centroids


def grain_agreement(
    pred: np.ndarray,
    truth: np.ndarray,
    true_map: grain_defs.GrainMap | TruthGrains | None = None,
) -> GrainAgreement:
    """Grain agreement of a prediction with its truth (see the module docstring).

    Parameters
    ----------
    pred : (H, W) float ndarray in [0, 1]
        The network's output; binarized at :data:`PREDICTION_THRESHOLD`.
    truth : (H, W) bool ndarray
        The label, True on the lines.
    true_map : GrainMap or TruthGrains, optional
        ``grain_map(truth)`` (or its :class:`TruthGrains`) when the caller scores
        several predictions against one truth and has it already.

    Returns
    -------
    GrainAgreement
    """
    from scipy.stats import ks_2samp
    from skimage.metrics import adapted_rand_error

    if pred.shape != truth.shape or pred.ndim != 2:
        raise ValueError(
            f"pred and truth must be (H, W) of one shape, got {pred.shape} and {truth.shape}"
        )
    if true_map is None:
        true_map = grain_defs.grain_map(truth.astype(bool))
    elif true_map.labels.shape != truth.shape:
        raise ValueError(f"true_map is {true_map.labels.shape}, truth {truth.shape}")
    pred_map = grain_defs.grain_map(pred > PREDICTION_THRESHOLD)
    n_true, n_pred = true_map.count, pred_map.count
    count_error = (n_pred - n_true) / n_true if n_true else None
    ks_statistic = ks_pvalue = None
    if n_true and n_pred:
        ks = ks_2samp(true_map.complete_areas, pred_map.complete_areas)
        ks_statistic, ks_pvalue = float(ks.statistic), float(ks.pvalue)
    true_c = true_map.centroids()
    nearest = mean_nearest_neighbour(true_c)
    cutoff = CUTOFF_SHARE * nearest if nearest is not None else None
    matches = centroid_f1 = orphan = disregistry = None
    if cutoff is not None and cutoff > 0:
        pairs, distances = match_centroids(true_c, pred_map.centroids(), cutoff)
        matches = int(len(pairs))
        centroid_f1 = 2.0 * matches / (n_true + n_pred)
        orphan = (n_true + n_pred - 2 * matches) / (n_true + n_pred)
        disregistry = float(distances.sum() / (matches * cutoff)) if matches else None
    rand_error = None
    if truth.size:
        rand_error = float(adapted_rand_error(true_map.labels, pred_map.labels)[0])
    return GrainAgreement(
        true_grains=n_true,
        predicted_grains=n_pred,
        count_error=count_error,
        ks_statistic=ks_statistic,
        ks_pvalue=ks_pvalue,
        cutoff_px=cutoff,
        matches=matches,
        centroid_f1=centroid_f1,
        orphan_fraction=orphan,
        disregistry=disregistry,
        adapted_rand_error=rand_error,
    )


#: The grain agreement's columns in metrics tables (``grain_<field>``), in table order.
GRAIN_COLUMNS = (
    "count_error",
    "ks_statistic",
    "ks_pvalue",
    "centroid_f1",
    "orphan_fraction",
    "disregistry",
    "adapted_rand_error",
)

_COUNTS = ("true_grains", "predicted_grains", "matches")


def grain_columns(agreement: GrainAgreement | None) -> dict[str, float | None]:
    """The flat ``grain_<name>`` columns of an agreement (all None when there is none).

    >>> grain_columns(None)["grain_centroid_f1"] is None
    True
    """
    return {
        f"grain_{name}": (None if agreement is None else getattr(agreement, name))
        for name in GRAIN_COLUMNS
    }


def mean_agreement(agreements: list[GrainAgreement | None]) -> GrainAgreement | None:
    """The agreement of a mean row: counts summed, every other value averaged.

    Values that are None in some rows are averaged over the others (None when
    none has one); None when no row has an agreement at all.
    """
    present = [a for a in agreements if a is not None]
    if not present:
        return None
    values: dict[str, object] = {}
    for name in GrainAgreement.model_fields:
        known = [getattr(a, name) for a in present if getattr(a, name) is not None]
        if name in _COUNTS:
            values[name] = int(sum(known)) if known or name != "matches" else None
        else:
            values[name] = float(np.mean(known)) if known else None
    return GrainAgreement(**values)
