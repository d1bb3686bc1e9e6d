"""Defects found in the review of the scoring, torch, evaluation and CLI side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datatool import io, synth


@pytest.fixture
def micrograph(tmp_path: Path) -> tuple[Path, Path]:
    """A 128x128 px image and its label, the size of the build's crops."""
    sample = synth.make_sample(3, (128, 128), 28.0, 1, strip=0)
    image = tmp_path / "0417_1.png"
    label = tmp_path / "0417_1_label.png"
    io.write_png(image, sample.originals[0])
    io.write_png(label, sample.boundaries.astype(np.uint8) * 255)
    return image, label


def _longest_wrappable(out: str) -> int:
    """Longest line that could have been wrapped (a lone path may stand whole)."""
    return max((len(line) for line in out.splitlines() if " " in line.strip()), default=0)


def test_infer_says_the_prediction_was_resized_back_in_plain_words(
    tmp_path, tiny_checkpoint, micrograph, run_cli
):
    # A square image scaled down is not padded, so nothing is cropped: the line used to
    # read "prediction and resized back to ...".
    code, out, err = run_cli(
        "infer", tiny_checkpoint, micrograph[0], "--out", tmp_path / "pred",
        "--resolution", "64", "--device", "cpu", "--precision", "fp32",
    )  # fmt: skip
    assert code == 0, err
    text = " ".join(out.split())
    assert "prediction resized back to 128x128 px" in text
    assert "prediction and" not in text


def test_infer_and_evaluate_lines_fit_80_columns(
    tmp_path, tiny_checkpoint, micrograph, run_cli, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "80")
    image, label = micrograph
    code, out, err = run_cli(
        "infer", tiny_checkpoint, image, "--out", tmp_path / "pred",
        "--resolution", "64", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    # The per-image lines stay whole (tests/test_honest_pixels.py reads them); the
    # precision line before them is wrapped.
    precision = out[: out.index("predict_0417_1.png")]
    assert precision.startswith("precision:")
    assert _longest_wrappable(precision) <= 80, out
    code, out, err = run_cli(
        "evaluate", tiny_checkpoint, "--image", image, "--truth", label,
        "--out", tmp_path / "ev", "--resolution", "64", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    assert "precision:" in out
    assert _longest_wrappable(out) <= 80, out
