"""The torch losses agree with the numpy ones, are batched, and train toward the truth."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from datatool.metrics import losses  # noqa: E402
from datatool.torch.losses import (  # noqa: E402
    GaussianLoss,
    TopHatLoss,
    gaussian_reward_map,
    tophat_reward_map,
)


def grain_truth(size: int = 48) -> np.ndarray:
    from scipy import ndimage

    line = np.zeros((size, size), bool)
    line[15, 3:45] = True
    line[3:45, 24] = True
    for i in range(30, 45):
        line[i, i - 20] = True
    return ndimage.binary_dilation(line, np.ones((3, 3), bool))


def batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three samples: the grain tracing, a random sparse truth and an empty truth."""
    rng = np.random.default_rng(seed)
    truths = np.stack([grain_truth(), rng.random((48, 48)) < 0.02, np.zeros((48, 48), bool)])
    preds = rng.random((3, 48, 48)).astype(np.float32)
    return preds, truths


def to_b1hw(array: np.ndarray) -> torch.Tensor:
    """``(B, H, W)`` or ``(H, W)`` array to a float ``(B, 1, H, W)`` tensor."""
    tensor = torch.from_numpy(np.ascontiguousarray(array)).float()
    return tensor.reshape(-1, 1, *tensor.shape[-2:])


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_tophat_matches_numpy(kernel_size):
    preds, truths = batch(1)
    got = TopHatLoss(kernel_size, reduction="none")(to_b1hw(preds), to_b1hw(truths))
    expected = [losses.tophat_loss(p, t, kernel_size) for p, t in zip(preds, truths, strict=True)]
    assert got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-7)
    maps = tophat_reward_map(to_b1hw(truths), kernel_size)[:, 0].numpy()
    for reward, truth in zip(maps, truths, strict=True):
        np.testing.assert_array_equal(reward, losses.tophat_reward_map(truth, kernel_size))


@pytest.mark.parametrize(("sigma", "kernel_size"), [(3.0, 15), (1.0, 15), (2.0, 7), (5.0, 61)])
def test_gaussian_matches_numpy(sigma, kernel_size):
    preds, truths = batch(2)
    loss = GaussianLoss(sigma, kernel_size, reduction="none")
    got = loss(to_b1hw(preds), to_b1hw(truths))
    expected = [
        losses.gaussian_loss(p, t, sigma, kernel_size) for p, t in zip(preds, truths, strict=True)
    ]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-7)
    maps = gaussian_reward_map(to_b1hw(truths), sigma, kernel_size)[:, 0].numpy()
    for reward, truth in zip(maps, truths, strict=True):
        np.testing.assert_allclose(
            reward, losses.gaussian_reward_map(truth, sigma, kernel_size), atol=1e-6
        )


def test_mean_reduction_is_the_batch_mean():
    preds, truths = batch(3)
    pred, truth = to_b1hw(preds), to_b1hw(truths)
    for cls in (TopHatLoss, GaussianLoss):
        per_sample = cls(reduction="none")(pred, truth)
        assert cls()(pred, truth).item() == pytest.approx(per_sample.mean().item(), rel=1e-6)


def test_truth_may_be_bool_or_uint8():
    preds, truths = batch(4)
    pred = to_b1hw(preds)
    as_float = GaussianLoss()(pred, to_b1hw(truths))
    as_bool = GaussianLoss()(pred, torch.from_numpy(truths).unsqueeze(1))
    as_uint8 = TopHatLoss()(pred, torch.from_numpy(truths.astype(np.uint8)).unsqueeze(1))
    assert as_bool.item() == as_float.item()
    assert as_uint8.item() == TopHatLoss()(pred, to_b1hw(truths)).item()


def mean_distance_to_truth(pred: torch.Tensor, truth: np.ndarray) -> float:
    """Prediction-weighted mean distance of predicted mass to the nearest truth pixel."""
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(~truth)
    weights = pred.detach()[0, 0].numpy().astype(np.float64)
    return float((weights * distance).sum() / weights.sum())


@pytest.mark.parametrize(
    "make_loss",
    [
        lambda: GaussianLoss(sigma=3.0, kernel_size=15),
        lambda: TopHatLoss(kernel_size=5),
        # The report's future work: the tolerant loss together with BCE.
        lambda: lambda p, t: torch.nn.functional.binary_cross_entropy(p, t) + GaussianLoss()(p, t),
    ],
    ids=["gaussian", "tophat", "bce+gaussian"],
)
def test_gradient_steps_move_a_shifted_prediction_toward_the_truth(make_loss):
    truth = grain_truth()
    shifted = np.roll(truth, (3, 3), axis=(0, 1))
    logits = torch.where(to_b1hw(shifted) > 0, 2.0, -2.0).requires_grad_(True)
    target = to_b1hw(truth)
    loss_fn = make_loss()
    optimizer = torch.optim.Adam([logits], lr=0.2)
    start_pred = torch.sigmoid(logits)
    start_distance = mean_distance_to_truth(start_pred, truth)
    start_on_truth = start_pred[target > 0].mean().item()
    start_loss = loss_fn(start_pred, target).item()
    for _ in range(10):
        optimizer.zero_grad()
        loss = loss_fn(torch.sigmoid(logits), target)
        loss.backward()
        assert torch.isfinite(logits.grad).all()
        optimizer.step()
    end_pred = torch.sigmoid(logits)
    assert loss_fn(end_pred, target).item() < start_loss
    assert end_pred[target > 0].mean().item() > start_on_truth + 0.1
    assert mean_distance_to_truth(end_pred, truth) < 0.8 * start_distance


def test_gradient_is_minus_reward_over_pixels():
    preds, truths = batch(5)
    pred = to_b1hw(preds[:1]).requires_grad_(True)
    truth = to_b1hw(truths[:1])
    GaussianLoss()(pred, truth).backward()
    reward = losses.gaussian_reward_map(truths[0])
    np.testing.assert_allclose(pred.grad[0, 0].numpy(), -reward / reward.size, atol=1e-9)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: TopHatLoss(4), ValueError, "odd.*4"),
        (lambda: TopHatLoss(0), ValueError, "odd.*0"),
        (lambda: TopHatLoss(3.0), TypeError, "int"),
        (lambda: GaussianLoss(sigma=0.0), ValueError, "sigma.*0.0"),
        (lambda: GaussianLoss(sigma=float("inf")), ValueError, "sigma"),
        (lambda: GaussianLoss(kernel_size=16), ValueError, "odd.*16"),
        (lambda: GaussianLoss(reduction="sum"), ValueError, "reduction.*sum"),
    ],
)
def test_constructor_rejects_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    ("pred_shape", "truth_shape", "match"),
    [
        ((2, 1, 8, 8), (2, 1, 8, 9), "differ"),
        ((8, 8), (8, 8), "B x 1 x H x W"),
        ((2, 3, 8, 8), (2, 3, 8, 8), "B x 1 x H x W"),
    ],
)
def test_forward_rejects_bad_shapes(pred_shape, truth_shape, match):
    for loss in (TopHatLoss(), GaussianLoss()):
        with pytest.raises(ValueError, match=match):
            loss(torch.zeros(pred_shape), torch.zeros(truth_shape))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    preds, truths = batch(6)
    pred, truth = to_b1hw(preds), to_b1hw(truths)
    for loss in (TopHatLoss(5, reduction="none"), GaussianLoss(reduction="none")):
        cpu = loss(pred, truth)
        cuda_pred = pred.cuda().requires_grad_(True)
        cuda = loss(cuda_pred, truth.cuda())
        assert cuda.device.type == "cuda"
        np.testing.assert_allclose(cuda.detach().cpu().numpy(), cpu.numpy(), rtol=1e-5, atol=1e-7)
        cuda.sum().backward()
        assert cuda_pred.grad is not None and cuda_pred.grad.device.type == "cuda"
