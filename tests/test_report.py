"""The quality report: data, pictures, HTML, Markdown, JSON schema and the CLI.

The report is built once per module on the sample data with one label cut a
few px off its image's box and with tiny demo checkpoints, so every test reads
the same report (the check and the sweep run once).
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

from datatool import io
from datatool.checks import CheckOptions
from datatool.crop import cut
from datatool.evaluate.reporting import build_report
from datatool.labels import process_tracing
from datatool.report import write_report
from datatool.report.plots import label_overlay, shift_mask
from tests.conftest import FIXTURE_TREE, REPO

SCHEMA = REPO / "schemas" / "quality-report.schema.json"

#: The injected defect: label of 0101_1_1 (box (0, 0, 128, 128)) cut at box + OFFSET.
DEFECT_NAME = "0101_1_1"
DEFECT_LABEL = "training/0101_training/aligned/label/0101_1_1.png"
DEFECT_BOX = (0, 0, 128, 128)
OFFSET = (4, 3)
RESOLUTION = 64


def inject_misaligned_label(tree: Path, offset: tuple[int, int] = OFFSET) -> Path:
    """Re-cut one label from the processed tracing at its image's box moved by ``offset``."""
    aligned = tree / "training" / "0101_training" / "aligned"
    tracing = io.read_grey(aligned / "0101_trace.png")
    original = io.read_grey(aligned / "0101_1.png")
    height = original.shape[0] - 24  # the synthetic scale-bar strip
    label_full = process_tracing(tracing[:height], 3)
    left, top, width, h = DEFECT_BOX
    io.write_png(
        tree / DEFECT_LABEL, cut(label_full, (left + offset[0], top + offset[1], width, h))
    )
    return tree


def copy_fixture(dest: Path) -> Path:
    shutil.copytree(FIXTURE_TREE, dest)
    return dest


def train_checkpoints(out: Path) -> Path:
    """Tiny seeded training on the fixture's training split: 3 checkpoints in seconds."""
    from datatool.torch.train import TrainConfig, train_from_dataset

    config = TrainConfig(base_width=4, epochs=2, resolution=RESOLUTION, save_every=1, seed=0)
    train_from_dataset(FIXTURE_TREE, out, config, split="training")
    return out


def sweep_options():
    from datatool.evaluate.sweep import SweepOptions

    return SweepOptions(resolution=RESOLUTION, device="cpu")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """(report, figures, html path, json path, markdown path) of the defect tree."""
    base = tmp_path_factory.mktemp("report")
    tree = inject_misaligned_label(copy_fixture(base / "training_validation_data"))
    checkpoints = train_checkpoints(base / "checkpoints")
    report, figures = build_report(
        tree,
        CheckOptions(workers=1),
        samples=3,
        seed=0,
        checkpoints=checkpoints,
        sweep_options=sweep_options(),
    )
    paths = write_report(
        report,
        figures,
        base / "report.html",
        json_path=base / "report.json",
        markdown_path=base / "report.md",
    )
    return report, figures, *paths


def _data_uris(html: str) -> list[bytes]:
    found = re.findall(r'src="data:image/(?:png|jpeg);base64,([^"]+)"', html)
    return [base64.b64decode(m) for m in found]


# --------------------------------------------------------------------------- data


def test_json_validates_against_exported_schema(built) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    _, _, _, json_path, _ = built
    document = json.loads(json_path.read_text())
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator(schema).validate(document)
    assert document["kind"] == "quality-report"
    assert document["models"]["sweep"]["means"], "the sweep's rows are in the JSON"


def test_exported_schema_is_current() -> None:
    from datatool.report.model import QualityReport

    on_disk = json.loads(SCHEMA.read_text())
    on_disk.pop("$schema", None)
    assert on_disk == json.loads(json.dumps(QualityReport.model_json_schema()))


def test_json_check_part_is_the_check_report(built, tmp_path: Path) -> None:
    from datatool.check import run_check

    report, *_ = built
    again = run_check(report.check.root, CheckOptions(workers=1))
    assert [f.model_dump() for f in report.check.findings] == [
        f.model_dump() for f in again.findings
    ]


def test_misaligned_pair_is_pictured_first_with_its_offset(built) -> None:
    report, figures, *_ = built
    assert not report.check.ok
    first = report.pictures[0]
    assert first.name == DEFECT_NAME
    assert first.misaligned and first.flagged and "misaligned" in first.codes
    assert first.offset == pytest.approx(list(OFFSET), abs=0.6)
    # The label as stored, then the label moved by the offset found.
    assert len(figures.pairs[0]) == 2
    assert "moved" in figures.pairs[0][1].title


def test_moving_the_label_by_the_offset_found_makes_it_fit(built) -> None:
    """The green picture's label is the correctly cut label (sign of the offset)."""
    report, _, *_ = built
    root = Path(report.check.root)
    stored = io.read_truth(root / DEFECT_LABEL)
    dx, dy = report.pictures[0].offset
    moved = shift_mask(stored, dx, dy)
    aligned = root / "training" / "0101_training" / "aligned"
    truth = cut(process_tracing(io.read_grey(aligned / "0101_trace.png")[:320], 3), DEFECT_BOX)
    inner = (slice(8, -8), slice(8, -8))  # the moved label is empty where it was cut off
    assert np.array_equal(moved[inner], truth[inner])
    assert not np.array_equal(stored[inner], truth[inner])


def test_clean_pairs_follow_flagged_ones_and_are_reproducible(built) -> None:
    from datatool.report.sections import choose_pictures

    report, *_ = built
    flags = [p.flagged for p in report.pictures]
    assert flags == sorted(flags, reverse=True), "flagged pairs come first"
    assert sum(not f for f in flags) == 3
    again, left_out = choose_pictures(report.check, 3, 0, 100)
    assert again == report.pictures and left_out == 0
    other, _ = choose_pictures(report.check, 3, 1, 100)
    assert [p.name for p in other if not p.flagged] != [
        p.name for p in report.pictures if not p.flagged
    ]
    capped, left_out = choose_pictures(report.check, 0, 0, 0)
    assert capped == [] and left_out == sum(flags)


def test_composition_comes_from_the_check_stats(built) -> None:
    report, *_ = built
    c = report.composition
    stats = report.check.pairs
    assert c.pairs == len(stats) == 24
    assert c.per_split == {"training": 16, "validation": 8}
    assert c.per_sample == {"0101": 8, "0102": 8, "0201": 8}
    assert c.per_fov == {"1": 12, "2": 12}
    assert c.image_sizes == {"128x128": 24}
    assert sum(c.grains.counts) == c.grains.measured == sum(p.grains is not None for p in stats)
    assert c.below_guideline == sum(p.grains is not None and p.grains < 5 for p in stats)
    assert c.line_width.median == pytest.approx(
        float(np.median([p.line_width for p in stats if p.line_width is not None]))
    )
    assert c.per_source == {} and report.lineage is None


def test_models_section_has_first_and_last_epoch_overlays(built) -> None:
    report, figures, *_ = built
    models = report.models
    assert [m.epoch for m in models.sweep.means] == [0, 1, 2]
    assert models.split == "validation" and models.overlay_epochs == [0, 2]
    assert figures.loss_vs_epoch is not None
    assert list(figures.model_overlays) == models.overlay_images
    for by_epoch in figures.model_overlays.values():
        assert sorted(by_epoch) == [0, 2] and all(len(v) == 2 for v in by_epoch.values())


# --------------------------------------------------------------------------- renderings


def test_html_is_self_contained_and_shows_verdict_and_defect_first(built) -> None:
    from PIL import Image

    report, figures, html_path, *_ = built
    html = html_path.read_text()
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)="(https?:)?//', html), "no network resource"
    assert ">FAIL<" in html
    images = _data_uris(html)
    assert len(images) == len(figures.all()) == html.count("<img ")
    for data in images:
        with Image.open(_io.BytesIO(data)) as img:
            img.load()
            assert img.width > 0 and img.height > 0
    pictures = html[html.index("id='pictures'") :]
    first_card = pictures[pictures.index("<div class='pair") :]
    assert first_card.index(DEFECT_NAME) < first_card.index("</div>")
    assert "offset (dx, dy) = (+4, +3) px" in first_card.split("</h3>")[1][:400]
    assert "id='models'" in html and "Loss vs epoch" in html
    # Findings: errors first, grouped by check.
    assert html.index("misaligned") < html.index("id='composition'")


def test_html_escapes_text(built) -> None:
    from datatool.report.html import render_html

    report, figures, *_ = built
    hostile = report.model_copy(deep=True)
    hostile.check.findings[0].message = "<script>alert(1)</script>"
    html = render_html(hostile, figures)
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_markdown_summary_has_verdict_and_counts(built) -> None:
    report, _, _, _, md_path = built
    text = md_path.read_text()
    s = report.check.summary
    assert text.startswith("## Dataset quality report: FAIL")
    assert f"**{s.errors} error(s)**" in text and f"**{s.warnings} warning(s)**" in text
    assert DEFECT_LABEL in text
    assert "| epoch |" in text


# --------------------------------------------------------------------------- CLI


def test_cli_exit_code_follows_the_verdict(run_cli, tmp_path: Path) -> None:
    clean = copy_fixture(tmp_path / "clean")
    code, out, _ = run_cli(
        "report",
        clean,
        "--out",
        tmp_path / "clean.html",
        "--fast",
        "--workers",
        "1",
        "--json",
        tmp_path / "clean.json",
    )
    assert code == 0, out
    assert "PASS" in out and (tmp_path / "clean.html").is_file()
    assert json.loads((tmp_path / "clean.json").read_text())["check"]["ok"] is True
    bad = copy_fixture(tmp_path / "bad")
    (bad / DEFECT_LABEL).write_bytes(b"")  # unreadable: an error even with --fast
    code, out, _ = run_cli(
        "report", bad, "--out", tmp_path / "bad.html", "--fast", "--workers", "1"
    )
    assert code == 1
    assert "FAIL" in out and DEFECT_LABEL in (tmp_path / "bad.html").read_text()


def test_cli_with_checkpoints_writes_what_the_library_computes(run_cli, built) -> None:
    report, _, html_path, *_ = built
    out = html_path.parent / "cli"
    code, stdout, _ = run_cli(
        "report", report.check.root, "--out", out / "r.html", "--json", out / "r.json",
        "--markdown", out / "r.md", "--checkpoints", html_path.parent / "checkpoints",
        "--resolution", RESOLUTION, "--device", "cpu", "--samples", 3, "--workers", 1,
    )  # fmt: skip
    assert code == 1, stdout  # the misaligned label fails the check; the report is written
    data = json.loads((out / "r.json").read_text())
    assert data["check"]["findings"] == report.check.model_dump(mode="json")["findings"]
    assert data["pictures"] == [p.model_dump(mode="json") for p in report.pictures]
    assert data["models"]["sweep"]["means"] == [
        m.model_dump(mode="json") for m in report.models.sweep.means
    ]
    assert "Loss vs epoch" in (out / "r.html").read_text()
    assert (out / "r.md").read_text().startswith("## Dataset quality report: FAIL")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--checkpoints", "{tmp}/none"], "checkpoint not found"),
        (["--checkpoints", "{ck}", "--resolution", "50"], "multiple of 16"),
        (["--checkpoints", "{ck}", "--resolution", "64", "--eval-split", "test"], "no such split"),
    ],
)
def test_cli_bad_model_options_fail_before_the_check(
    run_cli, built, tmp_path: Path, options: list[str], message: str, monkeypatch
) -> None:
    import datatool.report.sections as report_build

    def no_check(*args, **kwargs):
        raise AssertionError("the check ran before the options were validated")

    monkeypatch.setattr(report_build, "run_check", no_check)
    _, _, html_path, *_ = built
    filled = [o.format(tmp=tmp_path, ck=html_path.parent / "checkpoints") for o in options]
    code, _, err = run_cli("report", FIXTURE_TREE, "--out", tmp_path / "r.html", *filled)
    assert code in (1, 2) and message in err
    assert not (tmp_path / "r.html").exists()


def test_cli_missing_root_is_a_usage_error(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("report", tmp_path / "nope", "--out", tmp_path / "r.html")
    assert code == 2 and "no such folder" in err
    assert not (tmp_path / "r.html").exists()


def test_report_of_a_merged_set_shows_sources_and_lineage(tmp_path: Path) -> None:
    merge = pytest.importorskip("datatool.merge")
    a = copy_fixture(tmp_path / "a")
    merge.merge(
        [merge.Source(a, "OG")], tmp_path / "merged", merge.MergeOptions(name="M", workers=1)
    )
    report, figures = build_report(
        tmp_path / "merged", CheckOptions(workers=1, alignment=False), samples=1
    )
    assert report.lineage is not None and report.lineage.sources == ["OG"]
    assert report.lineage.chains == {"OG > M": 24}
    assert report.composition.per_source == {"OG": 24}
    # One source compares nothing: no one-bar chart, a sentence instead.
    from datatool.report.sections import single_valued

    assert not any(f.title == "Pairs per source" for f in figures.composition)
    assert "merge source OG for all 24 pairs" in single_valued(report.composition)


# --------------------------------------------------------------------------- plots


@pytest.mark.parametrize(
    ("dx", "dy", "expected"),
    [
        (0, 0, [[1, 0, 0], [0, 0, 0]]),
        (1, 0, [[0, 1, 0], [0, 0, 0]]),
        (0, 1, [[0, 0, 0], [1, 0, 0]]),
        (-1, 0, [[0, 0, 0], [0, 0, 0]]),
        (2.4, 0, [[0, 0, 1], [0, 0, 0]]),
        (5, 5, [[0, 0, 0], [0, 0, 0]]),
    ],
)
def test_shift_mask(dx: float, dy: float, expected: list[list[int]]) -> None:
    mask = np.array([[1, 0, 0], [0, 0, 0]], bool)
    assert shift_mask(mask, dx, dy).astype(int).tolist() == expected


def test_label_overlay_colours_lines_and_keeps_16_bit_grey() -> None:
    grey = np.array([[0, 65535]], np.uint16)
    out = label_overlay(grey, np.array([[False, True]]), (0, 255, 0), 1.0)
    assert out.dtype == np.uint8 and out.tolist() == [[[0, 0, 0], [0, 255, 0]]]


@pytest.mark.parametrize(
    ("grey", "lines", "opacity", "error"),
    [
        (np.zeros((2, 2), np.uint8), np.zeros((2, 3), bool), 0.5, "shapes differ"),
        (np.zeros((2, 2), np.uint8), np.zeros((2, 2), bool), 1.5, "opacity"),
        (np.zeros((2, 2), np.float32), np.zeros((2, 2), bool), 0.5, "uint8 or uint16"),
    ],
)
def test_label_overlay_rejects_bad_input(grey, lines, opacity, error) -> None:
    with pytest.raises((ValueError, TypeError), match=error):
        label_overlay(grey, lines, opacity=opacity)
