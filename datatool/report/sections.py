"""Assemble a quality report: run the check once, sweep once, draw the pictures.

Nothing is measured twice: the composition comes from the check's per-pair
:class:`~datatool.findings.PairStats`, the model scores and their overlay
pictures from :mod:`datatool.evaluate.sweep`. New here is only the drawing of
a label over its image (:mod:`datatool.report.plots`).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from datatool import io, labels
from datatool.check import run_check
from datatool.checks import CheckOptions
from datatool.errors import ImageReadError
from datatool.findings import Finding, PairStats, Report, Severity
from datatool.layout import DatasetLayout, scan
from datatool.report import plots
from datatool.report.model import (
    NONE_KEY,
    Composition,
    Distribution,
    LineageSummary,
    ModelsSection,
    PictureEntry,
    QualityReport,
    ReportParameters,
)

MISALIGNED_CODE = "misaligned"


@dataclass(frozen=True)
class Figure:
    """One embedded picture: PNG (or, for thumbnails, JPEG) bytes, a title and a caption."""

    title: str
    png: bytes
    caption: str = ""

    @property
    def mime(self) -> str:
        """``image/png`` or ``image/jpeg``, from the bytes' signature."""
        return "image/jpeg" if self.png[:2] == b"\xff\xd8" else "image/png"


@dataclass
class ReportFigures:
    """The pictures of a report, grouped by section (the data lives in QualityReport)."""

    composition: list[Figure] = field(default_factory=list)
    pairs: list[list[Figure]] = field(default_factory=list)
    """Figures of each pictured pair, in the order of ``QualityReport.pictures``."""
    samples: list[list[Figure]] = field(default_factory=list)
    """A thumbnail per field of view of each sample, in the order of ``QualityReport.samples``."""
    grain_sizes: Figure | None = None
    """The grain-size histograms per split, one line each."""
    loss_vs_epoch: Figure | None = None
    model_overlays: dict[str, dict[int, list[Figure]]] = field(default_factory=dict)
    """Per image shown, per epoch (first and last): the sweep's overlay pictures."""

    def all(self) -> list[Figure]:
        """Every figure, in page order."""
        out = list(self.composition)
        if self.grain_sizes is not None:
            out.append(self.grain_sizes)
        for figures in self.samples:
            out.extend(figures)
        for figures in self.pairs:
            out.extend(figures)
        if self.loss_vs_epoch is not None:
            out.append(self.loss_vs_epoch)
        for by_epoch in self.model_overlays.values():
            for figures in by_epoch.values():
                out.extend(figures)
        return out


@dataclass(frozen=True)
class ModelsFigures:
    """The model section of a report: the sweep's data and its pictures."""

    section: ModelsSection
    loss_vs_epoch: Figure
    overlays: dict[str, dict[int, list[Figure]]]
    """Per image shown, per epoch (first and last): the sweep's overlay pictures."""


# --------------------------------------------------------------------------- composition


def _natural(key: str) -> list[object]:
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def _count(values: Iterable[object]) -> dict[str, int]:
    counts = Counter(NONE_KEY if v is None else str(v) for v in values)
    return {k: counts[k] for k in sorted(counts, key=_natural)}


def distribution(
    values: Iterable[float | None], bin_edges: np.ndarray | None = None
) -> Distribution:
    """Summary and histogram of the measured values (``None`` counts as missing).

    Parameters
    ----------
    values : iterable of float or None
    bin_edges : (B + 1,) float array, optional
        Histogram edges; ten equal bins over the range when omitted.
    """
    all_values = list(values)
    measured = np.array([v for v in all_values if v is not None], dtype=np.float64)
    missing = len(all_values) - measured.size
    if measured.size == 0:
        return Distribution(
            measured=0, missing=missing, min=None, median=None, max=None, bin_edges=[], counts=[]
        )
    counts, edges = np.histogram(measured, bins=10 if bin_edges is None else bin_edges)
    return Distribution(
        measured=int(measured.size),
        missing=missing,
        min=float(measured.min()),
        median=float(np.median(measured)),
        max=float(measured.max()),
        bin_edges=[round(float(e), 6) for e in edges],
        counts=[int(c) for c in counts],
    )


def compose(
    pairs: list[PairStats], options: CheckOptions, source_by_image: dict[str, str] | None = None
) -> Composition:
    """Counts and distributions of a dataset from the check's per-pair stats."""
    sources = source_by_image or {}
    widths = [p.line_width for p in pairs]
    grains = [p.grains for p in pairs]
    top_width = max([w for w in widths if w is not None] + [2.0 * options.line_width])
    top_grains = max([g for g in grains if g is not None] + [2 * options.min_grains])
    return Composition(
        pairs=len(pairs),
        per_split=_count(p.split for p in pairs),
        per_sample=_count(p.sample for p in pairs),
        per_fov=_count(p.fov for p in pairs),
        per_source=_count(sources.get(p.image or "") for p in pairs) if sources else {},
        image_sizes=_count(f"{p.width}x{p.height}" if p.width is not None else None for p in pairs),
        line_width=distribution(widths, np.arange(-0.25, np.ceil(top_width) + 0.75, 0.5)),
        expected_line_width=float(options.line_width),
        grains=distribution(grains, np.arange(-0.5, top_grains + 1.5, 1.0)),
        grain_guideline=options.min_grains,
        below_guideline=sum(g is not None and g < options.min_grains for g in grains),
        untraced_fraction=distribution(
            [p.untraced_fraction for p in pairs], np.linspace(0.0, 1.0, 21)
        ),
    )


def composition_figures(composition: Composition, options: CheckOptions) -> list[Figure]:
    """The composition plots: counts per split/sample/fov/source/size and three histograms.

    Only charts that compare something: a count or histogram with a single bar
    is left out (the page states it in a sentence, see :func:`single_valued`).
    """
    figures = [
        Figure(title, plots.bar_chart(counts, title, xlabel))
        for title, counts, xlabel in (
            ("Pairs per split", composition.per_split, "split"),
            ("Pairs per sample", composition.per_sample, "sample id"),
            ("Pairs per field of view", composition.per_fov, "field of view n"),
            ("Pairs per source", composition.per_source, "merge source"),
            ("Image crop sizes", composition.image_sizes, "width x height, px"),
        )
        if _compares(counts)
    ]
    width, grains, untraced = (
        composition.line_width,
        composition.grains,
        composition.untraced_fraction,
    )
    histograms = [
        (
            "Label line width", width, "estimated width, px",
            [(composition.expected_line_width, f"expected {options.line_width} px")], False,
            f"{width.measured} labels measured"
            + (f", {width.missing} not (no label, empty or unreadable)" if width.missing else ""),
        ),
        (
            "Complete grains per crop", grains, "complete grains",
            [(composition.grain_guideline - 0.5, f"guideline: {options.min_grains} grains")], True,
            f"{composition.below_guideline} crop(s) below the {options.min_grains}-grain guideline",
        ),
        (
            "Untraced area per crop", untraced, "share of the crop with no boundary", [], False,
            "large regions without any line: parts of the image nobody traced",
        ),
    ]  # fmt: skip
    for title, dist, xlabel, marks, integer_x, caption in histograms:
        if plots.worth_a_chart(dist.counts):
            chart = plots.histogram_chart(
                dist.bin_edges, dist.counts, title, xlabel, marks, integer_x=integer_x
            )
            figures.append(Figure(title, chart, caption))
    return figures


def _compares(counts: dict[str, int]) -> bool:
    """A count per key is worth a bar chart: two bars or more, and not all the same height."""
    values = list(counts.values())
    return plots.worth_a_chart(values) and len(set(values)) > 1


def single_valued(composition: Composition) -> list[str]:
    """Sentences for the charts :func:`composition_figures` leaves out.

    One value for all (a single bar), or the same count for every key (bars of
    one height).
    """
    c = composition
    out = []
    for what, counts in (
        ("split", c.per_split),
        ("sample", c.per_sample),
        ("field of view", c.per_fov),
        ("merge source", c.per_source),
        ("image crop size", c.image_sizes),
    ):
        if len(counts) > 1 and not _compares(counts):
            n = next(iter(counts.values()))
            out.append(f"{n} pairs per {what}, for each of the {len(counts)}")
            continue
        if counts and not _compares(counts):
            key, n = next((k, v) for k, v in counts.items() if v)
            shown = f"{key} px" if what == "image crop size" else key
            known = key != NONE_KEY
            out.append(f"{what} {shown} for all {n} pairs" if known else f"no {what} known")
    for what, unit, dist in (
        ("label line width", " px", c.line_width),
        ("complete grains per crop", "", c.grains),
        ("untraced share of the crop", "", c.untraced_fraction),
    ):
        if dist.measured and not plots.worth_a_chart(dist.counts):
            value = f"{dist.min:g}" if dist.min == dist.max else f"{dist.min:.3g} to {dist.max:.3g}"
            out.append(f"{what} {value}{unit} for all {dist.measured} measured")
    return out


# --------------------------------------------------------------------------- lineage


def read_lineage(layout: DatasetLayout) -> tuple[LineageSummary | None, dict[str, str]]:
    """The merge manifest's lineage and each output image's source tag, when there is one.

    Read through :class:`datatool.merge.MergeManifest`; a build manifest, an
    unreadable one, or a tree without a merge module gives ``(None, {})``.
    """
    if layout.manifest is None:
        return None, {}
    path = layout.path(layout.manifest)
    try:
        import json

        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, {}
    if not isinstance(raw, dict) or raw.get("kind") != "merge":
        return None, {}
    try:
        from datatool.merge import MergeManifest
    except ImportError:
        return None, {}
    from pydantic import ValidationError

    try:
        manifest = MergeManifest.model_validate(raw)
    except ValidationError:
        return None, {}
    summary = LineageSummary(
        manifest=layout.manifest,
        name=manifest.name,
        created=manifest.created,
        tool_version=manifest.tool_version,
        sources=[s.tag for s in manifest.parameters.sources],
        runs=1 + len(manifest.previous_runs),
        chains=dict(Counter(" > ".join(p.lineage) for p in manifest.pairs).most_common()),
        duplicates=len(manifest.duplicates),
        conflicts=len(manifest.conflicts),
        refused=len(manifest.refused),
    )
    return summary, {p.image: p.source_tag for p in manifest.pairs}


# --------------------------------------------------------------------------- pictures


def _pair_name(stats: PairStats) -> str:
    return Path(stats.image or stats.label or "?").stem


def _findings_by_path(report: Report) -> dict[str, list[Finding]]:
    index: dict[str, list[Finding]] = defaultdict(list)
    for f in report.findings:
        for path in dict.fromkeys([f.path, *f.related]):
            index[path].append(f)
    return index


def choose_pictures(
    report: Report, samples: int, seed: int, max_flagged: int
) -> tuple[list[PictureEntry], int]:
    """Pairs to picture, in page order.

    Every flagged pair, worst first and misaligned first among equals, then
    ``samples`` clean pairs drawn at random with ``seed``.

    Returns the entries in page order and the number of flagged pairs left out.
    """
    index = _findings_by_path(report)
    flagged: list[PictureEntry] = []
    clean: list[PictureEntry] = []
    for stats in report.pairs:
        found = {id(f): f for p in (stats.image, stats.label) if p for f in index.get(p, [])}
        serious = sorted(
            (f for f in found.values() if f.severity is not Severity.info),
            key=lambda f: (f.severity.rank, f.code),
        )
        entry = PictureEntry(
            name=_pair_name(stats),
            image=stats.image,
            label=stats.label,
            flagged=bool(serious),
            worst=serious[0].severity if serious else None,
            codes=list(dict.fromkeys(f.code for f in serious)),
            offset=stats.offset,
            misaligned=any(f.code == MISALIGNED_CODE for f in serious),
        )
        (flagged if serious else clean).append(entry)
    flagged.sort(key=lambda e: (e.worst.rank, not e.misaligned, _natural(e.name)))
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(clean), size=min(samples, len(clean)), replace=False))
    return flagged[:max_flagged] + [clean[i] for i in chosen], max(0, len(flagged) - max_flagged)


def _read(root: Path, rel: str | None) -> io.DecodedImage | None:
    if rel is None:
        return None
    try:
        return io.read_image(root / rel)
    except ImageReadError:
        return None


def pair_figures(root: Path, entry: PictureEntry) -> list[Figure]:
    """The image with its label in red.

    For a misaligned pair also the label moved by the offset the alignment check
    found (green), so the person sees that it then fits.
    """
    image = _read(root, entry.image)
    label = _read(root, entry.label)
    lines = labels.line_mask(label.pixels) if label is not None else None
    if image is not None and lines is not None and image.pixels.shape == lines.shape:
        figures = [
            Figure(
                "label as stored",
                plots.encode_rgb_png(plots.label_overlay(image.pixels, lines)),
                "image in grey, its label in red",
            )
        ]
        if entry.misaligned and entry.offset is not None:
            # The offset is the label's box minus the image's box: a label cut dx px
            # further right shows its content dx px further left, so moving the label
            # by +offset puts it where the image says it belongs.
            dx, dy = entry.offset
            moved = plots.shift_mask(lines, dx, dy)
            figures.append(
                Figure(
                    f"label moved by the offset found ({dx:+g}, {dy:+g}) px",
                    plots.encode_rgb_png(
                        plots.label_overlay(image.pixels, moved, plots.SHIFTED_COLOUR)
                    ),
                    f"the label was cut ({dx:+g}, {dy:+g}) px off its image's box; "
                    "moved by that offset (green) it should fit",
                )
            )
        return figures
    figures = []
    if image is not None:
        figures.append(
            Figure("image", plots.encode_rgb_png(plots.to_uint8(image.pixels)), "image alone")
        )
    if lines is not None:
        figures.append(
            Figure(
                "label",
                plots.encode_rgb_png(lines.astype(np.uint8) * 255),
                "label alone (lines white)",
            )
        )
    return figures


# --------------------------------------------------------------------------- models

#: The sweep's overlay pictures shown per image and epoch: (file kind, title, caption).
# --------------------------------------------------------------------------- entry point


def build_report(
    root: str | os.PathLike[str],
    check_options: CheckOptions | None = None,
    *,
    samples: int = 12,
    seed: int = 0,
    max_flagged: int = 100,
    models: Callable[[], ModelsFigures] | None = None,
    progress: Callable[[int, int], None] | None = None,
    scheduler: str = "local",
) -> tuple[QualityReport, ReportFigures]:
    """Check a dataset (and optionally sweep checkpoints on it) and draw the report's pictures.

    Parameters
    ----------
    root : path-like
        A tree or flat set.
    check_options : CheckOptions, optional
    samples : int
        Clean pairs pictured at random, after every flagged pair.
    seed : int
        Seed of that random choice.
    max_flagged : int
        At most this many flagged pairs are pictured (the rest are counted).
    models : callable, optional
        Runs the checkpoint sweep on this dataset after the check and returns its
        data and pictures (:func:`datatool.evaluate.reporting.sweep_for_report`).
    progress : callable, optional
        ``progress(done, total)`` of the check.
    scheduler : str
        Where the check's samples run (:func:`datatool.check.run_check`).

    Returns
    -------
    (QualityReport, ReportFigures)
    """
    from datatool import __version__

    if samples < 0 or max_flagged < 0:
        raise ValueError(f"samples ({samples}) and max_flagged ({max_flagged}) must be >= 0")
    options = check_options or CheckOptions()
    layout = scan(root)
    root_path = Path(layout.root)
    check = run_check(root, options, layout=layout, progress=progress, scheduler=scheduler)
    lineage, source_by_image = read_lineage(layout)
    composition = compose(check.pairs, options, source_by_image)
    pictures, left_out = choose_pictures(check, samples, seed, max_flagged)
    from datatool.report.samples import (
        grain_size_chart,
        grain_size_histograms,
        leakage_section,
        sample_sections,
    )

    sections, thumbnails = sample_sections(layout, check)
    grain_sizes = grain_size_histograms(sections)
    figures = ReportFigures(
        composition=composition_figures(composition, options),
        pairs=[pair_figures(root_path, entry) for entry in pictures],
        samples=[[Figure(*picture) for picture in pictures] for pictures in thumbnails],
    )
    chart = grain_size_chart(grain_sizes)
    if chart is not None:
        figures.grain_sizes = Figure(
            "Grain size per split",
            chart,
            "Equivalent diameters of the complete grains of each split's tracings "
            "(scale-bar strip removed), as shares of the split's grains.",
        )
    section = None
    if models is not None:
        swept = models()
        section = swept.section
        figures.loss_vs_epoch, figures.model_overlays = swept.loss_vs_epoch, swept.overlays
    report = QualityReport(
        tool_version=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        parameters=ReportParameters(
            root=str(root),
            samples=samples,
            max_flagged=max_flagged,
            seed=seed,
            checkpoints=section.checkpoints if section else None,
            eval_split=section.split if section else None,
            resolution=section.sweep.options.resolution if section else None,
        ),
        check=check,
        composition=composition,
        pictures=pictures,
        flagged_not_pictured=left_out,
        samples=sections,
        grain_sizes=grain_sizes,
        leakage=leakage_section(check, layout),
        lineage=lineage,
        models=section,
    )
    return report, figures
