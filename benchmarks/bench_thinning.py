"""Thinning a tracing as labels are made: datatool's centre lines against skimage.

Run: ``.venv/bin/python benchmarks/bench_thinning.py [--size 1024] [--repeat 5]``

The line mask of a GIMP-like synthetic tracing (blurred lines of several px,
blobs at triple points) is thinned, side by side in one run, by
``labels.centre_lines`` (Guo & Hall, 64 pixels per bitwise operation), by
``skimage.morphology.thin`` (the same algorithm and result, one image-wide
correlation per subiteration) and by ``skimage.morphology.skeletonize``
(Zhang & Suen, what labels were thinned with before; it stays the grain
skeleton K). Prints the best time of each and the ratios.
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import best_of

from datatool import labels, synth


def main() -> None:
    from skimage.morphology import skeletonize, thin

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sample = synth.make_sample(3, (args.size, args.size), 40.0, fields_of_view=1, strip=0)
    mask = labels.line_mask(sample.tracing)
    assert np.array_equal(labels.centre_lines(mask), thin(mask))
    ours = best_of(args.repeat, lambda: labels.centre_lines(mask), warm_up=True)
    guo_hall = best_of(args.repeat, lambda: thin(mask), warm_up=True)
    zhang = best_of(args.repeat, lambda: skeletonize(mask), warm_up=True)
    print(f"line mask {mask.shape[1]} x {mask.shape[0]} px, {mask.mean():.1%} on the lines")
    print(f"labels.centre_lines         {ours * 1e3:7.1f} ms")
    print(f"skimage.morphology.thin     {guo_hall * 1e3:7.1f} ms  {guo_hall / ours:5.1f}x slower")
    print(f"skimage ... skeletonize     {zhang * 1e3:7.1f} ms  {zhang / ours:5.1f}x slower")


if __name__ == "__main__":
    main()
