"""Scoring files: prediction images against a label image, as ``datatool score`` does."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datatool.errors import DatatoolError
from datatool.labels import NON_BINARY_LIMIT, label_lines
from datatool.metrics.results import ScoredPrediction, ScoreParams, score


def read_binary_truth(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a label image as ``(H, W)`` bool, refusing one that is not black and white.

    Raises
    ------
    DatatoolError
        More than 0.5 % of the pixels lie strictly between black and white (a
        resized or antialiased tracing, or not a label at all), or the file
        cannot be read.
    """
    from datatool import io

    decoded = io.read_image(path)
    pixels = decoded.pixels
    grey_share = float(np.mean((pixels > 0) & (pixels < decoded.max_value))) if pixels.size else 0
    if grey_share > NON_BINARY_LIMIT:
        raise DatatoolError(
            f"{path}: label is not binary: {grey_share:.1%} of pixels are grey, "
            f"expected at most {NON_BINARY_LIMIT:.1%} (black background, white lines)"
        )
    return label_lines(pixels)


def score_files(
    prediction_paths: Sequence[str | os.PathLike[str]],
    truth_path: str | os.PathLike[str],
    params: ScoreParams | None = None,
    overlay_dir: str | os.PathLike[str] | None = None,
) -> list[ScoredPrediction]:
    """Score prediction images (value / 255) against one label image.

    Parameters
    ----------
    prediction_paths : sequence of path-like
        Greyscale prediction images, scaled to [0, 1] by their type's maximum.
    truth_path : path-like
        Label image, white lines on black (see :func:`read_binary_truth`).
    params : ScoreParams, optional
    overlay_dir : path-like, optional
        If given, the overlays of :func:`datatool.metrics.overlays.write_overlays`
        are written there, named after each prediction.

    Returns
    -------
    list of ScoredPrediction
        In the order of ``prediction_paths``.

    Raises
    ------
    DatatoolError
        A file cannot be read, the label is not binary, or sizes differ.
    """
    from datatool import io
    from datatool.metrics.overlays import write_overlays

    params = params or ScoreParams()
    truth = read_binary_truth(truth_path)
    results = []
    for path in prediction_paths:
        pred = io.read_grey_float(path)
        if pred.shape != truth.shape:
            raise DatatoolError(
                f"{path}: prediction is {pred.shape[1]}x{pred.shape[0]} px but the label "
                f"{truth_path} is {truth.shape[1]}x{truth.shape[0]} px"
            )
        row = score(pred, truth, params)
        results.append(ScoredPrediction(**dict(row), prediction=str(path), truth=str(truth_path)))
        if overlay_dir is not None:
            write_overlays(overlay_dir, Path(path).stem, pred, truth, params)
    return results
