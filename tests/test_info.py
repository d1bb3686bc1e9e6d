"""``datatool info``: grain statistics per split and per sample, from the one grain definition."""

from __future__ import annotations

import json

import numpy as np

from datatool import io
from datatool.grains import grain_stats
from datatool.info import describe
from datatool.layout import scan
from tests.conftest import FIXTURE_TREE


def test_grain_statistics_per_split_follow_the_grains_module() -> None:
    info = describe(FIXTURE_TREE)
    layout = scan(FIXTURE_TREE)
    for split in ("training", "validation"):
        counts = [
            grain_stats(io.read_truth(layout.path(p.label))).grains
            for p in layout.pairs
            if p.split == split
        ]
        summary = info.grains_per_split[split]
        assert summary.crops == len(counts)
        assert summary.grains == sum(counts)
        assert summary.fewest_grains == min(counts)
        assert summary.grains_per_crop == round(float(np.mean(counts)), 2)
    assert set(info.grains_per_sample) == {"0101", "0102", "0201"}
    assert sum(s.crops for s in info.grains_per_sample.values()) == info.measured


def test_info_prints_grains_per_split_within_80_columns(run_cli, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli("info", FIXTURE_TREE)
    assert code == 0
    assert "grains per split" in out and "grains per sample" in out
    assert all(len(line) <= 80 for line in out.splitlines())
    code, out, _ = run_cli("info", FIXTURE_TREE, "--json")
    assert json.loads(out)["grains_per_split"]["validation"]["crops"] == 8


def test_pairs_are_counted_as_check_counts_them_and_unpaired_ones_said(
    sample_tree, run_cli, monkeypatch
) -> None:
    """An image without its label (or a label without its image) is a pair, said incomplete."""
    from datatool.check import run_check
    from datatool.checks import CheckOptions

    complete = describe(sample_tree)
    assert complete.unpaired == 0
    pairs = scan(sample_tree).pairs
    (sample_tree / pairs[0].label).unlink()  # an image left without its label
    (sample_tree / pairs[-1].image).unlink()  # a label left without its image
    info = describe(sample_tree)
    report = run_check(sample_tree, CheckOptions(workers=1, alignment=False))
    assert info.pairs == report.summary.pairs == complete.pairs and info.unpaired == 2
    assert sum(info.per_split.values()) == info.pairs
    assert info.measured == complete.measured - 2  # only complete pairs are decoded
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli("info", sample_tree)
    assert code == 0 and "2 without its image or label" in out
