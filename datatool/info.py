"""``datatool info``: what a dataset is made of, measured from a sample of its pairs.

Pairs per split and source, crop sizes, line widths, the merge lineage, and the
grain statistics of the label crops (:mod:`datatool.grains`) per split and
per sample.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from datatool import io, labels
from datatool import layout as layout_mod
from datatool.errors import DatatoolError, ImageReadError
from datatool.grains import GrainStats, grain_stats
from datatool.layout import scan
from datatool.merge import load_manifest, verify


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(float(np.mean(known)), 2) if known else None


class GrainSummary(BaseModel):
    """Grain statistics of a group of label crops (see :mod:`datatool.grains`)."""

    model_config = ConfigDict(extra="forbid")

    crops: int = Field(description="Label crops measured.")
    grains: int = Field(description="Complete grains in all of them.")
    grains_per_crop: float = Field(description="Mean complete grains per crop.")
    fewest_grains: int = Field(description="Fewest complete grains in one crop.")
    median_area_px: float | None = Field(
        description="Mean over crops of the median complete-grain area, px (null: no grain)."
    )
    mean_intercept_px: float | None = Field(
        description="Mean over crops of the mean lineal intercept, px (null: no crossing)."
    )
    open_ends_per_crop: float = Field(description="Mean skeleton open ends per crop.")
    boundary_fraction: float = Field(description="Mean share of boundary pixels per crop.")

    @classmethod
    def of(cls, stats: list[GrainStats]) -> GrainSummary:
        """Summarise the statistics of several crops (at least one)."""
        if not stats:
            raise ValueError("GrainSummary.of needs at least one crop")
        counts = [s.grains for s in stats]
        return cls(
            crops=len(stats),
            grains=int(sum(counts)),
            grains_per_crop=round(float(np.mean(counts)), 2),
            fewest_grains=int(min(counts)),
            median_area_px=_mean([s.median_area_px for s in stats]),
            mean_intercept_px=_mean([s.mean_intercept_px for s in stats]),
            open_ends_per_crop=round(float(np.mean([s.open_ends for s in stats])), 2),
            boundary_fraction=round(float(np.mean([s.boundary_fraction for s in stats])), 4),
        )


class DatasetInfo(BaseModel):
    """What ``datatool info`` reports about a dataset."""

    model_config = ConfigDict(extra="forbid")

    root: str = Field(description="Absolute path of the dataset.")
    kind: Literal["tree", "flat"] = Field(description="Layout of the dataset.")
    name: str | None = Field(default=None, description="Merge name, when it is a merged set.")
    pairs: int = Field(description="Image/label pairs (by name, as datatool check counts them).")
    unpaired: int = Field(
        default=0,
        description="Of those, images without their label or labels without their image.",
    )
    per_split: dict[str, int] = Field(description="Pairs per split ('-' for no split).")
    per_source: dict[str, int] = Field(
        default_factory=dict, description="Pairs per source tag (merged sets)."
    )
    per_lineage: dict[str, int] = Field(
        default_factory=dict, description="Pairs per lineage, e.g. 'OG > Gong_sum > GG_sum'."
    )
    measured: int = Field(description="Pairs decoded for sizes and line widths.")
    sizes: dict[str, int] = Field(description="Image crops per size 'WxH'.")
    line_width: dict[str, float] = Field(
        description="Label line width over the measured pairs: min, median, max (px)."
    )
    duplicates: int = Field(default=0, description="Input pairs stored once (merged sets).")
    refused: int = Field(default=0, description="Input pairs not merged (merged sets).")
    manifest_matches: bool | None = Field(
        default=None, description="True when every file matches the manifest; null without one."
    )
    grains_per_split: dict[str, GrainSummary] = Field(
        default_factory=dict,
        description="Grain statistics of the measured label crops per split ('-' for no split).",
    )
    grains_per_sample: dict[str, GrainSummary] = Field(
        default_factory=dict,
        description="Grain statistics of the measured label crops per sample id ('-' if unknown).",
    )


def describe(
    root: str | os.PathLike[str],
    *,
    max_measured: int = 500,
    max_pixels: int | None = io.DEFAULT_MAX_PIXELS,
) -> DatasetInfo:
    """Summarise a dataset: pairs per split and source, sizes, line widths, lineage.

    Parameters
    ----------
    root : path
        A tree or flat set; a merged set's manifest adds sources and lineage.
    max_measured : int
        Decode at most this many pairs (evenly spread) for sizes and line widths.
    max_pixels : int or None
        Pixel budget per image; larger files are not decoded (not measured).

    Raises
    ------
    DatatoolError
        The folder holds no complete image/label pair (the message says what was
        looked for and what was found).
    """
    layout = scan(root)
    pairs = [p for p in layout.pairs if p.image and p.label]
    if not pairs:
        raise DatatoolError(layout_mod.diagnose_empty(root))
    step = max(1, int(np.ceil(len(pairs) / max(1, max_measured))))
    sizes: Counter[str] = Counter()
    widths = []
    by_split: dict[str, list[GrainStats]] = defaultdict(list)
    by_sample: dict[str, list[GrainStats]] = defaultdict(list)
    measured = pairs[::step]
    for entry in measured:
        try:
            image = io.read_image(layout.path(entry.image), max_pixels=max_pixels)
            truth = io.read_truth(layout.path(entry.label), max_pixels=max_pixels)
        except ImageReadError:
            continue
        width = labels.estimate_line_width(truth)
        h, w = image.pixels.shape
        sizes[f"{w}x{h}"] += 1
        if width is not None:
            widths.append(width)
        stats = grain_stats(truth)
        by_split[entry.split or "-"].append(stats)
        by_sample[entry.sample_id or "-"].append(stats)
    info = DatasetInfo(
        root=layout.root,
        kind=layout.kind,
        pairs=len(layout.pairs),
        unpaired=len(layout.pairs) - len(pairs),
        per_split=dict(Counter(p.split or "-" for p in layout.pairs)),
        measured=len(measured),
        sizes=dict(sizes.most_common()),
        line_width=(
            {
                "min": round(float(np.min(widths)), 2),
                "median": round(float(np.median(widths)), 2),
                "max": round(float(np.max(widths)), 2),
            }
            if widths
            else {}
        ),
    )
    info.grains_per_split = {k: GrainSummary.of(v) for k, v in sorted(by_split.items())}
    info.grains_per_sample = {k: GrainSummary.of(v) for k, v in sorted(by_sample.items())}
    manifest = load_manifest(Path(layout.root), layout)
    if manifest is not None:
        info.name = manifest.name
        info.per_source = dict(Counter(p.source_tag for p in manifest.pairs))
        info.per_lineage = dict(Counter(" > ".join(p.lineage) for p in manifest.pairs))
        info.duplicates = len(manifest.duplicates)
        info.refused = len(manifest.refused)
        try:
            verify(Path(layout.root))
            info.manifest_matches = True
        except DatatoolError:
            info.manifest_matches = False
    return info
