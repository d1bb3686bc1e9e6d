"""datatool.metrics.grains: grain agreement sees what pixel losses miss."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from datatool import grains, labels, synth
from datatool.metrics.grains import (
    GrainAgreement,
    TruthGrains,
    grain_agreement,
    match_centroids,
    mean_nearest_neighbour,
)
from datatool.metrics.losses import gaussian_loss


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    """A real-shaped label: a GIMP-like tracing of a Voronoi micrograph, processed to 3 px."""
    sample = synth.make_sample(11, (384, 384), 28.0, fields_of_view=1, strip=0)
    return labels.process_tracing(sample.tracing, 3)


def _soft(mask: np.ndarray) -> np.ndarray:
    """A network-like output: blurred lines in [0, 1] (above 0.5 on the lines' core)."""
    return np.clip(ndi.gaussian_filter(mask.astype(np.float64), 0.8) * 1.15, 0, 1)


def _shift(array: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(array)
    h, w = array.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = array[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def _branches(mask: np.ndarray) -> list[np.ndarray]:
    """The skeleton's branches (pixels between junctions), as (n, 2) coordinates each."""
    skeleton = labels.skeleton(mask)
    junctions = skeleton & (grains.skeleton_neighbours(skeleton) >= 3)
    pieces = skeleton & ~ndi.binary_dilation(junctions, np.ones((3, 3), bool))
    found, count = ndi.label(pieces, np.ones((3, 3), bool))
    return [np.argwhere(found == k) for k in range(1, count + 1)]


def _cut_branches(pred: np.ndarray, mask: np.ndarray, share: float, seed: int = 0) -> np.ndarray:
    """Open a gap of about 5 px in the middle of ``share`` of the branches (seeded).

    A gap cuts a branch as surely as erasing it whole, the failure a U-Net makes.
    """
    branches = [b for b in _branches(mask) if len(b) >= 8]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(branches), size=round(share * len(branches)), replace=False)
    out = pred.copy()
    yy, xx = np.indices(pred.shape)
    for index in chosen:
        points = branches[index]
        cy, cx = points[len(points) // 2]
        out[(yy - cy) ** 2 + (xx - cx) ** 2 <= 2.0**2] = 0
    return out


def test_perfect_prediction_agrees_completely(truth: np.ndarray) -> None:
    result = grain_agreement(_soft(truth), truth)
    assert result.true_grains == result.predicted_grains > 60
    assert result.count_error == 0
    assert result.centroid_f1 == 1 and result.orphan_fraction == 0
    assert result.ks_statistic < 0.05 and result.ks_pvalue > 0.9
    # Blurring and thresholding moves a grain's centroid by about a tenth of a pixel.
    assert result.disregistry * result.cutoff_px < 0.15
    assert result.adapted_rand_error == pytest.approx(0, abs=0.01)
    assert result.matches == result.true_grains


def test_two_pixel_shift_keeps_the_grains(truth: np.ndarray) -> None:
    result = grain_agreement(_shift(_soft(truth), 2, 2), truth)
    assert abs(result.count_error) <= 0.03
    assert result.centroid_f1 >= 0.95
    assert result.ks_pvalue >= 0.05
    # The centroids moved by about 2 * sqrt(2) px, well below the cutoff.
    assert 0.1 < result.disregistry < 0.6
    assert result.cutoff_px > 2 * math.sqrt(2)


def test_cut_branches_change_grains_while_the_gaussian_loss_barely_moves(
    truth: np.ndarray,
) -> None:
    perfect = _soft(truth)
    cut = _cut_branches(perfect, truth, 0.25)
    shifted = _shift(perfect, 2, 2)
    whole = grain_agreement(perfect, truth)
    broken = grain_agreement(cut, truth)
    moved = grain_agreement(shifted, truth)
    # Gaps in a quarter of the branches merge grains: the count falls by more than 15 %,
    # the size distribution shifts, and fewer grains find their partner.
    assert broken.count_error < -0.15
    assert broken.ks_statistic > whole.ks_statistic + 0.1
    assert broken.centroid_f1 < whole.centroid_f1 - 0.1
    assert broken.centroid_f1 < moved.centroid_f1
    # ... while the Gaussian loss barely moves: by less than 5 % of its value, and by
    # less than for the harmless 2-px shift.
    loss = gaussian_loss(perfect, truth)
    loss_cut = gaussian_loss(cut, truth)
    loss_shift = gaussian_loss(shifted, truth)
    assert abs(loss_cut - loss) < 0.05 * abs(loss)
    assert abs(loss_cut - loss) < abs(loss_shift - loss)


def test_undefined_values_are_none_not_nan() -> None:
    empty = np.zeros((64, 64), bool)
    result = grain_agreement(np.zeros((64, 64)), empty)
    assert result.true_grains == result.predicted_grains == 0
    assert result.count_error is None and result.ks_statistic is None
    assert result.centroid_f1 is None and result.disregistry is None
    one = np.zeros((64, 64), bool)
    one[20, 10:40] = one[40, 10:40] = one[20:41, 10] = one[20:41, 40] = True
    single = grain_agreement(one.astype(float), one)
    assert single.true_grains == 1 and single.count_error == 0
    assert single.cutoff_px is None and single.centroid_f1 is None  # no nearest neighbour
    missed = grain_agreement(np.zeros((64, 64)), _grid_lines())
    assert missed.count_error == -1 and missed.centroid_f1 == 0 and missed.matches == 0
    assert missed.disregistry is None and missed.ks_statistic is None
    assert "NaN" not in GrainAgreement.model_validate(missed.model_dump()).model_dump_json()


def _grid_lines() -> np.ndarray:
    mask = np.zeros((64, 64), bool)
    mask[5::16, :] = True
    mask[:, 5::16] = True
    return mask


def test_matching_is_one_to_one_with_the_cutoff() -> None:
    true = np.array([[0.0, 0.0], [0.0, 10.0], [0.0, 20.0]])
    pred = np.array([[0.0, 1.0], [0.0, 2.0], [0.0, 30.0]])
    pairs, distances = match_centroids(true, pred, 3.0)
    # Both predictions near the first true grain; only one may have it, the other gets none.
    assert len(pairs) == 1 and distances.tolist() == [1.0]
    # A larger cutoff lets the second pair: the most matches first, then the closest.
    pairs, distances = match_centroids(true, pred, 9.0)
    assert sorted(pairs.tolist()) == [[0, 0], [1, 1]]
    assert sorted(distances.tolist()) == [1.0, 8.0]
    assert mean_nearest_neighbour(true) == 10.0
    assert mean_nearest_neighbour(true[:1]) is None


def test_shapes_must_agree() -> None:
    with pytest.raises(ValueError, match="one shape"):
        grain_agreement(np.zeros((4, 5)), np.zeros((5, 4), bool))


# --------------------------------------------------------------------------- score and evaluate


def test_score_grains_adds_an_object_and_a_second_table(tmp_path, run_cli, truth) -> None:
    import json

    from datatool import io

    io.write_png(tmp_path / "truth.png", truth)
    io.write_png(tmp_path / "shifted.png", (_shift(_soft(truth), 2, 2) * 255).astype(np.uint8))
    io.write_png(tmp_path / "blank.png", np.zeros(truth.shape, np.uint8))
    preds = [tmp_path / "shifted.png", tmp_path / "blank.png"]
    code, out, err = run_cli("score", *preds, "--truth", tmp_path / "truth.png", "--json")
    assert code == 0, err
    assert all(row["grains"] is None for row in json.loads(out))  # only when asked
    code, out, err = run_cli(
        "score", *preds, "--truth", tmp_path / "truth.png", "--json", "--grains"
    )
    assert code == 0, err
    shifted, blank = (row["grains"] for row in json.loads(out))
    assert shifted["centroid_f1"] >= 0.95 and abs(shifted["count_error"]) <= 0.03
    assert blank["count_error"] == -1 and blank["ks_pvalue"] is None
    assert blank["disregistry"] is None and blank["centroid_f1"] == 0
    code, out, _ = run_cli("score", *preds, "--truth", tmp_path / "truth.png", "--grains")
    assert code == 0 and "grains (complete grains" in out and "-100.0%" in out and "—" in out


def _metric_row(epoch: int, agreement: GrainAgreement | None):
    from datatool.metrics.results import MetricRow

    return MetricRow(
        bce=0.5, tophat=-0.1, gaussian=-0.1, gaussian_sigmas={"3": -0.1}, tolerant_bce=0.1,
        tolerant_bce_sigmas={"3": 0.1}, precision=1.0, recall=1.0, f1=1.0, grains=agreement,
        kind="image", epoch=epoch, checkpoint=f"ckpt_{epoch}.pth", image="a", images=1,
    )  # fmt: skip


def test_evaluate_grains_columns_and_plot(tmp_path, truth) -> None:
    from datatool import io
    from datatool.evaluate.sweep import metrics_csv_text, write_outputs
    from datatool.metrics.results import MetricRow, SweepOptions, SweepResult, mean_scores

    good = grain_agreement(_soft(truth), truth)
    none = grain_agreement(np.zeros(truth.shape), truth)
    rows = [_metric_row(1, none), _metric_row(2, good)]
    means = [
        MetricRow(**mean_scores([r]), kind="mean", epoch=r.epoch, checkpoint=r.checkpoint,
                  image="", images=1)
        for r in rows
    ]  # fmt: skip
    result = SweepResult(options=SweepOptions(grains=True), rows=rows, means=means)
    text = metrics_csv_text(result)
    header = text.splitlines()[0].split(",")
    assert "grain_count_error" in header and "grain_centroid_f1" in header
    first = dict(zip(header, text.splitlines()[1].split(","), strict=True))
    assert float(first["grain_count_error"]) == -1 and first["grain_disregistry"] == ""
    paths = write_outputs(result, tmp_path)
    assert paths["grains_plot"].name == "grains_vs_epoch.png"
    assert io.read_image(paths["grains_plot"]).pixels.shape[0] > 100
    assert means[1].grains.centroid_f1 == 1 and means[0].grains.matches == 0


def test_mean_agreement_sums_counts_and_averages_the_rest(truth) -> None:
    from datatool.metrics.grains import mean_agreement

    good = grain_agreement(_soft(truth), truth)
    none = grain_agreement(np.zeros(truth.shape), truth)
    mean = mean_agreement([good, none, None])
    assert mean.true_grains == 2 * good.true_grains
    assert mean.centroid_f1 == pytest.approx(0.5)
    assert mean.disregistry == good.disregistry  # the blank one has none: left out
    assert mean_agreement([None]) is None


def test_a_precomputed_truth_map_gives_the_same_agreement() -> None:
    from datatool.grains import grain_map
    from datatool.metrics.grains import grain_agreement

    truth = np.zeros((96, 96), bool)
    truth[::16, :] = True
    truth[:, ::16] = True
    pred = np.roll(truth, 1, axis=0).astype(np.float32)
    assert grain_agreement(pred, truth, grain_map(truth)) == grain_agreement(pred, truth)
    kept = TruthGrains.of(grain_map(truth))
    assert kept.labels.dtype == np.uint16
    assert grain_agreement(pred, truth, kept) == grain_agreement(pred, truth)
    with pytest.raises(ValueError, match="true_map"):
        grain_agreement(pred, truth, grain_map(truth[:48]))
