"""``datatool plan``: propose crop boxes from a sample's tracing.

Windows of the crop size slide over the border-stripped tracing in a grid whose
step leaves the requested overlap between neighbours, so boundaries near one
crop's edge are seen whole in the next. Each grid window may move by up to a
quarter of the overlap to where it holds the least untraced area; windows with
fewer than ``min_grains`` complete grains (counted on the processed tracing)
or more than ``max_untraced`` of their area untraced are dropped. The result
is a :class:`~datatool.build.CropPlan` in the same coordinates the build uses
(the border-stripped original).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


@dataclass(frozen=True)
class ScoredBox:
    """A proposed box with what it holds."""

    box: Box
    grains: int
    untraced: float


def _positions(length: int, size: int, step: int) -> list[int]:
    """Grid starts covering ``[0, length)`` with windows of ``size``; the last one flush."""
    last = length - size
    starts = list(range(0, last + 1, step))
    if starts[-1] != last:
        starts.append(last)
    return starts


def score_window(mask: np.ndarray, box: Box, min_area: int = 10) -> ScoredBox:
    """Complete grains and untraced fraction of ``mask`` inside ``box``."""
    window = cut(mask, box)
    return ScoredBox(
        box,
        labels.count_complete_grains(window, min_area),
        labels.untraced_fraction(window, min_area),
    )


def propose_boxes(
    line_mask: np.ndarray,
    crop_size: int,
    overlap: float = 0.25,
    min_grains: int = 5,
    *,
    max_untraced: float = 0.5,
    min_area: int = 10,
) -> list[ScoredBox]:
    """Propose overlapping square crop boxes that each hold at least ``min_grains`` grains.

    Parameters
    ----------
    line_mask : (H, W) bool
        The processed tracing, True on the boundary lines.
    crop_size : int
        Side of the square boxes, px.
    overlap : float
        Share of the side that neighbouring grid boxes share, in [0, 1).
    min_grains : int
        Least number of complete grains a box must hold.
    max_untraced : float
        Largest share of a box in untraced regions (see
        :func:`datatool.labels.untraced_fraction`); a few are fine, the lab says.
    min_area : int
        Regions smaller than this (px) are not grains.

    Returns
    -------
    list of ScoredBox
        Row-major, no duplicates; possibly empty.

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
    mask = line_mask.astype(bool)
    step = max(1, round(crop_size * (1 - overlap)))
    # Moving a window by at most a quarter of the overlap keeps neighbours overlapping.
    reach = int(crop_size * overlap / 4)
    nudge = max(1, reach // 2)
    chosen: list[ScoredBox] = []
    seen: set[Box] = set()
    for top0 in _positions(h, crop_size, step):
        for left0 in _positions(w, crop_size, step):
            offsets = range(-reach, reach + 1, nudge) if reach else range(1)
            candidates = []
            for dy in offsets:
                for dx in offsets:
                    top = min(max(top0 + dy, 0), h - crop_size)
                    left = min(max(left0 + dx, 0), w - crop_size)
                    scored = score_window(mask, (left, top, crop_size, crop_size), min_area)
                    if scored.grains >= min_grains and scored.untraced <= max_untraced:
                        moved = abs(left - left0) + abs(top - top0)
                        candidates.append(((scored.untraced, -scored.grains, moved), scored))
            best = min(candidates, key=lambda c: c[0])[1] if candidates else None
            if best is not None and best.box not in seen:
                seen.add(best.box)
                chosen.append(best)
    return chosen


@dataclass
class PlanProposal:
    """A proposed plan for one sample, with what each box holds."""

    plan: CropPlan
    scored: list[ScoredBox]
    border: Border
    stripped_shape: tuple[int, int]
    path: Path


def plan_sample(
    root: str | Path,
    sample_id: str,
    crop_size: int = 128,
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
) -> PlanProposal:
    """Propose and (atomically) write a crop plan for one sample of a tree.

    The tracing is border-stripped (the strip detected on the originals, or
    ``border``) and processed as the build does; grains are counted on it.

    Raises
    ------
    DatatoolError
        Unknown sample, missing inputs, no window meets the rule, or the plan
        file exists and ``force`` is not set.
    """
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
    if crop_size > min(h, w):
        raise DatatoolError(
            f"{sample.tracing}: crop size {crop_size} px does not fit the {w} x {h} px image"
        )
    mask = labels.process_tracing(stripped, line_width, threshold)
    scored = propose_boxes(mask, crop_size, overlap, min_grains, max_untraced=max_untraced)
    if not scored:
        raise DatatoolError(
            f"{sample.tracing}: no {crop_size} px window holds {min_grains} complete grains "
            f"with at most {max_untraced:.0%} untraced; try a larger --size, a smaller "
            "--min-grains or a larger --max-untraced"
        )
    plan = CropPlan(
        boxes=[s.box for s in scored],
        crop_size=crop_size,
        border=border,
        note=(
            f"proposed by datatool plan: size {crop_size}, overlap {overlap:g}, "
            f"at least {min_grains} complete grains and at most {max_untraced:.0%} untraced "
            "area per box"
        ),
    )
    if write:
        io.atomic_write_text(target, format_plan(plan))
    return PlanProposal(plan, scored, strip, (h, w), target)
