"""Structure checks: folders, names, one-to-one pairing by name. No pixels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from datatool.checks import CheckOptions, finding, register
from datatool.findings import Finding
from datatool.layout import DatasetLayout, diagnose_empty, parse_crop_stem

_LAYOUT_SEVERITY = {
    "unexpected-file": "warning",
    "bad-name": "warning",
    "bad-sample-folder": "warning",
    "empty-folder": "warning",
    "missing-aligned": "error",
    "ambiguous-name": "error",
    "unsafe-name": "error",
    "unreadable-folder": "error",
    "outside-link": "error",
    "followed-link": "info",
}


@register("layout", "structure")
def layout_issues(layout: DatasetLayout, options: CheckOptions) -> Iterator[Finding]:
    """Structural issues the scan recorded, and the count of ignored system files."""
    for issue in layout.issues:
        yield finding(_LAYOUT_SEVERITY[issue.kind], issue.kind, "layout", issue.path, issue.detail)
    if layout.ignored:
        names = sorted({p.rsplit("/", 1)[-1] for p in layout.ignored})
        yield finding(
            "info",
            "ignored-files",
            "layout",
            ".",
            f"ignored {len(layout.ignored)} hidden or system file(s): {', '.join(names)}",
            measured=len(layout.ignored),
        )
    if not any(p.image and p.label for p in layout.pairs):
        yield finding("error", "no-pairs", "layout", ".", diagnose_empty(layout.root))


@register("pairing", "structure")
def pairing(layout: DatasetLayout, options: CheckOptions) -> Iterator[Finding]:
    """One label per image and one image per label, matched by file name."""
    for pair in layout.pairs:
        if pair.label is None:
            yield finding(
                "error",
                "missing-label",
                "pairing",
                pair.image or pair.name,
                f"image crop {pair.name} has no label of the same name in label/",
            )
        elif pair.image is None:
            yield finding(
                "error",
                "missing-image",
                "pairing",
                pair.label,
                f"label {pair.name} has no image crop of the same name in image/",
            )


@register("originals", "structure")
def originals(layout: DatasetLayout, options: CheckOptions) -> Iterator[Finding]:
    """Every original has its tracing; every crop names an existing field of view."""
    for sample in layout.samples:
        if sample.originals and sample.tracing is None:
            yield finding(
                "error",
                "missing-tracing",
                "originals",
                sample.folder,
                f"sample {sample.id} has originals but no tracing {sample.id}_trace.png",
            )
        for pair in sample.pairs:
            if pair.fov is not None and pair.fov not in sample.originals:
                have = ", ".join(str(n) for n in sorted(sample.originals)) or "none"
                yield finding(
                    "error",
                    "unknown-fov",
                    "originals",
                    pair.image or pair.label or pair.name,
                    f"crop {pair.name} refers to field of view {pair.fov}, but there is no "
                    f"original {sample.id}_{pair.fov}.png (fields of view present: {have})",
                    measured=pair.fov,
                )


@register("stale-crops", "structure")
def stale_crops(layout: DatasetLayout, options: CheckOptions) -> Iterator[Finding]:
    """Crops whose index no box of the sample's ``crops.json`` made (left from an older plan).

    Hand-made crops of a sample without a plan stay valid; an unreadable plan is
    reported by ``build``, not here.
    """
    for sample in layout.samples:
        if sample.plan is None:
            continue
        boxes = _plan_box_count(layout.path(sample.plan))
        if boxes is None:
            continue
        for pair in sample.pairs:
            parsed = parse_crop_stem(pair.name, sample.id)
            if parsed is None or parsed[2] <= boxes:
                continue
            for rel in (pair.image, pair.label):
                if rel is not None:
                    yield finding(
                        "warning",
                        "stale-crop",
                        "layout",
                        rel,
                        f"crop index {parsed[2]} but {sample.plan} has {boxes} box(es): no box "
                        "of the plan made this crop (left from an older plan?); delete it or "
                        "restore its box",
                        measured=parsed[2],
                        expected=boxes,
                    )


def plan_boxes(path: Path) -> list[list] | None:
    """The ``boxes`` of a crop plan as written (lists of 4), or ``None`` when unreadable as one.

    The checks read a plan tolerantly: a malformed plan says nothing about
    which crops it made or where (``datatool build`` refuses it, with reasons).
    """
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    boxes = data.get("boxes") if isinstance(data, dict) else None
    if not isinstance(boxes, list) or not all(
        isinstance(box, list) and len(box) == 4 for box in boxes
    ):
        return None
    return boxes


def _plan_box_count(path: Path) -> int | None:
    """Number of boxes in a crop plan, or ``None`` when it cannot be read as one."""
    boxes = plan_boxes(path)
    return None if boxes is None else len(boxes)
