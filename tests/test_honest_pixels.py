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


# --- 5. the wrong file blamed ---------------------------------------------------------------

T = "training/0101_training/aligned"
V = "validation/0201_validation/aligned"


def _recut_image(tree: Path, stem: str, shift: tuple[int, int]) -> str:
    """Re-cut an image crop from its original ``shift = (dx, dy)`` px off its box (a GIMP edit)."""
    from datatool.crop import cut

    plan = json.loads((tree / T / "crops.json").read_text())["boxes"]
    _, fov, m = stem.split("_")
    left, top, width, height = plan[int(m) - 1]
    original = io.read_grey(tree / T / f"0101_{fov}.png")
    rel = f"{T}/image/{stem}.png"
    io.write_png(tree / rel, cut(original, (left + shift[0], top + shift[1], width, height)))
    return rel


@pytest.mark.parametrize("stem", ["0101_1_1", "0101_2_3"])  # a re-proved and a fast-path pair
def test_image_edited_after_build_is_blamed_not_its_label(sample_tree, run_cli, stem) -> None:
    code, _, _ = run_cli("build", sample_tree, "--no-check")
    assert code == 0 and (sample_tree / "manifest.json").is_file()
    image_rel = _recut_image(sample_tree, stem, (6, 0))
    label_rel = image_rel.replace("/image/", "/label/")
    code, out, _ = run_cli("check", sample_tree, "--json", "--workers", "1")
    assert code == 1
    found = [f for f in json.loads(out)["findings"] if f["code"] == "misaligned"]
    assert [(f["path"], f["related"]) for f in found] == [(image_rel, [label_rel, "manifest.json"])]
    assert "edited after the build" in found[0]["message"]
    assert "restore this image crop" in found[0]["message"]
    assert found[0]["measured"] == [-6.0, 0.0]


def test_label_edited_after_build_is_still_blamed_on_the_label(sample_tree, run_cli) -> None:
    from datatool.crop import cut
    from datatool.labels import process_tracing

    run_cli("build", sample_tree, "--no-check")
    tracing = io.read_grey(sample_tree / T / "0101_trace.png")[:-24]
    label = cut(process_tracing(tracing, 3), (0, 4, 128, 128))
    io.write_png(sample_tree / T / "label" / "0101_1_1.png", label)
    code, out, _ = run_cli("check", sample_tree, "--json", "--workers", "1")
    found = [f for f in json.loads(out)["findings"] if f["code"] == "misaligned"]
    assert code == 1 and [f["path"] for f in found] == [f"{T}/label/0101_1_1.png"]
    assert "edited after the build" not in found[0]["message"]


# --- 10. inference at the wrong size ------------------------------------------------------


def test_infer_keeps_the_aspect_and_writes_at_the_inputs_size(
    tmp_path, tiny_checkpoint, run_cli, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "80")
    sample = synth.make_sample(11, (576, 800), 40.0, 1, strip=24)  # an 800x600 micrograph
    image = tmp_path / "0417_1.png"
    io.write_png(image, sample.originals[0])
    code, out, err = run_cli(
        "infer", tiny_checkpoint, image, "--out", tmp_path / "pred",
        "--resolution", "64", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    prediction = io.read_grey(tmp_path / "pred" / "predict_0417_1.png")
    assert prediction.shape == (600, 800)
    said = " ".join(out.split())  # the lines are wrapped to the terminal
    assert "800x600 px" in said and "aspect ratio kept" in said and "64x48" in said
    assert "resized back to 800x600" in said
    assert all(len(line) <= 80 for line in out.splitlines())
    code, out, _ = run_cli(
        "infer", tiny_checkpoint, image, "--out", tmp_path / "strip",
        "--resolution", "64", "--device", "cpu", "--remove-border",
    )  # fmt: skip
    stripped = io.read_grey(tmp_path / "strip" / "predict_0417_1.png")
    assert code == 0 and stripped.shape == (600, 800)
    assert "bottom 24 px" in out and not stripped[576:].any()  # no boundary over the scale bar


def test_fitting_keeps_grains_round_and_puts_predictions_back_on_the_image() -> None:
    from datatool.torch.inference import fit_back, fit_to_network

    yy, xx = np.mgrid[0:600, 0:800]
    disk = (((yy - 300) ** 2 + (xx - 500) ** 2) < 120**2).astype(np.float32)
    square, fit = fit_to_network(disk, 128)
    rows, cols = np.nonzero(square[: fit.scaled[0], : fit.scaled[1]] > 0.5)
    height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
    assert square.shape == (128, 128) and fit.scaled == (96, 128)
    assert abs(height - width) <= 1  # a round grain stays round (squashing gives 38 x 51)
    back = fit_back(square, fit)  # an identity network's prediction lies on the grain
    assert back.shape == (600, 800)
    assert np.mean(np.abs(back - disk)) < 0.01


# --- 6. leakage across splits in flat sets; many duplicates -----------------------------


def _flat_pair(root: Path, split: str, name: str, image: np.ndarray, label: np.ndarray) -> str:
    for kind, pixels in (("image", image), ("label", label)):
        (root / split / kind).mkdir(parents=True, exist_ok=True)
        io.write_png(root / split / kind / f"{name}.png", pixels)
    return f"{split}/image/{name}.png"


def _micrograph_and_label(seed: int, size=(256, 288)) -> tuple[np.ndarray, np.ndarray]:
    sample = synth.make_sample(seed, size, 24.0, 1, strip=0)
    return sample.originals[0], process_tracing(sample.tracing, 3)


def test_validation_crop_cut_from_inside_a_training_crop_is_leakage(tmp_path, run_cli) -> None:
    from datatool.crop import cut

    root = tmp_path / "flat"
    big, big_label = _micrograph_and_label(21)
    other, other_label = _micrograph_and_label(22)
    large = _flat_pair(root, "training", "steel_a", big, big_label)
    _flat_pair(root, "training", "steel_b", other, other_label)
    box = (70, 50, 160, 128)  # a smaller crop from inside steel_a, no original anywhere
    small = _flat_pair(root, "validation", "v_1", cut(big, box), cut(big_label, box))
    unrelated, unrelated_label = _micrograph_and_label(23, (128, 160))
    _flat_pair(root, "validation", "v_2", unrelated, unrelated_label)
    code, out, _ = run_cli("check", root, "--json", "--workers", "1")
    leaks = [f for f in json.loads(out)["findings"] if f["code"] == "split-leakage"]
    assert code == 1
    assert [(f["path"], f["related"], f["severity"]) for f in leaks] == [(small, [large], "error")]
    assert "cut from inside" in leaks[0]["message"] and "(70, 50)" in leaks[0]["message"]
    assert "two splits" in leaks[0]["message"]


def test_correct_flat_splits_have_no_leakage(tmp_path, run_cli) -> None:
    root = tmp_path / "flat"
    for seed, split in ((31, "training"), (32, "training"), (33, "validation")):
        _flat_pair(root, split, f"s{seed}", *_micrograph_and_label(seed, (128 + seed, 160)))
    code, out, _ = run_cli("check", root, "--json", "--workers", "1")
    assert [f for f in json.loads(out)["findings"] if f["check"] == "leakage"] == []


def test_hundreds_of_near_identical_pairs_give_one_finding_per_cluster(tmp_path) -> None:
    from datatool.check import run_check
    from datatool.checks import CheckOptions

    rng = np.random.default_rng(5)
    base, label = _micrograph_and_label(41, (24, 24))
    root = tmp_path / "flat"
    for i in range(300):  # one micrograph saved 300 times with fresh noise
        noisy = np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)
        _flat_pair(root, "training", f"t_{i:03d}", noisy, label)
    for i in range(3):
        _flat_pair(root, "validation", f"v_{i}", base, label)
    report = run_check(root, CheckOptions(workers=1))
    duplicates = [f for f in report.findings if f.code == "duplicate"]
    leaks = [f for f in report.findings if f.code == "split-leakage"]
    assert len(duplicates) == 1 and len(leaks) == 1
    assert (
        duplicates[0].severity.value == "warning"
        and duplicates[0].path == "training/image/t_001.png"
    )
    assert len(duplicates[0].related) == 299  # every member named once
    assert "one of 300 near-identical crops" in duplicates[0].message
    assert leaks[0].path == "validation/image/v_0.png" and leaks[0].severity.value == "error"
    assert len(leaks[0].related) == 302
