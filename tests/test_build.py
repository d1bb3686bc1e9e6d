"""datatool build: crops equal the boxes of the stripped originals, labels are processed
tracings, one label per image, safe and idempotent writes, plans refused before writing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from datatool import io, labels, layout
from datatool.build import (
    BuildManifest,
    BuildOptions,
    CropPlan,
    build,
    format_plan,
    load_plan,
    parse_border,
    validate_plan,
)
from datatool.check import run_check
from datatool.checks import CheckOptions
from datatool.crop import cut
from datatool.errors import DatatoolError, UsageError
from tests.conftest import FIXTURE_TREE

STRIP = 24  # the synthetic originals carry a 24-px scale bar at the bottom (datatool.synth)


def _without_crops(root: Path) -> Path:
    for sub in ("image", "label"):
        for folder in root.glob(f"*/*/aligned/{sub}"):
            shutil.rmtree(folder)
    return root


@pytest.fixture
def originals_only(sample_tree: Path) -> Path:
    """The bundled tree with originals, tracings and crops.json but no crops."""
    return _without_crops(sample_tree)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _crop_files(root: Path) -> dict[str, bytes]:
    crops = _snapshot(root).items()
    return {k: v for k, v in crops if ("/image/" in k or "/label/" in k) and k.endswith(".png")}


def _write_plan(folder: Path, boxes: object) -> Path:
    path = folder / "crops.json"
    path.write_text(json.dumps({"boxes": boxes}), encoding="utf-8")
    return path


def _sample_folder(root: Path, sample_id: str = "0101", split: str = "training") -> Path:
    return root / split / f"{sample_id}_{split}" / "aligned"


# --------------------------------------------------------------------------- outputs


def test_build_reproduces_the_bundled_crops_byte_for_byte(originals_only: Path) -> None:
    result = build(originals_only)
    expected = _crop_files(FIXTURE_TREE)
    assert _crop_files(originals_only) == expected
    assert sorted(result.written) == sorted(expected)
    assert all(s.border.bottom == STRIP and s.border_from == "detected" for s in result.samples)


def test_image_crops_are_the_boxes_of_the_stripped_originals(originals_only: Path) -> None:
    build(originals_only)
    for sample in layout.scan(originals_only).samples:
        boxes = load_plan(originals_only / sample.plan).boxes
        for fov, rel in sample.originals.items():
            stripped = io.read_grey(originals_only / rel)[:-STRIP]
            for m, box in enumerate(boxes, start=1):
                crop = io.read_image(originals_root_crop(originals_only, sample, "image", fov, m))
                assert crop.mode == "L" and crop.pixels.dtype == np.uint8
                np.testing.assert_array_equal(crop.pixels, cut(stripped, box))


def originals_root_crop(root: Path, sample, role: str, fov: int, m: int) -> Path:
    return root / sample.folder / role / f"{layout.crop_stem(sample.id, fov, m)}.png"


@pytest.mark.parametrize("line_width", [1, 3, 5])
def test_labels_are_binary_white_on_black_of_the_width_and_pass_check(
    originals_only: Path, line_width: int
) -> None:
    build(originals_only, BuildOptions(line_width=line_width))
    lay = layout.scan(originals_only)
    for pair in lay.pairs:
        grey = io.read_image(originals_only / pair.label).pixels
        assert set(np.unique(grey)) <= {0, 255}
        assert not labels.is_inverted(grey) and 0 < np.mean(grey > 127) < 0.5
        width = labels.estimate_line_width(grey > 127)
        assert width is not None and abs(width - line_width) <= 1.0, (pair.label, width)
        if line_width == 1:  # the 1-px centre lines: thinning changes nothing (off the cut edges)
            mask = grey > 127
            inner = (slice(3, -3), slice(3, -3))
            assert np.array_equal(labels.centre_lines(mask)[inner], mask[inner])
    report = run_check(
        originals_only, CheckOptions(line_width=line_width, alignment=True, workers=1)
    )
    assert report.ok, [f.message for f in report.findings if f.severity.value == "error"]
    assert len(report.pairs) == len(lay.pairs) == 24


def test_alignment_check_finds_every_crop_at_its_box(originals_only: Path) -> None:
    pytest.importorskip("datatool.checks.alignment")
    build(originals_only)
    report = run_check(originals_only, CheckOptions(alignment=True, workers=1))
    assert report.ok
    manifest = BuildManifest.model_validate_json((originals_only / "manifest.json").read_text())
    box_of = {e.output: list(e.box) for e in manifest.entries if e.role == "image"}
    located = [p for p in report.pairs if p.box is not None]
    assert located, "the alignment check located no pair"
    for stats in located:
        assert stats.box == box_of[stats.image]
        assert stats.offset is None or max(abs(v) for v in stats.offset) <= 1.0


def test_one_label_per_image_for_every_field_of_view(originals_only: Path) -> None:
    build(originals_only)
    for sample in layout.scan(originals_only).samples:
        boxes = load_plan(originals_only / sample.plan).boxes
        expected = {
            layout.crop_stem(sample.id, fov, m) for fov in sample.originals for m in range(1, 5)
        }
        assert len(boxes) == 4 and len(sample.originals) == 2
        assert {p.name for p in sample.pairs} == expected
        assert all(p.image and p.label for p in sample.pairs)
        # The shared tracing serves every field of view: same boxes, same labels.
        for m in range(1, 5):
            first, second = (
                (originals_only / sample.folder / "label" / f"{sample.id}_{n}_{m}.png").read_bytes()
                for n in (1, 2)
            )
            assert first == second


@pytest.mark.parametrize("resolution", [64, 200])
def test_resolution_resizes_images_and_keeps_labels_binary_at_width(
    originals_only: Path, resolution: int
) -> None:
    build(originals_only, BuildOptions(resolution=resolution))
    for pair in layout.scan(originals_only).pairs:
        image = io.read_grey(originals_only / pair.image)
        label = io.read_grey(originals_only / pair.label)
        assert image.shape == label.shape == (resolution, resolution)
        assert set(np.unique(label)) <= {0, 255}
        width = labels.estimate_line_width(label > 127)
        assert width is not None and abs(width - 3) <= 1.0


def test_label_does_not_depend_on_tracing_polarity(sample_tree: Path, tmp_path: Path) -> None:
    inverted = tmp_path / "inverted"
    shutil.copytree(_without_crops(sample_tree), inverted)
    for tracing in inverted.glob("*/*/aligned/*_trace.png"):
        io.write_png(tracing, 255 - io.read_grey(tracing))  # white lines on black
    build(sample_tree)
    build(inverted)
    assert _crop_files(inverted) == _crop_files(sample_tree)


def test_strip_at_the_top_is_detected_and_boxes_are_in_stripped_coordinates(
    originals_only: Path,
) -> None:
    folder = _sample_folder(originals_only)
    for path in folder.glob("*.png"):
        io.write_png(path, np.flipud(io.read_grey(path)))
    result = build(originals_only, samples=["0101"])
    summary = result.samples[0]
    assert (summary.border.top, summary.border.bottom) == (STRIP, 0)
    box = tuple(load_plan(folder / "crops.json").boxes[2])
    stripped = io.read_grey(folder / "0101_1.png")[STRIP:]
    np.testing.assert_array_equal(
        io.read_grey(folder / "image" / "0101_1_3.png"), cut(stripped, box)
    )


def test_explicit_border_overrides_detection(originals_only: Path) -> None:
    result = build(originals_only, BuildOptions(border=16), samples=["0101"])
    assert result.samples[0].border.bottom == 16 and result.samples[0].border_from == "option"
    manifest = json.loads((originals_only / "manifest.json").read_text())
    assert manifest["parameters"]["border"]["bottom"] == 16
    assert {e["border"]["bottom"] for e in manifest["entries"]} == {16}
    # 40 px removed leaves 304 rows: the lower boxes of the plan now reach into the strip.
    with pytest.raises(DatatoolError, match=r"box 3 \[0, 192, 128, 128\].*bottom 40 px strip"):
        build(originals_only, BuildOptions(border=40))


@pytest.mark.parametrize(
    ("text", "sides"),
    [
        ("24", {"bottom": 24}),
        ("bottom=24,left=8", {"bottom": 24, "left": 8}),
        ("top=3", {"top": 3}),
    ],
)
def test_parse_border(text: str, sides: dict[str, int]) -> None:
    assert parse_border(text).model_dump(exclude_defaults=True) == sides


@pytest.mark.parametrize("text", ["", "-3", "bottom", "middle=4", "bottom=x"])
def test_parse_border_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="--border"):
        parse_border(text)


# --------------------------------------------------------------------------- plans


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        ([[0, 0, 128, 128], [250, 0, 128, 128]], r"box 2 \[250, 0, 128, 128\]: reaches outside"),
        ([[0, 0, 128, 128], [0, 200, 128, 128]], r"box 2 .*bottom 24 px strip"),
        ([[0, 0, 0, 128]], r"box 1 \[0, 0, 0, 128\]: zero or negative size"),
        ([[-4, 0, 64, 64]], r"box 1 .*negative position"),
        ([[0, 0, 64, 64], [8, 8, 64, 64], [0, 0, 64, 64]], r"box 3 .*duplicate of box 1"),
        ([[0, 0, 64, "64"]], r"box 1 \[0, 0, 64, \"64\"\]: value '64'"),
        ([[0, 0, 64, 6.5]], r"box 1 .*value 6.5"),
        ([[0, 0, 64]], r"box 1 \[0, 0, 64\]: expected \[left, top, width, height\]"),
        ([[0, 0, 64, True]], r"box 1 .*value True"),
        ([], r"no boxes"),
    ],
)
def test_bad_plan_is_refused_naming_the_box_before_anything_is_written(
    originals_only: Path, boxes: object, expected: str
) -> None:
    _write_plan(_sample_folder(originals_only, "0201", "validation"), boxes)
    before = _snapshot(originals_only)
    with pytest.raises(DatatoolError, match=expected) as info:
        build(originals_only)
    assert "0201_validation/aligned/crops.json" in str(info.value)
    assert "\n" not in str(info.value)
    assert _snapshot(originals_only) == before  # not even the samples before 0201


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"boxes": [[0, 0, 64, 64]', "not valid JSON at line 1"),
        ('{"boxes": [[0, 0, 64, 64]], "colour": 1}', "colour: Extra inputs"),
        ('{"box": [[0, 0, 64, 64]]}', "boxes: Field required"),
        ('"boxes"', "plan: Input should be"),
    ],
)
def test_malformed_plan_file(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "crops.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DatatoolError, match=expected) as info:
        load_plan(path)
    assert str(path) in str(info.value)


def test_plan_extras_round_trip_and_crop_size_is_enforced(tmp_path: Path) -> None:
    plan = CropPlan(boxes=[(0, 0, 64, 64), (32, 0, 64, 64)], crop_size=64, note="by hand")
    path = tmp_path / "crops.json"
    path.write_text(format_plan(plan), encoding="utf-8")
    assert load_plan(path) == plan
    validate_plan(plan, (64, 96))
    with pytest.raises(DatatoolError, match="box 2 .*reaches outside"):
        validate_plan(plan, (64, 90))
    path.write_text('{"boxes": [[0, 0, 64, 60]], "crop_size": 64}', encoding="utf-8")
    with pytest.raises(DatatoolError, match="box 1 .*64 x 60 px but crop_size is 64"):
        load_plan(path)


def test_plan_option_overrides_crops_json(originals_only: Path, tmp_path: Path) -> None:
    plan = _write_plan(tmp_path, [[10, 20, 100, 90]])
    build(originals_only, samples=["0102"], plan_override=plan)
    sample = layout.scan(originals_only).sample("0102")
    assert sorted(p.name for p in sample.pairs) == ["0102_1_1", "0102_2_1"]
    image = io.read_grey(originals_only / sample.pairs[0].image)
    assert image.shape == (90, 100)


def test_missing_inputs_are_one_line_errors_naming_the_file(originals_only: Path) -> None:
    folder = _sample_folder(originals_only)
    (folder / "0101_trace.png").unlink()
    with pytest.raises(DatatoolError, match="0101_training/aligned: no tracing 0101_trace.png"):
        build(originals_only)
    (folder / "crops.json").unlink()
    with pytest.raises(DatatoolError, match="no crop plan crops.json"):
        build(originals_only, samples=["0101"])
    with pytest.raises(DatatoolError, match="threshold 300 leaves no lines.*0..255"):
        build(originals_only, BuildOptions(threshold=300), samples=["0102"])
    with pytest.raises(DatatoolError, match="no sample 9999"):
        build(originals_only, samples=["9999"])
    assert not list(originals_only.rglob("*/image/*"))


# --------------------------------------------------------------------------- safety


def test_originals_are_never_changed_and_inputs_are_hashed(originals_only: Path) -> None:
    inputs = {p: io.sha256_file(p) for p in originals_only.rglob("aligned/*") if p.is_file()}
    build(originals_only, BuildOptions(resolution=64, line_width=1))
    assert {p: io.sha256_file(p) for p in inputs} == inputs
    manifest = BuildManifest.model_validate_json((originals_only / "manifest.json").read_text())
    assert manifest.kind == "build" and manifest.parameters.resolution == 64
    assert len(manifest.entries) == 48
    for entry in manifest.entries:
        assert entry.source_sha256 == inputs[originals_only / entry.source]
        output = originals_only / entry.output
        assert entry.output_sha256 == io.sha256_file(output)
        assert (entry.width, entry.height) == (64, 64)
        assert entry.source.endswith("_trace.png") == (entry.role == "label")


def test_second_build_is_a_no_op(originals_only: Path) -> None:
    build(originals_only)
    before = _snapshot(originals_only)
    mtimes = {p: p.stat().st_mtime_ns for p in originals_only.rglob("*.png")}
    result = build(originals_only)
    assert result.written == [] and len(result.unchanged) == 48
    assert not result.manifest_written
    assert _snapshot(originals_only) == before  # manifest.json included, byte for byte
    assert {p: p.stat().st_mtime_ns for p in originals_only.rglob("*.png")} == mtimes


def test_changed_parameters_rewrite_our_own_crops(originals_only: Path) -> None:
    build(originals_only)
    result = build(originals_only, BuildOptions(line_width=5))
    assert result.kept == [] and len(result.written) == 24  # the labels; images are the same
    assert all("/label/" in rel for rel in result.written)


def test_edited_crop_survives_a_rebuild_unless_forced(originals_only: Path) -> None:
    build(originals_only)
    folder = _sample_folder(originals_only)
    edited = folder / "label" / "0101_2_3.png"
    rel = edited.relative_to(originals_only).as_posix()
    built = edited.read_bytes()
    touched = io.read_grey(edited).copy()
    touched[60:64, 10:90] = 255  # someone drew a boundary in by hand
    io.write_png(edited, touched)
    edited_bytes = edited.read_bytes()

    for options in (BuildOptions(), BuildOptions(line_width=5)):  # even when inputs change
        result = build(originals_only, options)
        assert result.kept == [rel] and edited.read_bytes() == edited_bytes
    manifest = BuildManifest.model_validate_json((originals_only / "manifest.json").read_text())
    record = next(e for e in manifest.entries if e.output == rel)
    assert record.edited and record.output_sha256 == io.sha256_bytes(edited_bytes)

    result = build(originals_only, BuildOptions(force=True))
    assert result.replaced == [rel] and result.kept == []
    assert edited.read_bytes() == built


def test_foreign_manifest_is_not_replaced_without_force(originals_only: Path) -> None:
    (originals_only / "manifest.json").write_text('{"kind": "merge"}', encoding="utf-8")
    with pytest.raises(DatatoolError, match="'merge' manifest.*--force"):
        build(originals_only)
    build(originals_only, BuildOptions(force=True))
    assert json.loads((originals_only / "manifest.json").read_text())["kind"] == "build"


def test_building_one_sample_keeps_the_others_records(originals_only: Path) -> None:
    build(originals_only)
    first = (originals_only / "manifest.json").read_bytes()
    build(originals_only, BuildOptions(line_width=1), samples=["0102"])
    manifest = BuildManifest.model_validate_json((originals_only / "manifest.json").read_text())
    assert [s.id for s in manifest.samples] == ["0101", "0102", "0201"]
    widths = {s.id: s.parameters.line_width for s in manifest.samples}
    assert widths == {"0101": 3, "0102": 1, "0201": 3}
    assert len(manifest.entries) == 48
    build(originals_only)  # 0102 back at 3 px: the same records as the first build
    again = BuildManifest.model_validate_json((originals_only / "manifest.json").read_text())
    assert again.model_dump(exclude={"created"}) == BuildManifest.model_validate_json(
        first
    ).model_dump(exclude={"created"})
    assert _crop_files(originals_only) == _crop_files(FIXTURE_TREE)


def _failing_after(monkeypatch: pytest.MonkeyPatch, files: int) -> None:
    real = io.atomic_write_bytes
    calls = {"png": 0}

    def write(path, data):  # noqa: ANN001, ANN202
        if str(path).endswith(".png"):
            calls["png"] += 1
            if calls["png"] > files:
                raise RuntimeError("power cut")
        return real(path, data)

    monkeypatch.setattr(io, "atomic_write_bytes", write)


@pytest.mark.parametrize("files", [0, 7, 30])
def test_interrupted_build_leaves_no_partial_output(
    originals_only: Path, monkeypatch: pytest.MonkeyPatch, files: int
) -> None:
    expected = _crop_files(FIXTURE_TREE)
    _failing_after(monkeypatch, files)
    with pytest.raises(RuntimeError, match="power cut"):
        build(originals_only)
    monkeypatch.undo()
    assert not [p for p in originals_only.rglob("*") if p.name.endswith(".tmp")]
    written = _crop_files(originals_only)
    assert len(written) == files
    assert all(expected[rel] == data for rel, data in written.items())  # whole files only
    assert not (originals_only / "manifest.json").exists()
    result = build(originals_only)
    assert len(result.written) == 48 - files and result.kept == []
    assert _crop_files(originals_only) == expected
    assert not list(originals_only.glob(".datatool-build-journal*"))


def test_interrupted_rebuild_does_not_mistake_its_own_files_for_edits(
    originals_only: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build(originals_only)
    _failing_after(monkeypatch, 5)
    with pytest.raises(RuntimeError):
        build(originals_only, BuildOptions(line_width=1))
    monkeypatch.undo()
    result = build(originals_only, BuildOptions(line_width=1))
    assert result.kept == [] and len(result.written) == 24 - 5


@pytest.mark.skipif(os.name == "nt", reason="needs SIGKILL")
def test_killed_build_leaves_only_temporary_files_which_the_next_build_removes(
    originals_only: Path,
) -> None:
    # A hard kill just before a rename: the half-done file exists only under its temp name.
    script = textwrap.dedent(
        f"""
        import os, signal
        from datatool import build
        real, count = os.replace, [0]
        def replace(src, dst):
            if str(dst).endswith(".png"):
                count[0] += 1
                if count[0] == 10:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst)
        os.replace = replace
        build.build({str(originals_only)!r})
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    temps = [p for p in originals_only.rglob("*.tmp")]
    assert len(temps) == 1
    expected = _crop_files(FIXTURE_TREE)
    written = _crop_files(originals_only)
    assert len(written) == 9 and all(expected[k] == v for k, v in written.items())
    result = build(originals_only)
    assert len(result.removed_temp) == 1 and not list(originals_only.rglob("*.tmp"))
    assert _crop_files(originals_only) == expected


# --------------------------------------------------------------------------- command line


def test_cli_build_reports_border_and_check_verdict(originals_only: Path, run_cli) -> None:
    code, out, err = run_cli("build", originals_only, "--line-width", "3")
    assert code == 0, err
    assert "removed bottom 24 px (detected)" in " ".join(out.split())
    assert "48 file(s) written" in out and "PASS" in out
    code, out, _ = run_cli("build", originals_only)
    assert code == 0 and "0 file(s) written, 48 unchanged" in out


def test_cli_build_lists_kept_files(originals_only: Path, run_cli) -> None:
    build(originals_only)
    label = _sample_folder(originals_only) / "label" / "0101_1_1.png"
    io.write_png(label, np.zeros((128, 128), np.uint8))
    code, out, _ = run_cli("build", originals_only, "--no-check")
    assert code == 0
    assert "1 kept edited crop(s)" in out and "0101_1_1.png" in out


def test_cli_bad_plan_is_one_line_error(originals_only: Path, run_cli) -> None:
    _write_plan(_sample_folder(originals_only), [[0, 0, 128, 128], [0, 0, 128, 128]])
    code, out, err = run_cli("build", originals_only)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "box 2" in err and "duplicate of box 1" in err


def test_cli_check_failure_after_build_exits_1(originals_only: Path, run_cli) -> None:
    # Labels built 1 px wide, checked against the same width, pass; a wrong-sized
    # crop left in place by hand makes the check after the build fail.
    stray = _sample_folder(originals_only) / "label" / "0101_1_9.png"
    io.write_png(stray, np.zeros((20, 20), np.uint8))
    code, out, _ = run_cli("build", originals_only)
    assert code == 1 and "FAIL" in out and "not in the plan" in out


def test_cli_build_help_lists_options(run_cli) -> None:
    code, out, _ = run_cli("build", "--help")
    assert code == 0
    for option in ("--plan", "--line-width", "--threshold", "--border", "--resolution", "--force"):
        assert option in out


def test_label_width_does_not_depend_on_the_gimp_stroke(sample_tree: Path, tmp_path: Path) -> None:
    from scipy import ndimage as ndi

    thick = tmp_path / "thick"
    shutil.copytree(_without_crops(sample_tree), thick)
    for tracing in thick.glob("*/*/aligned/*_trace.png"):
        io.write_png(tracing, ndi.grey_erosion(io.read_grey(tracing), size=3))  # 2 px wider lines
    build(sample_tree)
    build(thick)
    for rel in _crop_files(thick):
        if "/label/" not in rel:
            continue
        mask = io.read_grey(thick / rel) > 127
        reference = io.read_grey(sample_tree / rel) > 127
        assert abs(labels.estimate_line_width(mask) - 3) <= 1.0
        near = ndi.binary_dilation(reference, iterations=2)
        assert np.mean(near[mask]) > 0.95, rel  # the same lines, not fatter ones


def test_explicit_threshold_is_used_and_recorded(originals_only: Path) -> None:
    build(originals_only)
    manifest = BuildManifest.model_validate_json((originals_only / "manifest.json").read_text())
    otsu = {s.id: s.threshold for s in manifest.samples}
    result = build(originals_only, BuildOptions(threshold=otsu["0101"]), samples=["0101"])
    assert result.written == []  # Otsu's own threshold, given explicitly: the same labels
    result = build(originals_only, BuildOptions(threshold=40), samples=["0101"])
    assert result.written and all("/label/" in rel for rel in result.written)
    manifest = BuildManifest.model_validate_json((originals_only / "manifest.json").read_text())
    assert manifest.samples[0].threshold == 40 and manifest.parameters.threshold == 40
