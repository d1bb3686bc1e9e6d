"""A checked training dataset: pairs by name, the check first, windows and flips done together.

The lab's loader lists ``image/`` and ``label/`` and pairs them in sorted order,
so one extra or missing file shifts every later pair by one and the network
learns from the wrong tracings without a word. :class:`TracingDataset` reads a
tree or a flat set through :func:`datatool.layout.scan` (the code ``datatool
check`` uses), pairs files by name, and runs the full check (alignment
included) before it hands out a single pair: a dataset the check rejects is
refused, naming the offending files.

Each item is an ``(image, label)`` pair of ``(1, R, R)`` float32 tensors: a
window of side ``R`` cut at the same place from both (random for training,
centred otherwise), crops smaller than ``R`` first scaled up (the label kept
binary at its line width), then the same random flip and quarter turn applied
to both. Randomness comes from ``(seed, epoch, index)``, never from a worker's
global state, so a run is repeatable with any number of ``DataLoader`` workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from datatool.errors import DatatoolError
from datatool.torch.inference import check_resolution

Window = Literal["random", "centre"]
#: Offending files named in a refusal before "and N more".
_NAMED = 6


@dataclass(frozen=True)
class TracingPair:
    """One image crop and its label, matched by name."""

    name: str
    image: str
    label: str


def refusal_message(root: object, report) -> str:
    """One line: the check's errors, the files they concern, and what to do.

    Parameters
    ----------
    root : path-like
        The dataset folder.
    report : datatool.findings.Report
        A report that is not ``ok``.
    """
    errors = report.errors()
    named = list(dict.fromkeys(f"{f.path} ({f.code})" for f in errors))
    more = len(named) - _NAMED
    shown = ", ".join(named[:_NAMED]) + (f" and {more} more" if more > 0 else "")
    return (
        f"{root}: the check found {len(errors)} error(s), refusing to train on it: {shown}; "
        f"run `datatool check {root}` for details"
    )


def select_pairs(scanned, split: str | None) -> list[TracingPair]:
    """Complete pairs of one split (``None``: all); a flat set without splits is all training.

    Parameters
    ----------
    scanned : datatool.layout.DatasetLayout
    split : str or None

    Returns
    -------
    list of TracingPair
        In the layout's order (by sample, then name).
    """
    complete = [p for p in scanned.pairs if p.image and p.label]
    if split is not None:
        if split == "training" and all(p.split is None for p in complete):
            pass  # a flat set with no split folders: everything is for training
        else:
            complete = [p for p in complete if p.split == split]
    return [
        TracingPair(p.name, str(scanned.path(p.image)), str(scanned.path(p.label)))
        for p in complete
    ]


def resize_pair(
    image: np.ndarray, truth: np.ndarray, size: tuple[int, int], line_width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image (bilinear, antialiased) and its label (binary, ``line_width`` px lines).

    Parameters
    ----------
    image : (H, W) float32
    truth : (H, W) bool
    size : (height, width)
    line_width : int

    Returns
    -------
    ((height, width) float32, (height, width) bool)
    """
    from datatool.labels import resize_label

    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    resized = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False, antialias=True)
    return resized[0, 0].clamp_(0.0, 1.0).numpy(), resize_label(truth, size, line_width)


class TracingDataset(Dataset):
    """Checked (image, label) pairs of one split, as ``(1, R, R)`` float32 tensors.

    Parameters
    ----------
    root : path-like
        A tree (``<split>/<id>_<split>/aligned/image|label``) or a flat set
        (``image/`` + ``label/``, optionally inside split folders; without split
        folders every pair belongs to ``"training"``).
    split : str or None
        Which split to serve; ``None`` for every pair.
    resolution : int
        Window side ``R``, a multiple of 16.
    augment : bool
        Random flips and quarter turns, the same for image and label.
    window : {"random", "centre"}
        Where the ``R x R`` window is cut from a larger crop.
    line_width : int
        Line width of labels that have to be scaled up.
    check : bool
        Run ``datatool check`` (alignment included) first and refuse a dataset
        with errors. Only turn off for a dataset just checked.
    check_options : datatool.checks.CheckOptions, optional
    seed : int
        With the epoch (:meth:`set_epoch`) and the index, seeds each item's window and flips.

    Raises
    ------
    DatatoolError
        The check found errors (the message names the files).
    UsageError
        ``root`` is not a folder, or ``resolution`` is not a multiple of 16.

    Examples
    --------
    >>> from torch.utils.data import DataLoader  # doctest: +SKIP
    >>> data = TracingDataset("training_validation_data", augment=True)  # doctest: +SKIP
    >>> images, labels = next(iter(DataLoader(data, batch_size=4, num_workers=2)))  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str | None = "training",
        resolution: int = 256,
        augment: bool = False,
        *,
        window: Window = "random",
        line_width: int = 3,
        check: bool = True,
        check_options=None,
        seed: int = 0,
    ) -> None:
        from datatool import layout

        if window not in ("random", "centre"):
            raise ValueError(f"window must be 'random' or 'centre', got {window!r}")
        self.resolution = check_resolution(resolution)
        self.augment = bool(augment)
        self.window = window
        self.line_width = int(line_width)
        self.seed = int(seed)
        self.epoch = 0
        self.root = str(root)
        scanned = layout.scan(root)
        self.report = None
        if check:
            from datatool.check import run_check

            self.report = run_check(root, check_options, layout=scanned)
            if not self.report.ok:
                raise DatatoolError(refusal_message(root, self.report))
        self.split = split
        self.pairs = select_pairs(scanned, split)

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        """Draw other windows and flips: items depend on ``(seed, epoch, index)``."""
        self.epoch = int(epoch)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The pair at ``index`` as stored: ``(H, W)`` float32 in [0, 1] and ``(H, W)`` bool.

        Raises
        ------
        DatatoolError
            A file cannot be read, or image and label differ in size.
        """
        from datatool.io import read_image, read_truth

        pair = self.pairs[index]
        decoded = read_image(pair.image)
        image = decoded.pixels.astype(np.float32) / np.float32(decoded.max_value)
        truth = read_truth(pair.label)
        if image.shape != truth.shape:
            raise DatatoolError(
                f"{pair.label}: label is {truth.shape[1]}x{truth.shape[0]} px but its image "
                f"{pair.image} is {image.shape[1]}x{image.shape[0]} px"
            )
        return image, truth

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(image, label)``: ``(1, R, R)`` float32 tensors, the label 0/1."""
        image, truth = self.read(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, truth = self._window(image, truth, rng)
        if self.augment:
            turns, flip = int(rng.integers(4)), bool(rng.integers(2))
            image, truth = np.rot90(image, turns), np.rot90(truth, turns)
            if flip:
                image, truth = image[:, ::-1], truth[:, ::-1]
        image_tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
        truth_tensor = torch.from_numpy(np.ascontiguousarray(truth, dtype=np.float32))
        return image_tensor[None], truth_tensor[None]

    def _window(
        self, image: np.ndarray, truth: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        side = self.resolution
        height, width = image.shape
        if min(height, width) < side:
            scale = side / min(height, width)
            size = (max(side, round(height * scale)), max(side, round(width * scale)))
            image, truth = resize_pair(image, truth, size, self.line_width)
            height, width = size
        if self.window == "random":
            top = int(rng.integers(0, height - side + 1))
            left = int(rng.integers(0, width - side + 1))
        else:
            top, left = (height - side) // 2, (width - side) // 2
        rows, cols = slice(top, top + side), slice(left, left + side)
        return image[rows, cols], truth[rows, cols]

    def __repr__(self) -> str:
        return (
            f"TracingDataset({Path(self.root).name!r}, split={self.split!r}, pairs={len(self)}, "
            f"resolution={self.resolution}, augment={self.augment}, window={self.window!r})"
        )
