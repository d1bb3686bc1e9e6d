"""The layout model: pairing by name, litter ignored, flat sets, structural issues."""

from __future__ import annotations

from pathlib import Path

import pytest

from datatool import layout
from datatool.errors import UsageError


def test_scan_fixture_finds_every_pair(sample_tree: Path) -> None:
    scanned = layout.scan(sample_tree)
    assert scanned.kind == "tree"
    assert [s.id for s in scanned.samples] == ["0101", "0102", "0201"]
    assert scanned.splits == ["training", "validation"]
    assert len(scanned.pairs) == 24
    sample = scanned.sample("0101")
    assert sorted(sample.originals) == [1, 2]
    assert sample.tracing == "training/0101_training/aligned/0101_trace.png"
    assert sample.plan is not None
    pair = sample.pairs[0]
    assert (pair.sample_id, pair.fov, pair.crop) == ("0101", 1, 1)
    assert pair.image.endswith("image/0101_1_1.png") and pair.label.endswith("label/0101_1_1.png")
    assert scanned.issues == []


def test_pairs_by_name_not_by_sorted_order(sample_tree: Path) -> None:
    aligned = sample_tree / "training/0101_training/aligned"
    (aligned / "label/0101_1_1.png").unlink()  # sorted order would now shift every pair
    scanned = layout.scan(sample_tree)
    pairs = {p.name: p for p in scanned.sample("0101").pairs}
    assert pairs["0101_1_1"].label is None
    assert pairs["0101_1_2"].image.endswith("0101_1_2.png")
    assert pairs["0101_1_2"].label.endswith("0101_1_2.png")


def test_litter_is_ignored_and_counted(sample_tree: Path) -> None:
    aligned = sample_tree / "training/0101_training/aligned"
    for name in (".DS_Store", "image/.DS_Store", "label/Thumbs.db", "image/._0101_1_1.png"):
        (aligned / name).write_bytes(b"\x00junk")
    scanned = layout.scan(sample_tree)
    assert len(scanned.ignored) == 4
    assert len(scanned.pairs) == 24
    assert scanned.issues == []


def test_unexpected_and_badly_named_files_are_recorded(sample_tree: Path) -> None:
    aligned = sample_tree / "training/0101_training/aligned"
    (aligned / "notes.txt").write_text("hello")
    (aligned / "image/other_1_1.png").write_bytes((aligned / "image/0101_1_1.png").read_bytes())
    (sample_tree / "validation/stray_folder").mkdir()
    kinds = {(i.kind, Path(i.path).name) for i in layout.scan(sample_tree).issues}
    assert ("unexpected-file", "notes.txt") in kinds
    assert ("bad-name", "other_1_1.png") in kinds
    assert ("bad-sample-folder", "stray_folder") in kinds


def test_tif_is_accepted_beside_png(sample_tree: Path) -> None:
    aligned = sample_tree / "training/0101_training/aligned"
    src = aligned / "image/0101_1_1.png"
    from PIL import Image

    Image.open(src).save(aligned / "image/0101_1_1.tif")
    src.unlink()
    pair = layout.scan(sample_tree).sample("0101").pairs[0]
    assert pair.image.endswith("0101_1_1.tif") and pair.label.endswith("0101_1_1.png")


def test_flat_set_with_and_without_splits(tmp_path: Path, sample_tree: Path) -> None:
    aligned = sample_tree / "training/0101_training/aligned"
    for split in ("training", "validation"):
        for sub in ("image", "label"):
            (tmp_path / "flat" / split / sub).mkdir(parents=True)
            data = (aligned / sub / "0101_1_1.png").read_bytes()
            (tmp_path / "flat" / split / sub / f"{split}_x.png").write_bytes(data)
    scanned = layout.scan(tmp_path / "flat")
    assert scanned.kind == "flat"
    assert {(p.split, p.name) for p in scanned.pairs} == {
        ("training", "training_x"),
        ("validation", "validation_x"),
    }


@pytest.mark.parametrize("make", ["missing", "file"])
def test_bad_root_is_a_usage_error(tmp_path: Path, make: str) -> None:
    target = tmp_path / "root"
    if make == "file":
        target.write_text("x")
    with pytest.raises(UsageError, match="root"):
        layout.scan(target)


def test_parse_crop_stem() -> None:
    assert layout.parse_crop_stem("0417_2_5") == ("0417", 2, 5)
    assert layout.parse_crop_stem("a_b_2_5") == ("a_b", 2, 5)
    assert layout.parse_crop_stem("0417_2_5", "0417") == ("0417", 2, 5)
    assert layout.parse_crop_stem("0418_2_5", "0417") is None
    assert layout.parse_crop_stem("0417_trace") is None
