"""The pictures that make a score believable, in the lab report's colour codes.

* :func:`prediction_overlay` - prediction over truth: white true positive,
  black true negative, red missed line, blue false line (report Figure 6(d));
* :func:`reward_map_image` - a reward map in green (+1) through black (0) to
  red (-1) (Figures 13(c), 18);
* :func:`weighted_prediction_image` - prediction times reward map in the same
  colours: green pixels earn reward, red ones cost (Figures 13(d), 19(d)).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from datatool.io import write_png
from datatool.metrics.losses import _check_pair, gaussian_reward_map, tophat_reward_map
from datatool.metrics.results import ScoreParams


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


def write_overlays(
    out_dir: str | os.PathLike[str],
    stem: str,
    pred: np.ndarray,
    truth: np.ndarray,
    params: ScoreParams | None = None,
) -> list[Path]:
    """Write the overlays of one prediction as RGB PNGs, atomically.

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

    Returns
    -------
    list of Path
        The files written.
    """
    params = params or ScoreParams()
    pred, truth = _check_pair(pred, truth)
    tophat = tophat_reward_map(truth, params.tophat_kernel_size)
    gaussian = gaussian_reward_map(truth, params.sigma, params.kernel_size)
    images = {
        "overlay": prediction_overlay(pred, truth),
        "tophat-reward": reward_map_image(tophat),
        "tophat-weighted": weighted_prediction_image(pred, tophat),
        "gaussian-reward": reward_map_image(gaussian),
        "gaussian-weighted": weighted_prediction_image(pred, gaussian),
    }
    out_dir = Path(out_dir)
    written = []
    for name, rgb in images.items():
        path = out_dir / f"{stem}.{name}.png"
        write_png(path, rgb)
        written.append(path)
    return written
