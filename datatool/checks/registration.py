"""Registration: whether each tracing lies on its micrographs.

Crops are checked against the originals, so a tracing drawn 8 px off its
micrograph (or a micrograph and tracing swapped) makes every crop pair look
clean. This check compares the original tracing ``<id>_trace`` with each field
of view ``<id>_<n>`` directly, once per field of view, after cutting the
scale-bar strip (:func:`datatool.crop.detect_border`) off both:

1. **Kinds.** A tracing is a line drawing: nearly all its pixels take one of
   two grey levels. A micrograph is a photograph: grey levels spread by noise
   and texture. A "tracing" that is a grey photograph, or a "micrograph" that is
   a line drawing, is an error (``swapped`` when both, else ``not-a-tracing`` /
   ``not-a-micrograph``).
2. **Offset.** The tracing's centre lines are laid on two evidence maps of the
   micrograph, both standardized (zero mean, unit deviation): *edge strength*
   (gradient magnitude after a light Gaussian smoothing) and *darkness*
   (darker than the surroundings). Their mean under the lines is computed for
   every offset up to :data:`MAX_SHIFT` px by one FFT cross-correlation each,
   in the :data:`WINDOW` px square richest in lines (:func:`line_window`) when
   the images are larger.

Tracers follow one side of a dark etched line, and automatic segmentations of
SEM images put the boundary beside a dark lamella, so a correct tracing matches
edges best within a few pixels of zero, not at zero; darkness can peak 6 px
away. Hence the rule: ``misregistered`` (error, on the tracing) only when the
best edge match lies more than :data:`NEAR_PX` px from zero on either axis *and*
is clearly better than the match at zero (:data:`CLEARLY_BETTER`; within
1 px) and better than every match within :data:`NEAR_PX` px (:data:`NEAR_MARGIN`);
when the lines barely stand out on the edge map at any offset, an info finding
(``registration-unclear``) says the evidence is too weak to tell.

Offsets ``(dx, dy)`` are the move that brings the tracing onto the micrograph:
a tracing drawn 8 px too far right gives ``(-8, 0)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import fft as sfft
from scipy import ndimage as ndi

from datatool import labels
from datatool.checks import CheckOptions, SampleData, finding, register
from datatool.crop import Border, strip_border
from datatool.findings import Finding

MAX_SHIFT = 16
"""Largest offset searched per axis, px."""
NEAR_PX = 4
"""Offsets up to this many px per axis are a line's width or the side of an edge a tracer
follows: never an error."""
CLEARLY_BETTER = 0.45
"""A far match must beat the best match within 1 px of zero by this share of its height above
the typical (median) match to be an error (correct tracings: at most 0.36 on the test
micrographs; tracings 8 px off: at least 0.54)."""
NEAR_MARGIN = 0.05
"""...and beat every match within :data:`NEAR_PX` px of zero by this share: a double edge (both
sides of a dark groove or lamella) is no evidence of a shift."""
WEAK_EVIDENCE = 0.2
"""Below this height of the best edge match above the median one (in standard deviations of the
edge map) the micrograph says too little to judge the registration (a tracing on an unrelated
micrograph or on noise: 0.08-0.15; correct tracings on the test micrographs: 1.0-1.9)."""
DRAWING_SHARE = 0.7
"""A line drawing has at least this share of its pixels at its two commonest grey levels."""
PHOTO_SHARE = 0.4
"""A photograph has at most this share at its two commonest grey levels (noise spreads them)."""
EDGE_SMOOTHING = 1.0
"""Gaussian sigma, px, before the gradient: light, so that a 2-px groove keeps both edges."""
DARK_SURROUND = 6.0
"""Gaussian sigma, px, of the surroundings darkness is measured against."""
WINDOW = 512
"""Side, px, of the square window the offset is measured in on larger micrographs.

A tracing is one drawing, so a shift moves all of its lines: a 512 px window
holds thousands of line pixels (tens of grains), as much evidence as the test
micrographs' whole images, at a quarter of the cost of a 1024 px field of view.
The window is the one of nine (corners, edge middles, centre) richest in lines,
so a partly traced image is measured where it is traced."""


@dataclass(frozen=True)
class Registration:
    """The best offsets of a tracing on one micrograph.

    Attributes
    ----------
    edge : (dx, dy)
        Offset of the best edge-strength match.
    dark : (dx, dy)
        Offset of the best darkness match.
    edge_best, edge_zero, edge_near, edge_typical : float
        Edge match at ``edge``, best within 1 px of zero, best within
        :data:`NEAR_PX` px of zero, and the median over all offsets (in
        standard deviations of the edge map).
    """

    edge: tuple[int, int]
    dark: tuple[int, int]
    edge_best: float
    edge_zero: float
    edge_near: float
    edge_typical: float

    @property
    def strength(self) -> float:
        """Height of the best edge match above the typical one."""
        return self.edge_best - self.edge_typical

    @property
    def far(self) -> bool:
        """The best edge match lies more than :data:`NEAR_PX` px from zero on an axis."""
        return max(abs(self.edge[0]), abs(self.edge[1])) > NEAR_PX

    @property
    def clearly_better(self) -> bool:
        """The best match beats the one at zero (:data:`CLEARLY_BETTER`) and near ones."""
        height = max(self.strength, 1e-9)
        return (
            self.edge_best - self.edge_zero > CLEARLY_BETTER * height
            and self.edge_best - self.edge_near > NEAR_MARGIN * height
        )


def two_level_share(grey: np.ndarray) -> float:
    """Share of pixels at the two commonest grey levels (on an 8-bit scale).

    About 0.9-1.0 for a tracing (background and ink), under 0.1 for a noisy
    micrograph.

    Parameters
    ----------
    grey : (H, W) uint8 or uint16

    >>> two_level_share(np.array([[0, 255, 255, 7]], np.uint8))
    0.75
    """
    if grey.ndim != 2 or grey.size == 0:
        raise ValueError(f"grey must be a non-empty (H, W) array, got shape {grey.shape}")
    eight = (grey >> 8 if grey.dtype == np.uint16 else grey).astype(np.uint8, copy=False)
    # PIL's histogram of an 8-bit image is 3x faster than np.bincount (no int64 copy).
    counts = np.asarray(Image.fromarray(np.ascontiguousarray(eight)).histogram())
    return float(np.sort(counts)[-2:].sum() / grey.size)


def _standardized(values: np.ndarray) -> np.ndarray:
    std = float(values.std())
    return ((values - values.mean()) / (std if std > 1e-9 else 1.0)).astype(np.float32)


_BAND = 32
"""Rows per band in the filters below: a band's float64 temporaries stay in the CPU cache."""


def _gaussian_weights(sigma: float) -> np.ndarray:
    """The correlation weights ``ndi.gaussian_filter1d`` uses (truncate 4, order 0)."""
    radius = int(4.0 * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (float(sigma) * float(sigma)) * x**2)
    return phi / phi.sum()


def _smoothed(grey: np.ndarray, sigma: float) -> np.ndarray:
    """``ndi.gaussian_filter(grey, sigma)`` for (H, W) float32, bit for bit, 1.2-2x faster.

    ``gaussian_filter`` filters along axis 0, stores float32, then along axis 1.
    ndimage is slow along axis 0 (strided), so that pass runs here on bands of
    rows with ndimage's own arithmetic: float64, centre weight first, then each
    symmetric pair of rows summed and weighted, outermost first ("reflect" edges).
    """
    weights = _gaussian_weights(sigma)
    r = len(weights) // 2
    h = grey.shape[0]
    if h <= 2 * r:
        return ndi.gaussian_filter(grey, sigma)
    padded = np.pad(grey, ((r, r), (0, 0)), mode="symmetric")  # ndimage's "reflect"
    rows = np.empty(grey.shape, np.float32)
    for top in range(0, h, _BAND):
        n = min(h, top + _BAND) - top
        x = padded[top : top + n + 2 * r].astype(np.float64)
        acc = x[r : r + n] * weights[r]
        for j in range(r, 0, -1):
            acc += (x[r - j : r - j + n] + x[r + j : r + j + n]) * weights[r - j]
        rows[top : top + n] = acc
    return ndi.gaussian_filter1d(rows, sigma, axis=1)


def _gradient_magnitude(smooth: np.ndarray) -> np.ndarray:
    """``np.hypot(ndi.sobel(smooth, axis=0), ndi.sobel(smooth, axis=1))`` bit for bit, ~2.5x faster.

    ndimage computes each 1-D pass in float64 and stores float32: the
    difference of two float32 values is exact in float64, so it is rounded once
    either way, and the ``[1, 2, 1]`` pass is summed in float64 here too, on
    bands of rows that stay in the CPU cache.
    """
    h = smooth.shape[0]
    padded = np.pad(smooth, 1, mode="symmetric")  # ndimage's "reflect"
    out = np.empty(smooth.shape, np.float32)
    for top in range(0, h, _BAND):
        n = min(h, top + _BAND) - top
        p = padded[top : top + n + 2]
        d0 = (p[2:, :] - p[:-2, :]).astype(np.float64)
        gy = (d0[:, :-2] + 2 * d0[:, 1:-1] + d0[:, 2:]).astype(np.float32)
        d1 = (p[:, 2:] - p[:, :-2]).astype(np.float64)
        gx = (d1[:-2] + 2 * d1[1:-1] + d1[2:]).astype(np.float32)
        np.hypot(gy, gx, out=out[top : top + n])
    return out


def _edge_map(grey: np.ndarray) -> np.ndarray:
    """Standardized gradient magnitude of ``grey`` ((H, W) float32) after a light smoothing."""
    return _standardized(_gradient_magnitude(_smoothed(grey, EDGE_SMOOTHING)))


def _dark_map(grey: np.ndarray) -> np.ndarray:
    """Standardized darkness of ``grey`` ((H, W) float32) against its surroundings."""
    smooth = _smoothed(grey, EDGE_SMOOTHING)
    return _standardized(_smoothed(grey, DARK_SURROUND) - smooth)


def evidence_maps(micrograph: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boundary evidence of a micrograph: ``(edge strength, darkness)``.

    Parameters
    ----------
    micrograph : (H, W) numeric array

    Returns
    -------
    edge, dark : (H, W) float32
        Gradient magnitude after Gaussian smoothing (:data:`EDGE_SMOOTHING`),
        and how much darker each pixel is than its surroundings
        (:data:`DARK_SURROUND`); each standardized to zero mean, unit deviation.
    """
    grey = micrograph.astype(np.float32)
    return _edge_map(grey), _dark_map(grey)


class LineSpectrum:
    """A tracing's centre lines prepared for :meth:`scores` on many micrographs.

    The lines' spectrum is computed once (real FFT, float32, padded to a fast
    length); each micrograph then costs one forward and one inverse real FFT.

    Parameters
    ----------
    lines : (H, W) bool
        Centre lines of the tracing. Lines within ``max_shift`` px of the image
        edge are left out, so every offset sees the same line pixels.
    max_shift : int
    """

    def __init__(self, lines: np.ndarray, max_shift: int = MAX_SHIFT) -> None:
        if lines.ndim != 2:
            raise ValueError(f"lines must be a 2-D (H, W) array, got shape {lines.shape}")
        s = int(max_shift)
        self.shape: tuple[int, int] = lines.shape  # type: ignore[assignment]
        self.max_shift = s
        inner = np.zeros(lines.shape, np.float32)
        inner[s : lines.shape[0] - s, s : lines.shape[1] - s] = lines[
            s : lines.shape[0] - s, s : lines.shape[1] - s
        ]
        self.count = float(inner.sum())
        self.fft_shape = (
            sfft.next_fast_len(lines.shape[0], True),
            sfft.next_fast_len(lines.shape[1], True),
        )
        self._conj = np.conj(sfft.rfft2(inner, self.fft_shape, workers=1)) if self.count else None

    def scores(self, evidence: np.ndarray) -> np.ndarray:
        """Mean evidence under the lines moved by every offset up to ``max_shift`` px.

        Parameters
        ----------
        evidence : (H, W) float32

        Returns
        -------
        (2 s + 1, 2 s + 1) float32
            As :func:`offset_scores`.
        """
        if evidence.shape != self.shape:
            raise ValueError(f"lines {self.shape} and evidence {evidence.shape} differ in shape")
        s = self.max_shift
        if self._conj is None:
            return np.zeros((2 * s + 1, 2 * s + 1), np.float32)
        # corr[d] = sum_p L(p) E(p + d); the margin keeps p + d inside, so no wrap-around is
        # used, and zero padding to the fast length changes nothing at |d| <= s. Only the
        # (2 s + 1)^2 offsets are wanted: the inverse runs along axis 0 on every column, then
        # along axis 1 on the 2 s + 1 rows kept (negative offsets wrap to the end).
        spectrum = self._conj * sfft.rfft2(evidence, self.fft_shape, workers=1)
        wanted = np.r_[-s : s + 1]
        rows = sfft.ifft(spectrum, axis=0, workers=1)[wanted]
        corr = sfft.irfft(rows, self.fft_shape[1], axis=1, workers=1)[:, wanted]
        return (corr / self.count).astype(np.float32)


def offset_scores(
    lines: np.ndarray, evidence: np.ndarray, max_shift: int = MAX_SHIFT
) -> np.ndarray:
    """Mean evidence under the lines moved by every offset up to ``max_shift`` px.

    Lines within ``max_shift`` px of the image edge are left out, so every
    offset sees the same line pixels.

    Parameters
    ----------
    lines : (H, W) bool
        Centre lines of the tracing.
    evidence : (H, W) float
    max_shift : int

    Returns
    -------
    (2 s + 1, 2 s + 1) float32
        ``out[s + dy, s + dx]`` = mean of ``evidence[y + dy, x + dx]`` over line
        pixels ``(y, x)``; all zeros when no line pixel is left.

    >>> e = np.zeros((40, 40), np.float32); e[20, :] = 1
    >>> m = np.zeros((40, 40), bool); m[17, :] = True
    >>> s = offset_scores(m, e, 4)
    >>> [int(v) - 4 for v in np.unravel_index(s.argmax(), s.shape)]  # (dy, dx): move down 3
    [3, -4]
    """
    if lines.shape != evidence.shape:
        raise ValueError(f"lines {lines.shape} and evidence {evidence.shape} differ in shape")
    return LineSpectrum(lines, max_shift).scores(np.asarray(evidence, np.float32))


def line_window(lines: np.ndarray, side: int | None = None) -> tuple[slice, slice]:
    """The ``side`` x ``side`` window of ``lines`` richest in line pixels.

    Candidates are the nine windows at the corners, edge middles and centre;
    lines within :data:`MAX_SHIFT` px of a window's edge do not count (the
    offset search leaves them out). Ties go to the centre, then row-major
    order. An axis no longer than ``side`` is taken whole.

    Parameters
    ----------
    lines : (H, W) bool
    side : int, optional
        Default :data:`WINDOW`.

    Returns
    -------
    (rows, columns) : tuple of slice

    >>> m = np.zeros((900, 900), bool); m[700:800, 50:60] = True
    >>> line_window(m)
    (slice(388, 900, None), slice(0, 512, None))
    """
    if lines.ndim != 2:
        raise ValueError(f"lines must be a 2-D (H, W) array, got shape {lines.shape}")
    side = WINDOW if side is None else int(side)
    if side < 2 * MAX_SHIFT + 1:
        raise ValueError(f"side must be at least {2 * MAX_SHIFT + 1} px, got {side}")
    h, w = lines.shape
    rows = [(h - side) // 2, 0, h - side] if h > side else [0]
    cols = [(w - side) // 2, 0, w - side] if w > side else [0]
    sh, sw = min(h, side), min(w, side)
    m = MAX_SHIFT
    best, chosen = -1, (0, 0)
    for top in rows:
        for left in cols:
            count = int(np.count_nonzero(lines[top + m : top + sh - m, left + m : left + sw - m]))
            if count > best:
                best, chosen = count, (top, left)
    top, left = chosen
    return slice(top, top + sh), slice(left, left + sw)


def _best(scores: np.ndarray) -> tuple[int, int]:
    s = scores.shape[0] // 2
    dy, dx = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(dx) - s, int(dy) - s


def _register(lines: LineSpectrum, micrograph: np.ndarray, dark: bool) -> Registration | None:
    """:func:`register_tracing` on prepared lines; the darkness match only when ``dark``.

    Without ``dark``, ``Registration.dark`` is ``(0, 0)`` (it only ever goes
    into a ``misregistered`` message: see :func:`_with_dark`).
    """
    if lines.count == 0:
        return None
    grey = micrograph.astype(np.float32)
    edge_scores = lines.scores(_edge_map(grey))
    if not edge_scores.any():
        return None
    s = MAX_SHIFT
    near = edge_scores[s - NEAR_PX : s + NEAR_PX + 1, s - NEAR_PX : s + NEAR_PX + 1]
    return Registration(
        edge=_best(edge_scores),
        dark=_best(lines.scores(_dark_map(grey))) if dark else (0, 0),
        edge_best=float(edge_scores.max()),
        edge_zero=float(edge_scores[s - 1 : s + 2, s - 1 : s + 2].max()),
        edge_near=float(near.max()),
        edge_typical=float(np.median(edge_scores)),
    )


def _with_dark(reg: Registration, lines: LineSpectrum, micrograph: np.ndarray) -> Registration:
    """``reg`` with its darkness match measured (for the message of an error)."""
    dark = _best(lines.scores(_dark_map(micrograph.astype(np.float32))))
    return dataclasses.replace(reg, dark=dark)


def register_tracing(tracing: np.ndarray, micrograph: np.ndarray) -> Registration | None:
    """Where a tracing matches a micrograph best (both already without the strip).

    Parameters
    ----------
    tracing : (H, W) uint8 or uint16
        Either polarity.
    micrograph : (H, W) numeric array

    Returns
    -------
    Registration or None
        None when the tracing has no line pixel away from the image edge.
    """
    if tracing.shape != micrograph.shape:
        raise ValueError(f"tracing {tracing.shape} and micrograph {micrograph.shape} differ")
    thinned = labels.centre_lines(labels.line_mask(tracing))
    window = line_window(thinned)
    return _register(LineSpectrum(thinned[window]), micrograph[window], dark=True)


def _kind_findings(sample: SampleData, tracing: np.ndarray) -> tuple[list[Finding], set[int]]:
    """Swapped files, a photograph as tracing, line drawings as micrographs.

    Returns the findings and the fields of view not to register.
    """
    entry = sample.entry
    found: list[Finding] = []
    skip: set[int] = set()
    drawings = {}
    for fov, rel in sorted(entry.originals.items()):
        decoded = sample.original(fov)
        if decoded is not None and decoded.pixels.size:
            share = two_level_share(decoded.pixels)
            if share >= DRAWING_SHARE:
                drawings[fov] = (rel, share)
                skip.add(fov)
    tracing_share = two_level_share(tracing)
    tracing_name = Path(entry.tracing).name
    if tracing_share <= PHOTO_SHARE:
        skip.update(entry.originals)
        if drawings:
            fov, (rel, share) = next(iter(drawings.items()))
            del drawings[fov]
            found.append(
                finding(
                    "error",
                    "swapped",
                    "registration",
                    entry.tracing,
                    f"micrograph and tracing look swapped: {tracing_name} is a grey photograph "
                    f"({tracing_share:.0%} of its pixels at its two commonest grey levels) and "
                    f"{Path(rel).name} a line drawing ({share:.0%}): swap the two files",
                    measured=round(tracing_share, 3),
                    expected=DRAWING_SHARE,
                    related=[rel],
                )
            )
        else:
            found.append(
                finding(
                    "error",
                    "not-a-tracing",
                    "registration",
                    entry.tracing,
                    f"{tracing_name} is a grey photograph, not a line drawing: "
                    f"{tracing_share:.0%} of its pixels at its two commonest grey levels, at "
                    f"least {DRAWING_SHARE:.0%} expected of a tracing (lines on a plain "
                    "background): export the tracing layer alone",
                    measured=round(tracing_share, 3),
                    expected=DRAWING_SHARE,
                )
            )
    for rel, share in drawings.values():
        found.append(
            finding(
                "error",
                "not-a-micrograph",
                "registration",
                rel,
                f"{Path(rel).name} is a line drawing, not a micrograph: {share:.0%} of its pixels "
                f"at its two commonest grey levels (at most {PHOTO_SHARE:.0%} expected of a "
                f"photograph): is it a tracing saved under an original's name?",
                measured=round(share, 3),
                expected=PHOTO_SHARE,
            )
        )
    return found, skip


def _offset_finding(tracing_rel: str, rel: str, fov: int, reg: Registration) -> Finding:
    dx, dy = reg.edge
    at_limit = (
        f" (the limit of the ±{MAX_SHIFT} px searched: it may be further off)"
        if max(abs(dx), abs(dy)) == MAX_SHIFT
        else ""
    )
    return finding(
        "error",
        "misregistered",
        "registration",
        tracing_rel,
        f"tracing does not lie on field of view {fov} ({Path(rel).name}): its lines match the "
        f"micrograph's edges best when moved by (dx, dy) = ({dx:+d}, {dy:+d}) px{at_limit} "
        f"(edge score {reg.edge_best:.2f}, at zero {reg.edge_zero:.2f}, typical "
        f"{reg.edge_typical:.2f}; darkness best at ({reg.dark[0]:+d}, {reg.dark[1]:+d})); "
        f"at most {NEAR_PX} px is a line's width: move the tracing onto the micrograph "
        "(or redraw it on this field of view) and rebuild the labels",
        measured=[float(dx), float(dy)],
        expected=float(NEAR_PX),
        related=[rel],
    )


def _line_spectrum(
    sample: SampleData, border: Border
) -> tuple[LineSpectrum, tuple[slice, slice]] | None:
    """The sample's thinned tracing lines (shared with the alignment check) in their window.

    Returns the prepared lines of :func:`line_window` and the window itself
    (the same for every field of view). None without lines, or when the
    originals' strip does not fit the tracing (its lines are then the whole
    tracing's, not comparable with the micrographs).
    """
    thinned = sample.tracing_lines()
    if thinned is None or thinned[0] != border:
        return None
    window = line_window(thinned[1])
    return LineSpectrum(thinned[1][window]), window


@register("registration", "sample", costly=True)
def registration(sample: SampleData, options: CheckOptions) -> Iterator[Finding]:
    """Match the sample's tracing against each field of view: kinds, then offset."""
    entry = sample.entry
    decoded_tracing = sample.tracing()
    if decoded_tracing is None or entry.tracing is None or not decoded_tracing.pixels.size:
        return
    tracing = decoded_tracing.pixels
    found, skip = _kind_findings(sample, tracing)
    yield from found
    border = sample.border()
    prepared: tuple[LineSpectrum, tuple[slice, slice]] | None = None  # once per sample
    for fov, rel in sorted(entry.originals.items()):
        decoded = sample.original(fov)
        if fov in skip or decoded is None:
            continue
        if decoded.pixels.shape != tracing.shape:
            h, w = decoded.pixels.shape
            yield finding(
                "info",
                "registration-unclear",
                "registration",
                entry.tracing,
                f"registration on field of view {fov} not checked: the tracing is "
                f"{tracing.shape[1]}x{tracing.shape[0]} px, {Path(rel).name} {w}x{h} px",
                related=[rel],
            )
            continue
        prepared = prepared or _line_spectrum(sample, border)
        if prepared is None:
            continue
        lines, window = prepared
        micrograph = strip_border(decoded.pixels, border)[window]
        reg = _register(lines, micrograph, dark=False)
        if reg is None:
            continue
        if reg.strength < WEAK_EVIDENCE:
            yield finding(
                "info",
                "registration-unclear",
                "registration",
                entry.tracing,
                f"cannot tell whether the tracing lies on field of view {fov} ({Path(rel).name}):"
                f" its lines stand out by {reg.strength:.2f} standard deviations on the "
                f"micrograph's edge map at best, {WEAK_EVIDENCE} needed to judge (faint or "
                "unrelated micrograph?)",
                measured=round(reg.strength, 3),
                expected=WEAK_EVIDENCE,
                related=[rel],
            )
        elif reg.far and reg.clearly_better:
            yield _offset_finding(entry.tracing, rel, fov, _with_dark(reg, lines, micrograph))
