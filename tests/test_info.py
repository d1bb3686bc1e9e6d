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
