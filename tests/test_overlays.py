"""Overlays use the report's colour codes and are written as RGB PNGs, atomically."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from datatool.metrics.losses import gaussian_reward_map, tophat_reward_map
from datatool.metrics.overlays import (
    OVERLAY_KEY,
    prediction_on_micrograph,
    prediction_overlay,
    reward_map_image,
    upscale_nearest,
    weighted_prediction_image,
    with_key,
    write_overlays,
)
from datatool.metrics.results import ScoreParams

WHITE, BLACK, RED, BLUE, GREEN = (255, 255, 255), (0, 0, 0), (255, 0, 0), (0, 0, 255), (0, 255, 0)


@pytest.mark.parametrize(
    ("pred", "truth", "colour"),
    [
        (1.0, True, WHITE),  # true positive
        (0.0, False, BLACK),  # true negative
        (0.0, True, RED),  # missed line
        (1.0, False, BLUE),  # false line
    ],
)
def test_prediction_overlay_colour_codes(pred, truth, colour):
    image = prediction_overlay(np.array([[pred]]), np.array([[truth]]))
    assert image.dtype == np.uint8 and image.shape == (1, 1, 3)
    assert tuple(image[0, 0]) == colour


def test_prediction_overlay_shows_grey_predictions_dimmed():
    image = prediction_overlay(np.array([[0.5, 0.5]]), np.array([[True, False]]))
    assert tuple(image[0, 0]) == (255, 128, 128)  # half-found line: pink
    assert tuple(image[0, 1]) == (0, 0, 128)  # half-confident false line: dark blue


@pytest.mark.parametrize(
    ("value", "colour"), [(1.0, GREEN), (0.0, BLACK), (-1.0, RED), (0.5, (0, 128, 0))]
)
def test_reward_map_image_green_black_red(value, colour):
    assert tuple(reward_map_image(np.array([[value]]))[0, 0]) == colour


def test_weighted_prediction_is_prediction_times_reward():
    pred = np.array([[1.0, 1.0, 0.0, 0.5]])
    reward = np.array([[1.0, -1.0, -1.0, 1.0]])
    image = weighted_prediction_image(pred, reward)
    assert [tuple(px) for px in image[0]] == [GREEN, RED, BLACK, (0, 128, 0)]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: prediction_overlay(np.zeros((2, 2)), np.zeros((2, 3), bool)), "differ"),
        (lambda: reward_map_image(np.zeros((2, 2, 3))), "2-D"),
        (lambda: weighted_prediction_image(np.zeros((2, 2)), np.zeros((3, 2))), "differ"),
    ],
)
def test_bad_shapes_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_write_overlays_writes_rgb_pngs(tmp_path):
    truth = np.zeros((24, 32), bool)
    truth[10:13, 2:30] = True
    pred = np.roll(truth, 2, axis=0).astype(np.float64)
    params = ScoreParams(sigma=2.0, kernel_size=9, tophat_kernel_size=5)
    written = write_overlays(tmp_path / "new", "sample", pred, truth, params)
    assert [p.name for p in written] == [
        "sample.overlay.png",
        "sample.tophat-reward.png",
        "sample.tophat-weighted.png",
        "sample.gaussian-reward.png",
        "sample.gaussian-weighted.png",
    ]
    # Pictures: enlarged 16x (nearest-neighbour) to 512 px wide, a key below.
    for path in written:
        with Image.open(path) as image:
            assert image.mode == "RGB" and image.size[0] == 512 and image.size[1] > 24 * 16
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == sorted(p.name for p in written)

    def picture(path):
        with Image.open(path) as image:
            return np.asarray(image)[: 24 * 16]

    np.testing.assert_array_equal(
        picture(written[3]), upscale_nearest(reward_map_image(gaussian_reward_map(truth, 2.0, 9)))
    )
    expected = weighted_prediction_image(pred, tophat_reward_map(truth, 5))
    np.testing.assert_array_equal(picture(written[2])[::16, ::16], expected)
    # Deterministic bytes: writing again gives the same files.
    first = [p.read_bytes() for p in written]
    write_overlays(tmp_path / "new", "sample", pred, truth, params)
    assert [p.read_bytes() for p in written] == first


def test_upscale_is_nearest_neighbour_to_at_least_512():
    rgb = np.zeros((128, 100, 3), np.uint8)
    rgb[5, 7] = (255, 0, 0)
    big = upscale_nearest(rgb)
    assert big.shape == (512, 400, 3)
    assert set(map(tuple, big[20:24, 28:32].reshape(-1, 3))) == {(255, 0, 0)}
    assert set(map(tuple, np.unique(big.reshape(-1, 3), axis=0))) == {(0, 0, 0), (255, 0, 0)}
    assert upscale_nearest(np.zeros((600, 600, 3), np.uint8)).shape == (600, 600, 3)


def test_key_shows_each_colour_below_the_picture():
    rgb = np.full((512, 512, 3), 128, np.uint8)
    keyed = with_key(rgb, OVERLAY_KEY)
    assert keyed.shape[1] == 512 and keyed.shape[0] > 512
    np.testing.assert_array_equal(keyed[:512], rgb)
    strip = {tuple(px) for px in keyed[512:].reshape(-1, 3)}
    for _, colour in OVERLAY_KEY:
        assert colour in strip
    # A narrow picture wraps its key onto more rows instead of cutting names off.
    assert (
        with_key(np.zeros((40, 60, 3), np.uint8), OVERLAY_KEY).shape[0]
        > with_key(np.zeros((40, 600, 3), np.uint8), OVERLAY_KEY).shape[0]
    )


def test_overlay_over_the_micrograph():
    micrograph = np.full((8, 8), 0.5)
    truth = np.zeros((8, 8), bool)
    truth[2] = True
    pred = np.zeros((8, 8))
    pred[2, :4] = 1.0
    pred[6, :] = 1.0
    out = prediction_on_micrograph(pred, truth, micrograph)
    assert tuple(out[2, 0]) == WHITE and tuple(out[2, 6]) == RED and tuple(out[6, 0]) == BLUE
    assert tuple(out[0, 0]) == (128, 128, 128)  # no line: the micrograph shows
    with pytest.raises(ValueError, match="same size"):
        prediction_on_micrograph(pred, truth, np.zeros((8, 9)))
