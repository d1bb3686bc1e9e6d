"""Scoring files: prediction images against a label image, as ``datatool score`` does."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datatool.errors import DatatoolError
from datatool.labels import NON_BINARY_LIMIT, label_lines
from datatool.metrics.results import ScoredPrediction, ScoreParams, score

INVERTED_SHARE = 0.5
"""Share of the image above which "lines" are taken as background: boundaries are a minority
(3-px lines around 30-px grains cover about 20 %), so a truth whose lines cover most of the image is
a black-on-white tracing, and a prediction above 0.5 on most pixels was saved inverted."""


def read_binary_truth(
    path: str | os.PathLike[str], *, max_pixels: int | None = 100_000_000
) -> np.ndarray:
    """Read a label image as ``(H, W)`` bool, refusing one that is not black and white.

    Returns
    -------
    (H, W) bool
        True where the pixel is white (``> LABEL_THRESHOLD``), whatever the
        polarity: see :func:`truth_polarity` for black-on-white tracings.

    Raises
    ------
    DatatoolError
        More than 0.5 % of the pixels lie strictly between black and white (a
        resized or antialiased tracing, or not a label at all), or the file
        cannot be read.
    """
    from datatool import io

    decoded = io.read_image(path, role="label", max_pixels=max_pixels)
    pixels = decoded.pixels
    grey_share = float(np.mean((pixels > 0) & (pixels < decoded.max_value))) if pixels.size else 0
    lines = label_lines(pixels)
    if grey_share > NON_BINARY_LIMIT:
        white = float(lines.mean()) if lines.size else 0.0
        raw = (
            f"; it also looks inverted ({white:.0%} of it is white: black lines on white, a raw "
            "tracing?): make a label with datatool build"
            if white > INVERTED_SHARE
            else ""
        )
        raise DatatoolError(
            f"{path}: label is not binary: {grey_share:.1%} of pixels are grey, "
            f"expected at most {NON_BINARY_LIMIT:.1%} (black background, white lines){raw}"
        )
    return lines


def truth_polarity(
    truth: np.ndarray, name: str, invert: bool | None = None
) -> tuple[np.ndarray, list[str]]:
    """Bring a truth to white lines on black, saying what was done.

    Parameters
    ----------
    truth : (H, W) bool
        True on white pixels, as :func:`read_binary_truth` returns.
    name : str
        The file, for the notes.
    invert : bool or None
        None: invert when white covers more than :data:`INVERTED_SHARE` of the
        image (a black-on-white tracing); True: always invert; False: never
        (a note still says when it looks inverted).

    Returns
    -------
    truth : (H, W) bool
        True on the boundary lines.
    notes : list of str
        One sentence per decision taken or doubt left.

    >>> t = np.ones((4, 4), bool); t[1] = False
    >>> out, notes = truth_polarity(t, "l.png")
    >>> int(out.sum()), notes[0].split(":")[0]
    (4, 'l.png looks inverted')
    """
    share = float(truth.mean()) if truth.size else 0.0
    looks_inverted = share > INVERTED_SHARE
    how = (
        f"{name} looks inverted: its white 'lines' cover {share:.0%} of the image "
        f"(more than {INVERTED_SHARE:.0%}; boundaries are a minority), black lines on white"
    )
    if invert is True:
        done = f"{name} was inverted as asked (--invert-truth): lines cover {1 - share:.0%}"
        return ~truth, [done]
    if invert is None and looks_inverted:
        done = f"{how}: scored inverted (white lines on black); --no-invert-truth keeps it"
        return ~truth, [done]
    if looks_inverted:
        return truth, [f"{how}: scored as it is (--no-invert-truth); the scores are meaningless"]
    return truth, []


def prediction_notes(pred: np.ndarray, name: str) -> list[str]:
    """A note when a prediction (``(H, W)`` float in [0, 1]) looks inverted, else ``[]``."""
    share = float((pred > 0.5).mean()) if pred.size else 0.0
    if share <= INVERTED_SHARE:
        return []
    return [
        f"{name} looks inverted: {share:.0%} of its pixels are above 0.5 (boundary), more than "
        f"{INVERTED_SHARE:.0%}; predictions are white boundaries on black (was it saved "
        "black-on-white, or is it an image rather than a prediction?)"
    ]


def score_files(
    prediction_paths: Sequence[str | os.PathLike[str]],
    truth_path: str | os.PathLike[str],
    params: ScoreParams | None = None,
    overlay_dir: str | os.PathLike[str] | None = None,
    *,
    invert_truth: bool | None = None,
    max_pixels: int | None = 100_000_000,
    image_path: str | os.PathLike[str] | None = None,
    grains: bool = False,
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
    invert_truth : bool or None
        Polarity of the truth (see :func:`truth_polarity`): None detects a
        black-on-white truth and inverts it, saying so in each row's ``notes``.
    max_pixels : int or None
        Pixel budget per image: larger files are refused from their header,
        before any memory is spent on them.
    image_path : path-like, optional
        The micrograph the predictions were made from: the overlays are drawn
        over it. Must have the label's size.
    grains : bool
        Also compute each prediction's grain agreement
        (:func:`datatool.metrics.grains.grain_agreement`, prediction binarized at 0.5).

    Returns
    -------
    list of ScoredPrediction
        In the order of ``prediction_paths``; ``notes`` say what was inverted
        or looks inverted.

    Raises
    ------
    DatatoolError
        A file cannot be read, the label is not binary, or sizes differ.
    """
    from datatool import io
    from datatool.metrics.overlays import write_overlays

    params = params or ScoreParams()
    truth, truth_notes = truth_polarity(
        read_binary_truth(truth_path, max_pixels=max_pixels),
        Path(truth_path).name,
        invert_truth,
    )
    micrograph = None
    if image_path is not None and overlay_dir is not None:
        micrograph = io.read_grey_float(image_path, max_pixels=max_pixels)
        if micrograph.shape != truth.shape:
            raise DatatoolError(
                f"{image_path}: micrograph is {micrograph.shape[1]}x{micrograph.shape[0]} px "
                f"but the label {truth_path} is {truth.shape[1]}x{truth.shape[0]} px"
            )
    true_map = None
    if grains:
        from datatool.grains import grain_map
        from datatool.metrics.grains import grain_agreement

        true_map = grain_map(truth)  # once for every prediction scored against it
    results = []
    for path in prediction_paths:
        pred = io.read_grey_float(path, max_pixels=max_pixels)
        if pred.shape != truth.shape:
            raise DatatoolError(
                f"{path}: prediction is {pred.shape[1]}x{pred.shape[0]} px but the label "
                f"{truth_path} is {truth.shape[1]}x{truth.shape[0]} px"
            )
        row = score(pred, truth, params)
        if grains:
            row.grains = grain_agreement(pred, truth, true_map)
        notes = truth_notes + prediction_notes(pred, Path(path).name)
        results.append(
            ScoredPrediction(**dict(row), prediction=str(path), truth=str(truth_path), notes=notes)
        )
        if overlay_dir is not None:
            write_overlays(overlay_dir, Path(path).stem, pred, truth, params, micrograph=micrograph)
    return results
