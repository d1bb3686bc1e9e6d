"""Deterministic synthetic grain micrographs, GIMP-like tracings and sample trees.

Used for the bundled ``fixtures/``, the tests and the benchmarks. The same
seed gives the same bytes.

A micrograph is a Voronoi tessellation with a grey level per grain, darker
boundaries, blur, noise and a scale-bar strip at the bottom. Fields of view of
one sample image the same grains under different contrast (so one tracing
serves them all). The tracing is black lines on white, blurred as a GIMP
export is, with only complete grains traced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from datatool import io, layout
from datatool.crop import Box, cut
from datatool.labels import process_tracing


@dataclass(frozen=True)
class SyntheticSample:
    """One synthetic sample: originals per field of view and the tracing.

    Attributes
    ----------
    originals : list of (H + strip, W) uint8
        The micrographs, scale-bar strip at the bottom.
    tracing : (H + strip, W) uint8
        Black lines on white, blurred; white over the strip.
    boundaries : (H, W) bool
        The exact 1-px boundaries of the traced (complete) grains.
    strip : int
        Height of the scale-bar strip in px.
    """

    originals: list[np.ndarray]
    tracing: np.ndarray
    boundaries: np.ndarray
    strip: int


def voronoi_grains(shape: tuple[int, int], grain_px: float, rng: np.random.Generator) -> np.ndarray:
    """A Voronoi tessellation: ``(H, W)`` int32 grain ids from 0."""
    h, w = shape
    count = max(4, int(h * w / grain_px**2))
    seeds = rng.uniform((0, 0), (h, w), size=(count, 2))
    grid = np.stack(np.mgrid[0:h, 0:w], axis=-1).reshape(-1, 2)
    _, nearest = cKDTree(seeds).query(grid, workers=1)
    return nearest.reshape(h, w).astype(np.int32)


def grain_boundaries(grains: np.ndarray) -> np.ndarray:
    """1-px boundaries: pixels whose right or lower neighbour is another grain."""
    edge = np.zeros(grains.shape, bool)
    edge[:, :-1] |= grains[:, :-1] != grains[:, 1:]
    edge[:-1, :] |= grains[:-1, :] != grains[1:, :]
    return edge


def complete_grain_boundaries(grains: np.ndarray) -> np.ndarray:
    """Boundaries of grains that do not touch the image edge (what the lab traces)."""
    edge_ids = np.unique(np.concatenate([grains[0], grains[-1], grains[:, 0], grains[:, -1]]))
    complete = ~np.isin(grains, edge_ids)
    shifted = np.zeros_like(complete)
    # A boundary pixel is traced when it or its right/lower neighbour is a complete grain.
    shifted[:, :-1] |= complete[:, 1:]
    shifted[:-1, :] |= complete[1:, :]
    return grain_boundaries(grains) & (complete | shifted)


def _scale_bar(strip: int, width: int, rng: np.random.Generator) -> np.ndarray:
    bar = np.zeros((strip, width), np.uint8)
    if strip >= 8:
        bar[strip // 2 - 2 : strip // 2 + 1, 8 : 8 + width // 5] = 255
        for k in range(3):  # blocks standing in for the data bar's text
            x0 = width // 2 + k * (width // 10)
            bar[strip // 4 : strip // 4 * 3, x0 : x0 + int(rng.integers(4, width // 14 + 5))] = 230
    return bar


def make_sample(
    seed: int,
    size: tuple[int, int] = (320, 320),
    grain_px: float = 28.0,
    fields_of_view: int = 2,
    strip: int = 24,
) -> SyntheticSample:
    """Draw one synthetic sample.

    Parameters
    ----------
    seed : int
        Seeds everything; the same seed gives the same arrays.
    size : (H, W)
        Size of the micrograph area (the strip is added below).
    grain_px : float
        Typical grain diameter in px.
    fields_of_view : int
        Number of originals, same grains, different contrast and noise.
    strip : int
        Height of the scale-bar strip (0 for none).
    """
    rng = np.random.default_rng(seed)
    grains = voronoi_grains(size, grain_px, rng)
    all_edges = grain_boundaries(grains)
    boundary_dark = ndi.binary_dilation(all_edges, iterations=1)
    originals = []
    n_grains = int(grains.max()) + 1
    for _ in range(fields_of_view):
        levels = rng.uniform(70, 200, size=n_grains)
        img = levels[grains]
        img = np.where(boundary_dark, img * rng.uniform(0.35, 0.55), img)
        img = ndi.gaussian_filter(img, rng.uniform(0.8, 1.4))
        img += rng.normal(0, rng.uniform(4, 9), size=img.shape)
        img += np.linspace(-10, 10, size[1])[None, :] * rng.uniform(-1, 1)  # uneven lighting
        micrograph = np.clip(np.round(img), 0, 255).astype(np.uint8)
        if strip:
            micrograph = np.vstack([micrograph, _scale_bar(strip, size[1], rng)])
        originals.append(micrograph)
    traced = complete_grain_boundaries(grains)
    stroke = ndi.binary_dilation(traced, iterations=int(rng.integers(1, 3)))
    ink = ndi.gaussian_filter(stroke.astype(np.float64), 0.9)
    tracing = np.clip(np.round(255 * (1 - 1.6 * ink)), 0, 255).astype(np.uint8)
    if strip:
        tracing = np.vstack([tracing, np.full((strip, size[1]), 255, np.uint8)])
    return SyntheticSample(originals, tracing, traced, strip)


def grid_boxes(size: tuple[int, int], crop: int, count: int) -> list[Box]:
    """``count`` overlapping square boxes of side ``crop`` spread over ``size = (H, W)``."""
    h, w = size
    per_side = int(np.ceil(np.sqrt(count)))
    xs = np.linspace(0, w - crop, per_side).round().astype(int)
    ys = np.linspace(0, h - crop, per_side).round().astype(int)
    boxes = [(int(x), int(y), crop, crop) for y in ys for x in xs]
    return boxes[:count]


def write_tree(
    root: str | Path,
    samples: dict[str, str],
    *,
    seed: int = 0,
    size: tuple[int, int] = (320, 320),
    crop: int = 128,
    crops_per_fov: int = 4,
    fields_of_view: int = 2,
    grain_px: float = 28.0,
    line_width: int = 3,
) -> Path:
    """Write a synthetic ``training_validation_data`` tree.

    Parameters
    ----------
    root : path
        Created if needed; existing files with the same names are replaced.
    samples : dict
        Sample id to split name, e.g. ``{"0101": "training", "0201": "validation"}``.
    seed : int
        Base seed; sample ``i`` uses ``seed + i``.

    Returns
    -------
    Path
        ``root``.

    Each sample gets its originals, tracing, ``crops.json`` and the crops the
    build command would write: image crops cut from the originals, labels cut
    from the processed tracing.
    """
    root = Path(root)
    boxes = grid_boxes(size, crop, crops_per_fov)
    for index, (sample_id, split) in enumerate(samples.items()):
        sample = make_sample(seed + index, size, grain_px, fields_of_view)
        folder = root / split / layout.sample_folder(sample_id, split) / layout.ALIGNED_DIR
        label_full = process_tracing(sample.tracing[: size[0]], line_width)
        write_sample(folder, sample_id, sample.originals, sample.tracing, label_full, boxes)
    return root


def write_sample(
    folder: Path,
    sample_id: str,
    originals: list[np.ndarray],
    tracing: np.ndarray,
    label_full: np.ndarray,
    boxes: list[Box],
) -> Path:
    """Write one sample's ``aligned`` folder: tracing, ``crops.json``, originals and crops.

    Every box is cut from every field of view (``image/``) and from ``label_full``
    (``label/``), the label as the caller made it (the build's way, or another).
    """
    io.write_png(folder / layout.tracing_name(sample_id), tracing)
    io.atomic_write_text(
        folder / layout.PLAN_FILES[0], json.dumps({"boxes": [list(b) for b in boxes]}) + "\n"
    )
    for fov, original in enumerate(originals, start=1):
        io.write_png(folder / layout.original_name(sample_id, fov), original)
        for m, box in enumerate(boxes, start=1):
            stem = layout.crop_stem(sample_id, fov, m)
            io.write_png(folder / layout.IMAGE_DIR / f"{stem}.png", cut(original, box))
            io.write_png(folder / layout.LABEL_DIR / f"{stem}.png", cut(label_full, box))
    return folder


FIXTURE_SAMPLES = {"0101": "training", "0102": "training", "0201": "validation"}
"""The samples of the bundled ``fixtures/training_validation_data``."""


def write_fixtures(root: str | Path) -> Path:
    """(Re)generate the bundled sample data under ``root`` (``fixtures/`` in the repo)."""
    return write_tree(Path(root) / "training_validation_data", FIXTURE_SAMPLES, seed=101)
