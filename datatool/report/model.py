"""The data of a quality report: what the HTML, Markdown and ``--json`` outputs show.

Everything here is computed from what the library already measured: the
check's :class:`~datatool.findings.Report` (its per-pair
:class:`~datatool.findings.PairStats` give the composition; nothing is
re-measured), the merge manifest's lineage, and the sweep's
:class:`~datatool.metrics.results.SweepResult`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from datatool.findings import Finding, Report, Severity
from datatool.metrics.results import SweepResult

#: Key of the pairs whose split, sample or field of view is not known (a flat set).
NONE_KEY = "(none)"


class Distribution(BaseModel):
    """A per-pair measurement over the dataset: summary numbers and histogram data."""

    model_config = ConfigDict(extra="forbid")

    measured: int = Field(description="Pairs with a value.")
    missing: int = Field(description="Pairs without one (no label, unreadable, inverted...).")
    min: float | None = Field(description="Smallest value, or null when none was measured.")
    median: float | None = Field(description="Median value, or null when none was measured.")
    max: float | None = Field(description="Largest value, or null when none was measured.")
    bin_edges: list[float] = Field(description="Histogram bin edges (len(counts) + 1).")
    counts: list[int] = Field(description="Pairs per histogram bin.")


class Composition(BaseModel):
    """What the dataset is made of, from the check's per-pair measurements."""

    model_config = ConfigDict(extra="forbid")

    pairs: int = Field(description="Pairs (by name) the check looked at.")
    per_split: dict[str, int] = Field(description="Pairs per split ('(none)' for a root set).")
    per_sample: dict[str, int] = Field(description="Pairs per sample id ('(none)' if unknown).")
    per_fov: dict[str, int] = Field(description="Pairs per field of view n ('(none)' if unknown).")
    per_source: dict[str, int] = Field(
        description="Pairs per merge source tag (from the merge manifest); empty without one."
    )
    image_sizes: dict[str, int] = Field(description="Image crops per pixel size 'WxH'.")
    line_width: Distribution = Field(description="Estimated label line width, px.")
    expected_line_width: float = Field(description="The line width the check expects, px.")
    grains: Distribution = Field(description="Complete grains per crop.")
    grain_guideline: int = Field(description="The lab's guideline: more grains than this.")
    below_guideline: int = Field(description="Crops with fewer complete grains than the guideline.")
    untraced_fraction: Distribution = Field(
        description="Share of each crop in large regions with no boundary at all."
    )

    def known_samples(self) -> int:
        """Number of distinct sample ids (pairs without one are not a sample)."""
        return sum(key != NONE_KEY for key in self.per_sample)


class PictureEntry(BaseModel):
    """One pair shown in the pictures section, in page order (flagged pairs first)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Pair name (the shared file stem).")
    image: str | None = Field(description="Image crop path relative to the root.")
    label: str | None = Field(description="Label crop path relative to the root.")
    flagged: bool = Field(description="True when the check found errors or warnings on it.")
    worst: Severity | None = Field(description="Worst severity among its findings, if any.")
    codes: list[str] = Field(description="Codes of its findings, worst first.")
    offset: list[float] | None = Field(
        description="Label offset (dx, dy) px the alignment check measured, when it did."
    )
    misaligned: bool = Field(description="True when the check reported it as misaligned.")


class LineageSummary(BaseModel):
    """Where a merged dataset came from, read from its merge manifest."""

    model_config = ConfigDict(extra="forbid")

    manifest: str = Field(description="The manifest file, relative to the root.")
    name: str = Field(description="Name of the merged dataset.")
    created: str = Field(description="UTC time of the latest merge run.")
    tool_version: str = Field(description="datatool version that wrote the manifest.")
    sources: list[str] = Field(description="Source tags of the latest run, in order.")
    runs: int = Field(description="Merge runs (1 + earlier --update runs).")
    chains: dict[str, int] = Field(
        description="Pairs per lineage chain, e.g. {'OG > Gong_sum': 12}."
    )
    duplicates: int = Field(description="Input pairs stored once (identical to a kept one).")
    conflicts: int = Field(description="Same image with different labels, accepted anyway.")
    refused: int = Field(description="Input pairs not merged.")


class ModelsSection(BaseModel):
    """The loss-versus-epoch sweep of a training run's checkpoints on this dataset."""

    model_config = ConfigDict(extra="forbid")

    checkpoints: str = Field(description="The checkpoint folder given with --checkpoints.")
    split: str | None = Field(description="Split evaluated on (null: every pair).")
    held_out: bool = Field(
        default=True,
        description="False when the scored pairs are not a held-out split: there is no "
        "validation split and every pair (training crops included) was scored, or the "
        "training split was asked for.",
    )
    warning: str | None = Field(
        default=None,
        description="Why these scores may not measure generalisation (with held_out false).",
    )
    overlay_epochs: list[int] = Field(description="Epochs whose overlays are shown.")
    overlay_images: list[str] = Field(description="Images whose overlays are shown.")
    sweep: SweepResult = Field(description="The sweep's scores per checkpoint and image.")


class CropBox(BaseModel):
    """One crop box drawn on a sample's thumbnail."""

    model_config = ConfigDict(extra="forbid")

    crop: int = Field(description="Crop index m (the box's number on the thumbnail).")
    box: list[int] = Field(
        description="[left, top, width, height] in the original's px (scale-bar strip included)."
    )
    flagged: bool = Field(description="True when the check has errors or warnings on this crop.")


class FieldOfViewEntry(BaseModel):
    """One field of view of a sample, as its thumbnail shows it."""

    model_config = ConfigDict(extra="forbid")

    fov: int = Field(description="Field of view n.")
    original: str = Field(description="The micrograph, relative to the root.")
    width: int | None = Field(description="Its width, px (null: unreadable).")
    height: int | None = Field(description="Its height, px (null: unreadable).")
    boxes: list[CropBox] = Field(description="Crop boxes drawn on it.")
    tracing_drawn: bool = Field(description="False when the tracing could not be laid over it.")


class SampleGrains(BaseModel):
    """Grain statistics of a sample's tracing (:func:`datatool.grains.grain_stats`)."""

    model_config = ConfigDict(extra="forbid")

    grains: int = Field(description="Complete grains (touching no edge, at least 10 px).")
    mean_intercept_px: float | None = Field(description="Mean lineal intercept, px.")
    mean_diameter_px: float | None = Field(description="Mean equivalent diameter, px.")
    open_ends: int = Field(description="Skeleton line ends away from the edge.")
    triple_junctions: int = Field(description="Points where three or more boundaries meet.")
    boundary_fraction: float = Field(description="Boundary pixels / all pixels of the tracing.")
    diameter_counts: list[int] = Field(
        default_factory=list,
        description="Complete grains per equivalent-diameter bin (edges: "
        "GrainSizeHistogram.bin_edges_px).",
    )


class GrainSizeHistogram(BaseModel):
    """Equivalent diameters of the complete grains of a split's tracings."""

    model_config = ConfigDict(extra="forbid")

    split: str = Field(description="The split.")
    samples: int = Field(description="Samples whose tracing was measured.")
    grains: int = Field(description="Complete grains counted.")
    bin_edges_px: list[float] = Field(description="Bin edges, px (len(counts) + 1).")
    counts: list[int] = Field(description="Complete grains per bin.")


class SampleSection(BaseModel):
    """One sample of a tree: its fields of view, crop boxes and grains."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Sample id.")
    split: str = Field(description="Split the sample lives in.")
    folder: str = Field(description="Its aligned/ folder, relative to the root.")
    tracing: str | None = Field(description="Its tracing, relative to the root, if present.")
    pairs: int = Field(description="Crop pairs of the sample.")
    flagged_pairs: int = Field(description="Pairs with errors or warnings.")
    codes: list[str] = Field(description="Codes of the findings on its files, worst first.")
    boxes_from: Literal["manifest", "plan", "located"] | None = Field(
        description="Where the boxes come from: the build manifest, crops.json, or the "
        "alignment check's located crops (null: no box known)."
    )
    fields: list[FieldOfViewEntry] = Field(description="Fields of view, by n.")
    grains: SampleGrains | None = Field(
        description="Grain statistics of the tracing (scale-bar strip removed); null without one."
    )
    notes: list[str] = Field(default_factory=list, description="What could not be shown, and why.")


class LeakageSection(BaseModel):
    """The leakage check's findings, split by what they mean."""

    model_config = ConfigDict(extra="forbid")

    across_splits: list[Finding] = Field(
        description="Content in two splits (code split-leakage, or files related across splits)."
    )
    within_split: list[Finding] = Field(
        description="Near-identical copies inside one split (code duplicate)."
    )


class ReportParameters(BaseModel):
    """How the report was produced."""

    model_config = ConfigDict(extra="forbid")

    root: str = Field(description="The dataset folder.")
    samples: int = Field(description="Clean pairs pictured at random (after all flagged ones).")
    max_flagged: int = Field(description="At most this many flagged pairs are pictured.")
    seed: int = Field(description="Seed of the random choice of clean pairs.")
    checkpoints: str | None = Field(description="Checkpoint folder, or null.")
    eval_split: str | None = Field(description="Split the checkpoints were evaluated on.")
    resolution: int | None = Field(description="Resolution of the model sweep, px.")


class QualityReport(BaseModel):
    """``datatool report --json``: the check report plus the statistics the page shows."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["quality-report"] = Field(
        default="quality-report", description="Always 'quality-report'."
    )
    tool_version: str = Field(description="datatool version that wrote the report.")
    created: str = Field(description="UTC time the report was made, ISO 8601.")
    parameters: ReportParameters = Field(description="The report's parameters.")
    check: Report = Field(description="The check report, as `datatool check --json` gives it.")
    composition: Composition = Field(description="Counts and distributions of the dataset.")
    pictures: list[PictureEntry] = Field(description="Pairs pictured, in page order.")
    flagged_not_pictured: int = Field(
        default=0, description="Flagged pairs left out of the pictures (over max_flagged)."
    )
    samples: list[SampleSection] = Field(
        default_factory=list, description="A section per sample of a tree, in layout order."
    )
    grain_sizes: list[GrainSizeHistogram] = Field(
        default_factory=list,
        description="Grain-size histogram of the tracings per split (a tree with tracings).",
    )
    leakage: LeakageSection | None = Field(
        default=None, description="Leakage across splits and duplicates inside one split."
    )
    lineage: LineageSummary | None = Field(
        default=None, description="The merge manifest's lineage, when the root has one."
    )
    models: ModelsSection | None = Field(
        default=None, description="The checkpoint sweep, with --checkpoints."
    )
