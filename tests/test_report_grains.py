"""The report's grain-size histogram per split, summed from the samples' tracings."""

from __future__ import annotations

import math

import numpy as np

from datatool.checks import CheckOptions
from datatool.grains import DIAMETER_BIN_EDGES_PX, diameter_histogram
from datatool.report import build_report
from tests.conftest import FIXTURE_TREE


def test_diameter_histogram_bins_by_equivalent_diameter() -> None:
    diameters = np.array([2.5, 2.9, 30.0, 5000.0])
    counts = diameter_histogram(math.pi * (diameters / 2) ** 2)
    edges = np.asarray(DIAMETER_BIN_EDGES_PX)
    assert sum(counts) == 4
    assert counts[0] == 1 and counts[1] == 1  # 2.5 in [2, 2.83), 2.9 in [2.83, 4)
    assert counts[int(np.searchsorted(edges, 30.0)) - 1] == 1
    assert counts[-1] == 1  # beyond the last edge counts in the last bin


def test_report_has_a_grain_size_histogram_per_split() -> None:
    report, figures = build_report(FIXTURE_TREE, CheckOptions(alignment=False, workers=1))
    by_split = {h.split: h for h in report.grain_sizes}
    assert set(by_split) == {"training", "validation"}
    for split, histogram in by_split.items():
        members = [s for s in report.samples if s.split == split and s.grains]
        assert histogram.samples == len(members)
        assert histogram.grains == sum(s.grains.grains for s in members)
        assert histogram.counts == list(
            np.sum([s.grains.diameter_counts for s in members], axis=0)
        )
        assert len(histogram.bin_edges_px) == len(histogram.counts) + 1
    assert figures.grain_sizes is not None
    assert figures.grain_sizes.png.startswith(bytes([0x89]) + b"PNG")
