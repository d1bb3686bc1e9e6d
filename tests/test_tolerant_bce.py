"""The balanced tolerant BCE: numpy against the definition, torch against numpy, and its ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from datatool.labels import dilate_to_width, skeleton
from datatool.metrics.losses import gaussian_loss, tolerant_bce, tolerant_bce_terms
from datatool.metrics.results import score
from datatool.synth import make_sample
from datatool.torch import CombinedLoss, TolerantBCELoss


def direct_tolerant_bce(pred, truth, sigma=3.0, kernel_size=15) -> float:
    """The definition, written out: for each of the k^2 offsets, every pixel's weighted neighbour.

    O(N k^2), with explicit zero padding for values outside the image.
    """
    pred = np.asarray(pred, np.float64)
    truth = np.asarray(truth, bool)
    height, width = pred.shape
    radius = kernel_size // 2
    padded_pred = np.pad(pred, radius)
    padded_truth = np.pad(truth.astype(np.float64), radius)
    found = np.zeros_like(pred)
    spread = np.zeros_like(pred)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            g = math.exp(-(dy * dy + dx * dx) / (2 * sigma * sigma))
            window = (
                slice(radius + dy, radius + dy + height),
                slice(radius + dx, radius + dx + width),
            )
            found = np.maximum(found, g * padded_pred[window])
            spread = np.maximum(spread, g * padded_truth[window])
    with np.errstate(divide="ignore"):
        miss = -np.maximum(np.log(found[truth]), -100)
        false = -np.maximum(np.log(1 - pred[~truth] * (1 - spread[~truth])), -100)
    l_miss = float(miss.mean()) if miss.size else 0.0
    l_false = float(false.mean()) if false.size else 0.0
    return (l_miss + l_false) / 2


def real_shaped_tracing(side: int = 256, seed: int = 3, grain_px: float = 40.0) -> np.ndarray:
    """A 3-px tracing of the complete grains of a Voronoi micrograph, as the build makes them."""
    sample = make_sample(seed, size=(side, side), grain_px=grain_px, strip=0)
    return dilate_to_width(skeleton(sample.boundaries), 3)


def random_case(shape, seed, density=0.1):
    rng = np.random.default_rng(seed)
    pred = rng.random(shape)
    pred[rng.random(shape) < 0.05] = 0.0  # exact zeros and ones hit the log clamps
    pred[rng.random(shape) < 0.05] = 1.0
    return pred, rng.random(shape) < density


@pytest.mark.parametrize(
    ("shape", "seed", "sigma", "kernel_size"),
    [((17, 23), 0, 3.0, 15), ((9, 30), 1, 1.0, 5), ((12, 12), 2, 2.5, 7), ((5, 4), 3, 3.0, 15)],
)
def test_numpy_matches_the_direct_definition_on_random_inputs(shape, seed, sigma, kernel_size):
    pred, truth = random_case(shape, seed)
    expected = direct_tolerant_bce(pred, truth, sigma, kernel_size)
    assert tolerant_bce(pred, truth, sigma, kernel_size) == pytest.approx(expected, abs=1e-6)


def test_numpy_matches_the_direct_definition_on_a_real_shaped_tracing():
    truth = real_shaped_tracing(side=128, seed=5, grain_px=24.0)
    assert truth.any() and not truth.all()
    rng = np.random.default_rng(0)
    blurred = ndi.gaussian_filter(np.roll(truth, 1, axis=0).astype(np.float64), 1.2)
    pred = np.clip(blurred / blurred.max() + rng.normal(0, 0.05, truth.shape), 0, 1)
    expected = direct_tolerant_bce(pred, truth)
    assert tolerant_bce(pred, truth) == pytest.approx(expected, abs=1e-6)


def test_empty_pixel_sets_count_zero():
    empty = np.zeros((10, 10), bool)
    full = np.ones((10, 10), bool)
    assert tolerant_bce_terms(np.full((10, 10), 0.3), empty)[0] == 0.0
    assert tolerant_bce_terms(np.full((10, 10), 0.3), full)[1] == 0.0
    assert tolerant_bce(np.zeros((10, 10)), empty) == 0.0


def test_bad_arguments_are_refused():
    truth = np.zeros((8, 8), bool)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        tolerant_bce(np.zeros((8, 8)), truth, kernel_size=4)
    with pytest.raises(ValueError, match="pred must lie in"):
        tolerant_bce(np.full((8, 8), 1.5), truth)
    with pytest.raises(ValueError, match="shapes differ"):
        tolerant_bce(np.zeros((8, 9)), truth)


def test_ranking_exact_shift_halo_blank_where_the_gaussian_loss_prefers_the_halo():
    truth = real_shaped_tracing()
    exact = truth.astype(np.float64)
    shifted = np.zeros_like(exact)
    shifted[:, 2:] = exact[:, :-2]
    disk = np.hypot(*np.mgrid[-4:5, -4:5]) <= 4
    halo = ndi.binary_dilation(truth, structure=disk).astype(np.float64)
    blank = np.zeros_like(exact)
    # The lab's normalized Gaussian loss can be gamed: it scores the halo better than the truth.
    assert gaussian_loss(halo, truth) < gaussian_loss(exact, truth)
    losses = [tolerant_bce(p, truth) for p in (exact, shifted, halo, blank)]
    assert losses[0] < losses[1] < losses[2] < losses[3], losses


def test_score_reports_tolerant_bce_per_sigma():
    truth = real_shaped_tracing(side=64, grain_px=20.0)
    pred = ndi.gaussian_filter(truth.astype(np.float64), 1.0)
    row = score(pred, truth, sigmas=[1.0])
    assert row.tolerant_bce == pytest.approx(tolerant_bce(pred, truth, 3.0))
    assert row.tolerant_bce_sigmas == {
        "3": row.tolerant_bce,
        "1": pytest.approx(tolerant_bce(pred, truth, 1.0)),
    }
    assert "tolerant_bce_sigma1" in row.metric_values()


# --------------------------------------------------------------------------- torch


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_matches_numpy_per_image(dtype):
    truths = np.stack([real_shaped_tracing(side=64, seed=s, grain_px=20.0) for s in (1, 2)])
    preds = np.stack(
        [random_case((64, 64), 7)[0], ndi.gaussian_filter(truths[1].astype(np.float64), 1.5)]
    )
    expected = [tolerant_bce(p, t) for p, t in zip(preds, truths, strict=True)]
    pred_t = torch.from_numpy(preds)[:, None].to(dtype)
    truth_t = torch.from_numpy(truths)[:, None].to(dtype)
    per_image = TolerantBCELoss(reduction="none")(pred_t, truth_t)
    assert per_image.dtype == dtype
    tolerance = 1e-5 if dtype == torch.float32 else 1e-9
    # numpy computes in float64 on the float32-rounded prediction for a like-for-like check.
    if dtype == torch.float32:
        expected = [
            tolerant_bce(p.astype(np.float32).astype(np.float64), t)
            for p, t in zip(preds, truths, strict=True)
        ]
    assert per_image.tolist() == pytest.approx(expected, abs=tolerance)
    mean = TolerantBCELoss()(pred_t, truth_t)
    assert mean.item() == pytest.approx(float(np.mean(expected)), abs=tolerance)


def test_gradcheck_on_a_small_float64_case():
    rng = np.random.default_rng(4)
    # Values away from 0 and 1 and without ties, where the loss is smooth.
    pred = torch.tensor(rng.uniform(0.05, 0.95, (1, 1, 5, 6)), requires_grad=True)
    truth = torch.from_numpy(rng.random((1, 1, 5, 6)) < 0.3).double()
    loss = TolerantBCELoss(sigma=1.5, kernel_size=5)
    assert torch.autograd.gradcheck(lambda p: loss(p, truth), (pred,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_are_finite_at_zero_and_one(dtype):
    truth = torch.zeros(2, 1, 16, 16, dtype=dtype)
    truth[:, :, 8, :] = 1
    for fill in (0.0, 1.0):
        pred = torch.full_like(truth, fill).requires_grad_(True)
        for module in (TolerantBCELoss(), CombinedLoss()):
            pred.grad = None
            value = module(pred, truth)
            value.backward()
            assert torch.isfinite(value) and torch.isfinite(pred.grad).all(), (fill, module)
    mixed = truth.clone().requires_grad_(True)  # exact prediction: zeros and ones
    TolerantBCELoss()(mixed, truth).backward()
    assert torch.isfinite(mixed.grad).all()


def test_training_signal_points_toward_the_truth():
    truth = torch.zeros(1, 1, 20, 20)
    truth[:, :, 10, :] = 1
    pred = torch.full_like(truth, 0.3).requires_grad_(True)
    TolerantBCELoss()(pred, truth).backward()
    # More prediction on the line lowers the loss; far from it, more prediction raises it.
    assert pred.grad[0, 0, 10].mean() < 0
    assert pred.grad[0, 0, 0].mean() > 0


def test_combined_loss_is_the_weighted_sum():
    truth = torch.from_numpy(real_shaped_tracing(side=32, grain_px=12.0))[None, None].float()
    pred = torch.full_like(truth, 0.4)
    bce = torch.nn.functional.binary_cross_entropy(pred, truth)
    tolerant = TolerantBCELoss()(pred, truth)
    combined = CombinedLoss(bce_weight=0.5, tolerant_weight=2.0)(pred, truth)
    assert combined.item() == pytest.approx(0.5 * bce.item() + 2.0 * tolerant.item(), rel=1e-6)
    with pytest.raises(ValueError, match="both 0"):
        CombinedLoss(0.0, 0.0)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        TolerantBCELoss(kernel_size=4)
    with pytest.raises(ValueError, match="B x 1 x H x W"):
        TolerantBCELoss()(pred[0], truth[0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    truth = torch.from_numpy(real_shaped_tracing(side=64, grain_px=20.0))[None, None].float()
    pred = torch.rand(truth.shape, generator=torch.Generator().manual_seed(0))
    cpu = TolerantBCELoss()(pred, truth)
    gpu = TolerantBCELoss()(pred.cuda(), truth.cuda())
    assert gpu.item() == pytest.approx(cpu.item(), abs=1e-5)


def test_score_cli_reports_tolerant_bce(tmp_path, run_cli, monkeypatch):
    from datatool.io import write_png

    truth = real_shaped_tracing(side=64, grain_px=20.0)
    write_png(tmp_path / "truth.png", np.where(truth, 255, 0).astype(np.uint8))
    write_png(tmp_path / "pred.png", np.where(np.roll(truth, 2, axis=1), 255, 0).astype(np.uint8))
    code, out, _ = run_cli(
        "score", tmp_path / "pred.png", "--truth", tmp_path / "truth.png", "--json"
    )
    assert code == 0
    (row,) = __import__("json").loads(out)
    expected = tolerant_bce(np.roll(truth, 2, axis=1).astype(np.float64), truth)
    assert row["tolerant_bce"] == pytest.approx(expected)
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_cli("score", tmp_path / "pred.png", "--truth", tmp_path / "truth.png")
    assert code == 0 and "tolerant BCE" in out and f"{expected:.4f}" in out
