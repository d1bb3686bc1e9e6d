"""Array functions on labels and tracings, and the crop/border helpers."""

from __future__ import annotations

import numpy as np
import pytest

from datatool import crop, labels, synth


def _grid_lines(size: int = 96, step: int = 24, width: int = 1) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    for k in range(step, size, step):
        mask[k : k + width, :] = True
        mask[:, k : k + width] = True
    return mask


@pytest.mark.parametrize("width", [1, 3, 5, 7])
def test_estimate_line_width_of_dilated_skeleton(width: int) -> None:
    mask = labels.dilate_to_width(_grid_lines(), width)
    assert labels.estimate_line_width(mask) == pytest.approx(width, abs=0.5)


def test_estimate_line_width_equals_the_full_radius_search() -> None:
    """The near-first search gives the estimate of the full 8 px search, thin or thick."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(3)
    for trial in range(120):
        mask = rng.random((48, 64)) < 0.02
        mask = ndi.binary_dilation(mask, iterations=int(rng.integers(1, 11)))  # blobs
        if trial % 3 == 0:  # or a grid of lines 1-15 px wide
            mask = labels.dilate_to_width(_grid_lines(64, 20), int(rng.integers(1, 16)))
        centre = labels.skeleton(mask)
        padded = np.pad(~mask, 1, constant_values=True)
        radius = labels.WIDTH_SEARCH_RADIUS
        squared = labels.windowed_squared_distance(padded, 2 * radius + 1)[1:-1, 1:-1][centre]
        expected = float(2 * np.median(np.sqrt(squared.astype(float))) - 1)
        assert labels.estimate_line_width(mask, centre) == expected


def test_otsu_threshold_of_8_bit_images_is_skimages() -> None:
    from skimage.filters import threshold_otsu

    rng = np.random.default_rng(5)
    for _ in range(200):
        low, high = sorted(rng.integers(0, 256, 2))
        grey = rng.integers(low, high + 1, tuple(rng.integers(2, 60, 2))).astype(np.uint8)
        if grey.min() < grey.max():
            assert labels.otsu_threshold(grey) == float(threshold_otsu(grey))


def _random_masks(seed: int):
    """Random masks of awkward sizes (1 px, around the 64-bit word) and densities."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    for height, width in [(1, 1), (1, 70), (70, 1), (2, 2), (5, 63), (9, 64), (33, 65)]:
        yield rng.random((height, width)) < 0.6
    for k in range(60):
        height, width = (int(v) for v in rng.integers(3, 140, 2))
        mask = rng.random((height, width)) < rng.uniform(0.1, 0.95)
        yield ndi.binary_opening(mask) if k % 2 else mask
    yield np.ones((40, 130), bool)
    yield np.zeros((40, 130), bool)


@pytest.mark.parametrize("seed", [0, 1])
def test_centre_lines_are_skimage_thin_pixel_for_pixel(seed: int) -> None:
    from skimage.morphology import thin

    for mask in _random_masks(seed):
        assert np.array_equal(labels.centre_lines(mask), thin(mask)), mask.shape


def test_centre_lines_of_real_shaped_tracings_are_skimage_thin() -> None:
    """Lines of 2-6 px with blobs at triple points, an SEM segmentation and a 1024 px tracing."""
    from skimage.morphology import thin

    from tests.test_registration import optical_steel, sem_lamellar

    tracings = [optical_steel(0)[1], sem_lamellar(1)[1]]
    tracings.append(synth.make_sample(3, size=(1024, 1024), grain_px=40.0).tracing)
    for grey in tracings:
        mask = labels.line_mask(grey)
        lines = labels.centre_lines(mask)
        assert np.array_equal(lines, thin(mask))
        assert np.array_equal(labels.centre_lines(lines), lines)  # 1-px lines stay as they are
        assert np.array_equal(labels.centre_lines(mask.astype(np.uint8) * 255), lines)


def test_centre_lines_keep_a_two_px_diagonal_and_an_end() -> None:
    diagonal = np.zeros((12, 12), bool)
    for i in range(1, 10):
        diagonal[i, i : i + 2] = True
    lines = labels.centre_lines(diagonal)
    assert 0 < lines.sum() < diagonal.sum()
    assert lines[1:3, 1:3].any() and lines[9, 9:11].any()  # both ends survive


def test_estimate_line_width_empty_is_none() -> None:
    assert labels.estimate_line_width(np.zeros((8, 8), bool)) is None


@pytest.mark.parametrize("stroke", [1, 2, 4])
@pytest.mark.parametrize("polarity", ["black-on-white", "white-on-black"])
def test_process_tracing_does_not_depend_on_stroke_or_polarity(stroke: int, polarity: str) -> None:
    sample = synth.make_sample(3, size=(96, 96), grain_px=24, fields_of_view=1, strip=0)
    from scipy import ndimage as ndi

    drawn = ndi.binary_dilation(sample.boundaries, iterations=stroke)
    grey = np.where(drawn, 0, 255).astype(np.uint8)
    if polarity == "white-on-black":
        grey = 255 - grey
    label = labels.process_tracing(grey, line_width=3)
    assert label.dtype == bool
    assert labels.estimate_line_width(label) == pytest.approx(3, abs=1)
    # The label follows the true boundaries within a pixel.
    near = ndi.binary_dilation(sample.boundaries, iterations=stroke + 2)
    assert label[~near].sum() == 0


def test_line_mask_picks_the_minority_as_lines() -> None:
    grey = np.full((10, 10), 250, np.uint8)
    grey[5, :] = 10
    assert labels.line_mask(grey).sum() == 10
    assert labels.line_mask(255 - grey).sum() == 10


def test_complete_grains_and_untraced_fraction() -> None:
    mask = _grid_lines(size=96, step=24)
    # A 4x4 grid of cells: only the 2x2 inner ones are enclosed.
    assert labels.count_complete_grains(mask) == 4
    # Border cells are smaller than the largest inner cell here: nothing is untraced.
    assert labels.untraced_fraction(mask) == 0.0
    half = mask.copy()
    half[:, 48:] = False  # erase the tracing on the right half: one large untraced region
    assert labels.untraced_fraction(half) > 0.4


def test_grey_fraction_and_inverted() -> None:
    label = np.zeros((10, 10), np.uint8)
    label[3, :] = 255
    assert labels.grey_fraction(label) == 0
    assert not labels.is_inverted(label)
    assert labels.is_inverted(255 - label)
    label[0, 0] = 128
    assert labels.grey_fraction(label) == pytest.approx(0.01)


@pytest.mark.parametrize("size", [48, 192])
def test_resize_label_stays_binary_with_target_width(size: int) -> None:
    label = labels.dilate_to_width(_grid_lines(), 3)
    resized = labels.resize_label(label, size, line_width=3)
    assert resized.shape == (size, size) and resized.dtype == bool
    assert labels.estimate_line_width(resized) == pytest.approx(3, abs=1)


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((2, 2, 2))])
def test_two_d_is_required(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="2-D"):
        labels.estimate_line_width(bad)


def test_detect_border_finds_the_scale_bar_strip() -> None:
    sample = synth.make_sample(5, size=(200, 160), fields_of_view=1, strip=24)
    border = crop.detect_border(sample.originals[0])
    assert border == crop.Border(bottom=24)
    assert crop.strip_border(sample.originals[0], border).shape == (200, 160)
    assert crop.detect_border(sample.originals[0][:200]) == crop.Border()


@pytest.mark.parametrize(
    ("rows", "expected"),
    [(50, crop.Border(top=50)), (51, crop.Border()), (10, crop.Border(top=10))],
)
def test_detect_border_limits_a_strip_to_a_quarter_of_the_side(rows, expected) -> None:
    """A flat run longer than a quarter of the image is not a strip; a text line is bridged."""
    image = np.random.default_rng(0).integers(30, 220, (200, 120)).astype(np.uint8)
    image[:rows] = 0
    image[rows // 2] = image[-1]  # a row of text inside the strip looks like micrograph
    assert crop.detect_border(image) == expected
    assert crop.detect_border(image.T) == crop.Border(left=expected.top)
    assert crop.detect_border(np.zeros((40, 40), np.uint8)) == crop.Border()


def test_cut_refuses_boxes_outside() -> None:
    image = np.zeros((10, 20))
    assert crop.cut(image, (2, 3, 5, 4)).shape == (4, 5)
    with pytest.raises(ValueError, match="outside"):
        crop.cut(image, (18, 0, 5, 5))
    with pytest.raises(ValueError, match="bad box"):
        crop.cut(image, (0, 0, 0, 5))


def test_synth_is_deterministic(tmp_path) -> None:
    a = synth.write_tree(tmp_path / "a", {"0001": "training"}, seed=7, size=(96, 96), crop=48)
    b = synth.write_tree(tmp_path / "b", {"0001": "training"}, seed=7, size=(96, 96), crop=48)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)


def test_bundled_fixtures_match_the_generator(tmp_path) -> None:
    from tests.conftest import FIXTURE_TREE

    synth.write_fixtures(tmp_path)
    made = tmp_path / "training_validation_data"
    files = sorted(p.relative_to(FIXTURE_TREE) for p in FIXTURE_TREE.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(made) for p in made.rglob("*") if p.is_file())
    assert all((made / f).read_bytes() == (FIXTURE_TREE / f).read_bytes() for f in files)
