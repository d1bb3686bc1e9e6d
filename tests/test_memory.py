"""What the check keeps per pair on the client is compact, and the results are the same.

The client keeps a crop's fingerprint as one record without its thumbnail and
computes thumbnails again from the files for crops whose hashes are close; it
shares pydantic's per-instance fields sets and the layout's strings. These
tests compare with the thumbnails kept for every crop (the previous way) and
check that shared fields sets never leak one instance's assignment into
another.
"""

from __future__ import annotations

import numpy as np

from datatool import io, synth
from datatool.check import run_check
from datatool.checks import CheckOptions
from datatool.checks.leakage import (
    CROP_RECORD,
    THUMB_MIN_CORRELATION,
    _Columns,
    _compare,
    _Item,
    crop_record,
    dhash,
    fingerprint,
    pixel_digest,
)
from datatool.findings import Finding, PairStats, share_fields_set
from datatool.layout import scan


def _near_copies_set(root) -> None:
    """A flat set in two splits: exact copies, contrast-stretched copies, noisy copies
    (correlations on both sides of the threshold) and unrelated crops."""
    sample = synth.make_sample(7, size=(160, 160), grain_px=14.0, fields_of_view=1, strip=0)
    micrograph = sample.originals[0]
    rng = np.random.default_rng(3)
    label = np.zeros((40, 40), np.uint8)
    label[:, 20:23] = 255
    crops = []
    for k in range(4):
        r, c = divmod(k, 2)
        base = micrograph[r * 40 : r * 40 + 40, c * 40 : c * 40 + 40].astype(np.float64)
        crops.append(("training", f"base{k}", base))
        crops.append(("training", f"exact{k}", base))
        crops.append(("validation", f"stretched{k}", (base - base.min()) * 0.8 + 20))
        for noise in (3.0, 9.0, 20.0, 40.0):
            crops.append(
                ("validation", f"noisy{k}_{int(noise)}", base + rng.normal(0, noise, (40, 40)))
            )
    for split, name, pixels in crops:
        for part, values in (("image", pixels), ("label", label)):
            folder = root / split / part
            folder.mkdir(parents=True, exist_ok=True)
            io.write_png(folder / f"{name}.png", np.clip(values, 0, 255).astype(np.uint8))


def _kept_thumbnail_findings(root) -> list[Finding]:
    """The near-duplicate findings with every crop's thumbnail kept (the previous way)."""
    layout = scan(root)
    items = []
    for entry in layout.pairs:
        pixels = io.read_image(root / entry.image, role="image").pixels
        items.append(_Item(entry.image, entry.split, **fingerprint(pixels)))
    return list(_compare(_Columns.of_items(items), "image crop"))


def test_thumbnails_from_files_give_the_findings_of_kept_thumbnails(tmp_path) -> None:
    root = tmp_path / "flat"
    _near_copies_set(root)
    expected = _kept_thumbnail_findings(root)
    # The set has both verdicts near the threshold, exact and inexact copies, and both codes.
    assert {f.code for f in expected} == {"duplicate", "split-leakage"}
    assert any(f.measured is not None and f.measured < 1.0 for f in expected)
    report = run_check(root, CheckOptions(workers=1, alignment=False))
    got = [
        f
        for f in report.findings
        if f.check == "leakage" and f.code in ("duplicate", "split-leakage")
    ]
    key = lambda f: (f.code, f.path)  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)
    assert all(f.measured is None or f.measured >= THUMB_MIN_CORRELATION for f in got)


def test_crop_record_holds_the_fingerprint_and_brightness() -> None:
    rng = np.random.default_rng(1)
    for grey in (
        rng.integers(0, 256, (30, 50), dtype=np.uint8),
        rng.integers(0, 65536, (17, 9), dtype=np.uint16),
        rng.random((12, 12), dtype=np.float32),
    ):
        record = np.frombuffer(crop_record(grey), dtype=CROP_RECORD)[0]
        scale = float(np.iinfo(grey.dtype).max) if grey.dtype.kind == "u" else 1.0
        assert int(record["dhash"]) == dhash(grey)
        assert record["digest"] == bytes.fromhex(pixel_digest(grey))
        assert (int(record["height"]), int(record["width"])) == grey.shape
        assert record["mean"] == float(grey.mean()) / scale
        assert record["std"] == float(grey.std()) / scale
    assert CROP_RECORD.itemsize == 48


def test_shared_fields_set_is_copied_before_an_assignment_changes_it() -> None:
    first = PairStats(image="a.png", label="b.png")
    second = PairStats(image="c.png", label="d.png")
    share_fields_set(first)
    share_fields_set(second)
    assert first.__pydantic_fields_set__ is second.__pydantic_fields_set__
    first.grains = 4
    first.image = "e.png"
    assert first.model_fields_set == {"image", "label", "grains"}
    assert second.model_fields_set == {"image", "label"}
    assert second.model_dump(exclude_unset=True) == {"image": "c.png", "label": "d.png"}
    found = Finding(severity="info", code="x", check="y", path="p", message="m")
    share_fields_set(found)
    found.measured = 1.0
    assert Finding(
        severity="info", code="x", check="y", path="q", message="m"
    ).model_fields_set == {
        "severity",
        "code",
        "check",
        "path",
        "message",
    }


def test_check_keeps_shared_fields_sets_and_the_layouts_strings(sample_tree) -> None:
    layout = scan(sample_tree)
    report = run_check(sample_tree, CheckOptions(workers=2), layout=layout)
    entries = {entry.image: entry for entry in layout.pairs}
    assert len(report.pairs) == len(entries) > 1
    for stats in report.pairs:
        entry = entries[stats.image]
        assert stats.image is entry.image and stats.label is entry.label
        assert stats.split is entry.split
    sets = {id(stats.__pydantic_fields_set__) for stats in report.pairs}
    assert len(sets) < len(report.pairs)
    assert len({id(entry.__pydantic_fields_set__) for entry in layout.pairs}) == 1
    # The JSON is what it was: every pair's own set fields.
    assert report.pairs[0].model_fields_set >= {"image", "label", "width", "height"}


def test_pair_records_give_back_every_pair_as_handed_over():
    """Compact extras: packed bytes, a column that stops packing, other values, key order."""
    from datatool.checks import PairRecords

    handed = [
        ("a", {"leak": b"0123"}),
        ("b", {}),
        ("c", {"leak": b"4567", "found_in": {"split": "training"}}),
        ("d", {"leak": b"89ab"}),
        ("e", {"leak": b"too long"}),  # another length: the column becomes a list
        ("f", {"leak": None}),
        ("g", {"found_in": {"split": "validation"}, "leak": b"cdef"}),
    ]
    records = PairRecords()
    records.extend(handed[:3])
    records.extend(handed[3:])
    assert len(records) == len(handed)
    assert records.stats == [stats for stats, _ in handed]
    assert list(records) == handed
    assert list(records) == handed  # read twice (the leakage check does)
    assert [list(extras) for _, extras in records][-1] == ["found_in", "leak"]
