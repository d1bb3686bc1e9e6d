"""Duplicates within a split and leakage across splits, by content."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from datatool import io, synth
from datatool.check import run_check
from datatool.checks import CheckOptions
from datatool.checks.leakage import _Item, dhash, fingerprint, near_identical_pairs, thumbnail

T = "training/0101_training/aligned"
V = "validation/0201_validation/aligned"


def _copy_pair(tree: Path, source: str, dest: str) -> None:
    """Copy image and label of ``source`` (folder/stem) to ``dest`` (folder/stem)."""
    for kind in ("image", "label"):
        src_folder, src_stem = source.rsplit("/", 1)
        dst_folder, dst_stem = dest.rsplit("/", 1)
        shutil.copyfile(
            tree / src_folder / kind / f"{src_stem}.png",
            tree / dst_folder / kind / f"{dst_stem}.png",
        )


def _leak_findings(report) -> list:
    return [f for f in report.findings if f.check == "leakage"]


def test_clean_fixture_has_no_duplicates_or_leakage(tree: Path) -> None:
    # The fields of view of one sample show the same grains: they must not count as copies.
    report = run_check(tree, CheckOptions(workers=1))
    assert _leak_findings(report) == []


@pytest.mark.parametrize("alignment", [True, False])
def test_crop_copied_into_the_other_split_is_leakage_naming_both(tree: Path, alignment) -> None:
    _copy_pair(tree, f"{T}/0101_1_2", f"{V}/0201_1_9")
    report = run_check(tree, CheckOptions(workers=1, alignment=alignment))
    found = [f for f in report.findings if f.code == "split-leakage"]
    assert [(f.path, f.related) for f in found] == [
        (f"{V}/image/0201_1_9.png", [f"{T}/image/0101_1_2.png"])
    ]
    assert found[0].severity.value == "error"
    assert not report.ok


def test_contrast_changed_copy_in_the_other_split_is_still_found(tree: Path) -> None:
    _copy_pair(tree, f"{T}/0101_2_4", f"{V}/0201_2_7")
    path = tree / V / "image" / "0201_2_7.png"
    pixels = io.read_grey(path).astype(np.float32)
    io.write_png(path, np.clip(pixels * 0.7 + 40, 0, 255).astype(np.uint8))
    report = run_check(tree, CheckOptions(workers=1, alignment=False))
    found = [f for f in report.findings if f.code == "split-leakage"]
    assert [f.related for f in found] == [[f"{T}/image/0101_2_4.png"]]
    assert "correlation" in found[0].message


def test_duplicate_within_a_split_is_a_warning(tree: Path) -> None:
    _copy_pair(tree, f"{T}/0101_1_1", f"{T}/0101_1_5")
    report = run_check(tree, CheckOptions(workers=1))
    found = _leak_findings(report)
    assert [(f.code, f.severity.value, f.path, f.related) for f in found] == [
        ("duplicate", "warning", f"{T}/image/0101_1_5.png", [f"{T}/image/0101_1_1.png"])
    ]
    assert report.ok  # a warning only


def test_sample_copied_into_the_other_split_leaks_its_originals(tree: Path) -> None:
    source = tree / "training" / "0102_training" / "aligned"
    dest = tree / "validation" / "0302_validation" / "aligned"
    for path in sorted(source.rglob("*.png")):
        target = dest / path.relative_to(source).as_posix().replace("0102", "0302")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    report = run_check(tree, CheckOptions(workers=1, alignment=False))
    leaked = {(f.path, tuple(f.related)) for f in report.findings if f.code == "split-leakage"}
    for fov in (1, 2):
        pair = (
            f"validation/0302_validation/aligned/0302_{fov}.png",
            (f"training/0102_training/aligned/0102_{fov}.png",),
        )
        assert pair in leaked


def test_same_sample_id_in_two_splits_is_leakage(tree: Path) -> None:
    shutil.copytree(tree / "training" / "0101_training", tree / "validation" / "0101_validation")
    report = run_check(tree, CheckOptions(workers=1, alignment=False))
    by_folder = [f for f in report.findings if f.code == "split-leakage" and "appears" in f.message]
    assert [f.path for f in by_folder] == ["validation/0101_validation/aligned"]
    assert by_folder[0].related == ["training/0101_training/aligned"]


def test_crop_cut_from_another_splits_original_is_leakage(tree: Path) -> None:
    # Not a copy of any crop: a new box of a training original, filed under validation.
    from datatool.crop import cut

    original = io.read_grey(tree / T / "0101_1.png")
    io.write_png(tree / V / "image" / "0201_1_8.png", cut(original, (70, 90, 128, 128)))
    shutil.copyfile(tree / V / "label" / "0201_1_1.png", tree / V / "label" / "0201_1_8.png")
    report = run_check(tree, CheckOptions(workers=1))
    found = [f for f in report.findings if f.code == "split-leakage"]
    assert [(f.path, f.related) for f in found] == [
        (f"{V}/image/0201_1_8.png", [f"{T}/0101_1.png"])
    ]


# --- fingerprints ---------------------------------------------------------------------------

_IMAGE = synth.make_sample(3, (96, 96), 16.0, 1, strip=0).originals[0]


@pytest.mark.parametrize(
    ("variant", "same"),
    [
        (lambda a: a, True),
        (lambda a: np.clip(a.astype(int) * 0.8 + 30, 0, 255).astype(np.uint8), True),
        (lambda a: a[::2, ::2], True),  # resized
        (lambda a: a[:, ::-1], False),
        (lambda a: synth.make_sample(4, (96, 96), 16.0, 1, strip=0).originals[0], False),
    ],
)
def test_near_identical_pairs_finds_copies_only(variant, same: bool) -> None:
    items = [
        _Item(path=str(i), split=None, **fingerprint(img))
        for i, img in enumerate([_IMAGE, variant(_IMAGE)])
    ]
    assert bool(list(near_identical_pairs(items))) is same


def test_dhash_and_thumbnail_shapes() -> None:
    assert 0 <= dhash(_IMAGE) < 2**64
    thumb = thumbnail(_IMAGE)
    assert thumb.shape == (256,) and thumb.dtype == np.float32
    assert float(thumb @ thumb) == pytest.approx(1.0, abs=1e-5)
    assert not thumbnail(np.full((10, 10), 7, np.uint8)).any()
    with pytest.raises(ValueError, match="2-D"):
        dhash(np.zeros((3, 3, 3)))
