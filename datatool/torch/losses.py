"""The spatially tolerant losses as batched, differentiable torch modules.

:class:`TopHatLoss` and :class:`GaussianLoss` compute the same values as
:func:`datatool.metrics.losses.tophat_loss` and
:func:`datatool.metrics.losses.gaussian_loss`, on ``B x 1 x H x W`` batches, on
CPU or CUDA. The reward map of a batch is built on the batch's device from the
(binary) truth and carries no gradient; the loss is linear in the prediction, so
its gradient is ``-R / (H W)``: it pushes prediction up where the reward is
positive and down where it is negative. The report's future work suggests using
it together with BCE::

    bce = torch.nn.BCELoss()
    tolerant = GaussianLoss(sigma=3.0, kernel_size=15)
    loss = bce(pred, truth) + 0.5 * tolerant(pred, truth)
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Reduction = Literal["mean", "none"]


def _check_kernel_size(kernel_size: int) -> int:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
        raise TypeError(f"kernel_size must be an int, got {type(kernel_size).__name__}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    return kernel_size


def _check_reduction(reduction: str) -> str:
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return reduction


def _check_batch(pred: torch.Tensor, truth: torch.Tensor) -> None:
    if pred.ndim != 4 or pred.shape[1] != 1:
        raise ValueError(f"pred must be B x 1 x H x W, got shape {tuple(pred.shape)}")
    if truth.shape != pred.shape:
        raise ValueError(
            f"pred and truth shapes differ: {tuple(pred.shape)} vs {tuple(truth.shape)}"
        )


def _binary(truth: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # Labels may arrive as bool, uint8 or interpolated floats; the definition is
    # on the binary line, so threshold at one half.
    return (truth > 0.5).to(dtype)


def tophat_reward_map(truth: torch.Tensor, kernel_size: int = 3) -> torch.Tensor:
    """Top-hat reward map of a batch: +1 in the truth's ``k x k`` halo, -1 elsewhere.

    Parameters
    ----------
    truth : (B, 1, H, W) tensor
        Label, > 0.5 on the boundary line.
    kernel_size : int, odd, >= 1

    Returns
    -------
    (B, 1, H, W) float32 tensor on ``truth``'s device
    """
    kernel_size = _check_kernel_size(kernel_size)
    line = _binary(truth, torch.float32)
    # max_pool2d pads with -inf, so pixels outside the image never dilate inward;
    # a row then a column pool is the same square, in O(k) instead of O(k^2).
    radius = kernel_size // 2
    halo = F.max_pool2d(line, (1, kernel_size), stride=1, padding=(0, radius))
    halo = F.max_pool2d(halo, (kernel_size, 1), stride=1, padding=(radius, 0))
    return 2.0 * halo - 1.0


def _weighted_max_1d(values: torch.Tensor, weights: torch.Tensor, dim: int) -> torch.Tensor:
    """``out[i] = max_j weights[j] * values[i + j - r]`` along ``dim``, zero outside."""
    radius = weights.numel() // 2
    size = values.shape[dim]
    pad = [0, 0, 0, 0]
    pad[(3 - dim) * 2 : (3 - dim) * 2 + 2] = [radius, radius]
    padded = F.pad(values, pad)
    out = values * weights[radius]
    for j in range(weights.numel()):
        if j != radius:
            out = torch.maximum(out, weights[j] * padded.narrow(dim, j, size))
    return out


def gaussian_spread(truth: torch.Tensor, sigma: float = 3.0, kernel_size: int = 15) -> torch.Tensor:
    """Max-aggregated Gaussian spread of a batch, each sample normalized to [0, 1].

    Exact separable form of the definition: ``G(dy, dx) = g(dy) g(dx)`` with
    ``g >= 0``, so the ``k x k`` windowed weighted maximum is a row pass then a
    column pass of 1-D weighted maxima, O(k) per pixel.

    Parameters
    ----------
    truth : (B, 1, H, W) tensor
    sigma : float > 0
    kernel_size : int, odd, >= 1

    Returns
    -------
    (B, 1, H, W) float32 tensor; samples with an empty truth are all zero.
    """
    kernel_size = _check_kernel_size(kernel_size)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    line = _binary(truth, torch.float32)
    offsets = torch.arange(kernel_size, device=line.device, dtype=torch.float64)
    offsets = offsets - kernel_size // 2
    weights = torch.exp(-(offsets**2) / (2.0 * sigma * sigma)).to(torch.float32)
    spread = _weighted_max_1d(_weighted_max_1d(line, weights, dim=3), weights, dim=2)
    peak = spread.amax(dim=(1, 2, 3), keepdim=True)
    return torch.where(peak > 0, spread / peak.clamp_min(1e-30), torch.zeros_like(spread))


def gaussian_reward_map(
    truth: torch.Tensor, sigma: float = 3.0, kernel_size: int = 15
) -> torch.Tensor:
    """Gaussian reward map ``2 S - 1`` of a batch (see :func:`gaussian_spread`)."""
    return 2.0 * gaussian_spread(truth, sigma, kernel_size) - 1.0


def _reduce(pred: torch.Tensor, reward: torch.Tensor, reduction: str) -> torch.Tensor:
    per_sample = -(pred * reward.to(pred.dtype)).mean(dim=(1, 2, 3))
    return per_sample.mean() if reduction == "mean" else per_sample


class TopHatLoss(nn.Module):
    """Top-hat loss ``-mean(pred * M)`` per sample; see :func:`tophat_reward_map`.

    Parameters
    ----------
    kernel_size : int, odd, >= 1
        Side of the square halo around the truth.
    reduction : {"mean", "none"}
        ``"mean"``: a scalar, the mean over the batch; ``"none"``: a ``(B,)`` tensor.

    Examples
    --------
    >>> import torch
    >>> truth = torch.zeros(1, 1, 5, 5); truth[..., 2, :] = 1
    >>> round(TopHatLoss(3)(truth.clone(), truth).item(), 3)
    -0.2
    """

    def __init__(self, kernel_size: int = 3, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.kernel_size = _check_kernel_size(kernel_size)
        self.reduction = _check_reduction(reduction)

    def forward(self, pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        """Loss of ``pred`` (B1HW in [0, 1]) against ``truth`` (B1HW, > 0.5 on the line)."""
        _check_batch(pred, truth)
        with torch.no_grad():
            reward = tophat_reward_map(truth.detach(), self.kernel_size)
        return _reduce(pred, reward, self.reduction)

    def extra_repr(self) -> str:
        """Arguments shown by ``repr``."""
        return f"kernel_size={self.kernel_size}, reduction={self.reduction!r}"


class GaussianLoss(nn.Module):
    """Normalized Gaussian loss ``-mean(pred * (2 S - 1))`` per sample.

    Parameters
    ----------
    sigma : float > 0
        Standard deviation of the Gaussian, px; smaller is stricter.
    kernel_size : int, odd, >= 1
        Window side, px.
    reduction : {"mean", "none"}
    """

    def __init__(
        self, sigma: float = 3.0, kernel_size: int = 15, reduction: Reduction = "mean"
    ) -> None:
        super().__init__()
        if isinstance(sigma, bool) or not isinstance(sigma, int | float):
            raise TypeError(f"sigma must be a number, got {type(sigma).__name__}")
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
        self.sigma = float(sigma)
        self.kernel_size = _check_kernel_size(kernel_size)
        self.reduction = _check_reduction(reduction)

    def forward(self, pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        """Loss of ``pred`` (B1HW in [0, 1]) against ``truth`` (B1HW, > 0.5 on the line)."""
        _check_batch(pred, truth)
        with torch.no_grad():
            reward = gaussian_reward_map(truth.detach(), self.sigma, self.kernel_size)
        return _reduce(pred, reward, self.reduction)

    def extra_repr(self) -> str:
        """Arguments shown by ``repr``."""
        return f"sigma={self.sigma}, kernel_size={self.kernel_size}, reduction={self.reduction!r}"


# --------------------------------------------------------------------------- balanced tolerant BCE

_LOG_CLAMP = -100.0  # torch's BCELoss clamps each log term here; the numpy loss does the same


def _check_sigma(sigma: float) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, int | float):
        raise TypeError(f"sigma must be a number, got {type(sigma).__name__}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    return float(sigma)


def gaussian_window_max(values: torch.Tensor, sigma: float, kernel_size: int) -> torch.Tensor:
    """``out(x) = max over |dx|, |dy| <= k // 2 of g(d) values(x + d)``, zero outside, per image.

    ``g(d) = exp(-|d|^2 / (2 sigma^2))`` separates into two non-negative 1-D
    factors, so the ``k x k`` maximum is a row pass then a column pass: ``2 k``
    shifted maxima. Differentiable (the gradient goes to the maximizing pixel).

    Parameters
    ----------
    values : (B, 1, H, W) float tensor, >= 0
    sigma : float > 0
    kernel_size : int, odd, >= 1

    Returns
    -------
    (B, 1, H, W) tensor of ``values``' dtype and device
    """
    offsets = torch.arange(kernel_size, dtype=torch.float64) - kernel_size // 2
    weights = torch.exp(-(offsets**2) / (2.0 * sigma * sigma)).tolist()
    return _window_max_1d(_window_max_1d(values, weights, dim=3), weights, dim=2)


def _window_max_1d(values: torch.Tensor, weights: list[float], dim: int) -> torch.Tensor:
    radius = len(weights) // 2
    size = values.shape[dim]
    pad = [0, 0, 0, 0]
    pad[(3 - dim) * 2 : (3 - dim) * 2 + 2] = [radius, radius]
    padded = F.pad(values, pad)
    out = values * weights[radius]
    for j, weight in enumerate(weights):
        if j != radius:
            out = torch.maximum(out, padded.narrow(dim, j, size) * weight)
    return out


def _clamped_log(x: torch.Tensor) -> torch.Tensor:
    """``max(log x, -100)`` with a finite gradient everywhere (0 where clamped, also at x = 0)."""
    keep = x > math.exp(_LOG_CLAMP)
    # log of a safe stand-in where clamped, so that no inf or NaN reaches the backward pass.
    safe = torch.where(keep, x, torch.ones_like(x))
    return torch.where(keep, torch.log(safe), torch.full_like(x, _LOG_CLAMP))


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image mean of ``values`` over ``mask`` ((B,) tensor), 0 where the mask is empty."""
    total = (values * mask).sum(dim=(1, 2, 3))
    count = mask.sum(dim=(1, 2, 3))
    return total / count.clamp_min(1.0)


def tolerant_bce(
    pred: torch.Tensor,
    truth: torch.Tensor,
    sigma: float = 3.0,
    kernel_size: int = 15,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Balanced tolerant BCE of a batch (see :class:`TolerantBCELoss` for the definition).

    Parameters
    ----------
    pred : (B, 1, H, W) float tensor in [0, 1]
    truth : (B, 1, H, W) tensor, > 0.5 on the line
    sigma, kernel_size
        The Gaussian and its window.
    reduction : {"mean", "none"}

    Returns
    -------
    tensor
        A scalar (``"mean"``), or ``(B,)`` per-image losses (``"none"``).
    """
    _check_batch(pred, truth)
    if not pred.is_floating_point():
        raise TypeError(f"pred must be a float tensor of probabilities, got {pred.dtype}")
    sigma = _check_sigma(sigma)
    kernel_size = _check_kernel_size(kernel_size)
    with torch.no_grad():
        line = _binary(truth.detach(), pred.dtype)
        spread = gaussian_window_max(line, sigma, kernel_size)
    found = gaussian_window_max(pred, sigma, kernel_size)
    miss = -_masked_mean(_clamped_log(found), line)
    false = -_masked_mean(_clamped_log(1.0 - pred * (1.0 - spread)), 1.0 - line)
    per_image = (miss + false) / 2.0
    return per_image.mean() if reduction == "mean" else per_image


class TolerantBCELoss(nn.Module):
    """Balanced tolerant BCE: forgives small offsets, punishes halos and missed lines.

    With ``g(d) = exp(-|d|^2 / (2 sigma^2))`` over offsets ``|dx|, |dy| <= k // 2``
    and values outside the image counting as 0, per image:

    * ``found(x) = max_d g(d) p(x + d)`` and ``S(x) = max_d g(d) T(x + d)``;
    * ``L_miss = -mean over truth pixels of max(log found(x), -100)``;
    * ``L_false = -mean over non-truth pixels of max(log(1 - p(x) (1 - S(x))), -100)``;
    * loss ``= (L_miss + L_false) / 2`` (an empty pixel set gives 0),

    then the mean over the batch. Equal to
    :func:`datatool.metrics.losses.tolerant_bce` per image. Works in float32 and
    float64 on any device; gradients stay finite at ``p = 0`` and ``p = 1``.

    Parameters
    ----------
    sigma : float > 0
        Standard deviation of the Gaussian, px.
    kernel_size : int, odd, >= 1
        Window side, px.
    reduction : {"mean", "none"}

    Examples
    --------
    >>> import torch
    >>> truth = torch.zeros(1, 1, 8, 8); truth[..., 4, :] = 1
    >>> TolerantBCELoss()(truth.clone(), truth).item()
    0.0
    """

    def __init__(
        self, sigma: float = 3.0, kernel_size: int = 15, reduction: Reduction = "mean"
    ) -> None:
        super().__init__()
        self.sigma = _check_sigma(sigma)
        self.kernel_size = _check_kernel_size(kernel_size)
        self.reduction = _check_reduction(reduction)

    def forward(self, pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        """Loss of ``pred`` (B1HW probabilities) against ``truth`` (B1HW, > 0.5 on the line)."""
        return tolerant_bce(pred, truth, self.sigma, self.kernel_size, self.reduction)

    def extra_repr(self) -> str:
        """Arguments shown by ``repr``."""
        return f"sigma={self.sigma}, kernel_size={self.kernel_size}, reduction={self.reduction!r}"


class CombinedLoss(nn.Module):
    """``bce_weight * BCE + tolerant_weight * tolerant BCE`` on probabilities.

    Parameters
    ----------
    bce_weight, tolerant_weight : float >= 0
        Weights of the two terms (not both 0).
    sigma, kernel_size
        Of the tolerant term.

    Examples
    --------
    >>> import torch
    >>> truth = torch.zeros(1, 1, 8, 8); truth[..., 4, :] = 1
    >>> round(CombinedLoss(1.0, 1.0)(torch.full_like(truth, 0.5), truth).item(), 4)
    1.1148
    """

    def __init__(
        self,
        bce_weight: float = 1.0,
        tolerant_weight: float = 1.0,
        sigma: float = 3.0,
        kernel_size: int = 15,
    ) -> None:
        super().__init__()
        for name, weight in (("bce_weight", bce_weight), ("tolerant_weight", tolerant_weight)):
            if not (isinstance(weight, int | float) and math.isfinite(weight) and weight >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {weight!r}")
        if bce_weight == 0 and tolerant_weight == 0:
            raise ValueError("bce_weight and tolerant_weight are both 0; the loss would be 0")
        self.bce_weight = float(bce_weight)
        self.tolerant_weight = float(tolerant_weight)
        self.tolerant = TolerantBCELoss(sigma, kernel_size)

    def forward(self, pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        """Weighted sum of BCE and tolerant BCE of ``pred`` (B1HW probabilities)."""
        _check_batch(pred, truth)
        target = _binary(truth, pred.dtype)
        loss = self.bce_weight * F.binary_cross_entropy(pred, target)
        return loss + self.tolerant_weight * self.tolerant(pred, truth)

    def extra_repr(self) -> str:
        """Arguments shown by ``repr``."""
        return f"bce_weight={self.bce_weight}, tolerant_weight={self.tolerant_weight}"
