"""``datatool infer`` against the bare forward pass of the same network, per 512-px image.

The marginal cost of ``infer_files`` (decode, fit to the network, forward,
fit back, encode and write the PNG, with the next batch decoded in a prefetch
thread) is ``(t(2N) - t(N)) / N``: the start-up (imports, loading the
checkpoint, the precision probe) cancels out. The floor is the bare forward
pass of the same width-64 U-Net in the fastest form within 1 grey level of
float32 on this machine (:func:`datatool.torch.inference.choose_precision`),
on a batch of the same size, under ``torch.inference_mode``. Both are timed
in one run and printed side by side with their ratio (goal: <= 1.1x).

Run: ``.venv/bin/python benchmarks/bench_infer.py [--size 512] [--images 3] [--repeats 2]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from datatool.synth import make_sample
from datatool.torch.checkpoints import load_unet
from datatool.torch.inference import (
    choose_precision,
    forward,
    infer_files,
    set_memory_format,
)
from datatool.torch.unet import UNet


def make_inputs(folder: Path, count: int, size: int) -> list[Path]:
    """``count`` grey Voronoi micrographs of ``size`` px, written as 8-bit PNGs."""
    from datatool.io import write_png

    paths = []
    for i in range(count):
        sample = make_sample(seed=10 + i, size=(size, size), fields_of_view=1, strip=0)
        path = folder / f"micrograph_{i}.png"
        write_png(path, sample.originals[0])
        paths.append(path)
    return paths


def time_infer(checkpoint: Path, images: list[Path], out: Path, size: int, batch: int) -> float:
    started = time.perf_counter()
    infer_files(
        checkpoint, images, out, resolution=size, device="cpu", batch_size=batch,
        precision="auto",
    )  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--images", type=int, default=3, help="N: infer runs on N and 2N images")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs each")
    args = parser.parse_args()
    n, size = args.images, args.size
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        torch.manual_seed(0)
        checkpoint = folder / "bench_1.pth"
        torch.save(UNet(base_width=64).state_dict(), checkpoint)
        images = make_inputs(folder, 2 * n, size)
        # Precision choice once (memoised per process), so that neither timing pays for it twice.
        model = load_unet(checkpoint, "cpu")
        probe = np.random.default_rng(0).random((1, size, size), dtype=np.float32)
        choice = choose_precision(model, probe, "auto")
        print(choice.message)

        time_infer(checkpoint, images[:n], folder / "w", size, n)  # warm-up: kernels, caches
        small = min(time_infer(checkpoint, images[:n], folder / "a", size, n)
                    for _ in range(args.repeats))  # fmt: skip
        large = min(time_infer(checkpoint, images, folder / "b", size, n)
                    for _ in range(args.repeats))  # fmt: skip
        marginal = (large - small) / n

        set_memory_format(model, choice.form)
        batch = torch.from_numpy(
            np.random.default_rng(1).random((n, 1, size, size), dtype=np.float32)
        )
        bare = float("inf")
        with torch.inference_mode():
            forward(model, batch, choice.form)  # warm-up
            for _ in range(args.repeats):
                started = time.perf_counter()
                forward(model, batch, choice.form)
                bare = min(bare, time.perf_counter() - started)
        bare /= n

    print(f"{torch.get_num_threads()} torch threads; width-64 U-Net at {size} px, batch {n}")
    print(f"{'':34s}{'s / image':>10s}")
    label = f"datatool infer (marginal, {n} vs {2 * n})"
    print(f"{label:34s}{marginal:10.3f}")
    print(f"{'bare forward, ' + choice.form.describe():34s}{bare:10.3f}")
    print(f"ratio {marginal / bare:.2f}x (goal <= 1.1x)")


if __name__ == "__main__":
    main()
