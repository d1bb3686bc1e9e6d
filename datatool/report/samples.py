"""The report's sample sections and its leakage section.

A sample section shows each field of view as a small thumbnail (at most
:data:`~datatool.report.plots.THUMBNAIL_SIDE` px, JPEG) with the tracing laid
over it and the crop boxes numbered, and the tracing's grain statistics
(:mod:`datatool.grains`). The boxes are what the build cut (a ``kind: build``
``manifest.json``), else the sample's ``crops.json``, else where the alignment
check located the crops (:attr:`datatool.findings.PairStats.box`).

The leakage section splits the leakage check's findings by meaning: content
shared by two splits (an error: the validation scores are not held out) and
near-identical copies inside one split (a warning: those grains weigh more in
training). Nothing here is re-measured: the findings are the check's.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path, PurePosixPath

import numpy as np

from datatool import grains, io
from datatool.crop import Border, strip_border
from datatool.errors import DatatoolError, ImageReadError
from datatool.findings import Finding, Report, Severity
from datatool.layout import DatasetLayout, SampleEntry
from datatool.report import plots
from datatool.report.model import (
    CropBox,
    FieldOfViewEntry,
    GrainSizeHistogram,
    LeakageSection,
    SampleGrains,
    SampleSection,
)

LEAKAGE_CHECK = "leakage"
DUPLICATE_CODE = "duplicate"

Thumbnail = tuple[str, bytes, str]
"""``(title, JPEG bytes, caption)`` of one field of view."""


# --------------------------------------------------------------------------- leakage


def split_index(check: Report, layout: DatasetLayout) -> dict[str, str | None]:
    """Root-relative path -> split, for every crop, original, tracing and sample folder."""
    index: dict[str, str | None] = {}
    for stats in check.pairs:
        for path in (stats.image, stats.label):
            if path:
                index[path] = stats.split
    for sample in layout.samples:
        for path in (*sample.originals.values(), sample.tracing, sample.folder):
            if path:
                index[path] = sample.split
        index[str(PurePosixPath(sample.folder).parent)] = sample.split
    return index


def split_of(path: str, index: dict[str, str | None], splits: set[str]) -> str | None:
    """The split a root-relative path lies in (its first folder when that is a split name)."""
    if path in index:
        return index[path]
    first = PurePosixPath(path).parts[:1]
    return first[0] if first and first[0] in splits else None


def leakage_section(check: Report, layout: DatasetLayout) -> LeakageSection:
    """The leakage check's findings: across splits, and duplicates inside one split.

    A finding is *across splits* when its code is ``split-leakage`` or any of
    its related files lies in another split than its own file; the rest of the
    leakage check's findings (``duplicate``) are *within one split*.
    """
    index = split_index(check, layout)
    splits = set(layout.splits) | {s for s in index.values() if s}
    across: list[Finding] = []
    within: list[Finding] = []
    for f in check.findings:
        if f.check != LEAKAGE_CHECK and f.code != DUPLICATE_CODE:
            continue
        here = split_of(f.path, index, splits)
        elsewhere = {split_of(p, index, splits) for p in f.related} - {here}
        if f.code != DUPLICATE_CODE or elsewhere:
            across.append(f)
        else:
            within.append(f)
    return LeakageSection(across_splits=across, within_split=within)


# --------------------------------------------------------------------------- boxes

#: Boxes of one sample: field of view n -> crop m -> (left, top, width, height), full px.
SampleBoxes = dict[int, dict[int, tuple[int, int, int, int]]]


def manifest_boxes(layout: DatasetLayout) -> dict[tuple[str, str], SampleBoxes]:
    """(split, sample id) -> boxes the build cut, from a ``kind: build`` manifest.json.

    Read leniently (like the alignment check): entries that do not parse are skipped,
    and any other manifest gives ``{}``.
    """
    if layout.manifest is None:
        return {}
    try:
        data = json.loads(layout.path(layout.manifest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("kind") != "build":
        return {}
    out: dict[tuple[str, str], SampleBoxes] = defaultdict(lambda: defaultdict(dict))
    for entry in data.get("entries") or []:
        try:
            if entry["role"] != "image":
                continue
            left, top, width, height = (int(v) for v in entry["box"])
            border = entry.get("border") or {}
            left, top = left + int(border.get("left", 0)), top + int(border.get("top", 0))
            box = (left, top, width, height)
            out[(str(entry["split"]), str(entry["sample"]))][int(entry["fov"])][
                int(entry["crop"])
            ] = box
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _plan_boxes(
    layout: DatasetLayout, sample: SampleEntry, originals: dict[int, np.ndarray]
) -> tuple[SampleBoxes | None, str | None]:
    """Boxes of crops.json in the originals' full px (its border, else the detected strip)."""
    from datatool.build import detect_sample_border, load_plan

    if sample.plan is None:
        return None, None
    try:
        plan = load_plan(layout.path(sample.plan))
    except DatatoolError as exc:
        return None, f"crops.json not used: {str(exc).split(': ', 1)[-1]}"
    if plan.border is not None:
        border = plan.border.to_border()
    elif originals:
        border = detect_sample_border(originals)[0]
    else:
        border = Border()
    boxes = {
        m: (left + border.left, top + border.top, width, height)
        for m, (left, top, width, height) in enumerate(plan.boxes, start=1)
    }
    return {fov: dict(boxes) for fov in sample.originals}, None


def _located_boxes(sample: SampleEntry, check: Report, bad: set[str]) -> SampleBoxes:
    """Boxes where the alignment check found each image crop in its own field of view."""
    by_image = {p.image: p for p in check.pairs if p.image}
    out: SampleBoxes = defaultdict(dict)
    for pair in sample.pairs:
        stats = by_image.get(pair.image) if pair.image else None
        if stats is None or stats.box is None or pair.fov is None or pair.crop is None:
            continue
        if pair.image in bad:  # found elsewhere (another field of view or sample)
            continue
        out[pair.fov][pair.crop] = tuple(int(v) for v in stats.box)
    return dict(out)


# --------------------------------------------------------------------------- one sample


def _findings_index(check: Report) -> dict[str, list[Finding]]:
    """Path -> the findings about it (a finding belongs to its own path, not to related ones)."""
    index: dict[str, list[Finding]] = defaultdict(list)
    for f in check.findings:
        index[f.path].append(f)
    return index


def _serious(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is not Severity.info]


def _read(layout: DatasetLayout, rel: str, role: str = "image") -> np.ndarray | None:
    try:
        return io.read_image(layout.path(rel), role=role).pixels
    except (ImageReadError, DatatoolError, OSError):
        return None


def _sample_grains(
    tracing: np.ndarray | None, border: Border
) -> tuple[np.ndarray | None, SampleGrains | None, str | None]:
    """The tracing's line mask (full size) and its grain statistics without the strip."""
    if tracing is None:
        return None, None, None
    try:
        boundary = grains.tracing_boundary(tracing)
    except ValueError as exc:
        return None, None, f"tracing not measured: {exc}"
    try:
        inner = strip_border(boundary, border)
    except ValueError:
        inner = boundary
    gmap = grains.grain_map(inner)
    stats = grains.grain_stats(inner, gmap=gmap)
    return (
        boundary,
        SampleGrains(
            grains=stats.grains,
            mean_intercept_px=stats.mean_intercept_px,
            mean_diameter_px=stats.mean_diameter_px,
            open_ends=stats.open_ends,
            triple_junctions=stats.triple_junctions,
            boundary_fraction=stats.boundary_fraction,
            diameter_counts=grains.diameter_histogram(gmap.complete_areas),
        ),
        None,
    )


def sample_section(
    layout: DatasetLayout,
    sample: SampleEntry,
    check: Report,
    built: SampleBoxes | None,
    index: dict[str, list[Finding]] | None = None,
) -> tuple[SampleSection, list[Thumbnail]]:
    """One sample's section and a thumbnail per field of view.

    Parameters
    ----------
    layout : DatasetLayout
    sample : SampleEntry
    check : Report
        The check's report (findings, and the located boxes).
    built : dict or None
        This sample's boxes from the build manifest (:func:`manifest_boxes`).
    index : dict, optional
        Path -> findings naming it (computed when omitted).
    """
    from datatool.build import detect_sample_border

    index = index if index is not None else _findings_index(check)
    notes: list[str] = []
    originals = {
        fov: pixels
        for fov, rel in sorted(sample.originals.items())
        if (pixels := _read(layout, rel)) is not None
    }
    notes += [
        f"{Path(rel).name} could not be read"
        for fov, rel in sorted(sample.originals.items())
        if fov not in originals
    ]
    plan_boxes, plan_note = (None, None) if built else _plan_boxes(layout, sample, originals)
    notes += [plan_note] if plan_note else []
    serious = {p: _serious(fs) for p, fs in index.items()}
    not_found = {p for p, fs in serious.items() if any(f.code == "not-found" for f in fs)}
    boxes, source = (
        (built, "manifest") if built
        else (plan_boxes, "plan") if plan_boxes
        else (_located_boxes(sample, check, not_found), "located")
    )  # fmt: skip
    if not any(boxes.values()):
        boxes, source = {}, None
    flagged_crops = {
        (pair.fov, pair.crop)
        for pair in sample.pairs
        if any(serious.get(p) for p in (pair.image, pair.label) if p)
    }
    border = detect_sample_border(originals)[0] if originals else Border()
    tracing = _read(layout, sample.tracing, "tracing") if sample.tracing else None
    if sample.tracing and tracing is None:
        notes.append(f"{Path(sample.tracing).name} could not be read")
    lines, measured, grain_note = _sample_grains(tracing, border)
    notes += [grain_note] if grain_note else []
    fields, thumbnails = [], []
    for fov, rel in sorted(sample.originals.items()):
        pixels = originals.get(fov)
        crop_boxes = [
            CropBox(crop=m, box=list(box), flagged=(fov, m) in flagged_crops)
            for m, box in sorted(boxes.get(fov, {}).items())
        ]
        drawn = lines is not None and pixels is not None and lines.shape == pixels.shape
        if pixels is not None and lines is not None and not drawn:
            notes.append(
                f"tracing is {lines.shape[1]}x{lines.shape[0]} px, {Path(rel).name} "
                f"{pixels.shape[1]}x{pixels.shape[0]} px: not laid over it"
            )
        fields.append(
            FieldOfViewEntry(
                fov=fov,
                original=rel,
                width=None if pixels is None else int(pixels.shape[1]),
                height=None if pixels is None else int(pixels.shape[0]),
                boxes=crop_boxes,
                tracing_drawn=drawn,
            )
        )
        if pixels is not None:
            picture = plots.sample_thumbnail(
                pixels,
                lines if drawn else None,
                [(b.crop, tuple(b.box), b.flagged) for b in crop_boxes],
            )
            thumbnails.append(
                (
                    f"field of view {fov}",
                    plots.encode_thumbnail(picture),
                    f"{Path(rel).name}, {pixels.shape[1]}x{pixels.shape[0]} px",
                )
            )
    sample_root = str(PurePosixPath(sample.folder).parent)
    on_sample = [
        f
        for path, fs in serious.items()
        if path == sample_root or path.startswith(sample_root + "/")
        for f in fs
    ]
    on_sample.sort(key=lambda f: (f.severity.rank, f.code))
    section = SampleSection(
        id=sample.id,
        split=sample.split,
        folder=sample.folder,
        tracing=sample.tracing,
        pairs=len(sample.pairs),
        flagged_pairs=sum(
            1 for pair in sample.pairs if any(serious.get(p) for p in (pair.image, pair.label) if p)
        ),
        codes=list(dict.fromkeys(f.code for f in on_sample)),
        boxes_from=source,
        fields=fields,
        grains=measured,
        notes=notes,
    )
    return section, thumbnails


def grain_size_histograms(sections: list[SampleSection]) -> list[GrainSizeHistogram]:
    """Sum the samples' grain-size histograms per split, in order of first appearance."""
    by_split: dict[str, list[SampleSection]] = {}
    for section in sections:
        if section.grains is not None and section.grains.diameter_counts:
            by_split.setdefault(section.split, []).append(section)
    histograms = []
    for split, members in by_split.items():
        counts = np.sum([s.grains.diameter_counts for s in members], axis=0).astype(int)
        histograms.append(
            GrainSizeHistogram(
                split=split,
                samples=len(members),
                grains=int(counts.sum()),
                bin_edges_px=list(grains.DIAMETER_BIN_EDGES_PX),
                counts=[int(c) for c in counts],
            )
        )
    return histograms


def grain_size_chart(histograms: list[GrainSizeHistogram]) -> bytes | None:
    """One step line per split (share of its grains per bin, log diameter axis); None if empty."""
    shown = [h for h in histograms if h.grains]
    if not shown:
        return None
    return plots.distribution_lines(
        shown[0].bin_edges_px,
        {f"{h.split} ({h.grains} grains)": h.counts for h in shown},
        title="Grain size per split (tracings)",
        xlabel="equivalent diameter, px (log scale)",
    )


def sample_sections(
    layout: DatasetLayout, check: Report
) -> tuple[list[SampleSection], list[list[Thumbnail]]]:
    """A section and thumbnails per sample of a tree, in layout order (none for a flat set)."""
    built = manifest_boxes(layout)
    index = _findings_index(check)
    sections, thumbnails = [], []
    for sample in layout.samples:
        section, pictures = sample_section(
            layout, sample, check, built.get((sample.split, sample.id)), index
        )
        sections.append(section)
        thumbnails.append(pictures)
    return sections, thumbnails
