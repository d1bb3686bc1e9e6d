"""The numpy losses against direct implementations of their definitions; the report's findings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from datatool.metrics import losses
from datatool.metrics.losses import (
    PRF,
    bce,
    gaussian_kernel,
    gaussian_loss,
    gaussian_reward_map,
    gaussian_spread,
    tolerance_prf,
    tophat_loss,
    tophat_reward_map,
)
from datatool.metrics.results import ScoreParams, score

# --------------------------------------------------------------------------- factories


def random_truth(shape: tuple[int, int], density: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) < density


def grain_truth(size: int = 64, width: int = 3) -> np.ndarray:
    """A small tracing: a few straight boundaries, ``width`` px wide, meeting at junctions."""
    line = np.zeros((size, size), bool)
    line[20, 4:60] = True
    line[45, 4:60] = True
    line[4:60, 30] = True
    for i in range(45, 60):  # a diagonal boundary from a junction
        line[i, 30 + (i - 45)] = True
    if width > 1:
        from scipy import ndimage

        line = ndimage.binary_dilation(line, np.ones((width, width), bool))
    return line


def shifted(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = mask[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


# --------------------------------------------------------------------------- references


def spread_by_loops(truth: np.ndarray, sigma: float, kernel_size: int) -> np.ndarray:
    """The definition, pixel by pixel: max over the window of truth(q) * G(p - q), / max."""
    kernel = gaussian_kernel(sigma, kernel_size)
    r = kernel_size // 2
    h, w = truth.shape
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            best = 0.0
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    qy, qx = y + dy, x + dx
                    if 0 <= qy < h and 0 <= qx < w and truth[qy, qx]:
                        best = max(best, kernel[dy + r, dx + r])
            out[y, x] = best
    peak = out.max()
    return out / peak if peak > 0 else out


def spread_by_shifts(truth: np.ndarray, sigma: float, kernel_size: int) -> np.ndarray:
    """The definition vectorized: one shifted maximum per kernel entry."""
    kernel = gaussian_kernel(sigma, kernel_size)
    r = kernel_size // 2
    h, w = truth.shape
    padded = np.pad(truth.astype(np.float64), r)
    out = np.zeros((h, w))
    for i in range(kernel_size):
        for j in range(kernel_size):
            np.maximum(out, padded[i : i + h, j : j + w] * kernel[i, j], out=out)
    peak = out.max()
    return out / peak if peak > 0 else out


def tophat_by_loops(truth: np.ndarray, kernel_size: int) -> np.ndarray:
    r = kernel_size // 2
    h, w = truth.shape
    out = -np.ones((h, w))
    for y in range(h):
        for x in range(w):
            if truth[max(y - r, 0) : y + r + 1, max(x - r, 0) : x + r + 1].any():
                out[y, x] = 1.0
    return out


def bce_by_formula(pred: np.ndarray, truth: np.ndarray) -> float:
    total = 0.0
    for p, t in zip(pred.ravel().tolist(), truth.ravel().tolist(), strict=True):
        log_p = max(math.log(p), -100.0) if p > 0 else -100.0
        log_q = max(math.log(1 - p), -100.0) if p < 1 else -100.0
        total += -(t * log_p + (1 - t) * log_q)
    return total / pred.size


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize(
    ("shape", "density", "sigma", "kernel_size", "seed"),
    [
        ((17, 23), 0.05, 3.0, 15, 0),
        ((17, 23), 0.02, 1.0, 5, 1),
        ((12, 9), 0.10, 0.5, 3, 2),
        ((9, 12), 0.01, 7.0, 21, 3),  # window larger than the image
        ((10, 10), 0.20, 2.0, 1, 4),  # k = 1: the truth itself
        ((1, 30), 0.10, 3.0, 15, 5),  # a single row
        ((8, 8), 0.0, 3.0, 15, 6),  # empty truth: all zero
        ((8, 8), 1.0, 3.0, 15, 7),  # full truth: all one
    ],
)
def test_gaussian_spread_equals_definition(shape, density, sigma, kernel_size, seed):
    truth = random_truth(shape, density, seed)
    expected = spread_by_loops(truth, sigma, kernel_size)
    np.testing.assert_allclose(gaussian_spread(truth, sigma, kernel_size), expected, atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("sigma", "kernel_size"), [(3.0, 15), (1.0, 15), (2.5, 9), (10.0, 41)])
def test_gaussian_spread_equals_vectorized_definition(seed, sigma, kernel_size):
    truth = random_truth((70, 90), 0.01 + 0.02 * seed, seed)
    truth |= grain_truth(90)[:70] if seed % 2 else False
    expected = spread_by_shifts(truth, sigma, kernel_size)
    got = gaussian_spread(truth, sigma, kernel_size)
    np.testing.assert_allclose(got, expected, atol=1e-9)
    np.testing.assert_allclose(gaussian_reward_map(truth, sigma, kernel_size), 2 * expected - 1)


def test_gaussian_spread_accepts_numeric_zero_one_truth():
    truth = random_truth((20, 20), 0.05, 9)
    np.testing.assert_array_equal(
        gaussian_spread(truth.astype(np.uint8)), gaussian_spread(truth.astype(np.float32))
    )


def test_max_aggregation_keeps_junctions_as_bright_as_lines():
    truth = grain_truth(64, width=1)
    spread = gaussian_spread(truth)
    assert spread.max() == 1.0
    np.testing.assert_array_equal(spread[truth], 1.0)  # junction pixels included
    # Next to a junction the value is that of a single line at the same distance.
    assert spread[21, 31] == pytest.approx(math.exp(-1 / 18))
    assert spread[21, 40] == pytest.approx(math.exp(-1 / 18))


def test_gaussian_kernel_is_the_normalized_gaussian():
    kernel = gaussian_kernel(2.0, 7)
    assert kernel.shape == (7, 7)
    assert kernel.sum() == pytest.approx(1.0)
    assert kernel[3, 5] / kernel[3, 3] == pytest.approx(math.exp(-4 / 8))
    assert kernel[0, 0] / kernel[3, 3] == pytest.approx(math.exp(-18 / 8))


@pytest.mark.parametrize("kernel_size", [1, 3, 5, 9])
@pytest.mark.parametrize("seed", [0, 1])
def test_tophat_reward_map_equals_definition(kernel_size, seed):
    truth = random_truth((15, 19), 0.03, seed)
    got = tophat_reward_map(truth, kernel_size)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, tophat_by_loops(truth, kernel_size))


def test_bce_equals_formula_with_clamped_logs():
    rng = np.random.default_rng(3)
    pred = rng.random((9, 11))
    pred[0, :4] = [0.0, 1.0, 0.0, 1.0]  # exactly wrong and right: the -100 clamp
    truth = random_truth((9, 11), 0.3, 3)
    truth[0, :4] = [True, False, False, True]
    assert bce(pred, truth) == pytest.approx(bce_by_formula(pred, truth), rel=1e-12)


def test_bce_agrees_with_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    pred = rng.random((16, 16)).astype(np.float32)
    pred[0, 0], pred[0, 1] = 0.0, 1.0
    truth = random_truth((16, 16), 0.2, 4)
    truth[0, 0], truth[0, 1] = True, False
    expected = torch.nn.BCELoss()(torch.from_numpy(pred), torch.from_numpy(truth.astype("f4")))
    assert bce(pred, truth) == pytest.approx(expected.item(), rel=1e-5)


# --------------------------------------------------------------------------- the report's findings


@pytest.mark.parametrize(("dy", "dx"), [(2, 2), (3, -2), (-2, 3), (3, 3)])
@pytest.mark.parametrize(("line_value", "background"), [(1.0, 0.0), (0.9, 0.05)])
def test_shifted_prediction_beats_black_only_for_tolerant_losses(dy, dx, line_value, background):
    truth = grain_truth()
    # Every boundary drawn, but 2-3 px off in both directions, as in report Figure 7.
    good_but_shifted = np.where(shifted(truth, dy, dx), line_value, background)
    black = np.full(truth.shape, background)
    # BCE double-penalizes the shift: worse than predicting nothing (report 2.3).
    assert bce(good_but_shifted, truth) > bce(black, truth)
    # The tolerant losses rank it better than nothing (lower is better).
    assert tophat_loss(good_but_shifted, truth, kernel_size=5) < tophat_loss(black, truth, 5)
    assert gaussian_loss(good_but_shifted, truth) < gaussian_loss(black, truth)
    assert gaussian_loss(good_but_shifted, truth) < 0


def test_smaller_sigma_is_stricter():
    truth = grain_truth()
    pred = np.clip(shifted(truth, 2, 1) * 0.9 + 0.02, 0, 1)
    loose = gaussian_loss(pred, truth, sigma=3.0, kernel_size=15)
    strict = gaussian_loss(pred, truth, sigma=1.0, kernel_size=15)
    assert strict > loose


def test_perfect_prediction_scores_best():
    truth = grain_truth()
    perfect = truth.astype(np.float64)
    for other in (shifted(truth, 2, 0).astype(np.float64), np.full(truth.shape, 0.5)):
        assert tophat_loss(perfect, truth) < tophat_loss(other, truth)
        assert gaussian_loss(perfect, truth) < gaussian_loss(other, truth)
        assert bce(perfect, truth) < bce(other, truth)


# --------------------------------------------------------------------------- P/R/F1


def line_image(size=40, rows=(20,), width=1):
    mask = np.zeros((size, size), bool)
    for row in rows:
        mask[row - width // 2 : row + width // 2 + 1, 5:35] = True
    return mask


@pytest.mark.parametrize("matching", ["nearest", "one-to-one"])
def test_prf_identical_and_shift_within_tolerance(matching):
    truth = line_image(width=3)
    assert tolerance_prf(truth.astype(float), truth, matching=matching) == PRF(1.0, 1.0, 1.0)
    thin = line_image()
    near = line_image(rows=(22,)).astype(float)  # 2 px off
    assert tolerance_prf(near, thin, 2.0, matching) == PRF(1.0, 1.0, 1.0)
    far = line_image(rows=(23,)).astype(float)
    assert tolerance_prf(far, thin, 2.0, matching) == PRF(0.0, 0.0, 0.0)


def test_prf_measures_centre_lines_so_truth_width_does_not_inflate():
    from skimage.morphology import skeletonize

    truth = line_image(width=3)
    centre_line = skeletonize(truth).astype(float)
    # Measured on the full 3-px truth, two thirds of it would be "missed" at tolerance 0.
    assert tolerance_prf(centre_line, truth, tolerance=0.0) == PRF(1.0, 1.0, 1.0)


def test_prf_counts_false_and_missed_lines():
    truth = line_image(rows=(10, 30))
    pred = line_image(rows=(10,)).astype(float)
    prf = tolerance_prf(pred, truth)
    assert prf.precision == 1.0
    assert prf.recall == pytest.approx(0.5)
    assert prf.f1 == pytest.approx(2 / 3)
    extra = line_image(rows=(10, 30)).astype(float)
    extra[2, 5:35] = 1.0  # a false line 8 px away
    assert tolerance_prf(extra, truth).precision == pytest.approx(2 / 3)


def test_one_to_one_is_stricter_for_double_lines():
    truth = line_image(rows=(20,))
    double = line_image(rows=(19, 21)).astype(float)  # two lines both near one truth line
    nearest = tolerance_prf(double, truth, 2.0, "nearest")
    strict = tolerance_prf(double, truth, 2.0, "one-to-one")
    assert nearest.precision == 1.0
    assert strict.precision == pytest.approx(0.5, abs=0.05)
    assert strict.recall == 1.0


@pytest.mark.parametrize(
    ("pred_empty", "truth_empty", "expected"),
    [
        (True, False, PRF(1.0, 0.0, 0.0)),
        (False, True, PRF(0.0, 1.0, 0.0)),
        (True, True, PRF(1, 1, 1)),
    ],
)
def test_prf_empty_conventions(pred_empty, truth_empty, expected):
    line = line_image()
    pred = np.zeros(line.shape) if pred_empty else line.astype(float)
    truth = np.zeros(line.shape, bool) if truth_empty else line
    for matching in ("nearest", "one-to-one"):
        assert tolerance_prf(pred, truth, matching=matching) == expected


def test_prf_binarizes_prediction_at_one_half():
    truth = line_image()
    assert tolerance_prf(truth * 0.49, truth).recall == 0.0
    assert tolerance_prf(truth * 0.51, truth).recall == 1.0


# --------------------------------------------------------------------------- validation


GOOD_PRED = np.zeros((8, 8))
GOOD_TRUTH = np.zeros((8, 8), bool)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: bce(np.zeros((8, 9)), GOOD_TRUTH), ValueError, r"\(8, 9\) vs \(8, 8\)"),
        (lambda: bce(np.zeros((2, 8, 8)), GOOD_TRUTH), ValueError, "2-D"),
        (lambda: tophat_loss(GOOD_PRED, np.zeros((8,), bool)), ValueError, "2-D"),
        (lambda: bce(GOOD_PRED + 1.5, GOOD_TRUTH), ValueError, r"\[0, 1\]"),
        (lambda: bce(np.full((8, 8), np.nan), GOOD_TRUTH), ValueError, r"\[0, 1\]"),
        (lambda: bce(np.zeros((8, 8), np.uint8), GOOD_TRUTH), TypeError, "255"),
        (lambda: bce(GOOD_PRED, np.full((8, 8), 200)), ValueError, "binary"),
        (lambda: tophat_reward_map(GOOD_TRUTH, 4), ValueError, "odd.*got 4"),
        (lambda: tophat_reward_map(GOOD_TRUTH, 0), ValueError, "odd.*got 0"),
        (lambda: tophat_reward_map(GOOD_TRUTH, 3.0), TypeError, "int"),
        (lambda: gaussian_spread(GOOD_TRUTH, 0.0), ValueError, "sigma.*0.0"),
        (lambda: gaussian_spread(GOOD_TRUTH, -1.0), ValueError, "sigma"),
        (lambda: gaussian_spread(GOOD_TRUTH, float("nan")), ValueError, "sigma"),
        (lambda: gaussian_kernel(3.0, 14), ValueError, "odd.*14"),
        (lambda: tolerance_prf(GOOD_PRED, GOOD_TRUTH, -1.0), ValueError, "tolerance"),
        (lambda: tolerance_prf(GOOD_PRED, GOOD_TRUTH, 2.0, "best"), ValueError, "matching"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    "bad",
    [
        {"kernel_size": 14},
        {"tophat_kernel_size": 2},
        {"sigma": 0},
        {"tolerance": -1},
        {"matching": "best"},
        {"colour": "red"},
    ],
)
def test_score_params_refuse_bad_values(bad):
    with pytest.raises(ValidationError):
        ScoreParams(**bad)


def test_score_collects_every_metric_with_its_params():
    truth = grain_truth()
    pred = np.clip(shifted(truth, 1, 0) * 0.8 + 0.05, 0, 1)
    params = ScoreParams(sigma=2.0, kernel_size=11, tophat_kernel_size=5, tolerance=1.5)
    result = score(pred, truth, params)
    prf = tolerance_prf(pred, truth, 1.5)
    assert result.bce == bce(pred, truth)
    assert result.tophat == tophat_loss(pred, truth, 5)
    assert result.gaussian == gaussian_loss(pred, truth, 2.0, 11)
    assert (result.precision, result.recall, result.f1) == tuple(prf)
    assert result.params == params
    assert score(pred, truth).params == ScoreParams()


def test_module_keeps_torch_out():
    assert "torch" not in vars(losses)
