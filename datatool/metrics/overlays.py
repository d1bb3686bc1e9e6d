"""The pictures that make a score believable, in the lab report's colour codes.

* :func:`prediction_overlay` - prediction over truth: white true positive,
  black true negative, red missed line, blue false line (report Figure 6(d));
* :func:`reward_map_image` - a reward map in green (+1) through black (0) to
  red (-1) (Figures 13(c), 18);
* :func:`weighted_prediction_image` - prediction times reward map in the same
  colours: green pixels earn reward, red ones cost (Figures 13(d), 19(d)).

The files :func:`write_overlays` writes are pictures to look at: enlarged with
nearest-neighbour to at least :data:`MIN_SIDE` px (every pixel a crisp square),
with a key below naming the colours, and, when a micrograph is given, the
prediction/truth colours drawn over it (:func:`prediction_on_micrograph`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from datatool.io import write_png
from datatool.metrics.losses import _check_pair, gaussian_reward_map, tophat_reward_map
from datatool.metrics.results import ScoreParams

MIN_SIDE = 512
"""Pictures are enlarged by a whole factor until their longer side is at least this, px."""

WHITE, BLACK, RED, BLUE, GREEN = (255, 255, 255), (0, 0, 0), (255, 0, 0), (0, 0, 255), (0, 255, 0)
OVERLAY_KEY = (("true positive", WHITE), ("missed", RED), ("false", BLUE))
"""Colours of :func:`prediction_overlay`, as its key names them."""
REWARD_KEY = (("reward +1", GREEN), ("0", BLACK), ("penalty -1", RED))
"""Colours of :func:`reward_map_image` and :func:`weighted_prediction_image`."""


def _to_byte(values: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def prediction_overlay(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Prediction over truth: white TP, black TN, red missed line, blue false line.

    The prediction is not thresholded: a grey prediction gives a dim colour, as
    the report shows raw model output. Channels are ``R = t``, ``G = t * p``,
    ``B = p``, which gives exactly the four colours for binary values.

    Parameters
    ----------
    pred : (H, W) float ndarray in [0, 1]
    truth : (H, W) bool ndarray (or 0/1)

    Returns
    -------
    (H, W, 3) uint8 ndarray

    Examples
    --------
    >>> import numpy as np
    >>> prediction_overlay(np.array([[1.0, 0.0, 1.0, 0.0]]),
    ...                    np.array([[1, 1, 0, 0]], bool))[0].tolist()
    [[255, 255, 255], [255, 0, 0], [0, 0, 255], [0, 0, 0]]
    """
    pred, truth = _check_pair(pred, truth)
    p = pred.astype(np.float64)
    t = truth.astype(np.float64)
    return _to_byte(np.stack([t, t * p, p], axis=-1))


def reward_map_image(reward: np.ndarray) -> np.ndarray:
    """A map of values in [-1, 1] as green (+1) through black (0) to red (-1).

    Parameters
    ----------
    reward : (H, W) float ndarray in [-1, 1]
        A reward map, or prediction times reward map.

    Returns
    -------
    (H, W, 3) uint8 ndarray

    Examples
    --------
    >>> import numpy as np
    >>> reward_map_image(np.array([[1.0, 0.0, -1.0]]))[0].tolist()
    [[0, 255, 0], [0, 0, 0], [255, 0, 0]]
    """
    reward = np.asarray(reward, dtype=np.float64)
    if reward.ndim != 2:
        raise ValueError(f"reward must be a 2-D (H, W) array, got shape {reward.shape}")
    red = _to_byte(-reward)
    green = _to_byte(reward)
    return np.stack([red, green, np.zeros_like(red)], axis=-1)


def weighted_prediction_image(pred: np.ndarray, reward: np.ndarray) -> np.ndarray:
    """Prediction times reward map, in the colours of :func:`reward_map_image`.

    Its mean, negated, is the loss: green pixels lower it, red ones raise it,
    black ones (no prediction, or reward 0) do not count.

    Parameters
    ----------
    pred : (H, W) float ndarray in [0, 1]
    reward : (H, W) float ndarray in [-1, 1]

    Returns
    -------
    (H, W, 3) uint8 ndarray
    """
    pred = np.asarray(pred)
    reward = np.asarray(reward)
    if pred.shape != reward.shape:
        raise ValueError(f"pred and reward shapes differ: {pred.shape} vs {reward.shape}")
    return reward_map_image(pred.astype(np.float64) * reward)


def prediction_on_micrograph(
    pred: np.ndarray, truth: np.ndarray, micrograph: np.ndarray
) -> np.ndarray:
    """The colours of :func:`prediction_overlay` drawn over the grey micrograph.

    Where neither prediction nor truth has a line the micrograph shows; elsewhere
    the overlay colour covers it in proportion to ``max(truth, pred)``, so a
    confident line is pure colour and a faint one tints the micrograph.

    Parameters
    ----------
    pred : (H, W) float ndarray in [0, 1]
    truth : (H, W) bool ndarray (or 0/1)
    micrograph : (H, W) float ndarray in [0, 1]
        The input image, scaled by its type's maximum.

    Returns
    -------
    (H, W, 3) uint8 ndarray

    >>> out = prediction_on_micrograph(np.array([[1.0, 0.0, 0.0]]),
    ...                                np.array([[1, 1, 0]], bool), np.full((1, 3), 0.5))
    >>> out[0].tolist()
    [[255, 255, 255], [255, 0, 0], [128, 128, 128]]
    """
    pred, truth = _check_pair(pred, truth)
    micrograph = np.asarray(micrograph, dtype=np.float64)
    if micrograph.shape != pred.shape:
        raise ValueError(
            f"micrograph is {micrograph.shape[1]}x{micrograph.shape[0]} px, prediction "
            f"{pred.shape[1]}x{pred.shape[0]} px: they must be the same size"
        )
    p = np.clip(pred.astype(np.float64), 0, 1)
    t = truth.astype(np.float64)
    colour = np.stack([t, t * p, p], axis=-1)
    cover = np.maximum(t, p)[..., None]
    grey = np.clip(micrograph, 0, 1)[..., None]
    return _to_byte(grey * (1 - cover) + colour * cover)


def upscale_nearest(rgb: np.ndarray, min_side: int = MIN_SIDE) -> np.ndarray:
    """Enlarge by the smallest whole factor that brings the longer side to ``min_side``.

    Nearest-neighbour: each pixel becomes a square of identical pixels, so thin
    lines stay crisp and no colour is invented.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 ndarray
    min_side : int
        Target of the longer side, px; pictures already as large are unchanged.

    Returns
    -------
    (H * f, W * f, 3) uint8 ndarray, ``f >= 1``

    >>> upscale_nearest(np.zeros((128, 96, 3), np.uint8)).shape
    (512, 384, 3)
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be (H, W, 3), got shape {rgb.shape}")
    factor = max(1, -(-min_side // max(rgb.shape[:2])))
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def with_key(rgb: np.ndarray, entries: tuple[tuple[str, tuple[int, int, int]], ...]) -> np.ndarray:
    """Add a key below a picture: a swatch and a name per colour, on dark grey.

    Entries that do not fit one row go on the next; the picture is unchanged
    above the key.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 ndarray
    entries : tuple of (name, (r, g, b))

    Returns
    -------
    (H + K, W, 3) uint8 ndarray, ``K`` the key's height
    """
    from PIL import Image, ImageDraw, ImageFont

    height, width = rgb.shape[:2]
    font = ImageFont.load_default(size=14)
    row_h, pad, swatch = 22, 8, 14
    spans = [swatch + 6 + int(font.getlength(name)) + 18 for name, _ in entries]
    rows, x = 1, pad
    for span in spans:
        if x + span > width and x > pad:
            rows, x = rows + 1, pad
        x += span
    key = Image.new("RGB", (width, rows * row_h + pad), (48, 48, 48))
    draw = ImageDraw.Draw(key)
    x, y = pad, pad // 2
    for (name, colour), span in zip(entries, spans, strict=True):
        if x + span > width and x > pad:
            x, y = pad, y + row_h
        draw.rectangle([x, y + 4, x + swatch, y + 4 + swatch], fill=colour, outline=(160, 160, 160))
        draw.text((x + swatch + 6, y + 3), name, fill=(235, 235, 235), font=font)
        x += span
    return np.concatenate([rgb, np.asarray(key, dtype=np.uint8)], axis=0)


def write_overlays(
    out_dir: str | os.PathLike[str],
    stem: str,
    pred: np.ndarray,
    truth: np.ndarray,
    params: ScoreParams | None = None,
    *,
    micrograph: np.ndarray | None = None,
    min_side: int = MIN_SIDE,
) -> list[Path]:
    """Write the overlays of one prediction as RGB PNG pictures, atomically.

    Each picture is enlarged with nearest-neighbour to at least ``min_side`` px
    (:func:`upscale_nearest`) and gets a key naming its colours
    (:func:`with_key`). The unscaled arrays, without key, come from the
    functions above.

    Files, in this order, under ``out_dir``:

    * ``<stem>.overlay.png`` - :func:`prediction_overlay`;
    * ``<stem>.tophat-reward.png``, ``<stem>.tophat-weighted.png`` - the top-hat
      reward map and prediction times it;
    * ``<stem>.gaussian-reward.png``, ``<stem>.gaussian-weighted.png`` - the same
      for the Gaussian reward map.

    Parameters
    ----------
    out_dir : path-like
        Created if missing.
    stem : str
        File name prefix, usually the prediction's stem.
    pred : (H, W) float ndarray in [0, 1]
    truth : (H, W) bool ndarray (or 0/1)
    params : ScoreParams, optional
        Kernel sizes and sigma of the reward maps; defaults to ``ScoreParams()``.
    micrograph : (H, W) float ndarray in [0, 1], optional
        The input image: the overlay is drawn over it
        (:func:`prediction_on_micrograph`) instead of over black.
    min_side : int
        Longer side the pictures are enlarged to, px.

    Returns
    -------
    list of Path
        The files written.
    """
    params = params or ScoreParams()
    pred, truth = _check_pair(pred, truth)
    tophat = tophat_reward_map(truth, params.tophat_kernel_size)
    gaussian = gaussian_reward_map(truth, params.sigma, params.kernel_size)
    overlay = (
        prediction_overlay(pred, truth)
        if micrograph is None
        else prediction_on_micrograph(pred, truth, micrograph)
    )
    images = {
        "overlay": (overlay, OVERLAY_KEY),
        "tophat-reward": (reward_map_image(tophat), REWARD_KEY),
        "tophat-weighted": (weighted_prediction_image(pred, tophat), REWARD_KEY),
        "gaussian-reward": (reward_map_image(gaussian), REWARD_KEY),
        "gaussian-weighted": (weighted_prediction_image(pred, gaussian), REWARD_KEY),
    }
    out_dir = Path(out_dir)
    written = []
    for name, (rgb, key) in images.items():
        path = out_dir / f"{stem}.{name}.png"
        write_png(path, with_key(upscale_nearest(rgb, min_side), key))
        written.append(path)
    return written
