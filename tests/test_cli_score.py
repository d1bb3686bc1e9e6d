"""``datatool score``: the --json output is the library's result; bad input is one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datatool import io
from datatool.cli import main
from datatool.metrics.files import score_files
from datatool.metrics.results import ScoredPrediction, ScoreParams


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture
def images(tmp_path):
    """A label and two predictions: the truth shifted by 3 px, and an all-black one."""
    truth = np.zeros((40, 48), bool)
    truth[14:17, 3:45] = True
    truth[3:37, 20:23] = True
    truth_path = tmp_path / "label.png"
    io.write_png(truth_path, truth)
    shifted = tmp_path / "shifted.png"
    io.write_png(shifted, np.roll(truth, (3, 3), axis=(0, 1)))
    black = tmp_path / "black.png"
    io.write_png(black, np.zeros(truth.shape, np.uint8))
    return truth_path, shifted, black


def test_json_equals_library_result(images, capsys):
    truth, shifted, black = images
    code, out, _ = run(
        ["score", str(shifted), str(black), "--truth", str(truth), "--json", "--sigma", "2"],
        capsys,
    )
    assert code == 0
    printed = json.loads(out)
    expected = score_files([shifted, black], truth, ScoreParams(sigma=2.0))
    assert printed == [r.model_dump(mode="json") for r in expected]
    first = printed[0]
    for key in ("bce", "tophat", "gaussian", "precision", "recall", "f1"):
        assert isinstance(first[key], float)
    assert first["params"] == {
        "sigma": 2.0,
        "kernel_size": 15,
        "tophat_kernel_size": 3,
        "tolerance": 2.0,
        "matching": "nearest",
    }
    assert first["prediction"] == str(shifted)
    jsonschema = pytest.importorskip("jsonschema")
    for record in printed:
        jsonschema.validate(record, ScoredPrediction.model_json_schema())
    # The report's finding, end to end: shifted is worse by BCE, better by the Gaussian loss.
    assert first["bce"] > printed[1]["bce"]
    assert first["gaussian"] < printed[1]["gaussian"]


def test_options_reach_the_library(images, capsys):
    truth, shifted, _ = images
    argv = ["score", str(shifted), "--truth", str(truth), "--json", "--kernel-size", "9"]
    argv += ["--tophat-kernel-size", "5", "--tolerance", "1", "--matching", "one-to-one"]
    code, out, _ = run(argv, capsys)
    assert code == 0
    params = ScoreParams(kernel_size=9, tophat_kernel_size=5, tolerance=1, matching="one-to-one")
    assert json.loads(out) == [
        r.model_dump(mode="json") for r in score_files([shifted], truth, params)
    ]


def test_table_lists_every_prediction(images, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["score", "shifted.png", "black.png", "--truth", "label.png"], capsys)
    assert code == 0
    assert "shifted.png" in out and "black.png" in out
    assert "Gaussian" in out and "F1" in out


def test_overlay_option_writes_pngs(images, tmp_path, capsys):
    truth, shifted, _ = images
    out_dir = tmp_path / "overlays"
    code, _, _ = run(
        ["score", str(shifted), "--truth", str(truth), "--overlay", str(out_dir), "--json"], capsys
    )
    assert code == 0
    assert {p.name for p in out_dir.iterdir()} == {
        f"shifted.{name}.png"
        for name in (
            "overlay",
            "tophat-reward",
            "tophat-weighted",
            "gaussian-reward",
            "gaussian-weighted",
        )
    }


def test_size_mismatch_is_one_clear_line(images, tmp_path, capsys):
    truth, _, _ = images
    small = tmp_path / "small.png"
    io.write_png(small, np.zeros((10, 10), np.uint8))
    code, out, err = run(["score", str(small), "--truth", str(truth)], capsys)
    assert code == 1
    assert err.startswith("datatool: error: ") and err.count("\n") == 1
    assert "small.png" in err and "10x10" in err and "48x40" in err


def test_non_binary_truth_is_refused(images, tmp_path, capsys):
    _, shifted, _ = images
    grey = tmp_path / "grey-label.png"
    ramp = np.tile(np.linspace(0, 255, 48).astype(np.uint8), (40, 1))
    io.write_png(grey, ramp)
    code, _, err = run(["score", str(shifted), "--truth", str(grey)], capsys)
    assert code == 1
    assert "grey-label.png" in err and "not binary" in err


def test_a_few_grey_truth_pixels_are_tolerated(images, tmp_path, capsys):
    truth, shifted, _ = images
    pixels = io.read_grey(truth).copy()
    pixels[0, :5] = 128  # 5 of 1920 pixels: 0.26 %
    nearly = tmp_path / "nearly.png"
    io.write_png(nearly, pixels)
    code, _, _ = run(["score", str(shifted), "--truth", str(nearly), "--json"], capsys)
    assert code == 0


@pytest.mark.parametrize("which", ["prediction", "truth"])
def test_unreadable_file_is_one_clear_line(images, tmp_path, capsys, which):
    truth, shifted, _ = images
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    argv = ["score", str(broken if which == "prediction" else shifted), "--truth"]
    argv.append(str(broken if which == "truth" else truth))
    code, _, err = run(argv, capsys)
    assert code == 1
    assert "broken.png" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("--kernel-size", "14", "kernel-size"),
        ("--tophat-kernel-size", "4", "tophat-kernel-size"),
        ("--sigma", "0", "sigma"),
        ("--matching", "best", "matching"),
    ],
)
def test_bad_option_is_a_usage_error(images, capsys, option, value, match):
    truth, shifted, _ = images
    code, _, err = run(["score", str(shifted), "--truth", str(truth), option, value], capsys)
    assert code == 2
    assert match in err


def test_overlay_over_the_image_is_large_with_a_key(images, tmp_path, capsys):
    from PIL import Image

    truth, shifted, _ = images
    micrograph = tmp_path / "micrograph.png"
    side = io.read_grey(truth).shape
    io.write_png(micrograph, np.full(side, 100, np.uint8))
    out_dir = tmp_path / "pictures"
    code, _, err = run(
        ["score", str(shifted), "--truth", str(truth), "--image", str(micrograph),
         "--overlay", str(out_dir)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    with Image.open(out_dir / "shifted.overlay.png") as picture:
        rgb = np.asarray(picture.convert("RGB"))
    assert max(rgb.shape[:2]) >= 512
    # The micrograph's grey shows where there is no line.
    assert (rgb == 100).all(axis=-1).mean() > 0.3
    small = tmp_path / "small.png"
    io.write_png(small, np.zeros((10, 10), np.uint8))
    code, _, err = run(
        ["score", str(shifted), "--truth", str(truth), "--image", str(small),
         "--overlay", str(out_dir)],
        capsys,
    )  # fmt: skip
    assert code == 1 and "small.png" in err and len(err.strip().splitlines()) == 1
