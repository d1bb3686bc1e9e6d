"""Cost of the balanced tolerant BCE in training: against a U-Net step and a direct k^2 version.

Run: ``.venv/bin/python benchmarks/bench_tolerant.py [--batch 8] [--size 256] [--width 64]``

Three timings on the same batch, side by side:

* forward + backward of :class:`TolerantBCELoss` (sigma 3, k 15; 2 k shifted maxima);
* the same loss written directly, one shifted maximum per window entry (k^2 of them),
  checked to give the same value and gradient;
* one training step (forward, BCE, backward, Adam) of the lab-width U-Net.

Goals: the loss adds at most 20 % to the step, and is at least 5x faster than the direct version.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from _timing import best_of

from datatool.synth import make_sample
from datatool.torch.losses import TolerantBCELoss
from datatool.torch.unet import UNet


def direct_tolerant_bce(pred: torch.Tensor, truth: torch.Tensor, sigma=3.0, kernel_size=15):
    """The definition with one shifted maximum per (dy, dx): O(k^2) per pixel."""
    radius = kernel_size // 2
    height, width = pred.shape[-2:]
    padded_pred = torch.nn.functional.pad(pred, [radius] * 4)
    padded_truth = torch.nn.functional.pad(truth, [radius] * 4)
    found = torch.zeros_like(pred)
    spread = torch.zeros_like(truth)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            g = math.exp(-(dy * dy + dx * dx) / (2 * sigma * sigma))
            rows = slice(radius + dy, radius + dy + height)
            cols = slice(radius + dx, radius + dx + width)
            found = torch.maximum(found, g * padded_pred[..., rows, cols])
            spread = torch.maximum(spread, g * padded_truth[..., rows, cols])
    line = truth > 0.5
    miss_log = torch.log(found.clamp_min(math.exp(-100)))
    false_log = torch.log((1 - pred * (1 - spread)).clamp_min(math.exp(-100)))
    dims = (1, 2, 3)
    miss = -(miss_log * line).sum(dims) / line.sum(dims).clamp_min(1)
    false = -(false_log * ~line).sum(dims) / (~line).sum(dims).clamp_min(1)
    return ((miss + false) / 2).mean()


def batch(count: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grey micrographs, their 3-px tracings and model-like predictions, (B, 1, S, S) float32."""
    from datatool.labels import dilate_to_width, skeleton

    images, truths, preds = [], [], []
    for seed in range(count):
        sample = make_sample(seed, size=(size, size), strip=0, fields_of_view=1)
        truth = dilate_to_width(skeleton(sample.boundaries), 3)
        rng = np.random.default_rng(seed)
        pred = np.clip(np.roll(truth, 2, axis=1) * 0.8 + rng.random(truth.shape) * 0.2, 0, 1)
        images.append(sample.originals[0] / 255.0)
        truths.append(truth)
        preds.append(pred)

    def stack(arrays):
        return torch.from_numpy(np.stack(arrays).astype(np.float32))[:, None]

    return stack(images), stack(truths), stack(preds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--step-repeat", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    images, truths, preds = (t.to(device) for t in batch(args.batch, args.size))
    loss = TolerantBCELoss()

    def ours() -> torch.Tensor:
        pred = preds.clone().requires_grad_(True)
        loss(pred, truths).backward()
        return pred.grad

    def direct() -> torch.Tensor:
        pred = preds.clone().requires_grad_(True)
        direct_tolerant_bce(pred, truths).backward()
        return pred.grad

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    value_ours, value_direct = loss(preds, truths).item(), direct_tolerant_bce(preds, truths).item()
    assert abs(value_ours - value_direct) < 1e-5, (value_ours, value_direct)
    # Gradients agree where no maximum ties (ties may route the gradient to either neighbour).
    grad_ours, grad_direct = ours(), direct()
    close = torch.isclose(grad_ours, grad_direct, rtol=1e-4, atol=1e-9).float().mean().item()
    assert close > 0.99, close
    t_ours = best_of(args.repeat, lambda: (ours(), sync()))
    t_direct = best_of(max(1, args.repeat - 1), lambda: (direct(), sync()))

    torch.manual_seed(0)
    model = UNet(base_width=args.width).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        optimiser.zero_grad()
        out = torch.sigmoid(model(images))
        torch.nn.functional.binary_cross_entropy(out, truths).backward()
        optimiser.step()
        sync()

    step()  # warm-up: allocator and kernels
    t_step = best_of(args.step_repeat, step)
    print(
        f"batch {args.batch} x {args.size}^2, {device.type}, {torch.get_num_threads()} threads; "
        f"loss {value_ours:.4f} (direct {value_direct:.4f}), gradients equal on {close:.2%}"
    )
    print(f"{'':34}{'seconds':>10}{'ratio':>22}")
    print(f"{'TolerantBCELoss fwd+bwd (2k)':34}{t_ours:10.4f}")
    print(f"{'direct k^2 torch fwd+bwd':34}{t_direct:10.4f}{t_direct / t_ours:14.1f}x slower")
    print(
        f"{f'U-Net width {args.width} training step':34}{t_step:10.4f}"
        f"{100 * t_ours / t_step:13.1f} % added by the loss"
    )


if __name__ == "__main__":
    main()
