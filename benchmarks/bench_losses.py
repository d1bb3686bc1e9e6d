"""Time each loss at 1024 x 1024 against a direct implementation of its definition.

Run: ``.venv/bin/python benchmarks/bench_losses.py [--size 1024] [--repeat 5]``

The "direct" versions are the definitions written plainly with numpy, one
shifted maximum per kernel entry (O(k^2) per pixel); both run side by side in
this process on the same synthetic tracing, and the script checks that they
agree before printing the ratio.
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import best_of
from scipy import ndimage
from scipy.spatial import cKDTree

from datatool.metrics import losses
from datatool.metrics.results import score


def voronoi_tracing(size: int, grains: int, seed: int) -> np.ndarray:
    """A grain-boundary-like tracing: Voronoi cell borders, 3 px wide, ``(size, size)`` bool."""
    rng = np.random.default_rng(seed)
    seeds = rng.random((grains, 2)) * size
    yy, xx = np.mgrid[0:size, 0:size]
    _, label = cKDTree(seeds).query(np.column_stack([yy.ravel(), xx.ravel()]))
    label = label.reshape(size, size)
    border = np.zeros((size, size), bool)
    border[:, 1:] |= label[:, 1:] != label[:, :-1]
    border[1:, :] |= label[1:, :] != label[:-1, :]
    return ndimage.binary_dilation(border, np.ones((3, 3), bool))


def model_like_prediction(truth: np.ndarray, seed: int) -> np.ndarray:
    """The truth shifted by 2 px, blurred, with some noise: float64 in [0, 1]."""
    rng = np.random.default_rng(seed)
    pred = np.roll(truth, (2, 1), axis=(0, 1)).astype(np.float64)
    pred = ndimage.gaussian_filter(pred, 1.0) + 0.05 * rng.random(truth.shape)
    return np.clip(pred, 0.0, 1.0)


# --------------------------------------------------------------------------- direct definitions


def direct_tophat_loss(pred: np.ndarray, truth: np.ndarray, kernel_size: int) -> float:
    r = kernel_size // 2
    h, w = truth.shape
    padded = np.pad(truth, r)
    halo = np.zeros((h, w), bool)
    for i in range(kernel_size):
        for j in range(kernel_size):
            halo |= padded[i : i + h, j : j + w]
    return float(-np.mean(pred * np.where(halo, 1.0, -1.0)))


def direct_gaussian_loss(pred: np.ndarray, truth: np.ndarray, sigma: float, k: int) -> float:
    kernel = losses.gaussian_kernel(sigma, k)
    r = k // 2
    h, w = truth.shape
    padded = np.pad(truth.astype(np.float64), r)
    spread = np.zeros((h, w))
    for i in range(k):
        for j in range(k):
            np.maximum(spread, padded[i : i + h, j : j + w] * kernel[i, j], out=spread)
    peak = spread.max()
    if peak > 0:
        spread /= peak
    return float(-np.mean(pred * (2.0 * spread - 1.0)))


def direct_tolerance_prf(pred: np.ndarray, truth: np.ndarray, tolerance: float) -> tuple:
    from skimage.morphology import skeletonize

    pred_line, truth_line = skeletonize(pred > 0.5), skeletonize(truth)
    reach = int(tolerance)
    h, w = truth.shape

    def near(mask: np.ndarray) -> np.ndarray:
        padded = np.pad(mask, reach)
        out = np.zeros((h, w), bool)
        for dy in range(-reach, reach + 1):
            for dx in range(-reach, reach + 1):
                if dy * dy + dx * dx <= tolerance * tolerance:
                    out |= padded[reach + dy : reach + dy + h, reach + dx : reach + dx + w]
        return out

    precision = np.count_nonzero(pred_line & near(truth_line)) / np.count_nonzero(pred_line)
    recall = np.count_nonzero(truth_line & near(pred_line)) / np.count_nonzero(truth_line)
    return precision, recall, 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------- timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    truth = voronoi_tracing(args.size, grains=max(args.size // 4, 8), seed=0)
    pred = model_like_prediction(truth, seed=1)
    print(
        f"{args.size} x {args.size}, truth covers {truth.mean():.1%} of pixels; "
        f"best of {args.repeat} runs"
    )
    rows = [
        ("top-hat k=3", lambda: losses.tophat_loss(pred, truth, 3),
         lambda: direct_tophat_loss(pred, truth, 3)),
        ("top-hat k=5", lambda: losses.tophat_loss(pred, truth, 5),
         lambda: direct_tophat_loss(pred, truth, 5)),
        ("top-hat k=15", lambda: losses.tophat_loss(pred, truth, 15),
         lambda: direct_tophat_loss(pred, truth, 15)),
        ("Gaussian sigma=3 k=15", lambda: losses.gaussian_loss(pred, truth, 3.0, 15),
         lambda: direct_gaussian_loss(pred, truth, 3.0, 15)),
        ("Gaussian sigma=1 k=15", lambda: losses.gaussian_loss(pred, truth, 1.0, 15),
         lambda: direct_gaussian_loss(pred, truth, 1.0, 15)),
        ("tolerance P/R/F1 t=2", lambda: tuple(losses.tolerance_prf(pred, truth, 2.0)),
         lambda: direct_tolerance_prf(pred, truth, 2.0)),
    ]  # fmt: skip
    print(f"{'metric':<26}{'fast ms':>10}{'direct ms':>12}{'speed-up':>10}{'max |diff|':>12}")
    for name, fast, direct in rows:
        difference = float(np.max(np.abs(np.subtract(fast(), direct()))))
        if difference > 1e-9:
            raise SystemExit(f"{name}: fast and direct disagree by {difference:.3g}")
        t_fast, t_direct = (
            best_of(args.repeat, fast, warm_up=True),
            best_of(args.repeat, direct, warm_up=True),
        )
        print(
            f"{name:<26}{t_fast * 1e3:>10.1f}{t_direct * 1e3:>12.1f}"
            f"{t_direct / t_fast:>9.1f}x{difference:>12.1e}"
        )
    others = [
        ("BCE", lambda: losses.bce(pred, truth)),
        ("P/R/F1 one-to-one t=2", lambda: losses.tolerance_prf(pred, truth, 2.0, "one-to-one")),
        ("score() all metrics", lambda: score(pred, truth)),
    ]
    for name, fn in others:
        print(f"{name:<26}{best_of(args.repeat, fn, warm_up=True) * 1e3:>10.1f}")
    try:
        import torch

        from datatool.torch.losses import GaussianLoss, TopHatLoss
    except ImportError:
        return
    p = torch.from_numpy(pred).float()[None, None]
    t = torch.from_numpy(truth).float()[None, None]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        pd, td = p.to(device), t.to(device)
        for name, module in (("top-hat k=3", TopHatLoss(3)), ("Gaussian", GaussianLoss())):

            def run_once(module=module, pd=pd, td=td, device=device):
                with torch.no_grad():
                    module(pd, td)
                if device == "cuda":
                    torch.cuda.synchronize()

            label = f"torch {name} ({device})"
            print(f"{label:<26}{best_of(args.repeat, run_once, warm_up=True) * 1e3:>10.1f}")


if __name__ == "__main__":
    main()
