"""``datatool plan``: propose crop boxes that cover a sample's micrograph.

Coverage first. Boxes of one size lie on a grid over the border-stripped
tracing whose step leaves the requested overlap between neighbours, so
boundaries near one crop's edge are seen whole in the next. Each grid box is
judged where it lies; only a box that fails moves, by up to a quarter of the
overlap, to the nearby place that passes with the least untraced area; a box
that cannot pass is left out. The result is a :class:`~datatool.build.CropPlan`
in the coordinates the build uses (the border-stripped original).

The judgement of a box (the *criterion*) follows the tracing:

* ``grains``: at least ``min_grains`` complete grains (counted on the processed
  tracing, as ``check`` counts them) and at most ``max_untraced`` of the box in
  large untraced regions. For tracings of closed grains.
* ``crossings``: at least ``min_crossings`` crossings of the box's test lines
  with the boundaries (the line grid of the mean-intercept method,
  :func:`datatool.grains.intercept_counts`), and at most ``max_untraced`` of the
  box farther than :data:`FAR_INTERCEPTS` mean intercepts from any line. For
  lamellar or open-ended tracings, whose boundaries do not close into grains: a
  box of well-traced lamellae holds few closed grains and looks "untraced" by
  the grains rule although every lamella is traced.

``auto`` picks ``crossings`` when the tracing has many open ends and few closed
grains (:func:`choose_criterion`).

The size (``crop_size=None``, ``--size auto``) comes from the tracing's mean
lineal intercept: the smallest multiple of 32 whose boxes would hold the
criterion's count at that intercept (:func:`auto_size`). Where grain sizes
differ across the image, boxes of that size fail in the coarse parts, so the
size then grows by 32 px while the plan covers less than
:data:`TARGET_COVERAGE` of the image, up to the image's shorter side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datatool import grains as grain_measures
from datatool import io, labels, layout
from datatool.build import (
    BorderSides,
    CropPlan,
    _decode_inputs,
    detect_sample_border,
    format_plan,
)
from datatool.crop import Border, Box, cut, strip_border
from datatool.errors import DatatoolError

TARGET_COVERAGE = 0.8
"""Share of the image the automatic size aims to cover with boxes that pass."""

SIZE_STEP = 32
"""Automatic sizes are multiples of this, px."""

MIN_AUTO_SIZE = 64
"""Smallest automatic size, px (smaller images use their shorter side)."""

DEFAULT_MIN_CROSSINGS = 40
"""Test-line crossings a box needs under the crossings criterion."""

FAR_INTERCEPTS = 2.0
"""Crossings criterion: a pixel farther than this many mean intercepts from any line is untraced."""

OPEN_ENDS_FOR_CROSSINGS = 10
"""Least number of open ends for the crossings criterion (and at least as many as closed grains)."""

CRITERIA = ("auto", "grains", "crossings")


@dataclass(frozen=True)
class ScoredBox:
    """A proposed box with what it holds.

    ``crossings`` is the number of test-line crossings under the crossings
    criterion, None under the grains criterion.
    """

    box: Box
    grains: int
    untraced: float
    crossings: int | None = None


@dataclass(frozen=True)
class Judge:
    """How a box is judged: the criterion, its thresholds and what it needs precomputed.

    Attributes
    ----------
    criterion : {"grains", "crossings"}
    min_grains, min_crossings : int
        Least complete grains / test-line crossings per box.
    max_untraced : float
        Largest untraced share of a box.
    min_area : int
        Regions smaller than this (px) are not grains.
    far : (H, W) bool or None
        Crossings criterion: True where a pixel is far from every line.
    """

    criterion: str = "grains"
    min_grains: int = 5
    min_crossings: int = DEFAULT_MIN_CROSSINGS
    max_untraced: float = 0.5
    min_area: int = 10
    far: np.ndarray | None = None

    def score(self, mask: np.ndarray, box: Box) -> ScoredBox:
        """What ``box`` of the line mask holds under this criterion."""
        window = cut(mask, box)
        grains, untraced = labels.grain_statistics(window, self.min_area)
        if self.criterion == "grains":
            return ScoredBox(box, grains, untraced)
        counts = grain_measures.intercept_counts(labels.skeleton(window))
        far = float(cut(self.far, box).mean()) if self.far is not None else 0.0
        return ScoredBox(box, grains, far, sum(c.crossings for c in counts))

    def passes(self, scored: ScoredBox) -> bool:
        """Whether a scored box meets the criterion."""
        if scored.untraced > self.max_untraced:
            return False
        if self.criterion == "crossings":
            return (scored.crossings or 0) >= self.min_crossings
        return scored.grains >= self.min_grains


def _positions(length: int, size: int, step: int) -> list[int]:
    """Grid starts covering ``[0, length)`` with windows of ``size``; the last one flush."""
    last = length - size
    starts = list(range(0, last + 1, step))
    if starts[-1] != last:
        starts.append(last)
    return starts


def score_window(mask: np.ndarray, box: Box, min_area: int = 10) -> ScoredBox:
    """Complete grains and untraced fraction of ``mask`` inside ``box``."""
    return Judge(min_area=min_area).score(mask, box)


def propose_boxes(
    line_mask: np.ndarray,
    crop_size: int,
    overlap: float = 0.25,
    min_grains: int = 5,
    *,
    max_untraced: float = 0.5,
    min_area: int = 10,
    judge: Judge | None = None,
) -> list[ScoredBox]:
    """Lay overlapping square boxes on a grid; judge each, nudge the ones that fail.

    Parameters
    ----------
    line_mask : (H, W) bool
        The processed tracing, True on the boundary lines.
    crop_size : int
        Side of the square boxes, px.
    overlap : float
        Share of the side that neighbouring grid boxes share, in [0, 1).
    min_grains : int
        Least number of complete grains a box must hold (grains criterion).
    max_untraced : float
        Largest share of a box in untraced regions (see
        :func:`datatool.labels.untraced_fraction`); a few are fine, the lab says.
    min_area : int
        Regions smaller than this (px) are not grains.
    judge : Judge, optional
        The criterion; by default the grains criterion with the values above.

    Returns
    -------
    list of ScoredBox
        Row-major, no duplicates; possibly empty. A grid box that passes stays
        where it is; one that fails moves by up to a quarter of the overlap to
        the passing place with the least untraced area, or is left out.

    >>> m = np.zeros((64, 64), bool); m[::8, :] = True; m[:, ::8] = True
    >>> [s.box for s in propose_boxes(m, 32, overlap=0.5, min_grains=9)][:2]
    [(0, 0, 32, 32), (16, 0, 32, 32)]
    """
    if line_mask.ndim != 2:
        raise ValueError(f"line_mask must be (H, W), got shape {line_mask.shape}")
    h, w = line_mask.shape
    if not 0 < crop_size <= min(h, w):
        raise ValueError(f"crop_size {crop_size} must be in 1..{min(h, w)} for an image {w}x{h}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    judge = judge or Judge(min_grains=min_grains, max_untraced=max_untraced, min_area=min_area)
    mask = line_mask.astype(bool)
    step = max(1, round(crop_size * (1 - overlap)))
    # Moving a box by at most a quarter of the overlap keeps neighbours overlapping.
    reach = int(crop_size * overlap / 4)
    offsets = range(-reach, reach + 1, max(1, reach // 2)) if reach else range(1)
    chosen: list[ScoredBox] = []
    seen: set[Box] = set()
    for top0 in _positions(h, crop_size, step):
        for left0 in _positions(w, crop_size, step):
            best = judge.score(mask, (left0, top0, crop_size, crop_size))
            if not judge.passes(best):
                candidates = []
                for dy in offsets:
                    for dx in offsets:
                        top = min(max(top0 + dy, 0), h - crop_size)
                        left = min(max(left0 + dx, 0), w - crop_size)
                        if (left, top) == (left0, top0):
                            continue
                        scored = judge.score(mask, (left, top, crop_size, crop_size))
                        if judge.passes(scored):
                            moved = abs(left - left0) + abs(top - top0)
                            count = scored.crossings or scored.grains
                            candidates.append(((scored.untraced, -count, moved), scored))
                best = min(candidates, key=lambda c: c[0])[1] if candidates else None
            if best is not None and best.box not in seen:
                seen.add(best.box)
                chosen.append(best)
    return chosen


def coverage(boxes: list[Box] | list[ScoredBox], shape: tuple[int, int]) -> float:
    """Share of an ``(H, W)`` image inside at least one box.

    >>> coverage([(0, 0, 2, 2), (1, 1, 2, 2)], (4, 4))
    0.4375
    """
    covered = np.zeros(shape, bool)
    for item in boxes:
        left, top, width, height = item.box if isinstance(item, ScoredBox) else item
        covered[top : top + height, left : left + width] = True
    return float(covered.mean()) if covered.size else 0.0


@dataclass(frozen=True)
class TracingSummary:
    """What decides the criterion and the size: measured once on the whole tracing."""

    grains: int
    open_ends: int
    triple_junctions: int
    mean_intercept: float | None


def summarize_tracing(mask: np.ndarray) -> TracingSummary:
    """Closed grains, open ends, triple junctions and mean intercept of a processed tracing."""
    skeleton = labels.skeleton(mask)
    neighbours = grain_measures.skeleton_neighbours(skeleton)
    return TracingSummary(
        grains=labels.count_complete_grains(mask),
        open_ends=len(grain_measures.open_ends(skeleton, neighbours=neighbours)),
        triple_junctions=grain_measures.triple_junctions(skeleton, neighbours),
        mean_intercept=grain_measures.mean_intercept(skeleton),
    )


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def choose_criterion(summary: TracingSummary) -> tuple[str, str]:
    """``("grains" | "crossings", why)`` for a tracing.

    Crossings when the tracing has at least :data:`OPEN_ENDS_FOR_CROSSINGS` open
    ends and no more closed grains than open ends: lamellae, or boundaries that
    do not close, where counting closed grains says little.
    """
    ends, grains = summary.open_ends, summary.grains
    if ends >= OPEN_ENDS_FOR_CROSSINGS and ends >= grains:
        return "crossings", (
            f"{_n(ends, 'open end')} and {_n(grains, 'closed grain')}: a lamellar or "
            "open-ended tracing, so boxes are judged by test-line crossings, not closed grains"
        )
    return "grains", (
        f"{_n(grains, 'closed grain')} and {_n(ends, 'open end')}: boxes are judged by "
        "complete grains"
    )


def auto_size(judge: Judge, summary: TracingSummary, shape: tuple[int, int]) -> tuple[int, str]:
    """First automatic box size (px, a multiple of 32 within the image) and why.

    Grains: a box of side ``S`` holds at least about ``(S / l - 1) ** 2`` complete
    grains of intercept ``l`` (more: a grain's area is under ``l ** 2``), so
    ``S = l (sqrt(N) + 1)``. Crossings: the
    test lines of a box are about ``0.4 S**2`` px long (every 10 px, four
    directions), crossing a line every ``l`` px; ``S`` asks for 1.5 times the count.
    """
    ell = summary.mean_intercept
    largest = min(shape)
    ceiling = max(SIZE_STEP, largest // SIZE_STEP * SIZE_STEP) if largest >= SIZE_STEP else largest
    floor = min(MIN_AUTO_SIZE, ceiling)
    if ell is None:
        return ceiling, "no boundary crosses the test lines: the largest size that fits"
    if judge.criterion == "crossings":
        spacing = grain_measures.TEST_LINE_SPACING
        raw = np.sqrt(1.5 * judge.min_crossings * ell * spacing / 4)
        want = f"{judge.min_crossings} test-line crossings or more"
    else:
        raw = ell * (np.sqrt(judge.min_grains) + 1)
        want = f"{judge.min_grains} complete grains or more"
    size = int(min(max(-(-int(np.ceil(raw)) // SIZE_STEP) * SIZE_STEP, floor), ceiling))
    return size, f"mean intercept {ell:.1f} px: {size} px boxes hold {want}"


@dataclass
class PlanProposal:
    """A proposed plan for one sample, with what each box holds and why."""

    plan: CropPlan
    scored: list[ScoredBox]
    border: Border
    stripped_shape: tuple[int, int]
    path: Path
    criterion: str = "grains"
    criterion_reason: str = ""
    size_reason: str = ""
    coverage: float = 0.0
    preview: Path | None = None


def plan_boxes(
    mask: np.ndarray,
    crop_size: int | None,
    overlap: float,
    judge: Judge,
    summary: TracingSummary,
) -> tuple[int, list[ScoredBox], str]:
    """Boxes for a processed tracing: a fixed size, or the automatic size grown for coverage.

    Returns
    -------
    size : int
    boxes : list of ScoredBox
    why : str
        How the size was chosen.
    """
    if crop_size is not None:
        return crop_size, propose_boxes(mask, crop_size, overlap, judge=judge), "--size"
    size, why = auto_size(judge, summary, mask.shape)
    boxes = propose_boxes(mask, size, overlap, judge=judge)
    best = (coverage(boxes, mask.shape), size, boxes)
    ceiling = min(mask.shape) // SIZE_STEP * SIZE_STEP
    for candidate in range(size + SIZE_STEP, ceiling + 1, SIZE_STEP):
        if best[0] >= TARGET_COVERAGE:
            break
        boxes = propose_boxes(mask, candidate, overlap, judge=judge)
        covered = coverage(boxes, mask.shape)
        if covered > best[0]:
            best = (covered, candidate, boxes)
    covered, chosen, boxes = best
    if chosen != size:
        why += f"; grown to {chosen} px to cover {covered:.0%} of the image"
    return chosen, boxes, why


def plan_sample(
    root: str | Path,
    sample_id: str,
    crop_size: int | None = None,
    overlap: float = 0.25,
    min_grains: int = 5,
    *,
    max_untraced: float = 0.5,
    line_width: int = 3,
    threshold: float | None = None,
    border: BorderSides | None = None,
    out: str | Path | None = None,
    force: bool = False,
    write: bool = True,
    criterion: str = "auto",
    min_crossings: int = DEFAULT_MIN_CROSSINGS,
    preview: str | Path | None = None,
) -> PlanProposal:
    """Propose and (atomically) write a crop plan for one sample of a tree.

    The tracing is border-stripped (the strip detected on the originals, or
    ``border``) and processed as the build does; boxes are judged on it by
    ``criterion`` (see the module). ``crop_size=None`` picks the size from the
    tracing's mean intercept. ``preview`` writes a PNG of the first field of
    view with the tracing and the numbered boxes (:func:`preview_image`).

    Raises
    ------
    DatatoolError
        Unknown sample, missing inputs, no box meets the criterion, or the plan
        file exists and ``force`` is not set.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    lay = layout.scan(root)
    root_path = Path(lay.root)
    matches = [s for s in lay.samples if s.id == sample_id]
    if not matches:
        known = ", ".join(s.id for s in lay.samples) or "none"
        raise DatatoolError(f"{lay.root}: no sample {sample_id} (samples: {known})")
    sample = matches[0]
    target = Path(out) if out is not None else root_path / sample.folder / layout.PLAN_FILES[0]
    if write and target.exists() and not force:
        raise DatatoolError(f"{target}: a crop plan exists; edit it, or use --force to replace it")
    originals, tracing = _decode_inputs(root_path, sample)
    strip = border.to_border() if border is not None else detect_sample_border(originals)[0]
    stripped = strip_border(tracing, strip)
    h, w = stripped.shape
    if crop_size is not None and crop_size > min(h, w):
        raise DatatoolError(
            f"{sample.tracing}: crop size {crop_size} px does not fit the {w} x {h} px image"
        )
    mask = labels.process_tracing(stripped, line_width, threshold)
    summary = summarize_tracing(mask)
    if criterion == "auto":
        criterion, why = choose_criterion(summary)
    else:
        why = f"--criterion {criterion}"
    far = None
    if criterion == "crossings":
        from scipy import ndimage as ndi

        ell = summary.mean_intercept or float(max(h, w))
        far = ndi.distance_transform_edt(~mask) > FAR_INTERCEPTS * ell
    judge = Judge(criterion, min_grains, min_crossings, max_untraced, far=far)
    size, scored, size_why = plan_boxes(mask, crop_size, overlap, judge, summary)
    if not scored:
        rule = (
            f"{min_grains} complete grains"
            if criterion == "grains"
            else f"{min_crossings} test-line crossings"
        )
        raise DatatoolError(
            f"{sample.tracing}: no {size} px window holds {rule} "
            f"with at most {max_untraced:.0%} untraced; try a larger --size, a smaller "
            f"--min-grains / --min-crossings or a larger --max-untraced"
        )
    rule = (
        f"at least {min_grains} complete grains"
        if criterion == "grains"
        else f"at least {min_crossings} test-line crossings"
    )
    plan = CropPlan(
        boxes=[s.box for s in scored],
        crop_size=size,
        border=border,
        note=(
            f"proposed by datatool plan: size {size} ({size_why}), overlap {overlap:g}, "
            f"{rule} and at most {max_untraced:.0%} untraced area per box ({why})"
        ),
    )
    if write:
        io.atomic_write_text(target, format_plan(plan))
    preview_path = None
    if preview is not None:
        first = strip_border(originals[min(originals)], strip)
        io.write_png(preview, preview_image(first, mask, [s.box for s in scored]))
        preview_path = Path(preview)
    return PlanProposal(
        plan,
        scored,
        strip,
        (h, w),
        target,
        criterion=criterion,
        criterion_reason=why,
        size_reason=size_why,
        coverage=coverage(scored, (h, w)),
        preview=preview_path,
    )


_BOX_COLOURS = ((255, 214, 0), (255, 64, 160), (64, 255, 96), (255, 128, 0), (80, 160, 255))


def preview_image(micrograph: np.ndarray, line_mask: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """The micrograph with the tracing in colour and the numbered boxes, at full size.

    Parameters
    ----------
    micrograph : (H, W) uint8 or uint16
        The border-stripped field of view.
    line_mask : (H, W) bool
        The processed tracing, drawn in cyan over the micrograph.
    boxes : list of (left, top, width, height)
        Numbered 1.. in order (the crop index m), outlined in cycling colours.

    Returns
    -------
    (H, W, 3) uint8
        Same size and aspect ratio as the micrograph (twice the size, nearest
        neighbour, when its longer side is under 512 px, so numbers stay legible).

    >>> preview_image(np.zeros((300, 400), np.uint8), np.zeros((300, 400), bool),
    ...               [(0, 0, 64, 64)]).shape
    (600, 800, 3)
    """
    from PIL import Image, ImageDraw, ImageFont

    if micrograph.shape != line_mask.shape:
        raise ValueError(
            f"micrograph {micrograph.shape} and line_mask {line_mask.shape} shapes differ"
        )
    peak = float(micrograph.max()) or 1.0
    grey = (micrograph.astype(np.float64) / peak * 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgb[line_mask.astype(bool)] = (0, 220, 255)
    scale = 2 if max(micrograph.shape) < 512 else 1
    rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    picture = Image.fromarray(rgb)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=max(12, min(rgb.shape[:2]) // 40))
    for number, (left, top, width, height) in enumerate(boxes, start=1):
        colour = _BOX_COLOURS[(number - 1) % len(_BOX_COLOURS)]
        x0, y0 = left * scale, top * scale
        x1, y1 = (left + width) * scale - 1, (top + height) * scale - 1
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=2)
        label = str(number)
        tx0, ty0, tx1, ty1 = draw.textbbox((x0 + 4, y0 + 3), label, font=font)
        draw.rectangle([tx0 - 2, ty0 - 2, tx1 + 2, ty1 + 2], fill=(0, 0, 0))
        draw.text((x0 + 4, y0 + 3), label, fill=colour, font=font)
    return np.asarray(picture, dtype=np.uint8)
