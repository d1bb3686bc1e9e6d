"""Duplicates and split leakage: the same content twice, or in two splits.

Each worker fingerprints what it decodes anyway (``pair.extras["leak"]`` for an
image crop, ``sample.extras["originals"]`` for a sample's originals): a
64-bit difference hash (dHash) to find candidates fast, a 16x16 normalized
thumbnail for the pixel check that confirms them, and a digest of the exact
pixels. The dataset-level check then compares them, without testing every pair
(:func:`close_hash_pairs`; near-linear in the number of crops). A crop's
fingerprint travels as one 48-byte record (:data:`CROP_RECORD`: hash, digest,
size and brightness) and no thumbnail: the client keeps no per-crop array, and
computes the thumbnails of the few crops whose hashes are close from their files,
exactly as the worker would have.

* near-identical image crops in one split: ``duplicate`` (warning);
* near-identical crops, or the same original, in two splits, a crop cut from
  another split's original (found by the alignment search), or one sample id in
  two splits: ``split-leakage`` (error) naming both files.

Fingerprints compare content, not names or bytes: a crop re-saved, renamed or
with its contrast stretched is still found.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from datatool import align, io
from datatool.checks import CheckOptions, DatasetData, PairData, SampleData, finding, register
from datatool.errors import ImageReadError
from datatool.findings import Finding

HASH_BITS_MAX = 10
"""dHash bits two images may differ in and still be duplicate candidates (of 64)."""
THUMB_MIN_CORRELATION = 0.95
"""Correlation of the 16x16 thumbnails above which candidates are near-identical."""
THUMB_SIDE = 16


def _shrunk(shape: tuple[int, int], image, size: tuple[int, int]) -> np.ndarray:
    """:func:`~datatool.crop.resize_image` to ``size`` of the pixels behind ``image``.

    Same values as ``resize_image(grey, size)`` for the ``shape`` array the
    mode-F PIL ``image`` was made from (:func:`_as_float_image`, once for all
    the sizes the caller needs).
    """
    from PIL import Image

    height, width = size
    if (height, width) == tuple(shape):
        return np.asarray(image, dtype=np.float32)
    shrink = height <= shape[0] and width <= shape[1]
    resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    return np.asarray(image.resize((width, height), resample=resample), dtype=np.float32)


def _as_float_image(grey: np.ndarray):
    """``(shape, PIL mode-F image of the pixels as float32)`` of a 2-D array, for :func:`_shrunk`.

    8-bit pixels are converted by PIL itself (``L`` to ``F``: the same values,
    without a float copy in numpy and the zero-filled one PIL makes of it).
    """
    from PIL import Image

    if grey.ndim != 2:
        raise ValueError(f"grey must be a 2-D (H, W) array, got shape {grey.shape}")
    if grey.dtype == np.uint8:
        return grey.shape, Image.fromarray(np.ascontiguousarray(grey)).convert("F")
    return grey.shape, Image.fromarray(grey.astype(np.float32))


def _dhash_of(small: np.ndarray) -> int:
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def _thumbnail_of(small: np.ndarray) -> np.ndarray:
    flat = small.ravel().astype(np.float64)
    flat -= flat.mean()
    norm = float(np.linalg.norm(flat))
    return (flat / norm if norm > 1e-9 else flat * 0).astype(np.float32)


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
    return _dhash_of(_shrunk(*_as_float_image(grey), (8, 9)))


def thumbnail(grey: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """Area-averaged ``(side, side)`` copy, zero mean and unit norm, as a flat float32 vector.

    The dot product of two thumbnails is their correlation (1.0: same content,
    whatever brightness and contrast). A flat image gives all zeros.

    Parameters
    ----------
    grey : (H, W) numeric array, H, W >= 1
    side : int

    Returns
    -------
    (side * side,) float32
    """
    return _thumbnail_of(_shrunk(*_as_float_image(grey), (side, side)))


def pixel_digest(grey: np.ndarray) -> str:
    """Digest of the exact pixel values and shape (not of the file bytes)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{grey.shape}{grey.dtype}".encode())
    h.update(np.ascontiguousarray(grey).tobytes())
    return h.hexdigest()


def fingerprint(grey: np.ndarray) -> dict:
    """The three fingerprints of an image: ``{"dhash", "thumb", "digest"}``.

    Equal to ``dhash(grey)``, ``thumbnail(grey)`` and ``pixel_digest(grey)``;
    the pixels are converted to float32 (and to a PIL image) once for both
    resized copies.
    """
    shape, image = _as_float_image(grey)
    return {
        "dhash": _dhash_of(_shrunk(shape, image, (8, 9))),
        "thumb": _thumbnail_of(_shrunk(shape, image, (THUMB_SIDE, THUMB_SIDE))),
        "digest": pixel_digest(grey),
    }


CROP_RECORD = np.dtype(
    [
        ("dhash", "<u8"),
        ("digest", "S16"),
        ("height", "<i4"),
        ("width", "<i4"),
        ("mean", "<f8"),
        ("std", "<f8"),
    ]
)
"""One image crop's fingerprint as the client keeps it (48 bytes): dHash, the 16-byte pixel
digest, its shape, and mean and standard deviation of its grey levels as shares of full
scale (for the containment search)."""


def crop_record(grey: np.ndarray) -> bytes:
    """The :data:`CROP_RECORD` of a 2-D image crop, as 48 bytes."""
    scale = float(np.iinfo(grey.dtype).max) if grey.dtype.kind in "ui" else 1.0
    shape, image = _as_float_image(grey)
    record = np.zeros((), dtype=CROP_RECORD)
    record["dhash"] = _dhash_of(_shrunk(shape, image, (8, 9)))
    record["digest"] = bytes.fromhex(pixel_digest(grey))
    record["height"], record["width"] = grey.shape
    record["mean"] = float(grey.mean()) / scale
    record["std"] = float(grey.std()) / scale
    return record.tobytes()


@register("leakage", "pair")
def fingerprint_crop(pair: PairData, options: CheckOptions) -> Iterator[Finding]:
    """Fingerprint the image crop for the dataset-level duplicate search (no findings)."""
    if pair.image is not None and pair.image.pixels.size:
        pair.extras["leak"] = crop_record(pair.image.pixels)
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


HASH_BANDS = 4
"""Bands (of 16 bits each) the 64-bit dHash is cut into for the near-duplicate search."""
_BAND_BITS = 64 // HASH_BANDS
_PROBE_ELEMENTS = 2**16
"""Rows x flip masks looked up at once by :func:`close_hash_pairs` (0.25 MiB per array)."""
_MAX_CANDIDATES = 2**20
"""Candidate pairs :func:`close_hash_pairs` holds at once (8 MiB per int64 array)."""


def _flip_masks(bits: int, radius: int) -> np.ndarray:
    """Every ``bits``-bit mask with at most ``radius`` bits set, as ``(K,)`` int64.

    >>> _flip_masks(3, 1).tolist()
    [0, 1, 2, 4]
    """
    masks = [0]
    for count in range(1, radius + 1):
        masks += [sum(1 << bit for bit in chosen) for chosen in combinations(range(bits), count)]
    return np.array(masks, dtype=np.int64)


def close_hash_pairs(
    hashes: np.ndarray, max_bits: int = HASH_BITS_MAX
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every index pair ``i < j`` whose 64-bit hashes differ in at most ``max_bits`` bits.

    Multi-index hashing instead of all n²/2 comparisons: each hash is cut into
    :data:`HASH_BANDS` bands of 16 bits. Two hashes within ``max_bits`` bits
    differ in at most ``r = max_bits // HASH_BANDS`` bits on at least one band
    (were every band ``r + 1`` bits apart, the hashes would be
    ``HASH_BANDS * (r + 1) > max_bits`` apart). So, per band, each hash looks
    up the hashes whose band is within ``r`` bits of its own (one table lookup
    per flip mask: 137 for ``max_bits=10``), and only those candidates are
    compared in full. For unrelated hashes a band value is shared by about
    n / 65536 others, so the cost grows about linearly with n.

    Parameters
    ----------
    hashes : (N,) uint64
    max_bits : int in [0, 63]

    Yields
    ------
    (i, j) : two (K,) int64 arrays
        The pairs, in chunks, in row-major order (``i`` ascending, then ``j``),
        as a loop over all pairs would meet them.
    """
    if not 0 <= max_bits < 64:
        raise ValueError(f"max_bits must be in [0, 63], got {max_bits}")
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = len(hashes)
    if n < 2:
        return
    index = np.int32 if n < 2**31 else np.int64  # half the memory of int64 lookups
    flips = _flip_masks(_BAND_BITS, max_bits // HASH_BANDS).astype(np.int32)
    bands = []
    for band in range(HASH_BANDS):
        keys = ((hashes >> np.uint64(band * _BAND_BITS)) & np.uint64(2**_BAND_BITS - 1)).astype(
            np.int32
        )
        starts = np.zeros(2**_BAND_BITS + 1, dtype=index)
        np.cumsum(np.bincount(keys, minlength=2**_BAND_BITS), out=starts[1:])
        bands.append((keys, np.argsort(keys, kind="stable"), starts))
    block = max(1, _PROBE_ELEMENTS // len(flips))
    for start in range(0, n, block):
        rows = np.arange(start, min(n, start + block))
        found = []
        for keys, order, starts in bands:
            probes = keys[rows, None] ^ flips[None, :]
            first = starts[probes]
            found.append((order, first, starts[probes + 1] - first))
        ends = np.cumsum(sum(counts.sum(axis=1) for _, _, counts in found))
        cuts = np.searchsorted(ends, np.arange(_MAX_CANDIDATES, int(ends[-1]), _MAX_CANDIDATES))
        bounds = [0, *np.unique(cuts).tolist(), len(rows)]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if b > a:
                part = [(order, first[a:b], counts[a:b]) for order, first, counts in found]
                yield _verified(hashes, rows[a:b], part, max_bits)


def _verified(
    hashes: np.ndarray,
    rows: np.ndarray,
    lookups: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    max_bits: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs of ``rows`` (one lookup per band) within ``max_bits`` bits, in order.

    Each lookup is ``(order, first, counts)``: the band's items sorted by band
    value, and per row and flip mask ``(B, K)`` where the matching run starts
    in ``order`` and how long it is.
    """
    n = len(hashes)
    codes = []
    for order, first, counts in lookups:
        counts = counts.ravel()
        total = int(counts.sum())
        if not total:
            continue
        run_start = np.repeat(first.ravel() - (np.cumsum(counts) - counts), counts)
        j = order[np.arange(total) + run_start]
        i = np.repeat(np.repeat(rows, first.shape[1]), counts)
        keep = (j > i) & (np.bitwise_count(hashes[i] ^ hashes[j]) <= max_bits)
        codes.append(i[keep] * n + j[keep])
    # A pair close on several bands is found once per band. (Sorting, not np.unique: its
    # hash table is 50x slower on millions of int64 with numpy 2.4.)
    codes_sorted = np.sort(np.concatenate(codes)) if codes else np.zeros(0, dtype=np.int64)
    first = np.ones(len(codes_sorted), dtype=bool)
    first[1:] = codes_sorted[1:] != codes_sorted[:-1]
    return np.divmod(codes_sorted[first], n)


@dataclass(frozen=True)
class _Columns:
    """N fingerprints side by side, as the near-duplicate search reads them.

    ``hashes`` (N,) uint64 dHashes; ``digests`` (N,) exact-pixel digests (any
    type numpy sorts and compares); ``thumb(i)`` item ``i``'s thumbnail, or
    ``None`` when it cannot be had (a crop whose file no longer decodes).
    """

    paths: Sequence[str]
    splits: Sequence[str | None]
    hashes: np.ndarray
    digests: np.ndarray
    thumb: Callable[[int], np.ndarray | None]

    @classmethod
    def of_items(cls, items: list[_Item]) -> _Columns:
        """The columns of a list of items (their thumbnails at hand)."""
        return cls(
            [it.path for it in items],
            [it.split for it in items],
            np.array([it.dhash for it in items], dtype=np.uint64),
            np.array([it.digest for it in items], dtype=object),
            lambda i: items[i].thumb,
        )


def _digest_groups(digests: np.ndarray) -> list[list[int]]:
    """Indices of equal digests, each group ascending, groups by their first index; no singles."""
    if len(digests) < 2:
        return []
    order = np.argsort(digests, kind="stable")
    ordered = digests[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1], True])
    groups = [
        order[a:b].tolist() for a, b in zip(starts[:-1], starts[1:], strict=True) if b - a > 1
    ]
    return sorted(groups, key=lambda group: group[0])


def _near_identical(columns: _Columns) -> Iterator[tuple[int, int, float]]:
    """:func:`near_identical_pairs` of ``columns``."""
    if len(columns.hashes) < 2:
        return
    seen: set[tuple[int, int]] = set()
    for group in _digest_groups(columns.digests):
        for i, j in combinations(group, 2):
            seen.add((i, j))
            yield i, j, 1.0
    for rows, cols in close_hash_pairs(columns.hashes):
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            if (i, j) in seen:
                continue
            first, second = columns.thumb(i), columns.thumb(j)
            if first is None or second is None:
                continue
            correlation = float(first @ second)
            if correlation >= THUMB_MIN_CORRELATION:
                yield i, j, correlation


def near_identical_pairs(items: list[_Item]) -> Iterator[tuple[int, int, float]]:
    """Index pairs ``(i, j, correlation)`` of near-identical items, ``i < j``.

    Candidates share the exact digest (first, in digest groups) or differ in
    at most ``HASH_BITS_MAX`` dHash bits (:func:`close_hash_pairs`, in
    row-major order); each of the latter is confirmed by the thumbnail
    correlation.
    """
    return _near_identical(_Columns.of_items(items))


def _clusters(columns: _Columns) -> list[tuple[list[int], float]]:
    """:func:`clusters` of ``columns``."""
    parent = list(range(len(columns.hashes)))
    lowest: dict[int, float] = {}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    links = []
    for i, j, correlation in _near_identical(columns):
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
        links.append((i, correlation))
    for i, correlation in links:
        top = root(i)
        lowest[top] = min(lowest.get(top, 1.0), correlation)
    groups: dict[int, list[int]] = {}
    linked = {root(i) for i, _ in links}
    for i in range(len(parent)):
        top = root(i)
        if top in linked:
            groups.setdefault(top, []).append(i)
    return [(g, lowest[top]) for top, g in sorted(groups.items()) if len(g) > 1]


def clusters(items: list[_Item]) -> list[tuple[list[int], float]]:
    """Groups of near-identical items (union of :func:`near_identical_pairs`).

    Returns
    -------
    list of (indices, lowest correlation)
        Each group's item indices in input order, groups ordered by their first
        item; single items are left out.
    """
    return _clusters(_Columns.of_items(items))


def _names(paths: list[str], limit: int = 5) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _compare(columns: _Columns, what: str) -> Iterator[Finding]:
    """One finding per cluster of near-identical items and split, not one per pair."""
    paths, splits = columns.paths, columns.splits
    for members, correlation in _clusters(columns):
        exact = len({columns.digests[i] for i in members}) == 1
        how = "identical pixels" if exact else f"correlation >= {correlation:.3f}"
        by_split: dict[str | None, list[int]] = {}
        for i in members:
            by_split.setdefault(splits[i], []).append(i)
        first, *others = list(by_split.values())
        if len(first) > 1:
            copies = [paths[i] for i in first[1:]]
            count = (
                f"one of {len(first)} near-identical crops (the first: {paths[first[0]]})"
                if len(first) > 2
                else f"a near-identical copy of {paths[first[0]]}"
            )
            yield finding(
                "warning",
                "duplicate",
                "leakage",
                paths[first[1]],
                f"{what} is {count} in the same split ({how}): {_names(copies)}; keep one "
                "(duplicates weigh those grains more in training)",
                measured=round(correlation, 4),
                expected=THUMB_MIN_CORRELATION,
                related=[paths[first[0]], *copies[1:]],
            )
        for split_items in others:
            here = split_items[0]
            elsewhere = [paths[i] for i in first] + [paths[i] for i in split_items[1:]]
            yield finding(
                "error",
                "split-leakage",
                "leakage",
                paths[here],
                f"{what} in {splits[here]!s} is a near-identical copy of {paths[first[0]]} in "
                f"{splits[first[0]]!s} ({how}; {len(members)} copies in all: "
                f"{_names([paths[i] for i in members])}): the same field of view must not be "
                "in two splits",
                measured=round(correlation, 4),
                expected=THUMB_MIN_CORRELATION,
                related=elsewhere,
            )


def _thumbnails_from_files(
    root: str, paths: Sequence[str], max_pixels: int
) -> Callable[[int], np.ndarray | None]:
    """``thumb(i)``: the :func:`thumbnail` of crop ``paths[i]``, decoded again, once.

    The same values as the worker's (the same decode, the same function), so
    the verdicts and correlations are those of thumbnails kept for every crop;
    only crops whose hashes are close to another's are ever decoded here.
    ``None`` for a file that no longer decodes.
    """
    done: dict[int, np.ndarray | None] = {}

    def thumb(i: int) -> np.ndarray | None:
        if i not in done:
            try:
                pixels = io.read_image(f"{root}/{paths[i]}", role="image", max_pixels=max_pixels)
            except ImageReadError:
                done[i] = None
            else:
                done[i] = thumbnail(pixels.pixels) if pixels.pixels.size else None
        return done[i]

    return thumb


CONTAINED_MIN_SCORE = 0.9
"""NCC above which a smaller crop is taken as cut from inside a larger one (the alignment
check's threshold for a crop in its original)."""
BRIGHTNESS_SLACK = 0.12
"""Candidates for containment: mean grey levels within this share of full scale..."""
CONTRAST_RATIO = 2.0
"""...and standard deviations within this factor (one micrograph, one exposure)."""
MAX_CONTAINMENT_SEARCHES = 20000
"""Searches beyond this many candidate pairs are skipped (and said so)."""


@dataclass(frozen=True)
class _CropTable:
    """Every fingerprinted image crop: path, split and :data:`CROP_RECORD`, in pair order."""

    paths: list[str]
    splits: list[str | None]
    records: np.ndarray


def _crop_table(dataset: DatasetData) -> _CropTable:
    """The crops of ``dataset.pairs`` with an image and a fingerprint (``extras["leak"]``)."""
    paths: list[str] = []
    splits: list[str | None] = []
    records: list[bytes] = []
    for stats, extras in dataset.pairs:
        record = extras.get("leak")
        if record is not None and stats.image is not None:
            paths.append(stats.image)
            splits.append(stats.split)
            records.append(record)
    return _CropTable(paths, splits, np.frombuffer(b"".join(records), dtype=CROP_RECORD))


def _candidates(
    table: _CropTable, reported: set[str], limit: int
) -> tuple[list[tuple[str, str, str, str]], int]:
    """The first ``limit`` containment candidates ``(small, split, large, split)``; their count.

    Candidates for containment are cross-split pairs of different sizes where
    the smaller fits inside the larger and brightness and contrast are alike,
    in the order of a loop over small crops, then large ones (both in
    ``table`` order), crops in ``reported`` left out. One split or one crop
    size: none, at once. Otherwise all pairs are tested, in blocks of rows with
    numpy (about 0.5 s for 10k crops), not pair by pair in Python (35 s).
    """
    kept = [k for k, path in enumerate(table.paths) if path not in reported]
    sized = [(table.paths[k], table.splits[k]) for k in kept]
    records = table.records[kept]
    shapes = np.stack([records["height"], records["width"]], axis=1)
    if len({split for _, split in sized}) < 2 or len(np.unique(shapes, axis=0)) < 2:
        return [], 0
    codes: dict[str | None, int] = {}
    split = np.array([codes.setdefault(split, len(codes)) for _, split in sized])
    height, width = (records[k].astype(np.int64) for k in ("height", "width"))
    mean, std = (records[k].astype(np.float64) for k in ("mean", "std"))
    out: list[tuple[str, str, str, str]] = []
    total = 0
    block = max(1, min(512, 2**20 // len(sized)))  # about 1 MiB per boolean array
    for start in range(0, len(sized), block):
        rows = slice(start, start + block)
        small_h, small_w, small_mean, small_std = (
            v[rows, None] for v in (height, width, mean, std)
        )
        # Each test is the negation of a rejection (``not a > b``), so that a NaN
        # brightness passes, as it did pair by pair.
        keep = (split[rows, None] != split) & (small_h <= height) & (small_w <= width)
        keep &= (small_h != height) | (small_w != width)
        keep &= ~(np.abs(small_mean - mean) > BRIGHTNESS_SLACK)
        keep &= ~(small_std * CONTRAST_RATIO < std) & ~(std * CONTRAST_RATIO < small_std)
        small, large = np.nonzero(keep)
        total += len(small)
        room = max(0, limit - len(out))
        for i, j in zip(small[:room].tolist(), large[:room].tolist(), strict=True):
            out.append((sized[start + i][0], sized[start + i][1], sized[j][0], sized[j][1]))
    return out, total


def contained_crops(dataset: DatasetData, reported: set[str]) -> Iterator[Finding]:
    """Crops of one split cut from inside a larger crop of another split (no originals needed).

    Candidates (:func:`_candidates`) are located by the alignment search's
    coarse-to-fine NCC (:class:`datatool.align.SearchImage`); each larger crop is
    decoded and prepared once.
    """
    candidates, count = _candidates(_crop_table(dataset), reported, MAX_CONTAINMENT_SEARCHES)
    root = dataset.layout.root
    searches: dict[str, align.SearchImage | None] = {}
    smalls: dict[str, object] = {}

    def decoded(rel: str):
        try:
            return io.read_image(f"{root}/{rel}").pixels
        except ImageReadError:
            return None

    done: set[str] = set()
    for small, small_split, large, large_split in candidates:
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
    if count > MAX_CONTAINMENT_SEARCHES:
        yield finding(
            "info",
            "split-leakage",
            "leakage",
            ".",
            f"{count} crop pairs could hide one crop inside another across splits; "
            f"only the first {MAX_CONTAINMENT_SEARCHES} were searched",
            measured=count,
            expected=MAX_CONTAINMENT_SEARCHES,
        )


@register("leakage", "dataset")
def leakage(dataset: DatasetData, options: CheckOptions) -> Iterator[Finding]:
    """Duplicates within a split (warning) and content shared by two splits (error)."""
    table = _crop_table(dataset)
    crops = _Columns(
        table.paths,
        table.splits,
        table.records["dhash"],
        table.records["digest"],
        _thumbnails_from_files(dataset.layout.root, table.paths, options.max_pixels),
    )
    del table
    originals: dict[str, _Item] = {}
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
    yield from _compare(_Columns.of_items(list(originals.values())), "original")
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
