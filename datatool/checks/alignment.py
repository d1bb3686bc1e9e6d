"""Alignment by pixels: where each crop pair was cut from, and whether image and label agree.

Most crops were cut by hand in GIMP, with no record of where they came from, so
the check finds out from the pixels (see :mod:`datatool.align`):

1. the image crop ``image/<id>_<n>_<m>`` is located in its original ``<id>_<n>``;
2. the label is located in the *processed* tracing (``<id>_trace`` binarized,
   white-on-black, thinned and dilated to the label's own line width, exactly
   as labels are made), first in a small window around the image's box, then
   over the whole tracing;
3. the offset is the label box position minus the image box position
   ``(dx, dy)``: a label cut 3 px to the right of its image's box gives
   ``(+3, 0)``. Its larger component above ``--max-offset`` is ``misaligned``.

The scale-bar strip detected on the originals is blanked in the tracing
(rather than cut off) before processing: blanking keeps the tracing's
coordinates equal to the originals' whatever side the strip is on, and keeps a
flattened scale bar from turning into boundary lines.

A label that does not match its own tracing well is compared with the other
samples' tracings (decoded lazily, only then): ``wrong-pairing``. An image crop
not found in its original is looked for at other scales (``resized``), in the
sample's other fields of view and in other samples' originals (``not-found``,
with what it matched instead; a match in another split is handed to the
leakage check through ``pair.extras["found_in"]``).

When the sample's ``crops.json`` plans a box for the crop, or crop m of
another field of view was found at a box, and the image crop is an exact copy
of the original there (one comparison), that box is taken without a search:
the pixels prove it as the search would, which it spares. A crop re-cut
elsewhere, or a lossy one, is searched for as above.

When a ``kind: build`` ``manifest.json`` is at the root, pairs whose files still
have the recorded sha256 take its boxes (fast path), except about one pair in
eight (and crop 1 of every field of view), which is still proved by pixels and
compared with the record (``manifest-mismatch``). Edited files are searched.
"""

from __future__ import annotations

import functools
import json
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from datatool import align, io, labels
from datatool.checks import CheckOptions, PairData, SampleData, finding, register
from datatool.checks.files import plan_boxes
from datatool.crop import Border, strip_border
from datatool.errors import ImageReadError
from datatool.findings import Finding
from datatool.layout import MANIFEST_FILE, DatasetLayout, SampleEntry, scan

IMAGE_MIN_SCORE = 0.9
"""NCC above which an image crop is taken as cut from that original (plain cuts give ~1.0;
another field of view of the same grains gives ~0.2 on the sample data)."""
RESIZED_MIN_SCORE = 0.85
"""The same for a crop resized after cutting (resampling costs a little correlation)."""
LABEL_MIN_SCORE = 0.5
"""Below this NCC a label does not come from that tracing (another sample's label: ~0.05)."""
LABEL_GOOD_SCORE = 0.8
"""Above this NCC a label is taken as its own tracing's; below, other tracings are compared."""
BETTER_ELSEWHERE = 0.1
"""How much better another tracing must match for the label to be called another sample's."""
WINDOW_MARGIN = 8
"""Extra px around ``--max-offset`` searched near the image's box before a global search."""
THIN_LABEL_WIDTH = 2
"""Labels this thin that match poorly are compared again 1 px wider on each side (the label
dilated by 3 x 3, the tracing processed 2 px wider): centre lines a pixel apart, from another
thinning or drawn by hand, halve the NCC of 1-2 px lines but barely move that of 3-4 px ones."""


@dataclass(frozen=True)
class Located:
    """Where a pair's image crop was found."""

    match: align.Match
    original: str  # root-relative path of the original it was found in


def _width_of(pair: PairData, options: CheckOptions) -> int:
    width = pair.line_width
    if width is None or not math.isfinite(width):
        return options.line_width
    return int(np.clip(round(width), 1, 15))


def _label_lines(pair: PairData) -> np.ndarray | None:
    """The label as a float line mask, True on lines whatever its polarity; None if empty."""
    mask = pair.label_mask
    if mask is None:
        return None
    if mask.mean() > 0.5:  # black lines on white: reported elsewhere, still locatable
        mask = ~mask
    if not mask.any() or mask.all():
        return None
    return mask.astype(np.float32)


def processed_tracing(
    tracing: np.ndarray,
    line_width: int,
    border: Border,
    lines: tuple[Border, np.ndarray] | None = None,
) -> np.ndarray:
    """The tracing as labels are made, in the originals' coordinates.

    Parameters
    ----------
    tracing : (H, W) uint8 or uint16
    line_width : int
    border : Border
        The originals' scale-bar strip; blanked, not removed, so coordinates stay.
    lines : (Border, (h, w) bool), optional
        The tracing's centre lines already thinned inside ``border``
        (:meth:`~datatool.checks.SampleData.tracing_lines`); thinned here when omitted.

    Returns
    -------
    (H, W) bool
        True on the boundary lines.
    """
    out = np.zeros(tracing.shape, bool)
    if lines is None:
        try:
            inner = strip_border(tracing, border)
        except ValueError:
            border, inner = Border(), tracing
        lines = (border, labels.centre_lines(labels.line_mask(inner)))
    border, thin = lines
    h, w = thin.shape
    out[border.top : border.top + h, border.left : border.left + w] = labels.dilate_to_width(
        thin, line_width
    )
    return out


def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=8)
def _other_tracing(key: tuple[str, int, int], width: int) -> align.SearchImage | None:
    """Another sample's processed tracing, cached per worker process (key: path, mtime, size)."""
    try:
        grey = io.read_image(key[0], role="tracing").pixels
    except ImageReadError:
        return None
    return align.SearchImage(processed_tracing(grey, width, Border()))


@functools.lru_cache(maxsize=6)
def _other_original(key: tuple[str, int, int]) -> align.SearchImage | None:
    """Another sample's original prepared for searching, cached per worker process."""
    try:
        return align.SearchImage(io.read_image(key[0]).pixels)
    except ImageReadError:
        return None


class _SampleSearch:
    """Per-sample search state: prepared originals and processed tracings, built once."""

    def __init__(self, sample: SampleData, options: CheckOptions) -> None:
        self.sample = sample
        self.options = options
        self._originals: dict[int, align.SearchImage | None] = {}
        self._tracings: dict[int, align.SearchImage | None] = {}
        self._layout: DatasetLayout | None = None
        self._planned: list[tuple[int, int] | None] | None = None
        self.found_at: dict[int, tuple[int, int]] = {}
        """``(left, top)`` where crop index m was found in its own original, first found."""
        self.label_matches: dict[tuple, tuple] = {}
        """Label location per (shared label measures, image box, scale, width): see locate_label."""

    def hints(self, crop: int | None) -> list[tuple[int, int]]:
        """Corners to try before a search: the plan's, then where a sibling crop was found.

        One tracing serves every field of view, so crop m is usually cut at
        the same box in each: where crop m of another field of view was found
        is the next best guess. Either is taken only when the pixels confirm it.
        """
        corners = self.planned(crop)
        sibling = self.found_at.get(crop) if crop is not None else None
        return corners if sibling is None or sibling in corners else [*corners, sibling]

    def planned(self, crop: int | None) -> list[tuple[int, int]]:
        """Where the sample's ``crops.json`` puts crop ``crop``: ``(left, top)`` candidates.

        The plan's boxes are in the coordinates of the originals without their
        strip, so a strip at the top or left adds a second candidate. Empty
        without a readable plan or a box for that crop: the plan is only a
        hint, confirmed by pixels (a broken plan is the stale-crops check's).
        """
        if self._planned is None:
            self._planned = _plan_corners(self.sample)
        if crop is None or not 1 <= crop <= len(self._planned):
            return []
        corner = self._planned[crop - 1]
        if corner is None:
            return []
        left, top = corner
        border = self.sample.border()
        shifted = (left + border.left, top + border.top)
        return [(left, top)] if shifted == (left, top) else [(left, top), shifted]

    def original(self, fov: int) -> align.SearchImage | None:
        if fov not in self._originals:
            decoded = self.sample.original(fov)
            self._originals[fov] = None if decoded is None else align.SearchImage(decoded.pixels)
        return self._originals[fov]

    def tracing(self, width: int) -> align.SearchImage | None:
        """The processed tracing at ``width``; None without a tracing or a line in it."""
        if width not in self._tracings:
            decoded = self.sample.tracing()
            lines = self.sample.tracing_lines()
            self._tracings[width] = (
                None
                if decoded is None or lines is None or not lines[1].any()
                else align.SearchImage(
                    processed_tracing(decoded.pixels, width, self.sample.border(), lines)
                )
            )
        return self._tracings[width]

    def other_samples(self) -> list[SampleEntry]:
        """The dataset's other samples (scanned once, only when a search needs them)."""
        if self._layout is None:
            self._layout = scan(self.sample.root)
        me = self.sample.entry
        return [s for s in self._layout.samples if (s.id, s.split) != (me.id, me.split)]

    def other_tracings(self, width: int) -> Iterator[tuple[SampleEntry, align.SearchImage]]:
        for other in self.other_samples():
            if other.tracing is None:
                continue
            try:
                found = _other_tracing(_file_key(self.sample.root / other.tracing), width)
            except OSError:
                continue
            if found is not None:
                yield other, found

    def other_originals(self) -> Iterator[tuple[SampleEntry, str, align.SearchImage]]:
        for other in self.other_samples():
            for rel in other.originals.values():
                try:
                    found = _other_original(_file_key(self.sample.root / rel))
                except OSError:
                    continue
                if found is not None:
                    yield other, rel, found


def _plan_corners(sample: SampleData) -> list[tuple[int, int] | None]:
    """``(left, top)`` of each box of the sample's crop plan (None for a box without integers).

    Empty without a plan or with one :func:`~datatool.checks.files.plan_boxes` cannot read.
    """
    if sample.entry.plan is None:
        return []
    corners: list[tuple[int, int] | None] = []
    for box in plan_boxes(sample.root / sample.entry.plan) or []:
        whole = all(isinstance(v, int) and not isinstance(v, bool) for v in box[:2])
        corners.append((box[0], box[1]) if whole else None)
    return corners


def _fits(search: align.SearchImage, template: np.ndarray) -> bool:
    return template.shape[0] <= search.shape[0] and template.shape[1] <= search.shape[1]


def _not_found(rel: str, message: str, score: float, related: list[str]) -> Finding:
    """The error for an image crop that is not in its own original."""
    return finding(
        "error",
        "not-found",
        "alignment",
        rel,
        message,
        measured=round(score, 4),
        expected=IMAGE_MIN_SCORE,
        related=related,
    )


def locate_image(
    ctx: _SampleSearch, pair: PairData
) -> tuple[Located | None, list[Finding], dict | None]:
    """Find the image crop's box: own original, then resized, other fields of view, samples.

    Returns the location used for the offset (None when unknown), the findings
    and, for a crop that comes from another sample, where it was found.
    """
    entry = pair.entry
    fov, rel = entry.fov, entry.image
    own = ctx.original(fov) if fov is not None else None
    if pair.image is None or rel is None or own is None:
        return None, [], None
    crop = pair.image.pixels
    own_rel = ctx.sample.entry.originals[fov]
    best = align.Match((0, 0, crop.shape[1], crop.shape[0]), -1.0)
    for corner in ctx.hints(entry.crop):  # a likely box, when these pixels confirm it
        confirmed = own.copy_at(crop, corner)
        if confirmed is not None:
            return Located(confirmed, own_rel), [], None
    if _fits(own, crop):
        best = own.locate(crop)
        if best.score >= IMAGE_MIN_SCORE:
            if entry.crop is not None and best.score == 1.0:
                ctx.found_at.setdefault(entry.crop, (best.left, best.top))
            return Located(best, own_rel), [], None
    scaled = own.locate_scaled(crop)
    if scaled.score >= RESIZED_MIN_SCORE and abs(scaled.scale - 1.0) > 0.01:
        _, _, bw, bh = scaled.box
        message = (
            f"image crop was resized after cutting: scale {scaled.scale:.3f} (a {bw}x{bh} px box "
            f"of {Path(own_rel).name} at ({scaled.left}, {scaled.top}) shown at "
            f"{crop.shape[1]}x{crop.shape[0]} px, NCC {scaled.score:.3f}); offsets are measured "
            "at the original's scale"
        )
        found = finding(
            "warning", "resized", "alignment", rel, message, measured=scaled.scale, expected=1.0
        )
        return Located(scaled, own_rel), [found], None
    for other_fov in sorted(ctx.sample.entry.originals):
        other = ctx.original(other_fov) if other_fov != fov else None
        if other is None or not _fits(other, crop):
            continue
        match = other.locate(crop)
        if match.score >= IMAGE_MIN_SCORE:
            other_rel = ctx.sample.entry.originals[other_fov]
            message = (
                f"image crop is not from field of view {fov} ({Path(own_rel).name}, best NCC "
                f"{best.score:.3f}) but from field of view {other_fov} ({Path(other_rel).name} at "
                f"({match.left}, {match.top}), NCC {match.score:.3f}): rename it"
            )
            found = _not_found(rel, message, best.score, [other_rel])
            return Located(match, other_rel), [found], None
    for sample, other_rel, other in ctx.other_originals():
        if not _fits(other, crop):
            continue
        match = other.locate(crop)
        if match.score >= IMAGE_MIN_SCORE:
            message = (
                f"image crop does not come from {Path(own_rel).name} (best NCC {best.score:.3f}): "
                f"it was cut from sample {sample.id}'s {Path(other_rel).name} "
                f"({sample.split}) at ({match.left}, {match.top}), NCC {match.score:.3f}"
            )
            found = _not_found(rel, message, best.score, [other_rel])
            where = {"original": other_rel, "split": sample.split, "sample": sample.id}
            return None, [found], where
    message = (
        f"image crop cannot be found in its original {Path(own_rel).name}: best NCC "
        f"{max(best.score, scaled.score):.3f}, at least {IMAGE_MIN_SCORE} expected; it does not "
        "come from that field of view"
    )
    found = finding(
        "error",
        "not-found",
        "alignment",
        rel,
        message,
        measured=round(max(best.score, scaled.score), 4),
        expected=IMAGE_MIN_SCORE,
    )
    return None, [found], None


def _match_label(
    ctx: _SampleSearch,
    tracing: align.SearchImage,
    lines: np.ndarray,
    image: Located | None,
    width: int,
) -> tuple[align.Match, tuple[SampleEntry, align.Match] | None]:
    """The label's best match in its tracing and, when that is poor, in the others'."""

    def near_box(tracing: align.SearchImage, lines: np.ndarray) -> align.Match:
        if image is None:
            return align.Match((0, 0, lines.shape[1], lines.shape[0]), -1.0)
        radius = int(math.ceil(ctx.options.max_offset / image.match.scale)) + WINDOW_MARGIN
        return tracing.locate_in_window(lines, (image.match.left, image.match.top), radius)

    match = near_box(tracing, lines)
    # A thin label that matches poorly is compared 1 px wider too (THIN_LABEL_WIDTH): near
    # its image's box first, over the whole tracing only when both forms stay poor.
    wide = None
    if match.score < LABEL_GOOD_SCORE and width <= THIN_LABEL_WIDTH:
        wider = ctx.tracing(width + 2)
        if wider is not None:
            wide = (wider, ndi.maximum_filter(lines, size=3))
            found = near_box(*wide)
            if found.score > match.score:
                match, (tracing, lines), width, wide = found, wide, width + 2, None
    if match.score < LABEL_GOOD_SCORE:
        found = tracing.locate(lines)
        match = found if found.score > match.score else match
    if match.score < LABEL_GOOD_SCORE and wide is not None:
        found = wide[0].locate(wide[1])
        if found.score > match.score:
            match, (tracing, lines), width = found, wide, width + 2
    elsewhere = None
    if match.score < LABEL_GOOD_SCORE:
        for sample, other in ctx.other_tracings(width):
            if _fits(other, lines):
                candidate = other.locate(lines)
                if elsewhere is None or candidate.score > elsewhere[1].score:
                    elsewhere = (sample, candidate)
    return match, elsewhere


def locate_label(ctx: _SampleSearch, pair: PairData, image: Located | None) -> Iterator[Finding]:
    """Find the label in the processed tracing; report wrong pairing and misalignment."""
    rel = pair.entry.label
    lines = _label_lines(pair)
    width = _width_of(pair, ctx.options)
    tracing = ctx.tracing(width)
    if lines is None or rel is None or tracing is None:
        return
    scale = image.match.scale if image is not None else 1.0
    if image is not None and scale != 1.0:
        _, _, bw, bh = image.match.box
        lines = align.resize(lines, (bh, bw))
    if not _fits(tracing, lines):
        return
    # Identical labels (one tracing cut at the same box for every field of view)
    # whose images were found at the same box are located once.
    key = (id(pair.measures), image.match.box if image is not None else None, scale, width)
    if key not in ctx.label_matches:
        found = _match_label(ctx, tracing, lines, image, width)
        ctx.label_matches[key] = (pair.measures, *found)  # measures kept: their id stays unique
    _, match, elsewhere = ctx.label_matches[key]
    if match.score < LABEL_GOOD_SCORE:
        if (
            elsewhere is not None
            and elsewhere[1].score >= LABEL_MIN_SCORE
            and elsewhere[1].score > match.score + BETTER_ELSEWHERE
        ):
            sample, other_match = elsewhere
            yield finding(
                "error",
                "wrong-pairing",
                "alignment",
                rel,
                f"label matches sample {sample.id}'s tracing ({sample.split}) at "
                f"({other_match.left}, {other_match.top}) with NCC {other_match.score:.3f}, "
                f"better than its own sample {ctx.sample.entry.id}'s (NCC {match.score:.3f}): "
                "it was taken from another sample",
                measured=round(match.score, 4),
                expected=LABEL_MIN_SCORE,
                related=[sample.tracing] if sample.tracing else [],
            )
            return
        if match.score < LABEL_MIN_SCORE:
            yield finding(
                "error",
                "wrong-pairing",
                "alignment",
                rel,
                f"label does not match its sample's tracing {Path(ctx.sample.entry.tracing).name}"
                f": best NCC {match.score:.3f}, at least {LABEL_MIN_SCORE} expected",
                measured=round(match.score, 4),
                expected=LABEL_MIN_SCORE,
            )
            return
    if image is None:
        return
    dx, dy = align.box_offset(match.box, image.match.box)
    # Offsets are reported in the crop's own pixels (what the network sees).
    dx, dy = round(dx * scale, 2), round(dy * scale, 2)
    near = "" if image.original == _own_original(ctx, pair) else " (image found elsewhere)"
    yield from _offset_finding(ctx, pair, (dx, dy), image.match.box, near)


def _own_original(ctx: _SampleSearch, pair: PairData) -> str | None:
    return ctx.sample.entry.originals.get(pair.entry.fov) if pair.entry.fov is not None else None


@dataclass(frozen=True)
class Recorded:
    """What a build manifest records about one output crop."""

    box: tuple[int, int, int, int]  # in the original's full coordinates
    sha256: str
    size: tuple[int, int]  # output (width, height)


@functools.lru_cache(maxsize=2)
def _manifest_records(key: tuple[str, int, int]) -> dict[str, Recorded]:
    """Output path -> record, from a ``kind: build`` manifest; empty for anything else.

    Read leniently (only ``entries[].output/box/border/output_sha256/width/height/edited``;
    an entry kept as edited is left out)
    so that a newer manifest still gives the check its fast path.
    """
    try:
        data = json.loads(Path(key[0]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("kind") != "build":
        return {}
    records = {}
    for entry in data.get("entries") or []:
        if isinstance(entry, dict) and entry.get("edited"):
            # A crop kept as edited was not cut at this box: its pixels must prove it.
            continue
        try:
            left, top, width, height = (int(v) for v in entry["box"])
            border = entry.get("border") or {}
            box = (
                left + int(border.get("left", 0)),
                top + int(border.get("top", 0)),
                width,
                height,
            )
            size = (int(entry.get("width", width)), int(entry.get("height", height)))
            records[str(entry["output"])] = Recorded(box, str(entry["output_sha256"]), size)
        except (KeyError, TypeError, ValueError):
            continue
    return records


def _verify_by_pixels(pair: PairData) -> bool:
    """Pairs re-proved by pixels on the manifest fast path: about 1 in 8, deterministic."""
    return pair.entry.crop == 1 or zlib.crc32(pair.entry.name.encode()) % 8 == 0


def _from_manifest(
    ctx: _SampleSearch, pair: PairData, records: dict[str, Recorded]
) -> tuple[Recorded, Recorded] | None:
    """The pair's image and label records when both files are unchanged since the build."""
    image, label = records.get(pair.entry.image or ""), records.get(pair.entry.label or "")
    if image is None or label is None:
        return None
    root = ctx.sample.root
    for rel, record in ((pair.entry.image, image), (pair.entry.label, label)):
        try:
            if io.sha256_file(root / rel) != record.sha256:
                return None
        except OSError:
            return None
    return image, label


def _edited_since_build(
    ctx: _SampleSearch, pair: PairData, records: dict[str, Recorded]
) -> tuple[str, str] | None:
    """``(edited, unchanged)`` paths when exactly one file of the pair differs from the build.

    None when the manifest does not record both files, both changed, or neither did.
    """
    image_rel, label_rel = pair.entry.image, pair.entry.label
    image, label = records.get(image_rel or ""), records.get(label_rel or "")
    if image is None or label is None:
        return None
    changed = []
    for rel, record in ((image_rel, image), (label_rel, label)):
        try:
            changed.append(io.sha256_file(ctx.sample.root / rel) != record.sha256)
        except OSError:
            return None
    if changed == [True, False]:
        return image_rel, label_rel
    if changed == [False, True]:
        return label_rel, image_rel
    return None


def _blame_edited(
    found: list[Finding], pair: PairData, edited: tuple[str, str], records: dict[str, Recorded]
) -> list[Finding]:
    """Put a misalignment on the file edited after the build, not on its unchanged partner.

    The build cut both files from one box; when only one of them no longer has
    the recorded sha256, that one moved, whichever of the two the offset is
    measured on.
    """
    rel, partner = edited
    out = []
    for f in found:
        if f.code != "misaligned" or f.path == rel:
            out.append(f)
            continue
        offset = f.measured if isinstance(f.measured, list) else [0.0, 0.0]
        now = f"box {pair.stats.box}" if pair.stats.box else "another box"
        out.append(
            f.model_copy(
                update={
                    "path": rel,
                    "related": [partner, MANIFEST_FILE],
                    "message": f"image crop was edited after the build: its sha256 no longer "
                    f"matches {MANIFEST_FILE} while its label {Path(partner).name} is unchanged, "
                    f"and its pixels now come from {now}, not the {list(records[rel].box)} the "
                    f"build cut both from (label box minus image box: ({offset[0]:+g}, "
                    f"{offset[1]:+g}) px): restore this image crop or re-cut it "
                    "(datatool build --force); the label is not at fault",
                }
            )
        )
    return out


def _offset_finding(
    ctx: _SampleSearch, pair: PairData, offset: tuple[float, float], box: tuple, how: str
) -> Iterator[Finding]:
    dx, dy = offset
    pair.stats.offset = [float(dx), float(dy)]
    if max(abs(dx), abs(dy)) > ctx.options.max_offset:
        yield finding(
            "error",
            "misaligned",
            "alignment",
            pair.entry.label,
            f"label is offset by (dx, dy) = ({dx:+g}, {dy:+g}) px from its image's box "
            f"{list(box)}{how}; at most {ctx.options.max_offset:g} px accepted "
            "(offset = label box minus image box; +dx: label cut further right)",
            measured=[float(dx), float(dy)],
            expected=ctx.options.max_offset,
            related=[pair.entry.image] if pair.entry.image else [],
        )


def check_pair(ctx: _SampleSearch, pair: PairData) -> Iterator[Finding]:
    """Locate one pair by pixels and yield its findings (fills ``stats.box``/``offset``)."""
    located, found, where = locate_image(ctx, pair)
    yield from found
    if where is not None:
        pair.extras["found_in"] = where
    if located is not None:
        pair.stats.box = [int(v) for v in located.match.box]
    yield from locate_label(ctx, pair, located)


@register("alignment", "sample", costly=True)
def alignment(sample: SampleData, options: CheckOptions) -> Iterator[Finding]:
    """Locate every crop pair of a sample in its originals and tracing; compare the boxes."""
    ctx = _SampleSearch(sample, options)
    lines = sample.tracing_lines()
    if lines is not None and not lines[1].any() and sample.entry.tracing is not None:
        labelled = sum(pair.entry.label is not None for pair in sample.pairs)
        yield finding(
            "error",
            "empty-tracing",
            "alignment",
            sample.entry.tracing,
            "the tracing has no line: it is one grey level, or nothing in it stands out as "
            f"lines; its {labelled} label(s) cannot be proven against it (re-export the tracing)",
        )
    records: dict[str, Recorded] = {}
    manifest = sample.root / MANIFEST_FILE
    if manifest.is_file():
        records = _manifest_records(_file_key(manifest))
    for pair in sample.pairs:
        recorded = _from_manifest(ctx, pair, records) if records else None
        if recorded is None:
            edited = _edited_since_build(ctx, pair, records) if records else None
            found = list(check_pair(ctx, pair))
            yield from _blame_edited(found, pair, edited, records) if edited else found
            continue
        image, label = recorded
        scale = image.size[0] / image.box[2]
        if not _verify_by_pixels(pair):
            # Fast path: the files are the build's, byte for byte; trust its boxes.
            pair.stats.box = list(image.box)
            dx, dy = align.box_offset(label.box, image.box)
            yield from _offset_finding(
                ctx, pair, (dx * scale, dy * scale), image.box, " (per manifest.json)"
            )
            continue
        found = list(check_pair(ctx, pair))
        if pair.stats.box is not None and (
            max(abs(a - b) for a, b in zip(pair.stats.box, image.box, strict=True)) > 1
        ):
            found.append(
                finding(
                    "error",
                    "manifest-mismatch",
                    "alignment",
                    pair.entry.image,
                    f"the pixels place the image crop at {pair.stats.box}, manifest.json "
                    f"records {list(image.box)}: the manifest does not describe these files",
                    related=[MANIFEST_FILE],
                )
            )
        # A resize the build recorded (its --resolution) is intended, not news.
        yield from (f for f in found if not (f.code == "resized" and abs(scale - 1) > 0.01))
