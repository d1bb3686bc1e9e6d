"""Time ``datatool grains`` on a 1024 x 1024 tracing; the goal is under 0.5 s.

Run: ``.venv/bin/python benchmarks/bench_grains.py [--size 1024] [--repeat 5]``

The tracing is a GIMP-like synthetic one (blurred black lines on white, about
1000 grains of ~30 px). Printed side by side: decoding the PNG, the whole
measurement (polarity, skeleton, grain labels, every statistic) and its parts,
and the grain agreement of a 2-px-shifted prediction (what ``score --grains``
adds per prediction).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _timing import best_of

from datatool import grains, io, labels, synth
from datatool.metrics.grains import grain_agreement

GOAL_S = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sample = synth.make_sample(3, (args.size, args.size), 30.0, fields_of_view=1, strip=0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace.png"
        io.write_png(path, sample.tracing)
        grains.measure_file(str(path), 0.5)  # warm up imports
        decode = best_of(args.repeat, lambda: io.read_grey(path))
        whole = best_of(args.repeat, lambda: grains.measure_file(str(path), 0.5))
        stats, gmap = grains.measure_file(str(path), 0.5)
    boundary = grains.tracing_boundary(sample.tracing)
    skeleton = labels.skeleton(boundary)
    parts = {
        "skeletonize": best_of(args.repeat, lambda: labels.skeleton(boundary)),
        "grain labels": best_of(args.repeat, lambda: grains.grain_map(boundary, skeleton=skeleton)),
        "statistics": best_of(args.repeat, lambda: grains.grain_stats(boundary, 0.5, gmap=gmap)),
    }
    truth = labels.process_tracing(sample.tracing, 3)
    pred = np.roll(truth, (2, 2), axis=(0, 1)).astype(np.float32)
    agreement = best_of(max(1, args.repeat // 2), lambda: grain_agreement(pred, truth))
    print(
        f"{args.size} x {args.size} tracing, {stats.grains} complete grains, best of {args.repeat}"
    )
    print(f"{'step':<28}{'time':>10}{'x decode':>10}")
    print(f"{'decode PNG':<28}{decode * 1e3:>8.1f} ms{1.0:>10.1f}")
    print(f"{'grains (whole command)':<28}{whole * 1e3:>8.1f} ms{whole / decode:>10.1f}")
    for name, seconds in parts.items():
        print(f"{'  ' + name:<28}{seconds * 1e3:>8.1f} ms{seconds / decode:>10.1f}")
    print(f"{'grain agreement (score)':<28}{agreement * 1e3:>8.1f} ms{agreement / decode:>10.1f}")
    verdict = "met" if whole < GOAL_S else "NOT met"
    print(f"goal: grains under {GOAL_S} s on a {args.size}-px tracing: {verdict} ({whole:.3f} s)")


if __name__ == "__main__":
    main()
