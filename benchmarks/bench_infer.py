"""``datatool infer`` against the bare forward pass of the same network, per 512-px image.

The marginal cost of ``infer_files`` (decode, fit to the network, forward,
fit back, encode and write the PNG; decoding and writing in a helper thread)
is ``(t(2N) - t(N)) / N``: the start-up (imports, loading the checkpoint, the
precision probe) cancels out. The floor is the bare forward pass of the same
width-64 U-Net in the fastest form within 1 grey level of float32 on this
machine (:func:`datatool.torch.inference.choose_precision`), on a batch of
the same size, same thread count, under ``torch.inference_mode``, warmed up.

On a machine shared with other jobs the load changes from minute to minute,
so the three timings are interleaved, round by round (bare, N images, 2N
images): a quiet or a busy minute falls on all three alike. It prints the
best of each over the rounds and their ratio, and the median of the
per-round ratios, steadier when the load changes between rounds.
Wall-clock seconds are the target; process CPU seconds (user + system,
all threads) are printed beside them, since they show the work datatool
adds whatever the other jobs do. The load average is printed before and
after.

Run: ``.venv/bin/python benchmarks/bench_infer.py [--size 512] [--images 3] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
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


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds (user + system, all threads) of ``run()``."""
    cpu, wall = os.times(), time.perf_counter()
    run()
    wall, after = time.perf_counter() - wall, os.times()
    return wall, (after.user - cpu.user) + (after.system - cpu.system)


def infer(checkpoint: Path, images: list[Path], out: Path, size: int, batch: int) -> None:
    """``datatool infer`` on ``images`` as the command runs it (precision ``auto``)."""
    infer_files(
        checkpoint, images, out, resolution=size, device="cpu", batch_size=batch,
        precision="auto",
    )  # fmt: skip


def load() -> str:
    """The 1-minute load average."""
    return f"{os.getloadavg()[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--images", type=int, default=3, help="N: infer runs on N and 2N images")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; best of each")
    args = parser.parse_args()
    n, size = args.images, args.size
    print(f"load average {load()} before")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        torch.manual_seed(0)
        checkpoint = folder / "bench_1.pth"
        torch.save(UNet(base_width=64).state_dict(), checkpoint)
        images = make_inputs(folder, 2 * n, size)
        # Precision choice once (memoised per process), so that both sides run the same form.
        model = load_unet(checkpoint, "cpu")
        probe = np.random.default_rng(0).random((1, size, size), dtype=np.float32)
        choice = choose_precision(model, probe, "auto")
        print(choice.message)
        batch = torch.from_numpy(
            np.random.default_rng(1).random((n, 1, size, size), dtype=np.float32)
        )

        def bare() -> None:
            set_memory_format(model, choice.form)
            with torch.inference_mode():
                forward(model, batch, choice.form)

        bare()  # warm-up: kernels, caches
        infer(checkpoint, images[:n], folder / "w", size, n)
        runs: dict[str, list[tuple[float, float]]] = {"bare": [], "small": [], "large": []}
        for _ in range(args.rounds):
            runs["bare"].append(timed(bare))
            runs["small"].append(
                timed(lambda: infer(checkpoint, images[:n], folder / "a", size, n))
            )
            runs["large"].append(timed(lambda: infer(checkpoint, images, folder / "b", size, n)))
    report(runs, n, size, choice.form.describe())
    print(f"load average {load()} after")


def report(runs: dict[str, list[tuple[float, float]]], n: int, size: int, form: str) -> None:
    """Print the best of each timing per image, side by side, and their ratio."""
    best = {
        key: [min(column) for column in zip(*values, strict=True)] for key, values in runs.items()
    }
    marginal = [
        (large - small) / n for large, small in zip(best["large"], best["small"], strict=True)
    ]
    bare = [seconds / n for seconds in best["bare"]]
    # Within a round the three timings share the machine's load; across rounds they do not, so
    # the median of the per-round ratios is steadier than the ratio of the bests.
    per_round = sorted(
        (large[0] - small[0]) / b[0]
        for b, small, large in zip(runs["bare"], runs["small"], runs["large"], strict=True)
    )
    print(f"{torch.get_num_threads()} torch threads; width-64 U-Net at {size} px, batch {n}")
    heading = f"per image, best of {len(runs['bare'])} rounds"
    print(f"{heading:38s}{'wall s':>8s}{'CPU s':>8s}")
    label = f"datatool infer (marginal, {n} vs {2 * n})"
    print(f"{label:38s}{marginal[0]:8.3f}{marginal[1]:8.3f}")
    print(f"{'bare forward, ' + form:38s}{bare[0]:8.3f}{bare[1]:8.3f}")
    rounds = ", ".join(f"{r:.2f}x" for r in per_round)
    median = per_round[len(per_round) // 2]
    print(
        f"ratio of the bests {marginal[0] / bare[0]:.2f}x wall, {marginal[1] / bare[1]:.2f}x CPU; "
        f"median of the rounds {median:.2f}x wall ({rounds}); goal <= 1.1x"
    )


if __name__ == "__main__":
    main()
