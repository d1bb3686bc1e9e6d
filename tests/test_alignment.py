"""Alignment by pixels: locate crops, measure label offsets, wrong pairing, resized crops."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datatool import align, io, labels, synth
from datatool.check import run_check
from datatool.checks import CheckOptions
from datatool.crop import cut, resize_image

STRIP = 24  # the fixture's scale-bar strip (synth.write_tree)


def _aligned(tree: Path, sample_id: str) -> Path:
    split = synth.FIXTURE_SAMPLES[sample_id]
    return tree / split / f"{sample_id}_{split}" / "aligned"


def _processed_tracing(folder: Path, sample_id: str) -> np.ndarray:
    tracing = io.read_grey(folder / f"{sample_id}_trace.png")
    return labels.process_tracing(tracing[: tracing.shape[0] - STRIP], 3)


def _recut(tree: Path, stem: str, box: tuple, label_shift=(0, 0)) -> tuple[str, str]:
    """Rewrite pair ``stem`` as image cut at ``box``, label at ``box`` moved by ``label_shift``."""
    sample_id, fov, _ = stem.split("_")
    folder = _aligned(tree, sample_id)
    original = io.read_grey(folder / f"{sample_id}_{fov}.png")
    left, top, w, h = box
    label_box = (left + label_shift[0], top + label_shift[1], w, h)
    io.write_png(folder / "image" / f"{stem}.png", cut(original, box))
    io.write_png(
        folder / "label" / f"{stem}.png", cut(_processed_tracing(folder, sample_id), label_box)
    )
    rel = folder.relative_to(tree).as_posix()
    return f"{rel}/image/{stem}.png", f"{rel}/label/{stem}.png"


def _check(tree: Path, **options):
    return run_check(tree, CheckOptions(workers=1, **options))


def _codes(report, path: str) -> list[str]:
    return sorted(f.code for f in report.findings if f.path == path)


def test_clean_fixture_is_aligned_at_its_plan_boxes(tree: Path) -> None:
    report = _check(tree)
    assert report.ok, [f.message for f in report.errors()]
    assert not [f for f in report.findings if f.check == "alignment"]
    plan = json.loads((_aligned(tree, "0101") / "crops.json").read_text())["boxes"]
    for stats in report.pairs:
        assert stats.offset == [0.0, 0.0], stats
        assert stats.box == plan[stats.crop - 1], stats


def test_plan_boxes_confirmed_by_pixels_spare_the_search(
    tree: Path, tmp_path: Path, monkeypatch
) -> None:
    """Crops that are exact copies of their planned boxes need no search, same results."""
    unplanned = tmp_path / "unplanned"
    shutil.copytree(tree, unplanned)
    for plan in unplanned.rglob("crops.json"):
        plan.unlink()
    searched = _check(unplanned)

    def no_search(self, template, **kwargs):
        raise AssertionError("searched although the plan's box holds the crop")

    monkeypatch.setattr(align.SearchImage, "locate", no_search)
    planned = _check(tree)
    assert planned.ok and searched.ok
    assert [(p.box, p.offset) for p in planned.pairs] == [(p.box, p.offset) for p in searched.pairs]
    assert [f for f in planned.findings if f.check == "alignment"] == []


def test_hand_cut_crops_are_searched_once_per_box(tree: Path, monkeypatch) -> None:
    """Without a plan, crop m of field of view 2 is first tried where crop m of view 1 was."""
    for plan in tree.rglob("crops.json"):
        plan.unlink()
    searched = []
    real = align.SearchImage.locate

    def counting(self, template, **kwargs):
        searched.append(template.shape)
        return real(self, template, **kwargs)

    monkeypatch.setattr(align.SearchImage, "locate", counting)
    report = _check(tree)
    assert report.ok, [f.message for f in report.errors()]
    fovs = {(p.sample, p.crop) for p in report.pairs}
    assert len(searched) == len(fovs) < len(report.pairs)  # one search per box, not per crop
    boxes = {}
    for stats in report.pairs:  # and every field of view's crop m is at the same box
        assert boxes.setdefault((stats.sample, stats.crop), stats.box) == stats.box


@pytest.mark.parametrize(
    "plan", ['{"boxes": [["a", 0, 128, 128], [0.5, 2, 128, 128]]}', "{not json", '{"boxes": 3}']
)
def test_a_malformed_plan_is_no_hint_and_no_crash(tree: Path, plan: str) -> None:
    """The check reads plans tolerantly: the crops are searched for, boxes as without a plan."""
    before = [(p.box, p.offset) for p in _check(tree).pairs]
    (_aligned(tree, "0101") / "crops.json").write_text(plan)
    report = _check(tree)
    assert [(p.box, p.offset) for p in report.pairs] == before
    assert not [f for f in report.findings if f.check == "alignment"]


def test_a_crop_recut_off_its_plan_box_is_found_where_it_is(tree: Path) -> None:
    image_rel, label_rel = _recut(tree, "0101_1_3", (37, 51, 128, 128))
    report = _check(tree)
    assert report.ok, [f.message for f in report.errors()]
    stats = next(s for s in report.pairs if s.image == image_rel)
    assert stats.box == [37, 51, 128, 128] and stats.offset == [0.0, 0.0]


@pytest.mark.parametrize("shift", [(3, 0), (0, -2), (-4, 5), (2, 2), (-9, 0), (13, -11)])
def test_shifted_label_is_misaligned_by_exactly_its_shift(tree: Path, shift) -> None:
    image_rel, label_rel = _recut(tree, "0101_1_2", (96, 80, 128, 128), label_shift=shift)
    report = _check(tree)
    found = [f for f in report.findings if f.code == "misaligned"]
    assert [f.path for f in found] == [label_rel]
    assert found[0].measured == [float(shift[0]), float(shift[1])]
    assert f"({shift[0]:+d}, {shift[1]:+d})" in found[0].message
    stats = next(s for s in report.pairs if s.label == label_rel)
    assert stats.offset == [float(shift[0]), float(shift[1])]
    assert stats.box == [96, 80, 128, 128]
    # The other pairs stay clean.
    assert {f.path for f in report.errors()} == {label_rel}


def test_offset_within_tolerance_is_measured_but_accepted(tree: Path) -> None:
    _, label_rel = _recut(tree, "0102_2_3", (60, 100, 128, 128), label_shift=(1, -1))
    report = _check(tree)
    assert report.ok
    stats = next(s for s in report.pairs if s.label == label_rel)
    assert stats.offset == [1.0, -1.0]
    strict = _check(tree, max_offset=0.5)
    assert _codes(strict, label_rel) == ["misaligned"]


def test_label_from_another_sample_is_wrong_pairing(tree: Path) -> None:
    own = _aligned(tree, "0101") / "label" / "0101_1_2.png"
    shutil.copyfile(_aligned(tree, "0102") / "label" / "0102_1_2.png", own)
    label_rel = own.relative_to(tree).as_posix()
    report = _check(tree)
    found = [f for f in report.findings if f.code == "wrong-pairing"]
    assert [f.path for f in found] == [label_rel]
    assert found[0].related == ["training/0102_training/aligned/0102_trace.png"]
    assert "misaligned" not in _codes(report, label_rel)
    assert {f.path for f in report.errors()} == {label_rel}


def test_label_matching_no_tracing_is_wrong_pairing(tree: Path) -> None:
    # Lines of a sample that is in no tracing of the tree.
    stranger = synth.make_sample(77, (200, 200), 20.0, 1, strip=0)
    label = _aligned(tree, "0201") / "label" / "0201_2_4.png"
    io.write_png(label, labels.process_tracing(stranger.tracing, 3)[:128, :128])
    report = _check(tree)
    found = [f for f in report.findings if f.path == label.relative_to(tree).as_posix()]
    assert [f.code for f in found if f.severity.value == "error"] == ["wrong-pairing"]


def test_image_from_another_field_of_view_is_not_found(tree: Path) -> None:
    folder = _aligned(tree, "0101")
    shutil.copyfile(folder / "image" / "0101_2_1.png", folder / "image" / "0101_1_1.png")
    report = _check(tree)
    rel = "training/0101_training/aligned/image/0101_1_1.png"
    found = [f for f in report.findings if f.path == rel]
    assert [f.code for f in found] == ["not-found"]
    assert found[0].related == ["training/0101_training/aligned/0101_2.png"]
    assert found[0].measured < 0.9


def test_resized_pair_is_a_warning_with_its_scale(tree: Path) -> None:
    folder = _aligned(tree, "0201")
    box = (40, 60, 192, 192)
    original = io.read_grey(folder / "0201_1.png")
    image = np.clip(np.round(resize_image(cut(original, box), (128, 128))), 0, 255)
    label = labels.resize_label(cut(_processed_tracing(folder, "0201"), box), (128, 128), 3)
    io.write_png(folder / "image" / "0201_1_3.png", image.astype(np.uint8))
    io.write_png(folder / "label" / "0201_1_3.png", label)
    report = _check(tree)
    rel = "validation/0201_validation/aligned/image/0201_1_3.png"
    found = [f for f in report.findings if f.code == "resized"]
    assert [f.path for f in found] == [rel]
    assert found[0].measured == pytest.approx(128 / 192, abs=0.01)
    assert found[0].severity.value == "warning"
    assert report.ok, [f.message for f in report.errors()]
    stats = next(s for s in report.pairs if s.image == rel)
    assert stats.box[:2] == pytest.approx([40, 60], abs=2)
    assert max(abs(v) for v in stats.offset) <= 1.0


def test_fast_mode_skips_alignment(tree: Path) -> None:
    _recut(tree, "0101_1_2", (96, 80, 128, 128), label_shift=(5, 0))
    report = _check(tree, alignment=False)
    assert "misaligned" not in report.summary.by_code
    assert all(s.offset is None for s in report.pairs)


def test_parallel_run_gives_the_same_findings(tree: Path) -> None:
    _recut(tree, "0102_1_1", (30, 30, 128, 128), label_shift=(0, 4))
    serial = run_check(tree, CheckOptions(workers=1))
    parallel = run_check(tree, CheckOptions(workers=2))
    assert serial.findings == parallel.findings
    assert [s.offset for s in serial.pairs] == [s.offset for s in parallel.pairs]


# --- the pure search functions -------------------------------------------------------------

_SAMPLE = synth.make_sample(11, (300, 260), 24.0, 1, strip=0).originals[0]


@settings(max_examples=25, deadline=None)
@given(
    left=st.integers(0, 260 - 40),
    top=st.integers(0, 300 - 40),
    width=st.integers(40, 160),
    height=st.integers(40, 160),
)
def test_crop_then_locate_gives_the_box_back(left: int, top: int, width: int, height: int) -> None:
    width, height = min(width, 260 - left), min(height, 300 - top)
    match = align.locate(_SAMPLE, cut(_SAMPLE, (left, top, width, height)))
    assert match.box == (left, top, width, height)
    assert match.score > 0.999


def test_locate_scaled_recovers_scale_and_box() -> None:
    search = align.SearchImage(_SAMPLE)
    shrunk = resize_image(cut(_SAMPLE, (50, 70, 150, 150)), (100, 100))
    match = search.locate_scaled(shrunk)
    assert match.scale == pytest.approx(100 / 150, abs=0.01)
    assert match.box[0] == pytest.approx(50, abs=2) and match.box[1] == pytest.approx(70, abs=2)
    assert match.score > 0.9


def test_ncc_map_is_one_at_the_cut_and_zero_on_flat() -> None:
    out = align.ncc_map(_SAMPLE, _SAMPLE[10:50, 20:70])
    assert out.shape == (300 - 40 + 1, 260 - 50 + 1)
    assert np.unravel_index(out.argmax(), out.shape) == (10, 20)
    assert align.ncc_map(np.zeros((20, 20)), np.ones((5, 5))).max() == 0.0


@pytest.mark.parametrize(
    ("image", "template", "message"),
    [
        (np.zeros((10, 10)), np.zeros((11, 3)), "larger than image"),
        (np.zeros((10,)), np.zeros((3, 3)), "2-D"),
    ],
)
def test_ncc_map_rejects_bad_shapes(image, template, message) -> None:
    with pytest.raises(ValueError, match=message):
        align.ncc_map(image, template)


def test_box_offset_sign_convention() -> None:
    assert align.box_offset((13, 20, 64, 64), (10, 20, 64, 64)) == (3, 0)


# --- manifest fast path --------------------------------------------------------------------


def _write_manifest(tree: Path) -> dict:
    """A minimal ``kind: build`` manifest describing the fixture's crops as they are."""
    entries = []
    for sample_id in synth.FIXTURE_SAMPLES:
        folder = _aligned(tree, sample_id)
        boxes = json.loads((folder / "crops.json").read_text())["boxes"]
        for path in sorted(folder.glob("*/*.png")):
            _, fov, m = path.stem.split("_")
            entries.append(
                {
                    "output": path.relative_to(tree).as_posix(),
                    "role": path.parent.name,
                    "box": boxes[int(m) - 1],
                    "border": {"top": 0, "bottom": STRIP, "left": 0, "right": 0},
                    "output_sha256": io.sha256_file(path),
                    "width": 128,
                    "height": 128,
                }
            )
    manifest = {"kind": "build", "tool_version": "test", "entries": entries}
    (tree / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def _unverified_stem() -> str:
    from datatool.checks.alignment import _verify_by_pixels

    for stem in ("0101_1_2", "0101_1_3", "0101_1_4", "0101_2_2", "0101_2_3"):
        if not _verify_by_pixels(synth_pair_entry(stem)):
            return stem
    raise AssertionError("no unverified stem")


def synth_pair_entry(stem: str):
    from datatool.checks import PairData
    from datatool.findings import PairStats
    from datatool.layout import PairEntry

    sample_id, fov, m = stem.split("_")
    entry = PairEntry(
        name=stem, image=None, label=None, sample_id=sample_id, fov=int(fov), crop=int(m)
    )
    return PairData(entry=entry, image=None, label=None, stats=PairStats(image=None, label=None))


def test_manifest_fast_path_trusts_unchanged_files(tree: Path) -> None:
    manifest = _write_manifest(tree)
    assert _check(tree).ok
    stem = _unverified_stem()
    label_rel = f"training/0101_training/aligned/label/{stem}.png"
    entry = next(e for e in manifest["entries"] if e["output"] == label_rel)
    entry["box"] = [entry["box"][0] + 2, entry["box"][1], 128, 128]
    (tree / "manifest.json").write_text(json.dumps(manifest))
    report = _check(tree)
    found = [f for f in report.findings if f.code == "misaligned"]
    # The pixels are aligned: only the (trusted) manifest says +2, so the fast path was taken.
    assert [(f.path, f.measured) for f in found] == [(label_rel, [2.0, 0.0])]
    assert "manifest.json" in found[0].message


def test_manifest_fast_path_rechecks_edited_files_and_verifies_a_sample(tree: Path) -> None:
    manifest = _write_manifest(tree)
    stem = _unverified_stem()
    _, label_rel = _recut(tree, stem, (96, 80, 128, 128), label_shift=(0, 3))
    report = _check(tree)
    # The edited pair no longer matches its sha256: proven by pixels, box and offset measured.
    found = [f for f in report.findings if f.code == "misaligned"]
    assert [(f.path, f.measured) for f in found] == [(label_rel, [0.0, 3.0])]
    # A verified pair whose recorded box is wrong is caught by the pixel re-check.
    verified = "training/0102_training/aligned/image/0102_1_1.png"
    entry = next(e for e in manifest["entries"] if e["output"] == verified)
    entry["box"] = [50, 50, 128, 128]
    (tree / "manifest.json").write_text(json.dumps(manifest))
    report = _check(tree)
    assert [f.path for f in report.findings if f.code == "manifest-mismatch"] == [verified]


@pytest.mark.parametrize(
    ("shape", "template"),
    [((280, 280), (256, 256)), ((100, 120), (30, 20)), ((50, 50), (50, 50)), ((1, 7), (1, 1))],
)
def test_window_sums_are_the_integral_images(shape, template) -> None:
    """The sliding sums of a search window equal the integral images' box sums, exactly."""
    rng = np.random.default_rng(sum(shape))
    h, w = template
    size = (shape[0] - h + 1, shape[1] - w + 1, h, w)
    grey = (rng.random(shape) * 255).round().astype(np.float32)
    for image in (grey, (grey > 200).astype(np.float32)):
        expected = align._window_sums(align._integrals(image), 0, 0, size)
        got = align._valid_sums(image, h, w)
        assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])


def _zhang_suen_tree(root: Path, line_width: int) -> Path:
    """Two samples of GIMP-like 9 px strokes whose labels an older datatool made.

    Their centre lines come from skimage's skeletonize (Zhang-Suen), not from the
    labels' Guo-Hall thinning the check now uses: a pixel apart in places.
    """
    from scipy import ndimage as ndi

    from datatool import layout

    size, crop = (512, 512), 256
    boxes = synth.grid_boxes(size, crop, 4)
    for i, (sid, split) in enumerate((("0301", "training"), ("0302", "validation"))):
        sample = synth.make_sample(20 + i, size, 30.0, 2)
        ink = ndi.gaussian_filter(ndi.binary_dilation(sample.boundaries, iterations=4) * 1.0, 0.9)
        tracing = np.clip(np.round(255 * (1 - 1.6 * ink)), 0, 255).astype(np.uint8)
        tracing = np.vstack([tracing, np.full((STRIP, size[1]), 255, np.uint8)])
        folder = root / split / layout.sample_folder(sid, split) / layout.ALIGNED_DIR
        old_lines = labels.skeleton(labels.line_mask(tracing[: size[0]]))
        label = labels.dilate_to_width(old_lines, line_width)
        synth.write_sample(folder, sid, sample.originals, tracing, label, boxes)
    return root


@pytest.mark.parametrize("line_width", [1, 2])
def test_thin_labels_of_another_thinning_still_pass(
    tmp_path: Path, monkeypatch, line_width
) -> None:
    """1-2 px labels thinned by Zhang-Suen are compared 1 px wider when they match poorly."""
    from datatool.checks import alignment

    root = _zhang_suen_tree(tmp_path / "tree", line_width)
    options = CheckOptions(workers=1, line_width=line_width)
    report = run_check(root, options)
    assert report.ok, [f.message for f in report.errors()]
    # A 2 px line has no centre pixel: its label is placed within a pixel (as it always was).
    limit = 0.0 if line_width == 1 else 1.0
    assert all(max(abs(v) for v in p.offset) <= limit for p in report.pairs)
    monkeypatch.setattr(alignment, "THIN_LABEL_WIDTH", 0)  # without the wider comparison
    assert "wrong-pairing" in {f.code for f in run_check(root, options).errors()}
