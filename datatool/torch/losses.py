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
