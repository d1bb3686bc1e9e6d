"""Pictures of the quality report, as PNG bytes ready to embed.

* :func:`label_overlay` - an image crop in grey with its label drawn over it in
  colour, so a misaligned label is visible at a glance;
* :func:`shift_mask` - a label moved by whole pixels (to draw it where the
  alignment check says it belongs);
* :func:`sample_thumbnail` - a field of view, at most 256 px, with its tracing
  in colour and the crop boxes numbered;
* :func:`bar_chart`, :func:`histogram_chart` - the composition plots
  (matplotlib, Agg backend), drawn only when :func:`worth_a_chart`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from datatool import io

#: Colour of a label drawn over its image as the file stores it, and at the offset found.
LABEL_COLOUR = (255, 40, 40)
SHIFTED_COLOUR = (40, 230, 80)
LABEL_OPACITY = 0.75
#: Colours of a sample thumbnail: the tracing (as in the plan preview), crop boxes, and
#: the boxes of crops the check has findings about.
TRACING_COLOUR = (0, 220, 255)
BOX_COLOUR = (255, 214, 0)
FLAGGED_BOX_COLOUR = (255, 48, 48)
#: Longer side of a sample thumbnail, px.
THUMBNAIL_SIDE = 256


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """A ``(H, W)`` uint8 or uint16 image as uint8, scaled by its type's maximum."""
    if pixels.ndim != 2:
        raise ValueError(f"pixels must be a 2-D (H, W) array, got shape {pixels.shape}")
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return np.rint(pixels.astype(np.float64) / 257.0).astype(np.uint8)
    raise TypeError(f"pixels must be uint8 or uint16, got {pixels.dtype}")


def shift_mask(mask: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Move a mask right by ``dx`` and down by ``dy`` px (rounded); uncovered pixels are False.

    Parameters
    ----------
    mask : (H, W) bool
    dx, dy : float
        Shift in px; negative moves left / up.

    Returns
    -------
    (H, W) bool

    >>> shift_mask(np.array([[1, 0, 0]], bool), 1, 0).astype(int).tolist()
    [[0, 1, 0]]
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D (H, W) array, got shape {mask.shape}")
    h, w = mask.shape
    sx, sy = int(round(dx)), int(round(dy))
    out = np.zeros((h, w), bool)
    if abs(sx) >= w or abs(sy) >= h:
        return out
    src = mask[max(0, -sy) : h - max(0, sy), max(0, -sx) : w - max(0, sx)]
    out[max(0, sy) : max(0, sy) + src.shape[0], max(0, sx) : max(0, sx) + src.shape[1]] = src
    return out


def label_overlay(
    grey: np.ndarray,
    lines: np.ndarray,
    colour: tuple[int, int, int] = LABEL_COLOUR,
    opacity: float = LABEL_OPACITY,
) -> np.ndarray:
    """The image in grey with the label's lines painted over it in ``colour``.

    Parameters
    ----------
    grey : (H, W) uint8 or uint16
        The image crop.
    lines : (H, W) bool
        True on the label's lines.
    colour : (r, g, b)
    opacity : float in [0, 1]
        How much of the colour replaces the image under a line.

    Returns
    -------
    (H, W, 3) uint8

    >>> label_overlay(np.array([[100, 100]], np.uint8), np.array([[True, False]]),
    ...               (255, 0, 0), 1.0)[0].tolist()
    [[255, 0, 0], [100, 100, 100]]
    """
    if grey.shape != lines.shape:
        raise ValueError(f"image {grey.shape} and label {lines.shape} shapes differ")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    base = np.repeat(to_uint8(grey)[..., None].astype(np.float64), 3, axis=2)
    paint = np.asarray(colour, dtype=np.float64)
    mixed = np.where(lines[..., None], (1 - opacity) * base + opacity * paint, base)
    return np.rint(mixed).astype(np.uint8)


def encode_rgb_png(rgb: np.ndarray) -> bytes:
    """Encode ``(H, W, 3)`` or ``(H, W)`` uint8 as PNG bytes (through ``io.encode_png``)."""
    if rgb.dtype != np.uint8 or rgb.ndim not in (2, 3):
        raise ValueError(f"expected (H, W[, 3]) uint8, got {rgb.shape} {rgb.dtype}")
    return io.encode_png(rgb)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    return io.encode_png(io.figure_pixels(fig, dpi=100))


def bar_chart(counts: Mapping[str, int], title: str, xlabel: str, max_bars: int = 40) -> bytes:
    """A bar per key (the ``max_bars`` largest, in the mapping's order), as PNG bytes."""
    plt = _pyplot()
    items = list(counts.items())
    if len(items) > max_bars:
        keep = {k for k, _ in sorted(items, key=lambda kv: -kv[1])[:max_bars]}
        items = [(k, v) for k, v in items if k in keep]
        title += f" ({max_bars} largest of {len(counts)})"
    fig, ax = plt.subplots(figsize=(4.0, 2.9))
    if items:
        labels = [k for k, _ in items]
        ax.bar(range(len(items)), [v for _, v in items], color="tab:blue")
        ax.set_xticks(
            range(len(items)),
            labels,
            rotation=45 if len(items) > 4 else 0,
            ha="right" if len(items) > 4 else "center",
            fontsize=8,
        )
    else:
        ax.text(0.5, 0.5, "nothing to count", ha="center", va="center", transform=ax.transAxes)
    _finish(ax, title, xlabel)
    fig.tight_layout()
    return figure_png(fig)


def _finish(ax, title: str, xlabel: str, integer_x: bool = False) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pairs")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of pairs
    if integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)


def histogram_chart(
    bin_edges: Sequence[float],
    counts: Sequence[int],
    title: str,
    xlabel: str,
    marks: Sequence[tuple[float, str]] = (),
    integer_x: bool = False,
) -> bytes:
    """A histogram from precomputed bins, with labelled vertical lines at ``marks``.

    ``integer_x`` puts ticks on whole numbers only (for counts such as grains).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.0, 2.9))
    if counts:
        edges = np.asarray(bin_edges, dtype=np.float64)
        ax.bar(
            edges[:-1],
            counts,
            width=np.diff(edges),
            align="edge",
            color="tab:blue",
            edgecolor="white",
        )
    else:
        ax.text(0.5, 0.5, "nothing measured", ha="center", va="center", transform=ax.transAxes)
    for value, text in marks:
        ax.axvline(value, color="tab:red", linestyle="--", linewidth=1.5, label=text)
    if marks:
        ax.legend(fontsize=8)
    _finish(ax, title, xlabel, integer_x)
    fig.tight_layout()
    return figure_png(fig)


def worth_a_chart(counts: Sequence[int]) -> bool:
    """True when counts have at least two non-zero bars: one bar compares nothing.

    >>> worth_a_chart([0, 12, 0]), worth_a_chart([3, 4])
    (False, True)
    """
    return sum(1 for c in counts if c) >= 2


def thumbnail_shape(shape: tuple[int, int], max_side: int = THUMBNAIL_SIDE) -> tuple[int, int]:
    """``(height, width)`` of a picture of ``shape`` shrunk to ``max_side`` (never enlarged).

    >>> thumbnail_shape((768, 1024)), thumbnail_shape((100, 50))
    ((192, 256), (100, 50))
    """
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1 or max_side < 1:
        raise ValueError(f"shape {shape} and max_side {max_side} must be positive")
    factor = min(1.0, max_side / max(h, w))
    return max(1, round(h * factor)), max(1, round(w * factor))


def sample_thumbnail(
    micrograph: np.ndarray,
    lines: np.ndarray | None,
    boxes: Sequence[tuple[int, tuple[int, int, int, int], bool]] = (),
    max_side: int = THUMBNAIL_SIDE,
) -> np.ndarray:
    """A field of view shrunk to ``max_side``, its tracing in colour, its crop boxes outlined.

    Parameters
    ----------
    micrograph : (H, W) uint8 or uint16
        The original, as stored (scale-bar strip included).
    lines : (H, W) bool or None
        The tracing's lines in the micrograph's coordinates; area-averaged when
        shrunk, so a thin line stays visible in proportion to its width.
    boxes : sequence of (number, (left, top, width, height), flagged)
        Boxes in the micrograph's px, outlined in :data:`BOX_COLOUR` (flagged:
        :data:`FLAGGED_BOX_COLOUR`) and numbered.
    max_side : int
        Longer side of the result, px.

    Returns
    -------
    (h, w, 3) uint8
        ``max(h, w) <= max_side``, same aspect ratio as the micrograph.

    >>> sample_thumbnail(np.zeros((600, 800), np.uint8), None, [(1, (0, 0, 400, 300), False)]).shape
    (192, 256, 3)
    """
    from PIL import Image, ImageDraw, ImageFont

    from datatool.crop import resize_image

    if micrograph.ndim != 2:
        raise ValueError(f"micrograph must be (H, W), got shape {micrograph.shape}")
    if lines is not None and lines.shape != micrograph.shape:
        raise ValueError(f"lines {lines.shape} and micrograph {micrograph.shape} shapes differ")
    th, tw = thumbnail_shape(micrograph.shape, max_side)
    grey = resize_image(to_uint8(micrograph), (th, tw))
    rgb = np.repeat(grey[..., None].astype(np.float64), 3, axis=2)
    if lines is not None:
        cover = resize_image(lines.astype(np.float32), (th, tw))
        # A line covering a third of a thumbnail pixel is drawn at full strength.
        alpha = (np.clip(cover * 3.0, 0.0, 1.0) * 0.8)[..., None]
        rgb = rgb * (1 - alpha) + np.asarray(TRACING_COLOUR, np.float64) * alpha
    picture = Image.fromarray(np.rint(rgb).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=10)
    sx, sy = tw / micrograph.shape[1], th / micrograph.shape[0]
    # Flagged boxes last, so they are drawn over their clean neighbours.
    for number, (left, top, width, height), flagged in sorted(boxes, key=lambda b: b[2]):
        colour = FLAGGED_BOX_COLOUR if flagged else BOX_COLOUR
        x0, y0 = round(left * sx), round(top * sy)
        x1 = max(x0 + 1, round((left + width) * sx) - 1)
        y1 = max(y0 + 1, round((top + height) * sy) - 1)
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=2 if flagged else 1)
        tx0, ty0, tx1, ty1 = draw.textbbox((x0 + 2, y0 + 1), str(number), font=font)
        draw.rectangle([tx0 - 1, ty0 - 1, tx1 + 1, ty1], fill=(0, 0, 0))
        draw.text((x0 + 2, y0 + 1), str(number), fill=colour, font=font)
    return np.asarray(picture, dtype=np.uint8)


def encode_thumbnail(rgb: np.ndarray) -> bytes:
    """A thumbnail as JPEG bytes (through ``io.encode_jpeg``): about 15 kB at 256 px."""
    return io.encode_jpeg(rgb, quality=75)


def distribution_lines(
    bin_edges: Sequence[float],
    series: Mapping[str, Sequence[int]],
    title: str,
    xlabel: str,
) -> bytes:
    """Several histograms over the same bins as step lines of their shares, log x axis.

    Each series is normalized to its own total, so splits of different sizes
    compare by shape.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    edges = np.asarray(bin_edges, dtype=np.float64)
    for name, counts in series.items():
        values = np.asarray(counts, dtype=np.float64)
        share = values / values.sum() if values.sum() else values
        ax.stairs(share, edges, label=name, linewidth=1.8)
    ax.set_xscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of grains")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)
