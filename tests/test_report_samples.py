"""The report's sample sections, leakage section and charts (issue 16).

Each sample of a tree gets a thumbnail per field of view (at most 256 px, the
tracing in colour, the crop boxes where the build manifest, ``crops.json`` or
the check put them) and the grain statistics of its tracing; leakage across
splits is kept apart from duplicates inside one split; a count with one value
is a sentence, not a one-bar chart; and a 100-sample report stays a few MB.
"""

from __future__ import annotations

import base64
import io as _io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from datatool import grains, io
from datatool.checks import CheckOptions
from datatool.findings import Finding, Report
from datatool.layout import scan
from datatool.report import plots, samples
from datatool.report.html import _sample_card, render_html
from datatool.report.sections import build_report, single_valued

FAST = CheckOptions(workers=1, alignment=False)
ALIGNED_0101 = Path("training/0101_training/aligned")
ALIGNED_0102 = Path("training/0102_training/aligned")
ALIGNED_0201 = Path("validation/0201_validation/aligned")


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(_io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def _is(rgb: np.ndarray, colour: tuple[int, int, int], tolerance: int = 30) -> np.ndarray:
    return np.all(np.abs(rgb.astype(int) - np.asarray(colour)) <= tolerance, axis=-1)


@pytest.fixture
def lossless(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thumbnails as PNG, so a test can read the drawn colours exactly."""
    monkeypatch.setattr(plots, "encode_thumbnail", io.encode_png)


# --------------------------------------------------------------------------- thumbnails


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((344, 320), (256, 238)), ((768, 1024), (192, 256)), ((100, 60), (100, 60))],
)
def test_thumbnail_is_at_most_256_px_with_the_aspect_ratio(shape, expected) -> None:
    picture = plots.sample_thumbnail(np.full(shape, 128, np.uint8), np.zeros(shape, bool))
    assert picture.shape == (*expected, 3) and max(picture.shape[:2]) <= 256


def test_every_sample_thumbnail_of_a_report_is_at_most_256_px(sample_tree: Path) -> None:
    report, figures = build_report(sample_tree, FAST, samples=0)
    assert [s.id for s in report.samples] == ["0101", "0102", "0201"]
    assert len(figures.samples) == 3
    for section, thumbnails in zip(report.samples, figures.samples, strict=True):
        assert len(thumbnails) == len(section.fields) == 2
        for field, figure in zip(section.fields, thumbnails, strict=True):
            assert figure.mime == "image/jpeg"
            rgb = _decode(figure.png)
            assert max(rgb.shape[:2]) <= 256
            # Same aspect ratio as the micrograph (within a pixel of rounding).
            assert abs(rgb.shape[1] - rgb.shape[0] * field.width / field.height) <= 1
    assert all(f in figures.all() for fs in figures.samples for f in fs)


def test_tracing_is_drawn_in_colour_on_the_grey_micrograph(sample_tree: Path, lossless) -> None:
    layout = scan(sample_tree)
    sample = layout.sample("0101")
    check = Report.build(str(sample_tree), [])
    section, thumbnails = samples.sample_section(layout, sample, check, None)
    rgb = _decode(thumbnails[0][1])
    tracing = io.read_grey(sample_tree / ALIGNED_0101 / "0101_trace.png")
    lines = grains.tracing_boundary(tracing)
    shrunk = plots.thumbnail_shape(lines.shape)
    from datatool.crop import resize_image

    on_lines = resize_image(lines.astype(np.float32), shrunk) > 0.6
    off_lines = resize_image(lines.astype(np.float32), shrunk) == 0
    cyanish = (rgb[..., 2].astype(int) - rgb[..., 0]) > 60
    assert cyanish[on_lines].mean() > 0.9
    assert cyanish[off_lines].mean() < 0.05
    assert section.fields[0].tracing_drawn


# --------------------------------------------------------------------------- boxes


def test_boxes_are_drawn_where_crops_json_says(sample_tree: Path, lossless) -> None:
    plan = sample_tree / ALIGNED_0102 / "crops.json"
    boxes = [[40, 60, 128, 96], [150, 20, 100, 100]]
    plan.write_text(json.dumps({"boxes": boxes}))
    layout = scan(sample_tree)
    check = Report.build(str(sample_tree), [])
    section, thumbnails = samples.sample_section(layout, layout.sample("0102"), check, None)
    assert section.boxes_from == "plan"
    for field in section.fields:  # the strip is at the bottom: plan px = original px
        assert [b.box for b in field.boxes] == boxes and [b.crop for b in field.boxes] == [1, 2]
    rgb = _decode(thumbnails[0][1])
    scale = rgb.shape[1] / section.fields[0].width
    yellow = _is(rgb, plots.BOX_COLOUR, 40)
    for left, top, width, height in boxes:
        x0, y0 = round(left * scale), round(top * scale)
        x1, y1 = round((left + width) * scale) - 1, round((top + height) * scale) - 1
        # The right and bottom edges are the box's outline (the number sits top-left).
        assert yellow[y0 + 12 : y1, x1].mean() > 0.8
        assert yellow[y1, x0 + 12 : x1].mean() > 0.8
    # Nothing yellow far from every outline.
    assert not yellow[round(200 * scale) :, round(260 * scale) :].any()


def test_boxes_of_a_crop_with_findings_are_red(sample_tree: Path, lossless) -> None:
    layout = scan(sample_tree)
    bad = str(ALIGNED_0101 / "label" / "0101_1_2.png")
    finding = Finding(
        severity="error", code="misaligned", check="alignment", path=bad, message="off"
    )
    check = Report.build(str(sample_tree), [finding])
    section, thumbnails = samples.sample_section(layout, layout.sample("0101"), check, None)
    flagged = [(f.fov, b.crop) for f in section.fields for b in f.boxes if b.flagged]
    assert flagged == [(1, 2)] and section.flagged_pairs == 1 and section.codes == ["misaligned"]
    first, second = (_decode(t[1]) for t in thumbnails)
    assert _is(first, plots.FLAGGED_BOX_COLOUR).sum() > 100
    assert not _is(second, plots.FLAGGED_BOX_COLOUR).any()


def test_boxes_come_from_the_build_manifest_then_the_located_crops(sample_tree: Path) -> None:
    from datatool.build import BuildOptions, build

    build(sample_tree, BuildOptions())
    report, _ = build_report(sample_tree, FAST, samples=0)
    assert {s.boxes_from for s in report.samples} == {"manifest"}
    plan = json.loads((sample_tree / ALIGNED_0201 / "crops.json").read_text())["boxes"]
    assert [b.box for b in report.samples[2].fields[1].boxes] == plan

    (sample_tree / "manifest.json").unlink()
    for aligned in (ALIGNED_0101, ALIGNED_0102, ALIGNED_0201):
        (sample_tree / aligned / "crops.json").unlink()
    report, _ = build_report(sample_tree, CheckOptions(workers=1), samples=0)
    assert {s.boxes_from for s in report.samples} == {"located"}
    assert [b.box for b in report.samples[2].fields[1].boxes] == plan


# --------------------------------------------------------------------------- grains


def test_sample_grains_are_the_tracings_without_the_strip(sample_tree: Path) -> None:
    report, figures = build_report(sample_tree, FAST, samples=0)
    tracing = io.read_grey(sample_tree / ALIGNED_0201 / "0201_trace.png")
    direct = grains.grain_stats(grains.tracing_boundary(tracing)[:-24])  # 24-px strip
    measured = report.samples[2].grains
    assert measured is not None and measured.grains == direct.grains > 20
    assert measured.mean_intercept_px == pytest.approx(direct.mean_intercept_px)
    assert measured.open_ends == direct.open_ends
    assert measured.boundary_fraction == pytest.approx(direct.boundary_fraction)
    html = render_html(report, figures)
    card = html[html.index("id='sample-validation-0201'") : html.index("id='pictures'")]
    assert f"{measured.grains} complete grains" in card
    assert f"boundary fraction {measured.boundary_fraction:.1%}" in card


def test_a_flat_set_has_no_sample_section(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    for role in ("image", "label"):
        shutil.copytree(Path(__file__).parents[1] / "fixtures/training_validation_data" /
                        ALIGNED_0101 / role, flat / role)  # fmt: skip
    report, figures = build_report(flat, FAST, samples=0)
    assert report.samples == [] and figures.samples == []
    assert "A flat set: no originals" in render_html(report, figures)


# --------------------------------------------------------------------------- leakage


def _leaky_tree(tree: Path) -> Path:
    """A duplicate inside training (0101_1_2 copied into 0102) and a validation crop in training."""
    for src, name, dst in (
        (ALIGNED_0101, "0101_1_2", "0102_1_5"),
        (ALIGNED_0201, "0201_1_1", "0102_2_5"),
    ):
        for role in ("image", "label"):
            shutil.copy(
                tree / src / role / f"{name}.png", tree / ALIGNED_0102 / role / f"{dst}.png"
            )
    return tree


def test_leakage_across_splits_is_apart_from_duplicates_inside_one(sample_tree: Path) -> None:
    report, figures = build_report(_leaky_tree(sample_tree), FAST, samples=0)
    leak = report.leakage
    assert [f.code for f in leak.within_split] == ["duplicate"]
    assert {f.code for f in leak.across_splits} == {"split-leakage"}
    duplicate = leak.within_split[0]
    assert {duplicate.path, *duplicate.related} == {
        str(ALIGNED_0102 / "image/0102_1_5.png"),
        str(ALIGNED_0101 / "image/0101_1_2.png"),
    }
    across = {p for f in leak.across_splits for p in (f.path, *f.related)}
    assert str(ALIGNED_0201 / "image/0201_1_1.png") in across
    assert str(ALIGNED_0101 / "image/0101_1_2.png") not in across
    html = render_html(report, figures)
    section = html[html.index("id='leakage'") : html.index("id='composition'")]
    across_part, within_part = section.split("<h3>Inside one split</h3>")
    assert "0201_1_1.png" in across_part and "0102_1_5.png" not in across_part
    assert "0102_1_5.png" in within_part and "0201_1_1.png" not in within_part
    # In the findings list too, the two are separate groups with their own names.
    findings = html[: html.index("id='leakage'")]
    assert "leakage across splits · 1 finding(s)" in findings
    assert "duplicates inside one split · 1 finding(s)" in findings


def test_a_duplicate_whose_copy_is_in_another_split_counts_as_leakage(sample_tree: Path) -> None:
    layout = scan(sample_tree)
    copy = Finding(
        severity="warning",
        code="duplicate",
        check="leakage",
        path=str(ALIGNED_0101 / "image/0101_1_1.png"),
        message="copy",
        related=[str(ALIGNED_0201 / "image/0201_1_1.png")],
    )
    same = copy.model_copy(update={"related": [str(ALIGNED_0102 / "image/0102_1_1.png")]})
    section = samples.leakage_section(Report.build(str(sample_tree), [copy, same]), layout)
    assert section.across_splits == [copy] and section.within_split == [same]


# --------------------------------------------------------------------------- charts


def test_no_one_bar_chart(sample_tree: Path) -> None:
    shutil.rmtree(sample_tree / "validation")
    report, figures = build_report(sample_tree, FAST, samples=0)
    titles = [f.title for f in figures.composition]
    # One split, one crop size, one line width: sentences, not charts.
    assert "Pairs per split" not in titles and "Image crop sizes" not in titles
    assert "Label line width" not in titles
    # Bars of one height compare nothing either: 8 pairs for each sample and field of view.
    assert "Pairs per sample" not in titles and "Pairs per field of view" not in titles
    assert "Complete grains per crop" in titles  # values that differ are charted
    sentences = single_valued(report.composition)
    assert "split training for all 16 pairs" in sentences
    assert "image crop size 128x128 px for all 16 pairs" in sentences
    assert "8 pairs per sample, for each of the 2" in sentences
    assert "Not charted (nothing to compare)" in render_html(report, figures)


@pytest.mark.parametrize(
    ("counts", "worth"), [([], False), ([5], False), ([0, 7, 0], False), ([1, 1], True)]
)
def test_worth_a_chart(counts: list[int], worth: bool) -> None:
    assert plots.worth_a_chart(counts) is worth


# --------------------------------------------------------------------------- size


def test_a_hundred_samples_of_noisy_1024_px_micrographs_stay_a_few_mb(tmp_path: Path) -> None:
    from datatool.synth import write_tree

    write_tree(tmp_path / "t", {"0001": "training"}, size=(768, 1024), grain_px=40.0, crop=256)
    layout = scan(tmp_path / "t")
    check = Report.build(str(layout.root), [])
    section, thumbnails = samples.sample_section(layout, layout.samples[0], check, None)
    for _, data, _ in thumbnails:
        assert max(_decode(data).shape[:2]) == 256
        assert len(data) < 24_000, "a 256-px thumbnail of a noisy micrograph"
    from datatool.report.sections import Figure

    card = _sample_card(section, [Figure(*t) for t in thumbnails], {})
    assert re.search(r'src="data:image/jpeg;base64,', card)
    assert base64.b64decode(re.findall(r"base64,([^\"]+)", card)[0]) == thumbnails[0][1]
    # Two fields of view per sample: 100 samples under 6 MB of HTML.
    assert 100 * len(card.encode()) < 6_000_000
