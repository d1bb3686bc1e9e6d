"""Find where a crop was cut from: normalized cross-correlation, coarse to fine.

Pure functions on numpy arrays. The normalized cross-correlation (NCC) of a
template ``T`` (h, w) at offset ``(x, y)`` of an image ``I`` is the Pearson
correlation of ``T`` with the window ``I[y:y+h, x:x+w]``: 1.0 for an exact
copy, whatever the brightness and contrast, near 0 for unrelated content.

The search is coarse to fine so that it stays fast on 1024-2048 px originals:
both arrays are block-averaged by a factor ``f`` (chosen from the template
size), the NCC over every offset is computed at the coarse level by FFT (the
image's spectrum is computed once per image and reused for every crop, see
:class:`SearchImage`), and the best few coarse peaks are refined at full
resolution in a small window around each.

Boxes are ``(left, top, width, height)`` as in :mod:`datatool.crop`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

from datatool.crop import Box

_EPS = 1e-6
COARSE_TEMPLATE_PX = 32
"""Target side of the template at the coarse level: small enough to be fast,
large enough to hold a few grains' worth of structure."""


@dataclass(frozen=True)
class Match:
    """Where a template was found.

    Attributes
    ----------
    box : (left, top, width, height)
        The box in the searched image's pixel coordinates (for a scaled match,
        the box the crop covers at the image's scale).
    score : float
        NCC at that box, in [-1, 1]; 1.0 for an exact copy.
    scale : float
        Template size divided by box size: 1.0 for a plain cut, 0.5 for a crop
        shrunk to half size after cutting.
    """

    box: Box
    score: float
    scale: float = 1.0

    @property
    def left(self) -> int:
        """Left edge of the box, px."""
        return self.box[0]

    @property
    def top(self) -> int:
        """Top edge of the box, px."""
        return self.box[1]


def _as_float(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) array, got shape {array.shape}")
    return np.asarray(array, dtype=np.float32)


def block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor x factor`` blocks (the remainder rows/columns are dropped).

    Parameters
    ----------
    array : (H, W) numeric array
    factor : int >= 1

    Returns
    -------
    (H // factor, W // factor) float32

    >>> block_mean(np.arange(16.0).reshape(4, 4), 2)
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    a = _as_float(array, "array")
    if factor == 1:
        return a
    h, w = (a.shape[0] // factor) * factor, (a.shape[1] // factor) * factor
    if h == 0 or w == 0:
        raise ValueError(f"array of shape {a.shape} is smaller than one {factor}-px block")
    return a[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def coarse_factor(template_shape: tuple[int, int]) -> int:
    """Block size for the coarse level: the template's shorter side over 32, in 1..8."""
    return int(np.clip(min(template_shape) // COARSE_TEMPLATE_PX, 1, 8))


def _integrals(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-padded integral images of ``image`` and ``image**2``, ``(H+1, W+1)`` float64."""
    a = image.astype(np.float64)
    s1 = np.zeros((a.shape[0] + 1, a.shape[1] + 1))
    s2 = np.zeros_like(s1)
    s1[1:, 1:] = a.cumsum(0).cumsum(1)
    s2[1:, 1:] = (a * a).cumsum(0).cumsum(1)
    return s1, s2


def _box_sums(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sums of every (h, w) window of ``a`` at the valid offsets, ``(H-h+1, W-w+1)``.

    The first window's rows are summed once; each next offset adds the row (or
    column) that enters and subtracts the one that leaves. A search window a few
    offsets wide costs about one pass over it, far less than an integral image.
    Exact for the integer-valued pixels of images (float64 sums below 2**53).
    """
    rows, cols = a.shape[0] - h + 1, a.shape[1] - w + 1
    strips = np.empty((rows, a.shape[1]))
    strips[0] = a[:h].sum(axis=0)
    np.cumsum(a[h : h + rows - 1] - a[: rows - 1], axis=0, out=strips[1:])
    strips[1:] += strips[0]
    out = np.empty((rows, cols))
    out[:, 0] = strips[:, :w].sum(axis=1)
    np.cumsum(strips[:, w : w + cols - 1] - strips[:, : cols - 1], axis=1, out=out[:, 1:])
    out[:, 1:] += out[:, :1]
    return out


def _valid_sums(image: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum and sum of squares of every (h, w) window of ``image`` (valid offsets), float64."""
    a = image.astype(np.float64)
    square = a * a
    s1 = _box_sums(a, h, w)
    # A line mask (0 and 1 only) is its own square: one pass fewer.
    return s1, (s1 if np.array_equal(square, a) else _box_sums(square, h, w))


def _window_sums(
    integrals: tuple[np.ndarray, np.ndarray], top: int, left: int, size: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Sum and sum of squares of (h, w) windows at ``rows x cols`` offsets from (top, left).

    ``size`` is ``(rows, cols, h, w)``.
    """
    rows, cols, h, w = size

    def box(s: np.ndarray) -> np.ndarray:
        return (
            s[top + h : top + h + rows, left + w : left + w + cols]
            - s[top : top + rows, left + w : left + w + cols]
            - s[top + h : top + h + rows, left : left + cols]
            + s[top : top + rows, left : left + cols]
        )

    return box(integrals[0]), box(integrals[1])


class _Level:
    """One resolution of a search image; spectrum and integral images computed on first use."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels
        # The image spectrum at a size >= the image gives valid (non-wrapping)
        # correlations for every template offset, so it is template-independent.
        self.fft_shape = (
            sfft.next_fast_len(pixels.shape[0], True),
            sfft.next_fast_len(pixels.shape[1], True),
        )
        self.peak = _peak(pixels)

    @functools.cached_property
    def spectrum(self) -> np.ndarray:
        return sfft.rfft2(self.pixels, self.fft_shape, workers=1)

    @functools.cached_property
    def integrals(self) -> tuple[np.ndarray, np.ndarray]:
        return _integrals(self.pixels)

    def ncc(self, template: np.ndarray) -> np.ndarray:
        """NCC map of ``template`` over every valid offset, ``(H-h+1, W-w+1)`` float32."""
        h, w = template.shape
        rows, cols = self.pixels.shape[0] - h + 1, self.pixels.shape[1] - w + 1
        if rows < 1 or cols < 1:
            raise ValueError(
                f"template of shape {template.shape} is larger than image {self.pixels.shape}"
            )
        sums = _window_sums(self.integrals, 0, 0, (rows, cols, h, w))
        return _ncc(self.pixels, template, self.spectrum, self.fft_shape, sums, self.peak)


def _peak(pixels: np.ndarray) -> float:
    """``max(1, |pixels|.max())`` without a full-size temporary of ``|pixels|``."""
    return max(1.0, float(pixels.max()), -float(pixels.min())) if pixels.size else 1.0


def _ncc(
    image: np.ndarray,
    template: np.ndarray,
    spectrum: np.ndarray | None = None,
    fft_shape: tuple[int, int] | None = None,
    sums: tuple[np.ndarray, np.ndarray] | None = None,
    peak: float | None = None,
) -> np.ndarray:
    h, w = template.shape
    big_h, big_w = image.shape
    if h > big_h or w > big_w:
        raise ValueError(f"template of shape {template.shape} is larger than image {image.shape}")
    t = template.astype(np.float64)
    t = t - t.mean()
    t_norm = float(np.sqrt((t * t).sum()))
    out_shape = (big_h - h + 1, big_w - w + 1)
    if t_norm < _EPS:
        return np.zeros(out_shape, np.float32)
    if spectrum is None or fft_shape is None:
        fft_shape = (sfft.next_fast_len(big_h, True), sfft.next_fast_len(big_w, True))
        spectrum = sfft.rfft2(image, fft_shape, workers=1)
    t_spec = sfft.rfft2(t.astype(np.float32), fft_shape, workers=1)
    # Cross-correlation = IFFT(F(I) * conj(F(T))); no wrap-around for valid offsets.
    corr = sfft.irfft2(spectrum * np.conj(t_spec), fft_shape, workers=1)
    corr = corr[: out_shape[0], : out_shape[1]]
    if sums is None:
        sums = _valid_sums(image, h, w)
    s1, s2 = sums
    var = s2 - s1 * s1 / (h * w)
    peak = _peak(image) if peak is None else peak
    # Flat windows (zero variance) cannot correlate; rounding noise must not make them peak.
    flat = var <= 1e-7 * h * w * peak * peak
    denom = np.sqrt(np.where(flat, 1.0, var)) * t_norm
    ncc = np.where(flat, 0.0, corr / denom)
    return np.clip(ncc, -1.0, 1.0).astype(np.float32)


def ncc_map(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Normalized cross-correlation of ``template`` at every valid offset of ``image``.

    Parameters
    ----------
    image : (H, W) numeric array
    template : (h, w) numeric array, h <= H and w <= W

    Returns
    -------
    (H - h + 1, W - w + 1) float32
        ``out[y, x]`` is the NCC of ``template`` with ``image[y:y+h, x:x+w]``;
        0 where either is flat.

    >>> img = np.random.default_rng(0).random((20, 20))
    >>> out = ncc_map(img, img[5:12, 3:9])
    >>> tuple(int(v) for v in np.unravel_index(out.argmax(), out.shape)), round(float(out.max()), 3)
    ((5, 3), 1.0)
    """
    return _ncc(_as_float(image, "image"), _as_float(template, "template"))


def _peaks(score: np.ndarray, count: int, exclusion: int) -> list[tuple[int, int]]:
    """The ``count`` best offsets (y, x), each at least ``exclusion`` from the others."""
    work = score.copy()
    out = []
    for _ in range(count):
        y, x = np.unravel_index(int(np.argmax(work)), work.shape)
        if not np.isfinite(work[y, x]) or (out and work[y, x] <= -1.0):
            break
        out.append((int(y), int(x)))
        work[
            max(0, y - exclusion) : y + exclusion + 1, max(0, x - exclusion) : x + exclusion + 1
        ] = -2.0
    return out


def _exact_copy(window: np.ndarray, template: np.ndarray) -> tuple[int, int] | None:
    """Offset ``(y, x)`` where ``template`` is an exact copy of part of ``window``, or None.

    Lossless crops (PNG cut in GIMP, or by ``datatool build``) are exact copies:
    one row compared at every offset, then the whole crop at the survivors, is
    far cheaper than an NCC map and gives the same answer (NCC 1.0 there).
    A flat template is never an exact match (it fits anywhere).
    """
    h, w = template.shape
    if float(template.max()) == float(template.min()):
        return None
    mid = h // 2
    rows = window.shape[0] - h + 1
    strips = np.lib.stride_tricks.sliding_window_view(window[mid : mid + rows], w, axis=1)
    for y, x in zip(*np.nonzero((strips == template[mid]).all(axis=2)), strict=True):
        if np.array_equal(window[y : y + h, x : x + w], template):
            return int(y), int(x)
    return None


class SearchImage:
    """An image prepared for repeated template searches (spectra cached per level).

    Build it once per original (or processed tracing) and locate all its crops
    with :meth:`locate`; the FFT of the image is computed once per coarse factor.

    Parameters
    ----------
    image : (H, W) numeric array
    """

    def __init__(self, image: np.ndarray) -> None:
        self.pixels = _as_float(image, "image")
        self._levels: dict[int, _Level] = {}

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the image."""
        return self.pixels.shape  # type: ignore[return-value]

    def level(self, factor: int) -> _Level:
        """The block-averaged level ``factor`` with its cached spectrum."""
        if factor not in self._levels:
            self._levels[factor] = _Level(block_mean(self.pixels, factor))
        return self._levels[factor]

    def copy_at(self, template: np.ndarray, at: tuple[int, int]) -> Match | None:
        """``Match`` with score 1 when ``template`` is an exact copy of the box at ``at``.

        ``at`` is ``(left, top)``. None when the box leaves the image, differs
        in any pixel, or the template is flat (a flat template fits anywhere,
        so it proves nothing). One comparison: the cheap way to confirm a box a
        plan records before searching for it.
        """
        h, w = template.shape
        left, top = (int(v) for v in at)
        if left < 0 or top < 0 or top + h > self.shape[0] or left + w > self.shape[1]:
            return None
        if float(template.max()) == float(template.min()):
            return None
        if not np.array_equal(self.pixels[top : top + h, left : left + w], template):
            return None
        return Match((left, top, w, h), 1.0)

    def locate_in_window(self, template: np.ndarray, near: tuple[int, int], radius: int) -> Match:
        """Best full-resolution match with its top-left within ``radius`` px of ``near``.

        Parameters
        ----------
        template : (h, w) numeric array
        near : (left, top)
            Expected top-left corner.
        radius : int >= 0
            Half-size of the square of top-left positions searched.

        Returns
        -------
        Match
            Score -1 when the template does not fit anywhere in the window.
        """
        t = _as_float(template, "template")
        h, w = t.shape
        big_h, big_w = self.shape
        x0, y0 = near
        left, top = max(0, x0 - radius), max(0, y0 - radius)
        right, bottom = min(big_w - w, x0 + radius), min(big_h - h, y0 + radius)
        if right < left or bottom < top:
            return Match((x0, y0, w, h), -1.0)
        window = self.pixels[top : bottom + h, left : right + w]
        exact = _exact_copy(window, t)
        if exact is not None:
            return Match((left + exact[1], top + exact[0], w, h), 1.0)
        # Integrals of the window alone: cheaper than the whole image's for a few crops.
        score = _ncc(window, t, peak=self.level(1).peak)
        y, x = np.unravel_index(int(np.argmax(score)), score.shape)
        return Match((left + int(x), top + int(y), w, h), float(score[y, x]))

    def locate(self, template: np.ndarray, *, candidates: int = 3, good: float = 0.95) -> Match:
        """Find the box ``template`` was cut from, coarse to fine.

        Parameters
        ----------
        template : (h, w) numeric array, no larger than the image
        candidates : int
            Coarse peaks refined at full resolution, best first; the search
            stops at the first refined score >= ``good``.
        good : float
            Score that ends the refinement early.

        Returns
        -------
        Match
            Best full-resolution match (``scale`` 1).
        """
        t = _as_float(template, "template")
        h, w = t.shape
        if h > self.shape[0] or w > self.shape[1]:
            raise ValueError(f"template of shape {t.shape} is larger than image {self.shape}")
        factor = coarse_factor((h, w))
        if factor == 1:
            score = self.level(1).ncc(t)
            y, x = np.unravel_index(int(np.argmax(score)), score.shape)
            return Match((int(x), int(y), w, h), float(score[y, x]))
        coarse_t = block_mean(t, factor)
        score = self.level(factor).ncc(coarse_t)
        best = Match((0, 0, w, h), -1.0)
        for cy, cx in _peaks(score, candidates, exclusion=2):
            # The template's grid phase against the image's blocks is unknown:
            # the true offset lies within one block of the coarse peak.
            found = self.locate_in_window(t, (cx * factor, cy * factor), factor + 1)
            if found.score > best.score:
                best = found
            if best.score >= good:
                break
        return best

    def locate_scaled(
        self,
        template: np.ndarray,
        *,
        min_scale: float | None = None,
        max_scale: float = 4.0,
        step: float = 1.03,
    ) -> Match:
        """Find a crop that was resized after cutting: best box and scale factor.

        Scales are tried on a geometric grid (``step``) at the coarse level, the
        best one is refined on a finer grid at full resolution. A scale is the
        template's size divided by the box's size (0.5: a 512 px box shown at
        256 px).

        Parameters
        ----------
        template : (h, w) numeric array
        min_scale : float, optional
            Smallest scale tried; by default the one where the box fills the image.
        max_scale : float
        step : float > 1

        Returns
        -------
        Match
            With ``box`` in the image's coordinates and its ``scale``.
        """
        t = _as_float(template, "template")
        h, w = t.shape
        big_h, big_w = self.shape
        lo = max(h / big_h, w / big_w) if min_scale is None else min_scale
        if step <= 1:
            raise ValueError(f"step must be > 1, got {step}")
        scales = lo * step ** np.arange(int(np.log(max_scale / lo) / np.log(step)) + 1)
        coarse: list[tuple[float, float, tuple[int, int]]] = []
        for s in scales:
            size = (round(h / s), round(w / s))
            if size[0] > big_h or size[1] > big_w or min(size) < 8:
                continue
            resized = resize(t, size)
            factor = coarse_factor(size)
            score = self.level(factor).ncc(block_mean(resized, factor))
            y, x = np.unravel_index(int(np.argmax(score)), score.shape)
            coarse.append((float(score[y, x]), float(s), (int(x) * factor, int(y) * factor)))
        if not coarse:
            return Match((0, 0, w, h), -1.0, 1.0)
        coarse.sort(reverse=True)
        best = Match((0, 0, w, h), -1.0, 1.0)
        for _, s0, near in coarse[:2]:
            for s in s0 * np.linspace(1 / step, step, 9):
                size = (round(h / s), round(w / s))
                if size[0] > big_h or size[1] > big_w:
                    continue
                radius = coarse_factor(size) + 2 + int(abs(size[0] - h / s0))
                found = self.locate_in_window(resize(t, size), near, radius)
                if found.score > best.score:
                    best = Match(found.box, found.score, round(float(h / size[0]), 4))
        return best


def resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``size = (height, width)``: area average when shrinking, bilinear otherwise.

    Returns
    -------
    (height, width) float32
    """
    from datatool.crop import resize_image

    return resize_image(_as_float(array, "array"), size)


def locate(image: np.ndarray, template: np.ndarray) -> Match:
    """Find the box ``template`` was cut from in ``image`` (coarse to fine NCC).

    Convenience for one search; build a :class:`SearchImage` to search many crops.

    >>> img = np.random.default_rng(1).random((120, 140))
    >>> m = locate(img, img[30:94, 50:114])
    >>> m.box, round(m.score, 3)
    ((50, 30, 64, 64), 1.0)
    """
    return SearchImage(image).locate(template)


def box_offset(label_box: Box, image_box: Box) -> tuple[int, int]:
    """``(dx, dy)`` = label box position minus image box position.

    A label cut 3 px to the right of its image's box gives ``(3, 0)``.
    """
    return label_box[0] - image_box[0], label_box[1] - image_box[1]
