"""datatool check, foundation checks: each injected defect is one error on the right file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from datatool.check import run_check
from datatool.checks import CheckOptions
from datatool.findings import Report

FAST = CheckOptions(alignment=False, workers=1)
A = "training/0101_training/aligned"
LABEL = f"{A}/label/0101_1_2.png"
IMAGE = f"{A}/image/0101_1_2.png"


def _load(root: Path, rel: str) -> np.ndarray:
    return np.asarray(Image.open(root / rel))


def _save(root: Path, rel: str, pixels: np.ndarray, mode: str | None = None) -> None:
    img = Image.fromarray(pixels) if mode is None else Image.fromarray(pixels).convert(mode)
    img.save(root / rel)


def _errors(report: Report) -> set[tuple[str, str]]:
    return {(f.code, f.path) for f in report.errors()}


def test_clean_fixture_passes_fast_and_full(sample_tree: Path) -> None:
    fast = run_check(sample_tree, FAST)
    assert fast.ok and fast.summary.errors == 0 and fast.summary.warnings == 0
    assert fast.summary.pairs == 24
    full = run_check(sample_tree, CheckOptions(workers=2))
    assert full.ok, [f.message for f in full.errors()]


def _truncate(root: Path) -> None:
    data = (root / LABEL).read_bytes()
    (root / LABEL).write_bytes(data[: len(data) // 2])


def _zero(root: Path) -> None:
    (root / LABEL).write_bytes(b"")


def _not_image(root: Path) -> None:
    (root / LABEL).write_text("this is not a png")


def _missing_label(root: Path) -> None:
    (root / LABEL).unlink()


def _resize_label(root: Path) -> None:
    _save(root, LABEL, _load(root, LABEL)[:100, :])


def _blur_label(root: Path) -> None:
    blurred = ndi.gaussian_filter(_load(root, LABEL).astype(float), 1.5)
    _save(root, LABEL, np.clip(blurred, 0, 255).astype(np.uint8))


def _invert_label(root: Path) -> None:
    _save(root, LABEL, 255 - _load(root, LABEL))


def _thicken_label(root: Path) -> None:
    thick = ndi.binary_dilation(_load(root, LABEL) > 127, structure=np.ones((5, 5), bool))
    _save(root, LABEL, thick.astype(np.uint8) * 255)


def _missing_tracing(root: Path) -> None:
    (root / A / "0101_trace.png").unlink()


def _unknown_fov(root: Path) -> None:
    for sub in ("image", "label"):
        (root / A / sub / "0101_1_2.png").rename(root / A / sub / "0101_7_2.png")


@pytest.mark.parametrize(
    ("inject", "code", "path"),
    [
        (_truncate, "unreadable", LABEL),
        (_zero, "unreadable", LABEL),
        (_not_image, "unreadable", LABEL),
        (_missing_label, "missing-label", IMAGE),
        (_resize_label, "size-mismatch", LABEL),
        (_blur_label, "not-binary", LABEL),
        (_invert_label, "inverted", LABEL),
        (_thicken_label, "line-width", LABEL),
        (_missing_tracing, "missing-tracing", A),
        (_unknown_fov, "unknown-fov", f"{A}/image/0101_7_2.png"),
    ],
    ids=lambda v: getattr(v, "__name__", v) if callable(v) else None,
)
def test_each_defect_is_one_error_on_the_right_file(sample_tree, inject, code, path) -> None:
    inject(sample_tree)
    report = run_check(sample_tree, FAST)
    assert not report.ok
    assert _errors(report) == {(code, path)}, report.errors()


def test_line_width_finding_states_measured_and_expected(sample_tree: Path) -> None:
    _thicken_label(sample_tree)
    (finding,) = run_check(sample_tree, FAST).errors()
    assert finding.expected == 3.0
    assert finding.measured == pytest.approx(7.0, abs=1.0)
    assert "expected 3" in finding.message


def test_check_collects_all_problems_not_only_the_first(sample_tree: Path) -> None:
    _truncate(sample_tree)
    other = "validation/0201_validation/aligned/label/0201_2_4.png"
    _save(sample_tree, other, 255 - _load(sample_tree, other))
    (sample_tree / "training/0102_training/aligned/image/0102_2_1.png").unlink()
    codes = _errors(run_check(sample_tree, FAST))
    assert codes == {
        ("unreadable", LABEL),
        ("inverted", other),
        ("missing-image", "training/0102_training/aligned/label/0102_2_1.png"),
    }


def test_empty_label_and_rgba_image_are_warnings(sample_tree: Path) -> None:
    _save(sample_tree, LABEL, np.zeros((128, 128), np.uint8))
    grey = _load(sample_tree, IMAGE)
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    rgba[:10, :10, 3] = 0  # meaningful alpha
    Image.fromarray(rgba, "RGBA").save(sample_tree / IMAGE)
    report = run_check(sample_tree, FAST)
    assert report.ok
    warnings = {(f.code, f.path) for f in report.findings if f.severity.value == "warning"}
    assert ("empty-label", LABEL) in warnings
    assert ("not-greyscale", IMAGE) in warnings
    alpha = next(f for f in report.findings if f.code == "not-greyscale")
    assert "alpha" in alpha.message


def test_strict_makes_warnings_fail(sample_tree: Path) -> None:
    _save(sample_tree, LABEL, np.zeros((128, 128), np.uint8))
    assert run_check(sample_tree, FAST).ok
    assert not run_check(sample_tree, FAST.model_copy(update={"strict": True})).ok


def test_workers_give_the_same_report(sample_tree: Path) -> None:
    _invert_label(sample_tree)
    one = run_check(sample_tree, FAST).findings
    two = run_check(sample_tree, FAST.model_copy(update={"workers": 2})).findings
    assert one == two


# ----------------------------------------------------------------------------- command line


def test_cli_exit_codes_and_json_equals_library(sample_tree: Path, run_cli) -> None:
    code, out, _ = run_cli("check", sample_tree, "--json", "--fast", "--workers", "1")
    assert code == 0
    doc = json.loads(out)
    library = run_check(sample_tree, FAST)
    assert doc["ok"] is True
    assert doc["findings"] == json.loads(library.model_dump_json())["findings"]
    assert doc["summary"]["pairs"] == 24
    _invert_label(sample_tree)
    code, out, _ = run_cli("check", sample_tree, "--json", "--fast")
    assert code == 1
    assert [f["code"] for f in json.loads(out)["findings"]] == ["inverted"]


def test_cli_json_validates_against_exported_schema(sample_tree: Path, run_cli) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    _invert_label(sample_tree)
    _, out, _ = run_cli("check", sample_tree, "--json", "--fast")
    schema_path = Path(__file__).resolve().parents[1] / "schemas" / "check-report.schema.json"
    jsonschema.validate(json.loads(out), json.loads(schema_path.read_text()))


@pytest.mark.parametrize("target", ["missing", "file"])
def test_cli_usage_problem_exits_2_with_one_line(tmp_path: Path, run_cli, target: str) -> None:
    root = tmp_path / "nope"
    if target == "file":
        root.write_text("x")
    code, out, err = run_cli("check", root)
    assert code == 2
    assert err.count("\n") == 1 and str(root) in err and "Traceback" not in err


def test_cli_survives_corrupt_rgba_litter_and_empty_folder(sample_tree: Path, run_cli) -> None:
    _truncate(sample_tree)
    grey = _load(sample_tree, IMAGE)
    Image.fromarray(np.dstack([grey, grey, grey, grey]), "RGBA").save(sample_tree / IMAGE)
    (sample_tree / A / ".DS_Store").write_bytes(b"\x00\x01")
    (sample_tree / "validation/0202_validation/aligned/image").mkdir(parents=True)
    code, out, err = run_cli("check", sample_tree, "--workers", "2")
    assert code == 1
    assert "Traceback" not in out + err
    assert "FAIL" in out and "unreadable" in out


def test_crops_with_too_few_grains_warn_with_the_count(tmp_path: Path) -> None:
    from datatool import synth

    # Coarse grains: a 128-px crop encloses only a few complete grains, but is otherwise clean.
    root = synth.write_tree(
        tmp_path / "coarse", {"0301": "training"}, seed=3, size=(256, 256), grain_px=80
    )
    report = run_check(root, CheckOptions(workers=1))
    assert report.ok, report.errors()  # alignment and everything else hold
    few = [f for f in report.findings if f.code == "few-grains"]
    assert few, "coarse-grained crops must be flagged"
    for f in few:
        stats = next(p for p in report.pairs if p.label == f.path)
        assert f.severity.value == "warning"
        assert f.measured == stats.grains < 5
        assert f"{stats.grains} complete grain" in f.message
    flagged = {f.path for f in few}
    assert all(p.grains >= 5 for p in report.pairs if p.label not in flagged)
