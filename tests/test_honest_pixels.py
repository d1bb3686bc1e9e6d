"""Honest verdicts on pixels (issue 13): inverted truths, the file blamed, leakage, infer sizes.

Every case is built on data shaped like the lab's: grey noisy Voronoi micrographs with dark
boundaries, 3-px labels made from GIMP-like tracings, crops cut from originals.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from datatool import io, synth
from datatool.labels import process_tracing

# --- 4. scoring against the wrong polarity -------------------------------------------------


@pytest.fixture
def polarity_files(tmp_path: Path) -> dict[str, Path]:
    """A 3-px label, the same as a black-on-white tracing, and a good blurred prediction."""
    sample = synth.make_sample(7, (160, 192), 26.0, 1, strip=0)
    label = process_tracing(sample.tracing, 3)
    prediction = np.clip(ndi.gaussian_filter(label.astype(np.float32), 1.0) * 1.3, 0, 1)
    paths = {
        "label": tmp_path / "0417_1_1.png",
        "tracing": tmp_path / "0417_trace_bw.png",
        "grey_tracing": tmp_path / "0417_trace.png",
        "pred": tmp_path / "predict_0417_1_1.png",
        "pred_inverted": tmp_path / "predict_inverted.png",
    }
    io.write_png(paths["label"], label)
    io.write_png(paths["tracing"], ~label)  # binary, black lines on white
    io.write_png(paths["grey_tracing"], sample.tracing)  # the raw GIMP export, antialiased
    io.write_png(paths["pred"], np.rint(prediction * 255).astype(np.uint8))
    io.write_png(paths["pred_inverted"], np.rint((1 - prediction) * 255).astype(np.uint8))
    return paths


def _score_json(run_cli, *args) -> tuple[int, list[dict], str]:
    code, out, err = run_cli("score", *args, "--json")
    return code, (json.loads(out) if code == 0 else []), err


def test_black_on_white_truth_is_inverted_and_said(polarity_files, run_cli) -> None:
    files = polarity_files
    code, right, _ = _score_json(run_cli, files["pred"], "--truth", files["label"])
    assert code == 0 and right[0]["notes"] == [] and right[0]["f1"] > 0.9
    code, auto, err = _score_json(run_cli, files["pred"], "--truth", files["tracing"])
    assert code == 0
    assert "looks inverted" in err and "scored inverted" in err and "0417_trace_bw.png" in err
    assert auto[0]["f1"] == pytest.approx(right[0]["f1"])
    assert auto[0]["bce"] == pytest.approx(right[0]["bce"])
    assert any("looks inverted" in n for n in auto[0]["notes"])


def test_no_invert_truth_scores_as_is_but_warns(polarity_files, run_cli) -> None:
    files = polarity_files
    code, kept, err = _score_json(
        run_cli, files["pred"], "--truth", files["tracing"], "--no-invert-truth"
    )
    assert code == 0 and kept[0]["f1"] < 0.3
    assert "looks inverted" in err and "meaningless" in err


def test_invert_truth_flag_forces_the_inversion(polarity_files, run_cli) -> None:
    files = polarity_files
    code, forced, err = _score_json(
        run_cli, files["pred"], "--truth", files["label"], "--invert-truth"
    )
    assert code == 0 and forced[0]["f1"] < 0.3
    assert "inverted as asked" in err


def test_inverted_prediction_is_said(polarity_files, run_cli) -> None:
    files = polarity_files
    code, rows, err = _score_json(run_cli, files["pred_inverted"], "--truth", files["label"])
    assert code == 0 and "predict_inverted.png looks inverted" in err
    assert any("prediction" in n for n in rows[0]["notes"])


def test_raw_grey_tracing_as_truth_says_not_binary_and_inverted(polarity_files, run_cli) -> None:
    files = polarity_files
    code, _, err = run_cli("score", files["pred"], "--truth", files["grey_tracing"])
    assert code == 1
    assert "0417_trace.png" in err and "not binary" in err
    assert "looks inverted" in err and "datatool build" in err
