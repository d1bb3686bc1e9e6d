"""Benchmark: check time linear in pairs, peak memory flat (findings streamed, no arrays kept).

Generates, in a temporary folder, a flat set of 10,000 distinct 64 px image/label
pairs (crops of synthetic Voronoi micrographs and their traced boundaries) and a
500-sample tree of small originals, then checks the first 1k, 5k and 10k pairs
(hard links into their own folders), each in a fresh subprocess that reports
its wall time and peak RSS (the client, and the largest worker). Prints one
table; the goal is time per pair flat and peak client RSS growing < 20 % from
1k to 10k pairs.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--workers N] [--sizes 1000,5000,10000]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from datatool import io, synth

SIDE = 64
PER_SOURCE = 256  # crops cut from each synthetic micrograph (16 x 16 grid)

_CHILD = r"""
import json, resource, sys, time
from datatool.check import run_check
from datatool.checks import CheckOptions
started = time.perf_counter()
report = run_check(sys.argv[1], CheckOptions(workers=int(sys.argv[2])))
seconds = time.perf_counter() - started
print(json.dumps({
    "pairs": report.summary.pairs,
    "findings": len(report.findings),
    "seconds": seconds,
    "client_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""


def write_flat(root: Path, pairs: int, seed: int = 3) -> None:
    """``pairs`` distinct 64 px crops and labels under ``root/image`` and ``root/label``."""
    (root / "image").mkdir(parents=True)
    (root / "label").mkdir()
    grid = int(np.sqrt(PER_SOURCE))
    written = 0
    source = 0
    while written < pairs:
        sample = synth.make_sample(
            seed + source, size=(grid * SIDE, grid * SIDE), grain_px=18.0, fields_of_view=1, strip=0
        )
        micrograph = sample.originals[0]
        lines = ndi.binary_dilation(sample.boundaries, np.ones((3, 3), bool))  # 3 px wide
        label = np.where(lines, 255, 0).astype(np.uint8)
        for k in range(min(PER_SOURCE, pairs - written)):
            r, c = divmod(k, grid)
            box = np.s_[r * SIDE : (r + 1) * SIDE, c * SIDE : (c + 1) * SIDE]
            name = f"s{source:03d}_{k:03d}.png"
            io.write_png(root / "image" / name, micrograph[box])
            io.write_png(root / "label" / name, label[box])
        written += min(PER_SOURCE, pairs - written)
        source += 1


def subset(flat: Path, dest: Path, pairs: int) -> Path:
    """The first ``pairs`` pairs of ``flat`` as hard links under ``dest``."""
    names = sorted(p.name for p in (flat / "image").iterdir())[:pairs]
    for part in ("image", "label"):
        (dest / part).mkdir(parents=True)
        for name in names:
            os.link(flat / part / name, dest / part / name)
    return dest


def measure(root: Path, workers: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), str(workers)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--tree-samples", type=int, default=500)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        started = time.perf_counter()
        write_flat(tmp_path / "flat", max(sizes))
        samples = {
            f"{i:04d}": ("validation" if i % 5 == 0 else "training")
            for i in range(args.tree_samples)
        }
        synth.write_tree(
            tmp_path / "tree", samples, seed=11, size=(128, 128), crop=SIDE,
            crops_per_fov=1, fields_of_view=1, grain_px=14.0,
        )  # fmt: skip
        print(f"generated {max(sizes)} flat pairs and a {args.tree_samples}-sample tree "
              f"in {time.perf_counter() - started:.0f} s")  # fmt: skip
        rows = []
        for size in sizes:
            root = subset(tmp_path / "flat", tmp_path / f"flat_{size}", size)
            rows.append((f"flat {size:>6,}", measure(root, args.workers)))
        rows.append((f"tree {args.tree_samples} samples", measure(tmp_path / "tree", args.workers)))
    base = rows[0][1]
    print(f"check, {args.workers} workers; peak RSS of the client and of the largest worker")
    print(f"{'set':<18}{'pairs':>7}{'seconds':>9}{'ms/pair':>9}{'client MiB':>12}"
          f"{'vs 1k':>7}{'worker MiB':>12}{'findings':>10}")  # fmt: skip
    for name, r in rows:
        print(
            f"{name:<18}{r['pairs']:>7}{r['seconds']:>9.1f}{1000 * r['seconds'] / r['pairs']:>9.2f}"
            f"{r['client_mib']:>12.0f}{r['client_mib'] / base['client_mib'] - 1:>+7.0%}"
            f"{r['worker_mib']:>12.0f}{r['findings']:>10}"
        )


if __name__ == "__main__":
    main()
