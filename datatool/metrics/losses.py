"""Pixel-wise and spatially tolerant losses for boundary tracings (numpy).

The lab's report (sections 2-4) shows that pixel-wise binary cross-entropy
punishes a line drawn a few pixels off twice, once for the missed pixel and once
for the false one, so a model that draws the right grains slightly shifted
scores worse than one that draws almost nothing. It proposes two tolerant
losses, implemented here exactly as defined:

* :func:`tophat_loss` rewards prediction inside a ``k x k`` halo around the
  truth and penalizes it outside;
* :func:`gaussian_loss` replaces the halo by a smooth reward that fades from +1
  on the line to -1 far away (a max-aggregated Gaussian spread, so junctions are
  not brighter than lines).

Beyond the report, :func:`tolerance_prf` gives a balanced view of missed and
false lines: precision, recall and F1 of the 1-px centre lines at a distance
tolerance.

In every function ``pred`` is the model's sigmoid output, ``(H, W)`` float in
[0, 1], and ``truth`` the label, ``(H, W)`` bool (or 0/1 numbers), True on the
boundary line. Lower losses are better. The torch versions for training are in
:mod:`datatool.torch.losses`.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np

from datatool.labels import windowed_squared_distance

# torch's BCELoss clamps each log term at -100 so that a confident wrong pixel
# costs 100 instead of infinity; we do the same so both agree.
BCE_LOG_CLAMP = -100.0

# A label pixel strictly between black and white is a sign of a resized or
# antialiased tracing; a few are tolerated (JPEG-like edge noise), more are not.
NON_BINARY_TRUTH_LIMIT = 0.005

Matching = Literal["nearest", "one-to-one"]


# --------------------------------------------------------------------------- validation


def _check_kernel_size(kernel_size: int, name: str = "kernel_size") -> int:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(kernel_size).__name__}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"{name} must be odd and positive, got {kernel_size}")
    return int(kernel_size)


def _check_sigma(sigma: float) -> float:
    if not (isinstance(sigma, int | float | np.floating) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    return float(sigma)


def _check_truth(truth: np.ndarray) -> np.ndarray:
    truth = np.asarray(truth)
    if truth.ndim != 2:
        raise ValueError(f"truth must be a 2-D (H, W) array, got shape {truth.shape}")
    if truth.dtype == bool:
        return truth
    if not np.issubdtype(truth.dtype, np.number):
        raise TypeError(f"truth must be bool or numeric 0/1, got dtype {truth.dtype}")
    if not np.all((truth == 0) | (truth == 1)):
        raise ValueError(
            "truth must be binary (bool or 0/1); got values in "
            f"[{truth.min()}, {truth.max()}] - binarize the label first (pixel > 127)"
        )
    return truth.astype(bool)


def _check_pred(pred: np.ndarray) -> np.ndarray:
    pred = np.asarray(pred)
    if pred.ndim != 2:
        raise ValueError(f"pred must be a 2-D (H, W) array, got shape {pred.shape}")
    if not np.issubdtype(pred.dtype, np.floating):
        raise TypeError(
            f"pred must be float in [0, 1] (sigmoid output), got dtype {pred.dtype}; "
            "divide 8-bit images by 255"
        )
    if pred.size:
        low, high = float(np.min(pred)), float(np.max(pred))
        if not (0.0 <= low and high <= 1.0):  # also catches NaN
            raise ValueError(f"pred must lie in [0, 1], got values in [{low}, {high}]")
    return pred


def _check_pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = _check_pred(pred)
    truth = _check_truth(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"pred and truth shapes differ: {pred.shape} vs {truth.shape}")
    return pred, truth


# --------------------------------------------------------------------------- BCE


def bce(pred: np.ndarray, truth: np.ndarray) -> float:
    """Binary cross-entropy, the mean over all pixels, as torch's ``BCELoss``.

    Parameters
    ----------
    pred : (H, W) float ndarray in [0, 1]
        Sigmoid output.
    truth : (H, W) bool ndarray (or 0/1)
        Label, True on the boundary line.

    Returns
    -------
    float
        ``mean(-(t log p + (1 - t) log(1 - p)))`` with each log clamped at -100.

    Examples
    --------
    >>> import numpy as np
    >>> round(bce(np.full((2, 2), 0.5), np.eye(2, dtype=bool)), 4)
    0.6931
    """
    pred, truth = _check_pair(pred, truth)
    p = pred.astype(np.float64)
    # One log per pixel: log(p) on the line, log(1 - p) off it, as torch computes them.
    probability_of_label = np.where(truth, p, 1.0 - p)
    with np.errstate(divide="ignore"):
        log_likelihood = np.maximum(np.log(probability_of_label), BCE_LOG_CLAMP)
    return float(-np.mean(log_likelihood)) + 0.0


# --------------------------------------------------------------------------- top-hat


def tophat_reward_map(truth: np.ndarray, kernel_size: int = 3) -> np.ndarray:
    """Reward mask of the top-hat loss: +1 in the truth's ``k x k`` halo, -1 elsewhere.

    Parameters
    ----------
    truth : (H, W) bool ndarray (or 0/1)
        Label, True on the boundary line.
    kernel_size : int, odd, >= 1
        Side of the square the truth is dilated by (1 = no halo).

    Returns
    -------
    (H, W) float32 ndarray
        Values in {-1, +1}.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.zeros((1, 5), bool); t[0, 2] = True
    >>> tophat_reward_map(t, 3).tolist()
    [[-1.0, 1.0, 1.0, 1.0, -1.0]]
    """
    truth = _check_truth(truth)
    kernel_size = _check_kernel_size(kernel_size)
    return np.where(_dilate_square(truth, kernel_size), np.float32(1), np.float32(-1))


def _dilate_square(mask: np.ndarray, kernel_size: int) -> np.ndarray:
    """Binary dilation by a ``k x k`` square, pixels outside the image counting as False.

    The square separates into a row and a column pass of shifted ORs on bools,
    2 (k - 1) cheap operations per pixel; faster here than ndimage's filters.
    """
    radius = kernel_size // 2
    height, width = mask.shape
    rows = mask.copy()
    for dx in range(1, radius + 1):
        rows[:, dx:] |= mask[:, : width - dx]
        rows[:, : width - dx] |= mask[:, dx:]
    out = rows.copy()
    for dy in range(1, radius + 1):
        out[dy:] |= rows[: height - dy]
        out[: height - dy] |= rows[dy:]
    return out


def _minus_mean_of_product(pred: np.ndarray, reward_weight: np.ndarray) -> float:
    """``-mean(pred * (2 w - 1))`` for a weight ``w`` in [0, 1] (bool or float).

    Computed as ``(sum(pred) - 2 sum(pred * w)) / N`` in float64 so that the
    reward map itself is never built; a bool ``w`` is a masked sum.
    """
    total = float(np.sum(pred, dtype=np.float64))
    if reward_weight.dtype == bool:
        weighted = float(np.sum(pred, where=reward_weight, dtype=np.float64))
    else:
        weighted = float(np.sum(pred * reward_weight, dtype=np.float64))
    # "+ 0.0" turns the -0.0 of an all-black prediction into 0.0 for printing.
    return (total - 2.0 * weighted) / max(pred.size, 1) + 0.0


def tophat_loss(pred: np.ndarray, truth: np.ndarray, kernel_size: int = 3) -> float:
    """Top-hat loss ``-mean(pred * M)`` with ``M`` from :func:`tophat_reward_map`.

    Prediction inside the halo is rewarded, outside penalized; black prediction
    counts zero. Ranges over [-1, 1]; lower is better.

    Parameters
    ----------
    pred : (H, W) float ndarray in [0, 1]
    truth : (H, W) bool ndarray (or 0/1)
    kernel_size : int, odd, >= 1

    Returns
    -------
    float
    """
    pred, truth = _check_pair(pred, truth)
    halo = _dilate_square(truth, _check_kernel_size(kernel_size))
    return _minus_mean_of_product(pred, halo)


# --------------------------------------------------------------------------- Gaussian


def gaussian_kernel(sigma: float, kernel_size: int) -> np.ndarray:
    """The ``k x k`` Gaussian kernel of standard deviation ``sigma``, summing to 1.

    ``G(dy, dx) = exp(-(dy^2 + dx^2) / (2 sigma^2)) / Z`` for ``|dy|, |dx| <= k // 2``.
    The scale ``Z`` cancels in the normalized spread.

    Returns
    -------
    (k, k) float64 ndarray
    """
    sigma = _check_sigma(sigma)
    kernel_size = _check_kernel_size(kernel_size)
    offsets = np.arange(kernel_size) - kernel_size // 2
    g = np.exp(-(offsets.astype(np.float64) ** 2) / (2.0 * sigma * sigma))
    kernel = np.outer(g, g)
    return kernel / kernel.sum()


def gaussian_spread(truth: np.ndarray, sigma: float = 3.0, kernel_size: int = 15) -> np.ndarray:
    """Max-aggregated Gaussian spread of the truth, normalized to [0, 1].

    ``S(p) = max over q in the k x k window centred on p of truth(q) * G(p - q)``,
    divided by its maximum (all zero for an empty truth). Max-aggregation, not a
    sum, keeps junctions as bright as lines.

    The result equals the definition (to rounding, < 1e-12) but costs O(k) per
    pixel: for a binary truth and a non-negative separable kernel the maximum is
    ``exp(-D / (2 sigma^2))`` with ``D`` the windowed squared distance of
    :func:`windowed_squared_distance`, looked up in a table.

    Parameters
    ----------
    truth : (H, W) bool ndarray (or 0/1)
    sigma : float > 0
        Standard deviation of the Gaussian, in pixels.
    kernel_size : int, odd, >= 1
        Side of the window; the Gaussian is zero beyond it.

    Returns
    -------
    (H, W) float64 ndarray
        1 on the line, ``exp(-d^2 / (2 sigma^2))`` nearby, 0 outside the window.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.zeros((1, 5), bool); t[0, 0] = True
    >>> np.round(gaussian_spread(t, sigma=1.0, kernel_size=5), 3).tolist()
    [[1.0, 0.607, 0.135, 0.0, 0.0]]
    """
    truth = _check_truth(truth)
    sigma = _check_sigma(sigma)
    kernel_size = _check_kernel_size(kernel_size)
    radius = kernel_size // 2
    squared = windowed_squared_distance(truth, kernel_size)
    none_in_window = 2 * radius * radius + 1
    table = np.exp(-np.arange(none_in_window + 1, dtype=np.float64) / (2.0 * sigma * sigma))
    table[none_in_window] = 0.0
    # The maximum is exactly 1 (at a truth pixel) or the truth is empty: dividing
    # by it, as the definition says, changes nothing and is skipped.
    return table.take(squared)


def gaussian_reward_map(truth: np.ndarray, sigma: float = 3.0, kernel_size: int = 15) -> np.ndarray:
    """Reward map ``R = 2 S - 1`` of the Gaussian loss (see :func:`gaussian_spread`).

    Returns
    -------
    (H, W) float64 ndarray
        +1 on the line, fading through 0 to -1 far away.
    """
    spread = gaussian_spread(truth, sigma, kernel_size)
    return 2.0 * spread - 1.0


def gaussian_loss(
    pred: np.ndarray, truth: np.ndarray, sigma: float = 3.0, kernel_size: int = 15
) -> float:
    """Normalized Gaussian loss ``-mean(pred * R)`` with ``R`` from :func:`gaussian_reward_map`.

    Ranges over [-1, 1]; lower is better. A smaller ``sigma`` is stricter.

    Parameters
    ----------
    pred : (H, W) float ndarray in [0, 1]
    truth : (H, W) bool ndarray (or 0/1)
    sigma : float > 0
    kernel_size : int, odd, >= 1

    Returns
    -------
    float
    """
    pred, truth = _check_pair(pred, truth)
    return _minus_mean_of_product(pred, gaussian_spread(truth, sigma, kernel_size))


# --------------------------------------------------------------------------- precision / recall


class PRF(NamedTuple):
    """Tolerance precision, recall and F1, each in [0, 1]."""

    precision: float
    recall: float
    f1: float


def _centre_line(mask: np.ndarray) -> np.ndarray:
    from skimage.morphology import skeletonize

    if not mask.any():
        return mask
    return skeletonize(mask)


def _disk_offsets(tolerance: float) -> list[tuple[int, int]]:
    reach = int(math.floor(tolerance))
    return [
        (dy, dx)
        for dy in range(-reach, reach + 1)
        for dx in range(-reach, reach + 1)
        if dy * dy + dx * dx <= tolerance * tolerance + 1e-9
    ]


# Up to this many disk offsets, shifted ORs beat a Euclidean distance transform.
_SHIFTED_OR_MAX_OFFSETS = 120


def _within_tolerance(mask: np.ndarray, tolerance: float) -> np.ndarray:
    """Pixels at Euclidean distance <= ``tolerance`` from a True pixel of ``mask``."""
    offsets = _disk_offsets(tolerance)
    if len(offsets) > _SHIFTED_OR_MAX_OFFSETS:
        from scipy import ndimage

        return ndimage.distance_transform_edt(~mask) <= tolerance + 1e-9
    height, width = mask.shape
    near = mask.copy()
    for dy, dx in offsets:
        if abs(dy) >= height or abs(dx) >= width or (dy, dx) == (0, 0):
            continue
        near[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] |= mask[
            max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
        ]
    return near


def _count_within(points_from: np.ndarray, points_to: np.ndarray, tolerance: float) -> int:
    """How many ``True`` pixels of ``points_from`` lie within ``tolerance`` of ``points_to``."""
    return int(np.count_nonzero(points_from & _within_tolerance(points_to, tolerance)))


def _one_to_one_matches(pred_line: np.ndarray, truth_line: np.ndarray, tolerance: float) -> int:
    """Size of a maximum matching of predicted to truth pixels closer than ``tolerance``."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    height, width = truth_line.shape
    pred_y, pred_x = np.nonzero(pred_line)
    truth_index = np.full(truth_line.shape, -1, dtype=np.int64)
    truth_index[truth_line] = np.arange(np.count_nonzero(truth_line))
    rows, cols = [], []
    for dy, dx in _disk_offsets(tolerance):
        y, x = pred_y + dy, pred_x + dx
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        target = np.full(pred_y.shape, -1, dtype=np.int64)
        target[inside] = truth_index[y[inside], x[inside]]
        hit = target >= 0
        rows.append(np.nonzero(hit)[0])
        cols.append(target[hit])
    row = np.concatenate(rows)
    col = np.concatenate(cols)
    graph = csr_matrix(
        (np.ones(row.size, dtype=np.int8), (row, col)),
        shape=(pred_y.size, int(np.count_nonzero(truth_line))),
    )
    match = maximum_bipartite_matching(graph, perm_type="column")
    return int(np.count_nonzero(match >= 0))


def tolerance_prf(
    pred: np.ndarray,
    truth: np.ndarray,
    tolerance: float = 2.0,
    matching: Matching = "nearest",
) -> PRF:
    """Precision, recall and F1 of the centre lines at a distance tolerance.

    The prediction is binarized at 0.5 and both it and the truth are thinned to
    1-px skeletons, so that the truth's 3-px width does not inflate the scores.

    * precision: share of predicted skeleton pixels within ``tolerance`` px
      (Euclidean, inclusive) of the truth skeleton;
    * recall: share of truth skeleton pixels within ``tolerance`` of the
      predicted skeleton;
    * f1: their harmonic mean (0 when both are 0).

    With ``matching="one-to-one"`` (the Berkeley boundary benchmark's rule) each
    truth pixel can be matched by at most one predicted pixel and vice versa;
    both scores are then ``matches / pixels``, which is never higher than with
    ``"nearest"``.

    Conventions, so that the result is never NaN: an empty prediction has
    precision 1 and recall 0 (it claims nothing false but finds nothing); an
    empty truth has precision 0 and recall 1; both empty give 1, 1, 1.

    Parameters
    ----------
    pred : (H, W) float ndarray in [0, 1]
    truth : (H, W) bool ndarray (or 0/1)
    tolerance : float >= 0
        Largest distance in pixels at which a pixel still counts as matched.
    matching : {"nearest", "one-to-one"}

    Returns
    -------
    PRF
    """
    pred, truth = _check_pair(pred, truth)
    if not (isinstance(tolerance, int | float | np.floating) and tolerance >= 0):
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    if matching not in ("nearest", "one-to-one"):
        raise ValueError(f"matching must be 'nearest' or 'one-to-one', got {matching!r}")
    pred_line = _centre_line(pred > 0.5)
    truth_line = _centre_line(truth)
    n_pred = int(np.count_nonzero(pred_line))
    n_truth = int(np.count_nonzero(truth_line))
    if n_pred == 0 and n_truth == 0:
        return PRF(1.0, 1.0, 1.0)
    if n_pred == 0:
        return PRF(1.0, 0.0, 0.0)
    if n_truth == 0:
        return PRF(0.0, 1.0, 0.0)
    if matching == "one-to-one":
        matches = _one_to_one_matches(pred_line, truth_line, float(tolerance))
        precision, recall = matches / n_pred, matches / n_truth
    else:
        precision = _count_within(pred_line, truth_line, float(tolerance)) / n_pred
        recall = _count_within(truth_line, pred_line, float(tolerance)) / n_truth
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return PRF(precision, recall, f1)


# --------------------------------------------------------------------------- balanced tolerant BCE


def gaussian_weights_1d(sigma: float, kernel_size: int) -> np.ndarray:
    """The 1-D factor ``g(d) = exp(-d^2 / (2 sigma^2))`` for ``|d| <= k // 2``, with ``g(0) = 1``.

    Returns
    -------
    (k,) float64 ndarray
    """
    sigma = _check_sigma(sigma)
    kernel_size = _check_kernel_size(kernel_size)
    offsets = np.arange(kernel_size, dtype=np.float64) - kernel_size // 2
    return np.exp(-(offsets**2) / (2.0 * sigma * sigma))


def _weighted_window_max_1d(values: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """``out[i] = max_j weights[j] * values[i + j - r]`` along ``axis``, zero outside.

    ``values`` must be non-negative (zero is then the neutral element of the max).
    """
    radius = weights.size // 2
    length = values.shape[axis]
    out = values * weights[radius]
    moved_out = np.moveaxis(out, axis, -1)
    moved_in = np.moveaxis(values, axis, -1)
    for shift in range(1, min(radius, length - 1) + 1):
        # Offset +shift reads the pixel ``shift`` further on, offset -shift the one before.
        np.maximum(
            moved_out[..., : length - shift],
            weights[radius + shift] * moved_in[..., shift:],
            out=moved_out[..., : length - shift],
        )
        np.maximum(
            moved_out[..., shift:],
            weights[radius - shift] * moved_in[..., : length - shift],
            out=moved_out[..., shift:],
        )
    return out


def gaussian_window_max(
    values: np.ndarray, sigma: float = 3.0, kernel_size: int = 15
) -> np.ndarray:
    """``out(x) = max over |dx|, |dy| <= k // 2 of g(d) * values(x + d)``, zero outside the image.

    ``g(d) = exp(-|d|^2 / (2 sigma^2))`` is a product of two 1-D Gaussians and
    every factor is non-negative, so the ``k x k`` maximum is a row pass then
    a column pass of 1-D weighted maxima: ``2 k`` shifted maxima, not ``k^2``.

    Parameters
    ----------
    values : (H, W) float ndarray, >= 0
    sigma : float > 0
    kernel_size : int, odd, >= 1

    Returns
    -------
    (H, W) float64 ndarray

    Examples
    --------
    >>> import numpy as np
    >>> v = np.zeros((1, 5)); v[0, 2] = 1.0
    >>> np.round(gaussian_window_max(v, sigma=1.0, kernel_size=3), 3).tolist()
    [[0.0, 0.607, 1.0, 0.607, 0.0]]
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be a 2-D (H, W) array, got shape {values.shape}")
    weights = gaussian_weights_1d(sigma, kernel_size)
    rows = _weighted_window_max_1d(values, weights, axis=1)
    return _weighted_window_max_1d(rows, weights, axis=0)


def tolerant_bce_terms(
    pred: np.ndarray, truth: np.ndarray, sigma: float = 3.0, kernel_size: int = 15
) -> tuple[float, float]:
    """The two halves ``(L_miss, L_false)`` of :func:`tolerant_bce`.

    Returns
    -------
    (float, float)
        ``L_miss`` (truth pixels with no confident prediction nearby) and
        ``L_false`` (prediction far from any truth); each 0 when its pixel set is empty.
    """
    pred, truth = _check_pair(pred, truth)
    p = pred.astype(np.float64)
    found = gaussian_window_max(p, sigma, kernel_size)
    # S is the same windowed maximum of the binary truth, computed exactly from
    # the windowed distance; outside every truth window it is 0.
    spread = gaussian_spread(truth, sigma, kernel_size)
    with np.errstate(divide="ignore"):
        miss_log = np.maximum(np.log(found[truth]), BCE_LOG_CLAMP)
        background = ~truth
        false_log = np.maximum(
            np.log(1.0 - p[background] * (1.0 - spread[background])), BCE_LOG_CLAMP
        )
    miss = float(-np.mean(miss_log)) if miss_log.size else 0.0
    false = float(-np.mean(false_log)) if false_log.size else 0.0
    return miss + 0.0, false + 0.0


def tolerant_bce(
    pred: np.ndarray, truth: np.ndarray, sigma: float = 3.0, kernel_size: int = 15
) -> float:
    """Balanced tolerant BCE: a BCE that forgives small offsets and punishes halos and blanks.

    With ``g(d) = exp(-|d|^2 / (2 sigma^2))`` over offsets ``|dx|, |dy| <= k // 2``
    (``g(0) = 1``) and values outside the image counting as 0:

    * ``found(x) = max_d g(d) p(x + d)``, the best nearby prediction, discounted by distance;
    * ``S(x) = max_d g(d) T(x + d)``, the max-aggregated spread of the truth;
    * ``L_miss = -mean over truth pixels of max(log found(x), -100)``;
    * ``L_false = -mean over non-truth pixels of max(log(1 - p(x) (1 - S(x))), -100)``;
    * ``tolerant_bce = (L_miss + L_false) / 2``; a term whose pixel set is empty is 0.

    A line drawn 2 px off costs a little, a thick halo around the truth costs
    more, a blank prediction costs most. Each half is averaged over its own
    pixels, so the rare boundary pixels weigh as much as the background.

    Parameters
    ----------
    pred : (H, W) float ndarray in [0, 1]
        Sigmoid output.
    truth : (H, W) bool ndarray (or 0/1)
        Label, True on the boundary line.
    sigma : float > 0
        Standard deviation of the Gaussian, px.
    kernel_size : int, odd, >= 1
        Window side, px.

    Returns
    -------
    float
        In [0, 100]; 0 for a prediction equal to the truth.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.zeros((8, 8), bool); t[4] = True
    >>> tolerant_bce(t.astype(float), t), round(tolerant_bce(np.zeros((8, 8)), t), 1)
    (0.0, 50.0)
    """
    miss, false = tolerant_bce_terms(pred, truth, sigma, kernel_size)
    return (miss + false) / 2.0
