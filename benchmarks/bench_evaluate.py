"""Sweep throughput: full-width (64) U-Net, our sweep vs the lab's naive loop.

The naive loop is what the lab's ``multi_inference`` does per checkpoint and
image: load the model from disk, then run the image twice (once inside
``single_inference`` and once more after it), with ``torch.no_grad`` and batch
size 1. Ours loads each checkpoint once, reads each image once, runs batches
under ``torch.inference_mode`` and scores. Both are timed in the same run on
the same checkpoints and images; the ratio is printed.

Run: ``.venv/bin/python benchmarks/bench_evaluate.py [--sizes 256 1024] [--images 4]``
(on a GPU too when CUDA is available). Scoring is excluded from both sides:
the figure is images (network passes) per second.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from datatool.evaluate.sweep import EvalPair, SweepOptions, run_sweep
from datatool.torch.checkpoints import find_checkpoints, load_unet
from datatool.torch.inference import load_input, predict, select_device
from datatool.torch.unet import UNet


def make_run(folder: Path, checkpoints: int, images: int, size: int) -> list[EvalPair]:
    torch.manual_seed(0)
    for epoch in range(checkpoints):
        torch.save(UNet(base_width=64).state_dict(), folder / f"bench_{epoch}.pth")
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(images):
        image = folder / f"img_{i}.png"
        label = folder / f"lab_{i}.png"
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(image)
        truth = np.zeros((size, size), np.uint8)
        truth[:, :: size // 8] = 255
        Image.fromarray(truth).save(label)
        pairs.append(EvalPair(f"img_{i}", image, label))
    return pairs


def naive(checkpoints, pairs, resolution: int, device: torch.device) -> float:
    """The lab's loop; returns seconds."""
    start = time.perf_counter()
    for ckpt in checkpoints:
        for pair in pairs:
            model = load_unet(ckpt.path, device)  # reloaded for every image
            x = torch.from_numpy(load_input(pair.image, resolution))[None, None].to(device)
            for _ in range(2):  # single_inference, then run_inference again
                with torch.no_grad():
                    torch.sigmoid(model(x)).squeeze().cpu().numpy()
    return time.perf_counter() - start


def ours(checkpoints, pairs, resolution: int, device: torch.device, batch: int) -> float:
    """Network part of the sweep (load once, batched, inference_mode); returns seconds."""
    start = time.perf_counter()
    inputs = [load_input(p.image, resolution) for p in pairs]
    for ckpt in checkpoints:
        predict(load_unet(ckpt.path, device), inputs, batch_size=batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--checkpoints", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--full-sweep", action="store_true", help="also time run_sweep + scoring")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([select_device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size in args.sizes:
            pairs = make_run(folder, args.checkpoints, args.images, size)
            checkpoints = find_checkpoints([folder])
            steps = len(checkpoints) * len(pairs)
            for device in devices:
                ours(checkpoints[:1], pairs[:1], size, device, 1)  # warm-up
                t_naive = naive(checkpoints, pairs, size, device)
                t_ours = ours(checkpoints, pairs, size, device, args.batch)
                print(
                    f"{device.type:4s} {size:5d} px, width 64, {len(checkpoints)} ckpt x "
                    f"{len(pairs)} img: sweep {steps / t_ours:7.2f} img/s, "
                    f"naive lab loop {steps / t_naive:7.2f} img/s, "
                    f"ratio {t_naive / t_ours:5.2f}x"
                )
                if args.full_sweep:
                    options = SweepOptions(resolution=size, device=str(device))
                    start = time.perf_counter()
                    run_sweep(checkpoints, pairs, options)
                    t_full = time.perf_counter() - start
                    print(f"     full sweep with scoring: {steps / t_full:7.2f} img/s")
            for path in folder.iterdir():
                path.unlink()


if __name__ == "__main__":
    main()
