"""Benchmark: check time linear in pairs, peak memory flat (findings streamed, no arrays kept).

Generates, in a temporary folder (or ``--data``), a flat set of 10,000 distinct 64 px image/label
pairs (crops of synthetic Voronoi micrographs and their traced boundaries) and a
500-sample tree of small originals, then checks the first 1k, 5k and 10k pairs
(hard links into their own folders), each in a fresh subprocess that reports
its wall time (and the layout scan's share), CPU time of client and workers
(less sensitive than wall time to other jobs on the machine), peak RSS (the
client's own high-water mark, ``VmHWM``: ``ru_maxrss`` survives ``execve`` on
Linux and would report this bench process when it is the larger; and the
largest worker) and the load average. Prints one table; the
goal is time per pair flat and peak client RSS growing < 20 % from 1k to 10k
pairs.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--workers N] [--sizes 1000,5000,10000]``
(``--repeat 2``: runs per size; ``--data DIR``: generate once, reuse later)
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
import json, os, resource, sys, time
from datatool.check import run_check
from datatool.checks import CheckOptions
from datatool.layout import scan
load = os.getloadavg()[0]
started = time.perf_counter()
layout = scan(sys.argv[1])
scanned = time.perf_counter() - started
report = run_check(sys.argv[1], CheckOptions(workers=int(sys.argv[2])), layout=layout)
seconds = time.perf_counter() - started
own = resource.getrusage(resource.RUSAGE_SELF)
workers = resource.getrusage(resource.RUSAGE_CHILDREN)
# ru_maxrss survives execve on Linux: it would report this process's parent (the bench,
# holding the generated data) whenever that was larger. VmHWM is this program's own peak.
peak_mib = own.ru_maxrss / 1024
try:
    with open("/proc/self/status") as status:
        peak_mib = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) / 1024
except (OSError, StopIteration):
    pass
print(json.dumps({
    "pairs": report.summary.pairs,
    "findings": len(report.findings),
    "seconds": seconds,
    "scan_seconds": scanned,
    "cpu_seconds": own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime,
    "client_mib": peak_mib,
    "worker_mib": workers.ru_maxrss / 1024,
    "load": max(load, os.getloadavg()[0]),
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


def measure(root: Path, workers: int, repeat: int) -> dict:
    """The fastest of ``repeat`` checks of ``root``, each in a fresh subprocess."""
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(root), str(workers)],
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return min(runs, key=lambda r: r["seconds"])


def generate(data: Path, flat_pairs: int, tree_samples: int) -> None:
    """The flat set and the tree under ``data`` (kept when already there)."""
    started = time.perf_counter()
    if not (data / "flat").exists():
        write_flat(data / "flat", flat_pairs)
    if not (data / "tree").exists():
        samples = {f"{i:04d}": ("validation" if i % 5 == 0 else "training")
                   for i in range(tree_samples)}  # fmt: skip
        synth.write_tree(
            data / "tree", samples, seed=11, size=(128, 128), crop=SIDE,
            crops_per_fov=1, fields_of_view=1, grain_px=14.0,
        )  # fmt: skip
    print(f"{flat_pairs} flat pairs and a {tree_samples}-sample tree ready "
          f"in {time.perf_counter() - started:.0f} s")  # fmt: skip


def show(rows: list[tuple[str, dict]], workers: int, repeat: int) -> None:
    """Print the table of ``(set name, measure())`` rows; the first is the base for RSS."""
    base = rows[0][1]
    print(
        f"check, {workers} workers, fastest of {repeat}; scan: the layout scan's share; "
        "CPU: client and workers together; peak RSS of the client and of the largest worker; "
        "load: 1-minute load average during the run"
    )
    print(f"{'set':<18}{'pairs':>7}{'seconds':>9}{'ms/pair':>9}{'scan':>7}{'CPU ms/pair':>13}"
          f"{'client MiB':>12}{'vs 1k':>7}{'worker MiB':>12}{'findings':>10}"
          f"{'load':>6}")  # fmt: skip
    for name, r in rows:
        print(
            f"{name:<18}{r['pairs']:>7}{r['seconds']:>9.1f}{1000 * r['seconds'] / r['pairs']:>9.2f}"
            f"{r['scan_seconds']:>7.1f}{1000 * r['cpu_seconds'] / r['pairs']:>13.2f}"
            f"{r['client_mib']:>12.0f}{r['client_mib'] / base['client_mib'] - 1:>+7.0%}"
            f"{r['worker_mib']:>12.0f}{r['findings']:>10}{r['load']:>6.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--tree-samples", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=2, help="runs per size; the fastest counts")
    parser.add_argument(
        "--data", type=Path, help="generate the sets here once and reuse them (default: a temp dir)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp)
        generate(data, max(sizes), args.tree_samples)
        rows = []
        for size in sizes:
            root = data / f"flat_{size}"
            if not root.exists():
                subset(data / "flat", root, size)
            rows.append((f"flat {size:>6,}", measure(root, args.workers, args.repeat)))
        tree = measure(data / "tree", args.workers, args.repeat)
        rows.append((f"tree {args.tree_samples} samples", tree))
    show(rows, args.workers, args.repeat)


if __name__ == "__main__":
    main()
