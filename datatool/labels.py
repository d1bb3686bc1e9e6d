"""Array functions on tracings and labels: binarize, polarity, width, grains.

All functions are pure: ``(H, W)`` arrays in, arrays or numbers out. A label is
white boundary lines (True / 255) on a black background (False / 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

#: A label pixel is a line pixel when it is brighter than this on the 8-bit scale
#: (the lab's labels are black and white; antialiased edges fall either side).
LABEL_THRESHOLD = 127

#: Share of label pixels strictly between black and white that is still tolerated
#: (edge noise); more means a resized or antialiased tracing, or not a label at all.
NON_BINARY_LIMIT = 0.005


def label_lines(pixels: np.ndarray) -> np.ndarray:
    """The line pixels of a white-on-black label: ``pixels > LABEL_THRESHOLD`` (8-bit scale).

    Parameters
    ----------
    pixels : (H, W) uint8 or uint16 ndarray
        A 16-bit label is compared on its own scale (threshold x 257).

    Returns
    -------
    (H, W) bool

    >>> label_lines(np.array([[0, 127, 128, 255]], dtype=np.uint8)).tolist()
    [[False, False, True, True]]
    """
    _check_2d("label", pixels)
    scale = 257 if pixels.dtype == np.uint16 else 1
    return pixels > LABEL_THRESHOLD * scale


def _check_2d(name: str, array: np.ndarray) -> None:
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) array, got shape {array.shape}")


def otsu_threshold(grey: np.ndarray) -> float:
    """Otsu's threshold of a greyscale image; the midpoint of its range when it is flat.

    Parameters
    ----------
    grey : (H, W) uint8, uint16 or float array
    """
    from skimage.filters import threshold_otsu

    _check_2d("grey", grey)
    lo, hi = float(grey.min()), float(grey.max())
    if lo == hi:
        return lo
    if grey.dtype == np.uint8:
        # The histogram skimage would build, from PIL's 8-bit histogram: same threshold, 5x faster.
        from PIL import Image

        counts = np.asarray(Image.fromarray(np.ascontiguousarray(grey)).histogram())
        first, last = int(lo), int(hi)
        levels = np.arange(first, last + 1)
        return float(threshold_otsu(hist=(counts[first : last + 1], levels)))
    return float(threshold_otsu(grey))


def binarize(grey: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """``grey > threshold`` (Otsu's when ``threshold`` is None), as ``(H, W)`` bool."""
    _check_2d("grey", grey)
    t = otsu_threshold(grey) if threshold is None else float(threshold)
    return grey > t


def line_mask(grey: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Binarize a tracing whatever its polarity; True on the lines.

    Lines are the minority class: black lines on white (GIMP export) and white
    lines on black both give True on the lines.

    Parameters
    ----------
    grey : (H, W) array
        A tracing or label, either polarity.
    threshold : float, optional
        Grey level separating lines from background; Otsu's when omitted.

    Returns
    -------
    (H, W) bool

    >>> line_mask(np.array([[255, 0, 255], [255, 0, 255]], dtype=np.uint8)).astype(int)
    array([[0, 1, 0],
           [0, 1, 0]])
    """
    bright = binarize(grey, threshold)
    return ~bright if bright.mean() > 0.5 else bright


def is_inverted(grey: np.ndarray) -> bool:
    """True when a label is mostly white, i.e. black lines on a white background."""
    _check_2d("grey", grey)
    top = float(np.iinfo(grey.dtype).max) if grey.dtype.kind in "ui" else 1.0
    return float(np.mean(grey > top / 2)) > 0.5


def grey_fraction(grey: np.ndarray) -> float:
    """Share of pixels that are neither black nor white (0 < value < max of the dtype)."""
    _check_2d("grey", grey)
    top = np.iinfo(grey.dtype).max if grey.dtype.kind in "ui" else 1.0
    return float(np.mean((grey > 0) & (grey < top)))


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Thin a line mask to 1-px centre lines, ``(H, W)`` bool."""
    from skimage.morphology import skeletonize

    _check_2d("mask", mask)
    return skeletonize(mask.astype(bool))


_thin = skeleton  # grain_map's ``skeleton`` argument shadows the function's name


def centre_lines(mask: np.ndarray) -> np.ndarray:
    """Thin a line mask to 1-px centre lines as labels are made: Guo & Hall's thinning.

    The result is pixel for pixel that of ``skimage.morphology.thin`` (Z. Guo and
    R. W. Hall, "Parallel thinning with two-subiteration algorithms", Comm. ACM
    32(3), 1989; tested against it), computed 64 pixels at a time: each row is
    packed into 64-bit words and the two subiterations are written as bitwise
    logic on the eight neighbour planes, so a 1024 px tracing takes a few
    milliseconds instead of the 50-90 ms of a pixel loop. Building labels, the
    processed tracing of the alignment check and the registration's centre
    lines all use it; the grain definitions keep :func:`skeleton` (``K``).

    Parameters
    ----------
    mask : (H, W) array
        Nonzero on the lines.

    Returns
    -------
    (H, W) bool

    >>> bar = np.zeros((5, 7), bool); bar[1:4, 1:6] = True
    >>> centre_lines(bar).astype(int)[2].tolist()
    [0, 0, 1, 1, 1, 0, 0]
    """
    _check_2d("mask", mask)
    height, width = mask.shape
    if mask.size == 0:
        return np.zeros(mask.shape, bool)
    # One zero row above and below, and at least one zero column on the right, so
    # that every neighbour read outside the image is background.
    words = (width + 64) // 64
    rows = np.zeros((height + 2, words * 64), bool)
    rows[1:-1, :width] = mask
    x = np.packbits(rows, axis=1, bitorder="little").view("<u8").copy()
    centre = x[1:-1]
    quiet, second = 0, False
    while quiet < 2:  # two subiterations in a row without a deletion: converged
        deleted = centre & _guo_hall_deletable(x, second)
        if deleted.any():
            centre &= ~deleted
            quiet = 0
        else:
            quiet += 1
        second = not second
    bits = np.unpackbits(x.view(np.uint8), axis=1, bitorder="little")
    return bits[1:-1, :width].astype(bool)


_ONE, _TOP = np.uint64(1), np.uint64(63)


def _two_of_four(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Bitwise: at least two of the four words' bits are set."""
    return (a & b) | (c & d) | ((a | b) & (c | d))


def _guo_hall_deletable(x: np.ndarray, second: bool) -> np.ndarray:
    """Bitwise conditions G1, G2 and G3 (G3' in the second subiteration) of Guo & Hall.

    ``x`` holds the packed rows with a zero row above and below; bit ``j`` of
    word ``k`` is column ``64 k + j``. The neighbours are numbered as in the paper,
    counter-clockwise from the east: x1 = E, x2 = NE, x3 = N, x4 = NW, x5 = W,
    x6 = SW, x7 = S, x8 = SE. Returns the deletable bits of the interior rows
    (the centre bit itself is not tested).
    """
    east = x >> _ONE  # east[r, c] = x[r, c + 1]
    east[:, :-1] |= x[:, 1:] << _TOP
    west = x << _ONE  # west[r, c] = x[r, c - 1]
    west[:, 1:] |= x[:, :-1] >> _TOP
    x1, x2, x3, x4 = east[1:-1], east[:-2], x[:-2], west[:-2]
    x5, x6, x7, x8 = west[1:-1], west[2:], x[2:], east[2:]
    # G1: exactly one of the four "b_i = not x_{2i-1} and (x_{2i} or x_{2i+1})".
    b1, b2, b3, b4 = ~x1 & (x2 | x3), ~x3 & (x4 | x5), ~x5 & (x6 | x7), ~x7 & (x8 | x1)
    g1 = (b1 | b2 | b3 | b4) & ~_two_of_four(b1, b2, b3, b4)
    # G2: 2 <= min(n1, n2) <= 3, n1 and n2 counting four pairwise ORs each.
    p1, p2, p3, p4 = x1 | x2, x3 | x4, x5 | x6, x7 | x8
    q1, q2, q3, q4 = x2 | x3, x4 | x5, x6 | x7, x8 | x1
    g2 = (
        _two_of_four(p1, p2, p3, p4)
        & _two_of_four(q1, q2, q3, q4)
        & ~(p1 & p2 & p3 & p4 & q1 & q2 & q3 & q4)
    )
    # G3: (x2 or x3 or not x8) and x1 is 0; G3': (x6 or x7 or not x4) and x5 is 0.
    g3 = ~((x6 | x7 | ~x4) & x5) if second else ~((x2 | x3 | ~x8) & x1)
    return g1 & g2 & g3


def dilate_to_width(line_mask_: np.ndarray, width_px: int) -> np.ndarray:
    """Dilate 1-px lines with a ``width_px`` square, so straight lines are ``width_px`` wide.

    A square (not a disk) matches what the lab does ("dilate to 3 pixels" with a
    3x3 kernel); ``width_px == 1`` returns the input unchanged.
    """
    _check_2d("mask", line_mask_)
    if width_px < 1:
        raise ValueError(f"line width must be >= 1 px, got {width_px}")
    mask = line_mask_.astype(bool)
    if width_px == 1:
        return mask.copy()
    # The square is separable: a row pass then a column pass of shifted ORs, as
    # ndi.binary_dilation(mask, np.ones((w, w))) (same offsets, -(w // 2) .. w - 1 - w // 2,
    # nothing outside the image) but several times faster.
    offsets = [k - width_px // 2 for k in range(width_px)]
    return _spread(_spread(mask, 1, offsets), 0, offsets)


def _spread(mask: np.ndarray, axis: int, offsets: list[int]) -> np.ndarray:
    """OR of ``mask`` moved by each offset along ``axis`` (pixels moved out are dropped)."""
    out = np.zeros_like(mask)
    n = mask.shape[axis]
    for offset in offsets:
        if abs(offset) >= n:
            continue
        src, dst = [slice(None)] * 2, [slice(None)] * 2
        src[axis] = slice(max(0, -offset), n - max(0, offset))
        dst[axis] = slice(max(0, offset), n - max(0, -offset))
        out[tuple(dst)] |= mask[tuple(src)]
    return out


def process_tracing(
    grey: np.ndarray, line_width: int = 3, threshold: float | None = None
) -> np.ndarray:
    """Turn a traced image into a label: binarize, white-on-black, thin, dilate.

    Thinning first (:func:`centre_lines`) makes the result independent of the GIMP
    stroke width.

    Parameters
    ----------
    grey : (H, W) array
        The tracing, either polarity, possibly blurred.
    line_width : int
        Target stroke width in px (1 gives the 1-px skeleton).
    threshold : float, optional
        Binarization threshold (Otsu's when omitted).

    Returns
    -------
    (H, W) bool
        True on the boundary lines.
    """
    return dilate_to_width(centre_lines(line_mask(grey, threshold)), line_width)


def _smallest_uint(max_value: int) -> type[np.unsignedinteger]:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_value <= np.iinfo(dtype).max:
            return dtype
    return np.uint64


def windowed_squared_distance(truth: np.ndarray, kernel_size: int) -> np.ndarray:
    """Squared distance to the nearest truth pixel inside the ``k x k`` window.

    ``D(p) = min { |p - q|^2 : truth(q), |py - qy| <= r, |px - qx| <= r }`` with
    ``r = k // 2``, or ``2 r^2 + 1`` where the window holds no truth pixel.

    Because the window is a square (a product of two intervals) the minimum
    separates: a row pass finds, per pixel, the horizontal distance ``h`` to the
    nearest set pixel within ``r`` of the same row, then a column pass takes
    ``min over |dy| <= r of dy^2 + h(y + dy)^2``. Both passes are O(k) per pixel
    on small unsigned integers, so the result is exact.

    Returns
    -------
    (H, W) unsigned integer ndarray
    """
    _check_2d("truth", truth)
    truth = truth.astype(bool, copy=False)
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    radius = kernel_size // 2
    height, width = truth.shape
    none_in_window = 2 * radius * radius + 1
    # The column pass adds up to r^2 to the sentinel, which must not overflow.
    dtype = _smallest_uint(none_in_window + radius * radius)

    # Row pass: h^2 = min over |dx| <= r of dx^2 where truth(y, x + dx), else the
    # sentinel. Whole-array minimum/add on uint8 beat masked writes several-fold.
    on_line = np.where(truth, dtype(0), dtype(none_in_window))
    horizontal_sq = on_line.copy()
    candidate = np.empty_like(on_line)
    for dx in range(1, min(radius, width - 1) + 1):
        candidate[:, : width - dx] = on_line[:, dx:]
        candidate[:, width - dx :] = none_in_window
        np.minimum(candidate[:, dx:], on_line[:, : width - dx], out=candidate[:, dx:])
        candidate += dtype(dx * dx)
        np.minimum(horizontal_sq, candidate, out=horizontal_sq)

    padded_cols = np.pad(horizontal_sq, ((radius, radius), (0, 0)), constant_values=none_in_window)
    squared = padded_cols[radius : radius + height].copy()
    for dy in range(1, radius + 1):
        np.minimum(
            padded_cols[radius + dy : radius + dy + height],
            padded_cols[radius - dy : radius - dy + height],
            out=candidate,
        )
        candidate += dtype(dy * dy)
        np.minimum(squared, candidate, out=squared)
    return squared


WIDTH_SEARCH_RADIUS = 8
"""Distances beyond this many px are not resolved: widths above ~17 px read as ~21."""
_WIDTH_FIRST_RADIUS = 3


def estimate_line_width(mask: np.ndarray, skeleton: np.ndarray | None = None) -> float | None:
    """Estimate the stroke width of a line mask in px; ``None`` for an empty mask.

    The Euclidean distance to the background, sampled on the skeleton, is about
    ``(w + 1) / 2`` for a line ``w`` px wide; the median ignores junctions. The
    distance is computed exactly within :data:`WIDTH_SEARCH_RADIUS` px (two
    separable passes, much cheaper than a full distance transform on every
    crop); pixels outside the image count as background. ``skeleton``, the
    mask's :func:`skeleton` when the caller has it already, saves thinning twice.

    >>> m = np.zeros((9, 20), bool); m[3:6, :] = True
    >>> estimate_line_width(m)
    3.0
    """
    _check_2d("mask", mask)
    mask = mask.astype(bool)
    if not mask.any():
        return None
    centre = _thin(mask) if skeleton is None else skeleton.astype(bool, copy=False)
    if centre.shape != mask.shape:
        raise ValueError(f"skeleton shape {centre.shape} differs from mask {mask.shape}")
    background = np.pad(~mask, 1, constant_values=True)
    # Labels' lines are a few px wide: a 3 px search settles nearly every centre pixel, and a
    # distance found within it is the nearest anywhere (any pixel outside that square lies
    # more than 3 px away). Only a mask with centre pixels left unsettled pays for the full
    # search radius; the result is the same either way.
    near = _WIDTH_FIRST_RADIUS
    squared = windowed_squared_distance(background, 2 * near + 1)[1:-1, 1:-1][centre]
    if squared.size and int(squared.max()) > near * near:
        full = windowed_squared_distance(background, 2 * WIDTH_SEARCH_RADIUS + 1)
        squared = full[1:-1, 1:-1][centre]
    distances = np.sqrt(squared.astype(np.float64))
    if distances.size == 0:
        return None
    return float(2.0 * np.median(distances) - 1.0)


# --------------------------------------------------------------------------- grains
# The one definition of a grain (see datatool.grains, which measures them): the
# 4-connected regions of the pixels off the line mask's skeleton. It lives here,
# below datatool.grains, so that the checks, plan and grains all count alike.

#: Regions smaller than this (px) are specks at junctions, not grains.
MIN_GRAIN_AREA = 10

_FOUR_CONNECTED = ndi.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class GrainMap:
    """The grains of one boundary mask.

    Attributes
    ----------
    boundary : (H, W) bool
        ``B``, the line pixels as traced.
    skeleton : (H, W) bool
        ``K = skeletonize(B)``.
    labels : (H, W) int32
        0 on ``K``; 1..``regions`` for the 4-connected regions of ``~K``.
    regions : int
        Number of regions, complete or not.
    areas : (regions + 1,) int64
        Pixel count per label (``areas[0] = 0``).
    complete : (regions + 1,) bool
        True for complete grains (no image edge, at least ``min_area`` px).
    touches_edge : (regions + 1,) bool
        True for regions with a pixel on the image edge.
    """

    boundary: np.ndarray
    skeleton: np.ndarray
    labels: np.ndarray
    regions: int
    areas: np.ndarray
    complete: np.ndarray
    touches_edge: np.ndarray

    @property
    def count(self) -> int:
        """Number of complete grains."""
        return int(self.complete.sum())

    @property
    def complete_areas(self) -> np.ndarray:
        """Areas of the complete grains in px, ``(count,)`` int64, in label order."""
        return self.areas[self.complete]

    def complete_labels(self) -> np.ndarray:
        """``(H, W)`` int32: the label image with every non-complete region set to 0."""
        keep = self.complete.copy()
        return np.where(keep[self.labels], self.labels, 0).astype(np.int32)

    def centroids(self) -> np.ndarray:
        """``(count, 2)`` float64 centroids (row, column) of the complete grains, label order."""
        if self.regions == 0:
            return np.zeros((0, 2))
        rows, cols = np.indices(self.labels.shape)
        flat = self.labels.ravel()
        n = self.regions + 1
        with np.errstate(invalid="ignore", divide="ignore"):
            cy = np.bincount(flat, rows.ravel(), n) / self.areas
            cx = np.bincount(flat, cols.ravel(), n) / self.areas
        return np.stack([cy, cx], axis=1)[self.complete]


def grain_map(
    boundary: np.ndarray,
    min_area: int = MIN_GRAIN_AREA,
    skeleton: np.ndarray | None = None,
) -> GrainMap:
    """Label the grains of a boundary mask.

    Parameters
    ----------
    boundary : (H, W) bool
        ``B``: True on the lines.
    min_area : int
        Smallest complete grain, px.
    skeleton : (H, W) bool, optional
        ``skeletonize(boundary)`` when the caller has it already.

    Returns
    -------
    GrainMap

    >>> b = np.zeros((30, 30), bool); b[10, :] = True; b[20, :] = True
    >>> b[:, 10] = True; b[:, 20] = True
    >>> grain_map(b).count
    1
    """
    _check_2d("boundary", boundary)
    if min_area < 1:
        raise ValueError(f"min_area must be >= 1 px, got {min_area}")
    mask = boundary.astype(bool, copy=False)
    skel = _thin(mask) if skeleton is None else skeleton.astype(bool, copy=False)
    if skel.shape != mask.shape:
        raise ValueError(f"skeleton shape {skel.shape} differs from boundary {mask.shape}")
    regions_img, regions = ndi.label(~skel, structure=_FOUR_CONNECTED)
    regions_img = regions_img.astype(np.int32, copy=False)
    areas = np.bincount(regions_img.ravel(), minlength=regions + 1).astype(np.int64)
    areas[0] = 0
    touches_edge = np.zeros(regions + 1, bool)
    if regions_img.size:
        edge = np.concatenate(
            [regions_img[0], regions_img[-1], regions_img[:, 0], regions_img[:, -1]]
        )
        touches_edge[edge] = True
    complete = ~touches_edge & (areas >= min_area)
    complete[0] = False
    return GrainMap(mask, skel, regions_img, int(regions), areas, complete, touches_edge)


def grain_statistics(
    boundary: np.ndarray, min_area: int = MIN_GRAIN_AREA, skeleton: np.ndarray | None = None
) -> tuple[int, float]:
    """``(complete grains, untraced fraction)`` from one labelling of the grains.

    The untraced fraction is the share of the image in regions that touch its
    edge and are more than 1.5 times as large as the largest complete grain
    (any edge region when there is no complete grain): grains cut by a crop's
    edge are smaller than that, while a part the lab left untraced spans
    several grains.

    >>> b = np.zeros((40, 40), bool); b[::8, :] = True; b[:, ::8] = True
    >>> grain_statistics(b)
    (16, 0.0)
    """
    gm = grain_map(boundary, min_area, skeleton)
    return gm.count, untraced_share(gm)


def untraced_share(gmap: GrainMap) -> float:
    """The untraced fraction of a grain map (see :func:`grain_statistics`)."""
    if gmap.regions == 0 or gmap.labels.size == 0:
        return 0.0
    inner = gmap.complete
    limit = 1.5 * float(gmap.areas[inner].max()) if inner.any() else 0.0
    untraced = gmap.touches_edge & (gmap.areas > limit)
    return float(gmap.areas[untraced].sum() / gmap.labels.size)


def count_complete_grains(boundary: np.ndarray, min_area: int = MIN_GRAIN_AREA) -> int:
    """Number of complete grains of a boundary mask (see :func:`grain_map`)."""
    return grain_statistics(boundary, min_area)[0]


def untraced_fraction(boundary: np.ndarray, min_area: int = MIN_GRAIN_AREA) -> float:
    """Share of the image in large untraced edge regions (see :func:`grain_statistics`)."""
    return grain_statistics(boundary, min_area)[1]


def resize_label(mask: np.ndarray, size: int | tuple[int, int], line_width: int = 3) -> np.ndarray:
    """Resize a label so it stays binary and keeps the target line width.

    Area-average the mask, keep every pixel a line touched, thin to centre
    lines and dilate back to ``line_width``.

    Parameters
    ----------
    mask : (H, W) bool
    size : int or (height, width)
        Output size; an int means a square.
    line_width : int

    Returns
    -------
    (height, width) bool
    """
    from PIL import Image

    _check_2d("mask", mask)
    height, width = (size, size) if isinstance(size, int) else size
    if (height, width) == mask.shape:
        return dilate_to_width(centre_lines(mask), line_width)
    img = Image.fromarray(mask.astype(np.float32))
    resample = (
        Image.Resampling.BOX
        if height <= mask.shape[0] and width <= mask.shape[1]
        else Image.Resampling.BILINEAR
    )
    scaled = np.asarray(img.resize((width, height), resample=resample))
    return dilate_to_width(centre_lines(scaled > 0.25), line_width)
