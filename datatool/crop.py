"""Boxes, crops, scale-bar border detection and image resizing (pure array functions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]
"""A crop box ``(left, top, width, height)`` in pixel coordinates."""


@dataclass(frozen=True)
class Border:
    """Pixels to remove from each side of an image (the scale-bar / data-bar strip)."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    @property
    def total(self) -> int:
        """Sum of the four sides."""
        return self.top + self.bottom + self.left + self.right

    def describe(self) -> str:
        """``'bottom 24 px'``, ``'none'``..."""
        sides = [f"{k} {v} px" for k, v in vars(self).items() if v]
        return ", ".join(sides) or "none"


def cut(array: np.ndarray, box: Box) -> np.ndarray:
    """The ``(height, width)`` sub-array of ``array`` at ``box = (left, top, width, height)``."""
    left, top, width, height = box
    if left < 0 or top < 0 or width <= 0 or height <= 0:
        raise ValueError(f"bad box {box}: needs left, top >= 0 and width, height > 0")
    if top + height > array.shape[0] or left + width > array.shape[1]:
        raise ValueError(f"box {box} reaches outside the image of shape {array.shape[:2]}")
    return array[top : top + height, left : left + width]


def _band_lines(grey: np.ndarray) -> np.ndarray:
    """Per row: True when the row looks like a bar (flat, or mostly saturated)."""
    g = grey.astype(np.float32)
    top = float(np.iinfo(grey.dtype).max) if grey.dtype.kind in "ui" else 1.0
    lo, hi = 0.04 * top, 0.96 * top
    saturated = np.mean((g <= lo) | (g >= hi), axis=1)
    flat = np.std(g, axis=1) < 0.01 * top
    return (saturated > 0.5) | flat


def _run_from_end(flags: np.ndarray) -> int:
    """Length of the run of True at the end of ``flags``, allowing small gaps of False.

    Text inside a data bar can give a row or two that look like micrograph; a
    gap of up to 2 rows is bridged when band rows continue past it.
    """
    n = len(flags)
    end, i, gap = 0, n - 1, 0
    while i >= 0:
        if flags[i]:
            end, gap = n - i, 0
        else:
            gap += 1
            if gap > 2:
                break
        i -= 1
    return end


def detect_border(grey: np.ndarray, max_fraction: float = 0.25) -> Border:
    """Detect the scale-bar strip of a micrograph on each side.

    A side's strip is the run of rows (or columns) at that edge that are flat or
    mostly saturated (black or white), unlike a micrograph; at most
    ``max_fraction`` of the image per side.

    Parameters
    ----------
    grey : (H, W) uint8 or uint16 array

    Returns
    -------
    Border
    """
    if grey.ndim != 2:
        raise ValueError(f"grey must be (H, W), got shape {grey.shape}")
    limit_r, limit_c = int(grey.shape[0] * max_fraction), int(grey.shape[1] * max_fraction)

    def side(lines: np.ndarray, limit: int) -> int:
        # Only the rows within reach of the limit matter (a run past it is no strip, and
        # a run is cut by a gap of 3 rows), so the middle of the image is never looked at.
        run = _run_from_end(_band_lines(lines[-(limit + 3) :]))
        return run if 0 < run <= limit else 0

    return Border(
        top=side(grey[::-1], limit_r),
        bottom=side(grey, limit_r),
        left=side(grey.T[::-1], limit_c),
        right=side(grey.T, limit_c),
    )


def strip_border(array: np.ndarray, border: Border) -> np.ndarray:
    """``array`` without the border strips (a view)."""
    h, w = array.shape[:2]
    if border.top + border.bottom >= h or border.left + border.right >= w:
        raise ValueError(f"border {border} removes the whole image of shape {array.shape[:2]}")
    return array[border.top : h - border.bottom, border.left : w - border.right]


def resize_image(grey: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize a greyscale image with area averaging (bilinear when enlarging).

    Parameters
    ----------
    grey : (H, W) array, any numeric dtype
    size : int or (height, width)

    Returns
    -------
    (height, width) float32, in the input's value scale
    """
    from PIL import Image

    height, width = (size, size) if isinstance(size, int) else size
    if (height, width) == grey.shape:
        return grey.astype(np.float32)
    img = Image.fromarray(grey.astype(np.float32))
    shrink = height <= grey.shape[0] and width <= grey.shape[1]
    resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    return np.asarray(img.resize((width, height), resample=resample), dtype=np.float32)
