"""Grains of a tracing: the one definition of a grain, and grain statistics.

A tracing is read with the tool's usual polarity detection
(:func:`datatool.labels.line_mask`). Its boundary mask ``B`` is the line pixels
as traced; its skeleton ``K`` is ``skimage.morphology.skeletonize(B)``.

* **Grains** are the 4-connected components of the pixels not in ``K`` (an
  8-connected skeleton separates 4-connected regions). A grain is *complete*
  when it touches no image edge and has at least :data:`MIN_GRAIN_AREA` px.
  Area = pixel count; equivalent diameter = ``2 sqrt(area / pi)``.
* **Mean chord** (NIST line grid): along every row and column of ``B``, the runs
  of non-boundary pixels with a boundary pixel at both ends; their mean length.
* **Mean lineal intercept** (ASTM E112): test lines every
  :data:`TEST_LINE_SPACING` px at 0, 90, 45 and 135 degrees sample ``K``; a run
  of skeleton pixels along a line is one crossing; intercept = total test-line
  length / crossings, a diagonal pixel counting sqrt(2) px.
* **ASTM grain size number** ``G = -6.6439 log10(l_mm) - 3.2877``.
* **Open ends**: pixels of ``K`` with one 8-neighbour in ``K``, more than
  :data:`EDGE_MARGIN` px from the image edge.
* **Triple junctions**: 8-connected clusters of pixels of ``K`` with three or
  more 8-neighbours in ``K``.
* **Boundary fraction**: pixels of ``B`` / all pixels.

Everything here is a pure function of arrays (numpy, scipy, scikit-image); the
check's few-grains rule, ``plan``, ``info``, ``report``, ``grains`` and the grain
agreement of ``score``/``evaluate`` all count grains through this module.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage as ndi

from datatool import labels
from datatool.labels import (  # the grain definition itself, shared with checks and plan
    MIN_GRAIN_AREA,
    GrainMap,
    count_complete_grains,
    grain_map,
    grain_statistics,
    untraced_fraction,
    untraced_share,
)

__all__ = [
    "MIN_GRAIN_AREA",
    "GrainMap",
    "GrainStats",
    "count_complete_grains",
    "grain_map",
    "grain_stats",
    "grain_statistics",
    "untraced_fraction",
    "untraced_share",
]


#: Spacing of the intercept test lines (rows, columns, diagonals), px.
TEST_LINE_SPACING = 10

#: Skeleton endpoints this close to the image edge (px) are where a line leaves the image.
EDGE_MARGIN = 3

#: Open ends listed by position in a result (the count covers them all).
LISTED_OPEN_ENDS = 10

#: A label with this many open ends or more gets the check's ``open-ends`` warning
#: (two gaps; a crop of a closed tracing has none: its lines end at the crop edge).
MANY_OPEN_ENDS = 4

#: A tracing is mostly black and white; beyond this share of mid-grey pixels it is not one.
MID_GREY_LIMIT = 0.5

_ASTM_SLOPE = -6.6439
_ASTM_OFFSET = -3.2877

_EIGHT_CONNECTED = ndi.generate_binary_structure(2, 2)


def _check_2d(name: str, array: np.ndarray) -> None:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) array, got shape {array.shape}")


# --------------------------------------------------------------------------- reading a tracing


def mid_grey_fraction(grey: np.ndarray) -> float:
    """Share of pixels between 20 % and 80 % of the dtype's range (1.0 for floats).

    A tracing (either polarity, antialiased or blurred) is mostly near black or
    white; a micrograph is mostly mid-grey.

    >>> mid_grey_fraction(np.array([[0, 128, 255, 255]], np.uint8))
    0.25
    """
    _check_2d("grey", grey)
    top = float(np.iinfo(grey.dtype).max) if grey.dtype.kind in "ui" else 1.0
    if grey.size == 0:
        return 0.0
    values = grey.astype(np.float32) / top
    return float(np.mean((values > 0.2) & (values < 0.8)))


def tracing_boundary(grey: np.ndarray) -> np.ndarray:
    """The boundary mask ``B`` of a tracing, either polarity: True on the lines.

    Parameters
    ----------
    grey : (H, W) uint8, uint16 or float array
        White lines on black, or black lines on white (GIMP export).

    Returns
    -------
    (H, W) bool
        All False for an empty (flat) tracing.

    Raises
    ------
    ValueError
        The image is not 2-D, or more than :data:`MID_GREY_LIMIT` of its pixels
        are mid-grey (a micrograph rather than a tracing).

    >>> tracing_boundary(np.array([[255, 0, 255]], np.uint8)).tolist()
    [[False, True, False]]
    """
    _check_2d("tracing", grey)
    share = mid_grey_fraction(grey)
    if share > MID_GREY_LIMIT:
        raise ValueError(
            f"not a tracing: {share:.0%} of the pixels are mid-grey, expected at most "
            f"{MID_GREY_LIMIT:.0%} (a tracing is lines on a plain background)"
        )
    if grey.size == 0 or grey.min() == grey.max():
        return np.zeros(grey.shape, bool)
    return labels.line_mask(grey)


# --------------------------------------------------------------------------- grain label image


# --------------------------------------------------------------------------- line measures


def chord_lengths(boundary: np.ndarray) -> np.ndarray:
    """Lengths of the runs of non-boundary pixels with a boundary pixel at both ends.

    Every row, then every column, of ``B``; runs touching the image edge are not chords.

    Returns
    -------
    (n,) int64

    >>> b = np.array([[1, 0, 0, 1, 0, 1, 0]], bool)
    >>> chord_lengths(b).tolist()
    [2, 1]
    """
    _check_2d("boundary", boundary)
    mask = boundary.astype(bool, copy=False)
    found = []
    for lines in (mask, np.ascontiguousarray(mask.T)):
        width = lines.shape[1]
        index = np.flatnonzero(lines)
        if index.size < 2:
            continue
        gaps = np.diff(index) - 1
        same_line = (index[1:] // width) == (index[:-1] // width)
        found.append(gaps[same_line & (gaps > 0)])
    return np.concatenate(found) if found else np.zeros(0, np.int64)


@dataclass(frozen=True)
class InterceptCount:
    """Test-line length and skeleton crossings along one direction of test lines."""

    direction: str
    length_px: float
    crossings: int


def intercept_counts(
    skeleton: np.ndarray, spacing: int = TEST_LINE_SPACING
) -> list[InterceptCount]:
    """Crossings of ``K`` with the 0, 90, 45 and 135 degree test lines every ``spacing`` px.

    Rows ``0, spacing, ...``; columns likewise; diagonals ``(i, i + o)`` and
    anti-diagonals ``(i, o - i)`` with ``o`` a multiple of ``spacing``. A run of
    skeleton pixels along a line is one crossing; a diagonal pixel is sqrt(2) px.

    Parameters
    ----------
    skeleton : (H, W) bool
    spacing : int

    Returns
    -------
    list of InterceptCount
        ``0deg``, ``90deg``, ``45deg``, ``135deg``.
    """
    _check_2d("skeleton", skeleton)
    if spacing < 1:
        raise ValueError(f"spacing must be >= 1 px, got {spacing}")
    k = skeleton.astype(bool, copy=False)
    h, w = k.shape
    # Work on the skeleton's pixels only (a few % of the image): a pixel starts a run
    # when it is on a test line and its predecessor along that line is not in K.
    ys, xs = np.nonzero(k)
    padded = np.pad(k, 1)
    before = {
        "0deg": padded[ys + 1, xs],  # (y, x - 1)
        "90deg": padded[ys, xs + 1],  # (y - 1, x)
        "45deg": padded[ys, xs],  # (y - 1, x - 1)
        "135deg": padded[ys, xs + 2],  # (y - 1, x + 1)
    }
    on_line = {
        "0deg": ys % spacing == 0,
        "90deg": xs % spacing == 0,
        "45deg": (xs - ys) % spacing == 0,
        "135deg": (xs + ys) % spacing == 0,
    }
    # Pixels of row i on the diagonals: columns j < w with j = i (45) or j = -i (135) mod spacing.
    first_col = {"45deg": np.arange(h) % spacing, "135deg": (-np.arange(h)) % spacing}
    diagonal_pixels = {
        name: int(np.where(r < w, (w - 1 - r) // spacing + 1, 0).sum())
        for name, r in first_col.items()
    }
    lengths = {
        "0deg": float(-(-h // spacing) * w),
        "90deg": float(-(-w // spacing) * h),
        "45deg": math.sqrt(2.0) * diagonal_pixels["45deg"],
        "135deg": math.sqrt(2.0) * diagonal_pixels["135deg"],
    }
    return [
        InterceptCount(name, lengths[name], int(np.count_nonzero(on_line[name] & ~before[name])))
        for name in ("0deg", "90deg", "45deg", "135deg")
    ]


def mean_intercept(skeleton: np.ndarray, spacing: int = TEST_LINE_SPACING) -> float | None:
    """Mean lineal intercept in px (total test-line length / crossings); None without crossings.

    >>> k = np.zeros((40, 40), bool); k[:, 5::10] = True
    >>> round(mean_intercept(k), 3)
    16.095
    """
    counts = intercept_counts(skeleton, spacing)
    crossings = sum(c.crossings for c in counts)
    if crossings == 0:
        return None
    return float(sum(c.length_px for c in counts) / crossings)


def astm_grain_size(intercept_mm: float) -> float:
    """ASTM E112 grain size number from the mean lineal intercept in mm.

    >>> round(astm_grain_size(0.032), 2)
    6.64
    """
    if not intercept_mm > 0:
        raise ValueError(f"intercept must be > 0 mm, got {intercept_mm}")
    return float(_ASTM_SLOPE * math.log10(intercept_mm) + _ASTM_OFFSET)


def skeleton_neighbours(skeleton: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8: the number of 8-neighbours in ``K`` of every pixel (0 off ``K``)."""
    _check_2d("skeleton", skeleton)
    k = skeleton.astype(bool, copy=False)
    centre = k.view(np.uint8)
    padded = np.pad(k, 1).view(np.uint8)
    rows = padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]  # 3x3 box sum, one axis at a time
    counts = rows[:-2] + rows[1:-1] + rows[2:]
    counts -= centre
    counts *= centre
    return counts


def open_ends(
    skeleton: np.ndarray, margin: int = EDGE_MARGIN, neighbours: np.ndarray | None = None
) -> np.ndarray:
    """Skeleton endpoints farther than ``margin`` px from the image edge.

    ``neighbours`` is :func:`skeleton_neighbours` of ``skeleton`` when known.

    Returns
    -------
    (n, 2) int64
        ``(row, column)`` of each open end, row-major order.

    >>> k = np.zeros((20, 20), bool); k[10, 5:15] = True
    >>> open_ends(k).tolist()
    [[10, 5], [10, 14]]
    """
    k = skeleton.astype(bool, copy=False)
    counts = skeleton_neighbours(k) if neighbours is None else neighbours
    h, w = k.shape
    ys, xs = np.divmod(np.flatnonzero(k & (counts == 1)), w)  # row-major, as np.nonzero
    inner = (ys > margin) & (ys < h - 1 - margin) & (xs > margin) & (xs < w - 1 - margin)
    return np.stack([ys[inner], xs[inner]], axis=1).astype(np.int64)


def triple_junctions(skeleton: np.ndarray, neighbours: np.ndarray | None = None) -> int:
    """Number of 8-connected clusters of skeleton pixels with 3 or more skeleton neighbours.

    ``neighbours`` is :func:`skeleton_neighbours` of ``skeleton`` when known.

    >>> k = np.zeros((9, 9), bool); k[4, :] = True; k[:, 4] = True
    >>> triple_junctions(k)
    1
    """
    k = skeleton.astype(bool, copy=False)
    counts = skeleton_neighbours(k) if neighbours is None else neighbours
    junction = k & (counts >= 3)
    return int(ndi.label(junction, structure=_EIGHT_CONNECTED)[1])


# --------------------------------------------------------------------------- pixel size


_UNIT_UM = {"nm": 1e-3, "um": 1.0, "µm": 1.0, "μm": 1.0, "micron": 1.0, "mm": 1e3}
_SIZE_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Zµμ]+)\s*$")


def parse_pixel_size(text: str) -> float:
    """A pixel size such as ``"0.5um"``, ``"500nm"``, ``"0.0005mm"`` or ``"0.5 µm"``, in µm.

    Raises
    ------
    ValueError
        No unit, an unknown unit, or a size that is not positive.

    >>> parse_pixel_size("500nm"), parse_pixel_size("0.0005mm"), parse_pixel_size("0.5µm")
    (0.5, 0.5, 0.5)
    """
    match = _SIZE_PATTERN.match(text)
    units = "nm, um (µm) or mm"
    if match is None:
        raise ValueError(f"pixel size {text!r} is not a number with a unit ({units}), e.g. 0.5um")
    value, unit = float(match.group(1)), match.group(2)
    factor = _UNIT_UM.get(unit) or _UNIT_UM.get(unit.lower())
    if factor is None:
        raise ValueError(f"pixel size {text!r}: unknown unit {unit!r}, expected {units}")
    if not value > 0:
        raise ValueError(f"pixel size {text!r} must be > 0")
    return round(value * factor, 12)


# --------------------------------------------------------------------------- statistics


class GrainStats(BaseModel):
    """Grain statistics of one tracing (``datatool grains --json`` prints a list of them).

    Undefined values (no complete grain, no chord, no crossing, no pixel size)
    are null.
    """

    model_config = ConfigDict(extra="forbid")

    file: str | None = Field(None, description="The tracing the statistics are of.")
    width: int = Field(description="Image width, px.")
    height: int = Field(description="Image height, px.")
    grains: int = Field(
        description="Complete grains: 4-connected regions off the skeleton touching no image "
        f"edge, at least {MIN_GRAIN_AREA} px."
    )
    regions: int = Field(description="All regions off the skeleton, complete or not.")
    mean_area_px: float | None = Field(description="Mean area of the complete grains, px.")
    median_area_px: float | None = Field(description="Median area of the complete grains, px.")
    std_area_px: float | None = Field(description="Standard deviation of the grain areas, px.")
    mean_diameter_px: float | None = Field(
        description="Mean equivalent diameter 2 sqrt(area / pi) of the complete grains, px."
    )
    median_diameter_px: float | None = Field(description="Median equivalent diameter, px.")
    std_diameter_px: float | None = Field(description="Standard deviation of the diameters, px.")
    mean_chord_px: float | None = Field(
        description="Mean length of the row and column runs between two boundary pixels, px."
    )
    chords: int = Field(description="Number of chords measured.")
    mean_intercept_px: float | None = Field(
        description="Mean lineal intercept: test-line length / skeleton crossings "
        f"(lines every {TEST_LINE_SPACING} px at 0, 90, 45, 135 degrees), px."
    )
    crossings: int = Field(description="Skeleton crossings of the test lines.")
    pixel_size_um: float | None = Field(None, description="Pixel size, µm (null: px only).")
    pixel_size_source: str | None = Field(
        None, description="Where the pixel size came from (option, TIFF tags...); null: none."
    )
    mean_diameter_um: float | None = Field(None, description="Mean equivalent diameter, µm.")
    mean_chord_um: float | None = Field(None, description="Mean chord, µm.")
    mean_intercept_um: float | None = Field(None, description="Mean lineal intercept, µm.")
    astm_g: float | None = Field(
        None,
        description="ASTM E112 grain size number -6.6439 log10(intercept in mm) - 3.2877 "
        "(null without a pixel size).",
    )
    open_ends: int = Field(
        description=f"Skeleton endpoints more than {EDGE_MARGIN} px from the image edge."
    )
    open_end_positions: list[list[int]] = Field(
        default_factory=list,
        description=f"[x, y] of the first {LISTED_OPEN_ENDS} open ends, row-major order.",
    )
    triple_junctions: int = Field(
        description="8-connected clusters of skeleton pixels with 3 or more skeleton neighbours."
    )
    boundary_fraction: float = Field(description="Boundary pixels / all pixels.")
    notes: list[str] = Field(
        default_factory=list, description="Why values are missing (empty tracing, no grain...)."
    )


def _describe(values: np.ndarray) -> tuple[float | None, float | None, float | None]:
    if values.size == 0:
        return None, None, None
    return float(values.mean()), float(np.median(values)), float(values.std())


def _times(value: float | None, factor: float | None) -> float | None:
    return None if value is None or factor is None else value * factor


def grain_stats(
    boundary: np.ndarray,
    pixel_size_um: float | None = None,
    *,
    pixel_size_source: str | None = None,
    file: str | None = None,
    gmap: GrainMap | None = None,
) -> GrainStats:
    """Every grain statistic of a boundary mask.

    Parameters
    ----------
    boundary : (H, W) bool
        ``B``, True on the lines (see :func:`tracing_boundary`).
    pixel_size_um : float, optional
        Pixel size in µm; gives the µm values and ASTM G.
    pixel_size_source, file : str, optional
        Recorded in the result.
    gmap : GrainMap, optional
        ``grain_map(boundary)`` when the caller has it already.

    Returns
    -------
    GrainStats
        An empty tracing gives zero grains and null means, never an error.
    """
    _check_2d("boundary", boundary)
    if pixel_size_um is not None and not pixel_size_um > 0:
        raise ValueError(f"pixel size must be > 0 µm, got {pixel_size_um}")
    gm = gmap if gmap is not None else grain_map(boundary)
    areas = gm.complete_areas.astype(np.float64)
    mean_area, median_area, std_area = _describe(areas)
    mean_d, median_d, std_d = _describe(2.0 * np.sqrt(areas / math.pi))
    chords = chord_lengths(gm.boundary)
    mean_chord = float(chords.mean()) if chords.size else None
    counts = intercept_counts(gm.skeleton)
    crossings = sum(c.crossings for c in counts)
    intercept = float(sum(c.length_px for c in counts) / crossings) if crossings else None
    neighbours = skeleton_neighbours(gm.skeleton)
    ends = open_ends(gm.skeleton, neighbours=neighbours)
    notes = []
    if not gm.boundary.any():
        notes.append("empty tracing: no boundary pixel")
    elif gm.count == 0:
        notes.append(
            "no complete grain: the lines close no region away from the image edge "
            f"of at least {MIN_GRAIN_AREA} px"
        )
    astm = None
    if intercept is not None and pixel_size_um is not None:
        astm = astm_grain_size(intercept * pixel_size_um / 1000.0)
    return GrainStats(
        file=file,
        width=int(boundary.shape[1]),
        height=int(boundary.shape[0]),
        grains=gm.count,
        regions=gm.regions,
        mean_area_px=mean_area,
        median_area_px=median_area,
        std_area_px=std_area,
        mean_diameter_px=mean_d,
        median_diameter_px=median_d,
        std_diameter_px=std_d,
        mean_chord_px=mean_chord,
        chords=int(chords.size),
        mean_intercept_px=intercept,
        crossings=int(crossings),
        pixel_size_um=pixel_size_um,
        pixel_size_source=pixel_size_source if pixel_size_um is not None else None,
        mean_diameter_um=_times(mean_d, pixel_size_um),
        mean_chord_um=_times(mean_chord, pixel_size_um),
        mean_intercept_um=_times(intercept, pixel_size_um),
        astm_g=astm,
        open_ends=int(ends.shape[0]),
        open_end_positions=[[int(c), int(r)] for r, c in ends[:LISTED_OPEN_ENDS]],
        triple_junctions=triple_junctions(gm.skeleton, neighbours),
        boundary_fraction=float(gm.boundary.mean()) if gm.boundary.size else 0.0,
        notes=notes,
    )


def equivalent_diameters(areas: np.ndarray) -> np.ndarray:
    """``2 sqrt(area / pi)`` per area, float64.

    >>> equivalent_diameters(np.array([math.pi])).tolist()
    [2.0]
    """
    return 2.0 * np.sqrt(np.asarray(areas, dtype=np.float64) / math.pi)


#: Edges of the grain-size histograms (equivalent diameter, px): a factor sqrt(2) apart
#: from 2 to 1024 px, so fine and coarse grains of one micrograph both get bins.
DIAMETER_BIN_EDGES_PX: tuple[float, ...] = tuple(round(2.0 ** (k / 2), 3) for k in range(2, 21))


def diameter_histogram(areas: np.ndarray) -> list[int]:
    """Grains per bin of :data:`DIAMETER_BIN_EDGES_PX` from their areas (px).

    Diameters beyond the last edge count in the last bin, below the first in the first.

    >>> diameter_histogram(np.array([math.pi, 100 * math.pi]))[:2]
    [1, 0]
    >>> sum(diameter_histogram(np.ones(3)))
    3
    """
    edges = np.asarray(DIAMETER_BIN_EDGES_PX)
    diameters = np.clip(equivalent_diameters(areas), edges[0], edges[-1])
    counts, _ = np.histogram(diameters, bins=edges)
    return [int(c) for c in counts]


def colour_labels(label_image: np.ndarray, seed: int = 0) -> np.ndarray:
    """A picture of a grain label image: one colour per grain, black on label 0.

    Parameters
    ----------
    label_image : (H, W) integer array
    seed : int
        Seeds the colours (the same seed gives the same picture).

    Returns
    -------
    (H, W, 3) uint8
    """
    _check_2d("label_image", label_image)
    top = int(label_image.max()) if label_image.size else 0
    palette = np.random.default_rng(seed).integers(60, 256, size=(top + 1, 3)).astype(np.uint8)
    palette[0] = 0
    return palette[label_image]


# --------------------------------------------------------------------------- files


def measure_file(path: str, pixel_size_um: float | None = None) -> tuple[GrainStats, GrainMap]:
    """Read a tracing file and measure its grains.

    Parameters
    ----------
    path : str
        A PNG or TIFF tracing, either polarity.
    pixel_size_um : float, optional
        Overrides the pixel size; otherwise a TIFF's metadata gives it
        (:func:`datatool.io.tiff_pixel_size`), else sizes are in px only.

    Returns
    -------
    (GrainStats, GrainMap)

    Raises
    ------
    DatatoolError
        The file cannot be read or is not a tracing (one line naming it).
    """
    from datatool import io
    from datatool.errors import DatatoolError

    # As check and build read a tracing: lines on a transparent layer are the drawing.
    grey = io.read_grey(path, role="tracing")
    try:
        boundary = tracing_boundary(grey)
    except ValueError as exc:
        raise DatatoolError(f"{path}: {exc}") from None
    source = "--pixel-size" if pixel_size_um is not None else None
    if pixel_size_um is None:
        found = io.tiff_pixel_size(path)
        if found is not None:
            pixel_size_um, source = found
    gmap = grain_map(boundary)
    stats = grain_stats(
        boundary, pixel_size_um, pixel_size_source=source, file=str(path), gmap=gmap
    )
    return stats, gmap
