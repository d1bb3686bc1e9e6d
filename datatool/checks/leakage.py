"""Duplicates and split leakage: the same content twice, or in two splits.

Each worker fingerprints what it decodes anyway (``pair.extras["leak"]`` for an
image crop, ``sample.extras["originals"]`` for a sample's originals): a
64-bit difference hash (dHash) to find candidates fast, a 16x16 normalized
thumbnail for the pixel check that confirms them, and a digest of the exact
pixels. The dataset-level check then compares all of them:

* near-identical image crops in one split: ``duplicate`` (warning);
* near-identical crops, or the same original, in two splits, a crop cut from
  another split's original (found by the alignment search), or one sample id in
  two splits: ``split-leakage`` (error) naming both files.

Fingerprints compare content, not names or bytes: a crop re-saved, renamed or
with its contrast stretched is still found.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from datatool import align, io
from datatool.checks import CheckOptions, DatasetData, PairData, SampleData, finding, register
from datatool.crop import resize_image
from datatool.errors import ImageReadError
from datatool.findings import Finding

HASH_BITS_MAX = 10
"""dHash bits two images may differ in and still be duplicate candidates (of 64)."""
THUMB_MIN_CORRELATION = 0.95
"""Correlation of the 16x16 thumbnails above which candidates are near-identical."""
THUMB_SIDE = 16


def dhash(grey: np.ndarray) -> int:
    """64-bit difference hash: signs of horizontal gradients of a 9x8 area-averaged copy.

    Robust to re-encoding, brightness/contrast changes and resizing; two
    unrelated images differ in about 32 bits.

    Parameters
    ----------
    grey : (H, W) numeric array, H, W >= 1

    Returns
    -------
    int in [0, 2**64)

    >>> img = np.tile(np.arange(64, dtype=np.uint8), (64, 1))
    >>> dhash(img) == dhash(img * 2), dhash(img) == dhash(img[:, ::-1])
    (True, False)
    """
    if grey.ndim != 2:
        raise ValueError(f"grey must be a 2-D (H, W) array, got shape {grey.shape}")
    small = resize_image(grey.astype(np.float32), (8, 9))
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def thumbnail(grey: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """Area-averaged ``(side, side)`` copy, zero mean and unit norm, as a flat float32 vector.

    The dot product of two thumbnails is their correlation (1.0: same content,
    whatever brightness and contrast). A flat image gives all zeros.
    """
    if grey.ndim != 2:
        raise ValueError(f"grey must be a 2-D (H, W) array, got shape {grey.shape}")
    small = resize_image(grey.astype(np.float32), (side, side)).ravel().astype(np.float64)
    small -= small.mean()
    norm = float(np.linalg.norm(small))
    return (small / norm if norm > 1e-9 else small * 0).astype(np.float32)


def pixel_digest(grey: np.ndarray) -> str:
    """Digest of the exact pixel values and shape (not of the file bytes)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{grey.shape}{grey.dtype}".encode())
    h.update(np.ascontiguousarray(grey).tobytes())
    return h.hexdigest()


def fingerprint(grey: np.ndarray) -> dict:
    """The three fingerprints of an image: ``{"dhash", "thumb", "digest"}``."""
    return {"dhash": dhash(grey), "thumb": thumbnail(grey), "digest": pixel_digest(grey)}


@register("leakage", "pair")
def fingerprint_crop(pair: PairData, options: CheckOptions) -> Iterator[Finding]:
    """Fingerprint the image crop for the dataset-level duplicate search (no findings)."""
    if pair.image is not None and pair.image.pixels.size:
        pixels = pair.image.pixels
        pair.extras["leak"] = fingerprint(pixels)
        scale = float(np.iinfo(pixels.dtype).max) if pixels.dtype.kind in "ui" else 1.0
        pair.extras["leak_size"] = (
            *(int(v) for v in pixels.shape),
            float(pixels.mean()) / scale,
            float(pixels.std()) / scale,
        )
    return iter(())


@register("leakage", "sample")
def fingerprint_originals(sample: SampleData, options: CheckOptions) -> Iterator[Finding]:
    """Fingerprint the sample's originals for the dataset-level search (no findings)."""
    found = []
    for fov, rel in sorted(sample.entry.originals.items()):
        decoded = sample.original(fov)
        if decoded is not None and decoded.pixels.size:
            found.append({"path": rel, "split": sample.entry.split, **fingerprint(decoded.pixels)})
    sample.extras["originals"] = found
    return iter(())


@dataclass(frozen=True)
class _Item:
    path: str
    split: str | None
    dhash: int
    thumb: np.ndarray
    digest: str


def near_identical_pairs(items: list[_Item]) -> Iterator[tuple[int, int, float]]:
    """Index pairs ``(i, j, correlation)`` of near-identical items, ``i < j``.

    Candidates share the exact digest or differ in at most ``HASH_BITS_MAX``
    dHash bits (all pairs compared blockwise with numpy); each is confirmed by
    the thumbnail correlation.
    """
    if len(items) < 2:
        return
    hashes = np.array([it.dhash for it in items], dtype=np.uint64)
    thumbs = np.stack([it.thumb for it in items])
    seen: set[tuple[int, int]] = set()
    by_digest: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_digest.setdefault(it.digest, []).append(i)
    for group in by_digest.values():
        for i, j in combinations(group, 2):
            seen.add((i, j))
            yield i, j, 1.0
    # Rows per block so that one block's XOR array stays near 8 MiB whatever the
    # number of items: memory flat from 1k to 100k crops, not 40 MiB at 10k.
    block = max(1, min(512, 2**20 // len(items)))
    for start in range(0, len(items), block):
        rows = hashes[start : start + block]
        distance = np.bitwise_count(rows[:, None] ^ hashes[None, :])
        for a, j in zip(*np.nonzero(distance <= HASH_BITS_MAX), strict=True):
            i = start + int(a)
            j = int(j)
            if j <= i or (i, j) in seen:
                continue
            correlation = float(thumbs[i] @ thumbs[j])
            if correlation >= THUMB_MIN_CORRELATION:
                seen.add((i, j))
                yield i, j, correlation


def clusters(items: list[_Item]) -> list[tuple[list[int], float]]:
    """Groups of near-identical items (union of :func:`near_identical_pairs`).

    Returns
    -------
    list of (indices, lowest correlation)
        Each group's item indices in input order, groups ordered by their first
        item; single items are left out.
    """
    parent = list(range(len(items)))
    lowest: dict[int, float] = {}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    links = []
    for i, j, correlation in near_identical_pairs(items):
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
        links.append((i, correlation))
    for i, correlation in links:
        top = root(i)
        lowest[top] = min(lowest.get(top, 1.0), correlation)
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(root(i), []).append(i)
    return [(g, lowest[top]) for top, g in sorted(groups.items()) if len(g) > 1]


def _names(paths: list[str], limit: int = 5) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _compare(items: list[_Item], what: str) -> Iterator[Finding]:
    """One finding per cluster of near-identical items and split, not one per pair."""
    for members, correlation in clusters(items):
        group = [items[i] for i in members]
        exact = len({it.digest for it in group}) == 1
        how = "identical pixels" if exact else f"correlation >= {correlation:.3f}"
        by_split: dict[str | None, list[_Item]] = {}
        for it in group:
            by_split.setdefault(it.split, []).append(it)
        first, *others = list(by_split.values())
        if len(first) > 1:
            copies = [it.path for it in first[1:]]
            count = (
                f"one of {len(first)} near-identical crops (the first: {first[0].path})"
                if len(first) > 2
                else f"a near-identical copy of {first[0].path}"
            )
            yield finding(
                "warning",
                "duplicate",
                "leakage",
                first[1].path,
                f"{what} is {count} in the same split ({how}): {_names(copies)}; keep one "
                "(duplicates weigh those grains more in training)",
                measured=round(correlation, 4),
                expected=THUMB_MIN_CORRELATION,
                related=[first[0].path, *copies[1:]],
            )
        for split_items in others:
            here = split_items[0]
            elsewhere = [it.path for it in first] + [it.path for it in split_items[1:]]
            yield finding(
                "error",
                "split-leakage",
                "leakage",
                here.path,
                f"{what} in {here.split!s} is a near-identical copy of {first[0].path} in "
                f"{first[0].split!s} ({how}; {len(group)} copies in all: "
                f"{_names([it.path for it in group])}): the same field of view must not be in "
                "two splits",
                measured=round(correlation, 4),
                expected=THUMB_MIN_CORRELATION,
                related=elsewhere,
            )


CONTAINED_MIN_SCORE = 0.9
"""NCC above which a smaller crop is taken as cut from inside a larger one (the alignment
check's threshold for a crop in its original)."""
BRIGHTNESS_SLACK = 0.12
"""Candidates for containment: mean grey levels within this share of full scale..."""
CONTRAST_RATIO = 2.0
"""...and standard deviations within this factor (one micrograph, one exposure)."""
MAX_CONTAINMENT_SEARCHES = 20000
"""Searches beyond this many candidate pairs are skipped (and said so)."""


def _candidates(dataset: DatasetData, reported: set[str]) -> list[tuple[str, str, str, str]]:
    """Candidate pairs ``(small, small split, large, large split)`` for containment.

    Cross-split pairs of different sizes where the smaller fits inside the
    larger and brightness and contrast are alike.
    """
    sized = [
        (stats.image, stats.split, extras["leak_size"])
        for stats, extras in dataset.pairs
        if stats.image is not None and "leak_size" in extras and stats.image not in reported
    ]
    out = []
    for small, small_split, (h, w, mean, std) in sized:
        for large, large_split, (big_h, big_w, big_mean, big_std) in sized:
            if small_split == large_split or (h, w) == (big_h, big_w):
                continue
            if h > big_h or w > big_w or abs(mean - big_mean) > BRIGHTNESS_SLACK:
                continue
            if std * CONTRAST_RATIO < big_std or big_std * CONTRAST_RATIO < std:
                continue
            out.append((small, small_split, large, large_split))
    return out


def contained_crops(dataset: DatasetData, reported: set[str]) -> Iterator[Finding]:
    """Crops of one split cut from inside a larger crop of another split (no originals needed).

    Candidates (:func:`_candidates`) are located by the alignment search's
    coarse-to-fine NCC (:class:`datatool.align.SearchImage`); each larger crop is
    decoded and prepared once.
    """
    candidates = _candidates(dataset, reported)
    root = dataset.layout.root
    searches: dict[str, align.SearchImage | None] = {}
    smalls: dict[str, object] = {}

    def decoded(rel: str):
        try:
            return io.read_image(f"{root}/{rel}").pixels
        except ImageReadError:
            return None

    done: set[str] = set()
    for small, small_split, large, large_split in candidates[:MAX_CONTAINMENT_SEARCHES]:
        if small in done:
            continue
        if large not in searches:
            pixels = decoded(large)
            searches[large] = None if pixels is None else align.SearchImage(pixels)
        if small not in smalls:
            smalls[small] = decoded(small)
        search, template = searches[large], smalls[small]
        if search is None or template is None:
            continue
        match = search.locate(template)
        if match.score >= CONTAINED_MIN_SCORE:
            done.add(small)
            left, top, width, height = match.box
            yield finding(
                "error",
                "split-leakage",
                "leakage",
                small,
                f"image crop in {small_split!s} ({width}x{height} px) was cut from inside "
                f"{large} in {large_split!s} at ({left}, {top}), NCC {match.score:.3f}: the same "
                "field of view must not be in two splits; move one of them",
                measured=round(match.score, 4),
                expected=CONTAINED_MIN_SCORE,
                related=[large],
            )
    if len(candidates) > MAX_CONTAINMENT_SEARCHES:
        yield finding(
            "info",
            "split-leakage",
            "leakage",
            ".",
            f"{len(candidates)} crop pairs could hide one crop inside another across splits; "
            f"only the first {MAX_CONTAINMENT_SEARCHES} were searched",
            measured=len(candidates),
            expected=MAX_CONTAINMENT_SEARCHES,
        )


@register("leakage", "dataset")
def leakage(dataset: DatasetData, options: CheckOptions) -> Iterator[Finding]:
    """Duplicates within a split (warning) and content shared by two splits (error)."""
    crops: list[_Item] = []
    originals: dict[str, _Item] = {}
    for stats, extras in dataset.pairs:
        leak = extras.get("leak")
        if leak is not None and stats.image is not None:
            crops.append(_Item(stats.image, stats.split, **leak))
    for sample_extras in dataset.samples.values():
        for original in sample_extras.get("originals", []):
            fields = {k: original[k] for k in ("dhash", "thumb", "digest")}
            originals[original["path"]] = _Item(original["path"], original["split"], **fields)
    reported: set[str] = set()
    for found in _compare(crops, "image crop"):
        reported.add(found.path)
        if found.code == "split-leakage":
            reported.update(found.related)
        yield found
    yield from _compare(list(originals.values()), "original")
    if options.alignment:
        for found in contained_crops(dataset, reported):
            reported.add(found.path)
            yield found
    for stats, extras in dataset.pairs:
        where = extras.get("found_in")
        if where is None or stats.image is None or stats.image in reported:
            continue
        if where["split"] != stats.split:
            yield finding(
                "error",
                "split-leakage",
                "leakage",
                stats.image,
                f"image crop in {stats.split!s} was cut from {where['original']} in "
                f"{where['split']}: the same field of view must not be in two splits",
                related=[where["original"]],
            )
    by_id: dict[str, list[str]] = {}
    for sample in dataset.layout.samples:
        by_id.setdefault(sample.id, []).append(sample.folder)
    for sample_id, folders in by_id.items():
        if len(folders) > 1:
            yield finding(
                "error",
                "split-leakage",
                "leakage",
                folders[1],
                f"sample {sample_id} appears in {len(folders)} places: {', '.join(folders)}",
                related=folders[:1] + folders[2:],
            )
