"""The leakage check's fast searches give exactly what the all-pairs loops gave.

Each reference below is the previous, quadratic implementation, kept here as
the definition of the right answer.
"""

from __future__ import annotations

from itertools import combinations
from types import SimpleNamespace

import numpy as np
import pytest

from datatool.checks import leakage
from datatool.checks.leakage import (
    CROP_RECORD,
    HASH_BITS_MAX,
    THUMB_MIN_CORRELATION,
    _candidates,
    _crop_table,
    _Item,
    close_hash_pairs,
    dhash,
    fingerprint,
    near_identical_pairs,
    pixel_digest,
    thumbnail,
)
from datatool.crop import resize_image

# --- references: the all-pairs loops --------------------------------------------------------


def _close_pairs_brute(hashes: np.ndarray, max_bits: int) -> list[tuple[int, int]]:
    distance = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    rows, cols = np.nonzero(np.triu(distance <= max_bits, 1))
    return list(zip(rows.tolist(), cols.tolist(), strict=True))


def _near_identical_brute(items: list[_Item]) -> list[tuple[int, int, float]]:
    out, seen = [], set()
    by_digest: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_digest.setdefault(it.digest, []).append(i)
    for group in by_digest.values():
        for i, j in combinations(group, 2):
            seen.add((i, j))
            out.append((i, j, 1.0))
    for i, j in combinations(range(len(items)), 2):
        if (i, j) in seen or bin(items[i].dhash ^ items[j].dhash).count("1") > HASH_BITS_MAX:
            continue
        correlation = float(items[i].thumb @ items[j].thumb)
        if correlation >= THUMB_MIN_CORRELATION:
            out.append((i, j, correlation))
    return out


def _candidates_brute(sized: list, limit: int) -> tuple[list, int]:
    out = []
    for small, small_split, (h, w, mean, std) in sized:
        for large, large_split, (big_h, big_w, big_mean, big_std) in sized:
            if small_split == large_split or (h, w) == (big_h, big_w):
                continue
            if h > big_h or w > big_w or abs(mean - big_mean) > leakage.BRIGHTNESS_SLACK:
                continue
            if std * leakage.CONTRAST_RATIO < big_std or big_std * leakage.CONTRAST_RATIO < std:
                continue
            out.append((small, small_split, large, large_split))
    return out[:limit], len(out)


# --- random data with many near-identical members ----------------------------------------


def _clustered_hashes(rng: np.random.Generator, n: int, centres: int) -> np.ndarray:
    """``n`` hashes, each a random centre with 0-14 random bits flipped."""
    centre = rng.integers(0, 2**64, size=centres, dtype=np.uint64, endpoint=False)
    hashes = centre[rng.integers(0, centres, n)]
    for k in range(n):
        for bit in rng.choice(64, int(rng.integers(0, 15)), replace=False):
            hashes[k] ^= np.uint64(1) << np.uint64(bit)
    return hashes


def _flatten(chunks) -> list[tuple[int, int]]:
    return [
        (i, j) for rows, cols in chunks for i, j in zip(rows.tolist(), cols.tolist(), strict=True)
    ]


@pytest.mark.parametrize("max_bits", [0, 1, 4, 10, 13])
@pytest.mark.parametrize(("n", "centres"), [(2, 1), (50, 50), (400, 20), (600, 3)])
def test_close_hash_pairs_equals_all_pairs(n: int, centres: int, max_bits: int) -> None:
    hashes = _clustered_hashes(np.random.default_rng(n + max_bits), n, centres)
    assert _flatten(close_hash_pairs(hashes, max_bits)) == _close_pairs_brute(hashes, max_bits)


def test_close_hash_pairs_in_small_chunks(monkeypatch) -> None:
    # Tiny lookup blocks and candidate budgets: the pieces must still join in row-major order.
    monkeypatch.setattr(leakage, "_PROBE_ELEMENTS", 300)
    monkeypatch.setattr(leakage, "_MAX_CANDIDATES", 50)
    hashes = _clustered_hashes(np.random.default_rng(1), 300, 4)
    chunks = list(close_hash_pairs(hashes))
    assert len(chunks) > 10
    assert _flatten(chunks) == _close_pairs_brute(hashes, HASH_BITS_MAX)


def test_close_hash_pairs_edge_cases() -> None:
    same = np.full(40, 2**64 - 1, dtype=np.uint64)
    assert _flatten(close_hash_pairs(same)) == list(combinations(range(40), 2))
    assert _flatten(close_hash_pairs(np.zeros(1, np.uint64))) == []
    # Opposite hashes differ in all 64 bits; one bit apart in one band only.
    hashes = np.array([0, 2**64 - 1, 1 << 63], dtype=np.uint64)
    assert _flatten(close_hash_pairs(hashes, 1)) == [(0, 2)]
    with pytest.raises(ValueError, match=r"max_bits must be in \[0, 63\], got 64"):
        list(close_hash_pairs(hashes, 64))


def _random_items(rng: np.random.Generator, n: int) -> list[_Item]:
    """Items in clusters: close hashes, thumbnails correlated around the 0.95 threshold,
    and some exact copies (same digest)."""
    hashes = _clustered_hashes(rng, n, max(1, n // 8))
    bases = rng.normal(size=(max(1, n // 8), 256))
    items = []
    for k in range(n):
        if k and rng.random() < 0.15:
            items.append(items[int(rng.integers(0, k))])  # an exact copy
            continue
        thumb = bases[k % len(bases)] + rng.normal(scale=rng.uniform(0, 0.4), size=256)
        thumb = (thumb - thumb.mean()) / np.linalg.norm(thumb - thumb.mean())
        items.append(_Item(str(k), None, int(hashes[k]), thumb.astype(np.float32), f"d{k}"))
    return items


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_near_identical_pairs_equals_all_pairs(seed: int) -> None:
    items = _random_items(np.random.default_rng(seed), 240)
    expected = _near_identical_brute(items)
    # The data must exercise all three ways: copies, confirmed and rejected hash matches.
    assert any(c == 1.0 for *_, c in expected) and any(c < 1.0 for *_, c in expected)
    hash_matches = _close_pairs_brute(np.array([it.dhash for it in items], np.uint64), 10)
    assert len(hash_matches) > len(expected)
    assert list(near_identical_pairs(items)) == expected


# --- fingerprints: one float conversion, the same values ------------------------------------


def _old_dhash(grey: np.ndarray) -> int:
    small = resize_image(grey.astype(np.float32), (8, 9))
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def _old_thumbnail(grey: np.ndarray) -> np.ndarray:
    small = resize_image(grey.astype(np.float32), (16, 16)).ravel().astype(np.float64)
    small -= small.mean()
    norm = float(np.linalg.norm(small))
    return (small / norm if norm > 1e-9 else small * 0).astype(np.float32)


@pytest.mark.parametrize("shape", [(1, 1), (8, 9), (16, 16), (5, 40), (64, 64), (131, 17)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, bool])
def test_fingerprint_equals_separate_resizes(shape: tuple[int, int], dtype) -> None:
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    grey = (rng.random(shape) * (1 if dtype in (np.float32, bool) else 60000)).astype(dtype)
    if dtype is bool:
        grey = rng.random(shape) > 0.5
    before = grey.copy()
    print_ = fingerprint(grey)
    assert print_["dhash"] == _old_dhash(grey) == dhash(grey)
    assert np.array_equal(print_["thumb"], _old_thumbnail(grey))
    assert np.array_equal(thumbnail(grey), _old_thumbnail(grey))
    assert print_["digest"] == pixel_digest(grey)
    assert np.array_equal(grey, before)  # the input is left as it was


def test_fingerprint_refuses_colour() -> None:
    with pytest.raises(ValueError, match=r"2-D \(H, W\) array, got shape \(4, 4, 3\)"):
        fingerprint(np.zeros((4, 4, 3), np.uint8))


# --- containment candidates ----------------------------------------------------------------


def _record(size: tuple) -> bytes:
    """A crop's fingerprint record with this ``(height, width, mean, std)``."""
    record = np.zeros((), dtype=CROP_RECORD)
    record["height"], record["width"], record["mean"], record["std"] = size
    return record.tobytes()


def _sized_dataset(rng: np.random.Generator, n: int, splits: list, shapes: list) -> tuple:
    pairs, sized = [], []
    for k in range(n):
        h, w = shapes[int(rng.integers(0, len(shapes)))]
        mean = float("nan") if k % 37 == 5 else float(rng.uniform(0.3, 0.6))
        std = float("nan") if k % 41 == 7 else float(rng.uniform(0.05, 0.25))
        split = splits[int(rng.integers(0, len(splits)))]
        size = (h, w, mean, std)
        stats = SimpleNamespace(image=f"img{k}.png", split=split)
        pairs.append((stats, {"leak": _record(size)}))
        sized.append((stats.image, split, size))
    # A pair without a fingerprint and one without an image are left out.
    pairs.append((SimpleNamespace(image="noleak.png", split="test"), {}))
    pairs.append((SimpleNamespace(image=None, split="test"), {"leak": _record((9, 9, 0.5, 0.1))}))
    return SimpleNamespace(pairs=pairs), sized


@pytest.mark.parametrize("limit", [0, 7, 100000])
@pytest.mark.parametrize(
    ("splits", "shapes"),
    [
        (["training", "validation", None], [(64, 64), (128, 128), (64, 128), (200, 50)]),
        (["training", "validation"], [(64, 64)]),  # one size: none
        ([None], [(64, 64), (128, 128)]),  # one split (a flat set): none
    ],
)
def test_candidates_equal_all_pairs(limit: int, splits: list, shapes: list) -> None:
    dataset, sized = _sized_dataset(np.random.default_rng(len(shapes)), 300, splits, shapes)
    got = _candidates(_crop_table(dataset), set(), limit)
    assert got == _candidates_brute(sized, limit)
    if len(shapes) > 1 and len(splits) > 1:
        assert got[1] > 1000  # the random set has many candidates


def test_candidates_skip_reported_crops() -> None:
    dataset, sized = _sized_dataset(
        np.random.default_rng(5), 120, ["training", "validation"], [(32, 32), (64, 64)]
    )
    reported = {f"img{k}.png" for k in range(0, 120, 3)}
    kept = [s for s in sized if s[0] not in reported]
    assert _candidates(_crop_table(dataset), reported, 50) == _candidates_brute(kept, 50)
