"""datatool.grains: every definition checked against tracings with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from datatool import grains, synth

# --------------------------------------------------------------------------- tracings


def _grid(size: int = 105, pitch: int = 20, offset: int = 5, width: int = 1) -> np.ndarray:
    """Lines at offset, offset + pitch, ... (rows and columns), ``width`` px wide."""
    mask = np.zeros((size, size), bool)
    half = width // 2
    for pos in range(offset, size, pitch):
        mask[max(pos - half, 0) : pos + half + 1, :] = True
        mask[:, max(pos - half, 0) : pos + half + 1] = True
    return mask


def _voronoi(width: int, seed: int = 4, size: int = 200) -> tuple[np.ndarray, np.ndarray]:
    cells = synth.voronoi_grains((size, size), 25.0, np.random.default_rng(seed))
    lines = synth.grain_boundaries(cells)
    if width > 1:
        lines = ndi.binary_dilation(lines, np.ones((width, width), bool))
    return cells, lines


def _reference_intercept(skeleton: np.ndarray, spacing: int = 10) -> tuple[float, int]:
    """The definition, literally: walk every test line pixel by pixel and count runs."""
    h, w = skeleton.shape
    lines: list[tuple[list[tuple[int, int]], float]] = []
    lines += [([(r, j) for j in range(w)], 1.0) for r in range(0, h, spacing)]
    lines += [([(i, c) for i in range(h)], 1.0) for c in range(0, w, spacing)]
    for off in range(-(h - 1), w):
        if off % spacing == 0:
            pts = [(i, i + off) for i in range(h) if 0 <= i + off < w]
            lines.append((pts, math.sqrt(2)))
    for off in range(0, h + w - 1):
        if off % spacing == 0:
            pts = [(i, off - i) for i in range(h) if 0 <= off - i < w]
            lines.append((pts, math.sqrt(2)))
    length, crossings = 0.0, 0
    for pts, step in lines:
        length += step * len(pts)
        previous = False
        for i, j in pts:
            here = bool(skeleton[i, j])
            crossings += here and not previous
            previous = here
    return length, crossings


# --------------------------------------------------------------------------- the grid


@pytest.mark.parametrize("width", [1, 3])
def test_grid_of_squares_known_count_areas_chord(width: int) -> None:
    mask = _grid(width=width)
    stats = grains.grain_stats(mask)
    # Lines at 5, 25, ..., 85: a 4 x 4 block of enclosed cells; the rest touches the edge.
    assert stats.grains == 16
    # A grain is everything off the 1-px skeleton: (pitch - 1)^2 whatever the stroke width.
    assert stats.mean_area_px == stats.median_area_px == 19 * 19
    assert stats.std_area_px == 0
    assert stats.mean_diameter_px == pytest.approx(2 * math.sqrt(361 / math.pi))
    # Chords run between the strokes of B: pitch - width; runs reaching the edge do not count.
    assert stats.mean_chord_px == 20 - width
    chords = grains.chord_lengths(mask)
    assert set(chords.tolist()) == {20 - width}
    # Rows not on a line: 4 chords each; same for columns.
    lines_without_stroke = 105 - 5 * width
    assert stats.chords == 2 * 4 * lines_without_stroke
    assert stats.open_ends == 0
    assert stats.triple_junctions == 25  # every crossing of the 5 x 5 lines
    assert stats.boundary_fraction == pytest.approx(mask.mean())


@pytest.mark.parametrize("width", [1, 3])
def test_grid_intercept_counts_every_line(width: int) -> None:
    mask = _grid(width=width)
    skeleton = grains.grain_map(mask).skeleton
    counts = {c.direction: c for c in grains.intercept_counts(skeleton)}
    # Rows 0, 10, ..., 100 never lie on a line (5 + 20k) and cross the 5 vertical lines.
    assert counts["0deg"].crossings == counts["90deg"].crossings == 11 * 5
    assert counts["0deg"].length_px == 11 * 105
    length, crossings = _reference_intercept(skeleton)
    assert sum(c.crossings for c in counts.values()) == crossings
    assert sum(c.length_px for c in counts.values()) == pytest.approx(length)
    assert grains.mean_intercept(skeleton) == pytest.approx(length / crossings)


def test_grid_with_a_gap_merges_two_grains_and_has_two_open_ends() -> None:
    mask = _grid()
    mask[31:40, 45] = False  # a 9-px gap in the line between two inner cells
    stats = grains.grain_stats(mask)
    assert stats.grains == 15
    assert stats.median_area_px == 361 and max(grains.grain_map(mask).complete_areas) > 722
    assert stats.open_ends == 2
    assert sorted(stats.open_end_positions) == [[45, 30], [45, 40]]  # [x, y]
    assert stats.triple_junctions == 25


# --------------------------------------------------------------------------- Voronoi


def _matched_cells(cells: np.ndarray, gmap: grains.GrainMap) -> list[int]:
    """The Voronoi cell each complete grain lies in (every grain pixel off the lines)."""
    owners = []
    for label in np.flatnonzero(gmap.complete):
        inside = cells[(gmap.labels == label) & ~gmap.boundary]
        values, counts = np.unique(inside, return_counts=True)
        assert counts.max() == inside.size, "a grain spans two Voronoi cells"
        owners.append(int(values[0]))
    return owners


@pytest.mark.parametrize("width", [1, 3])
def test_voronoi_tessellation_every_inner_cell_is_one_grain(width: int) -> None:
    cells, lines = _voronoi(width)
    gmap = grains.grain_map(lines)
    # A cell is inner when its pixels off the drawn 1-px boundary keep off the image edge.
    interior = np.where(synth.grain_boundaries(cells), -1, cells)
    edges = np.concatenate([interior[0], interior[-1], interior[:, 0], interior[:, -1]])
    edge_cells = np.unique(edges[edges >= 0])
    inner_cells = set(np.unique(cells).tolist()) - set(edge_cells.tolist())
    owners = _matched_cells(cells, gmap)
    assert len(owners) == len(set(owners))  # one grain per cell
    assert set(owners) == inner_cells
    assert gmap.count == len(inner_cells) > 20
    # The grain centroids sit on the cells' centroids (within about a line width).
    reach = 1.0 + width / 2
    centroids = gmap.centroids()
    labels_ = np.flatnonzero(gmap.complete)
    for label, (cy, cx), cell in zip(labels_, centroids, owners, strict=True):
        ty, tx = ndi.center_of_mass(cells == cell)
        assert abs(cy - ty) < reach and abs(cx - tx) < reach, (label, cell)
    stats = grains.grain_stats(lines)
    assert stats.open_ends == 0
    length, crossings = _reference_intercept(gmap.skeleton)
    assert stats.mean_intercept_px == pytest.approx(length / crossings)
    assert stats.crossings == crossings


def test_voronoi_counts_agree_across_stroke_widths() -> None:
    thin = grains.grain_stats(_voronoi(1)[1])
    thick = grains.grain_stats(_voronoi(3)[1])
    assert thin.grains == thick.grains
    assert thick.mean_area_px == pytest.approx(thin.mean_area_px, rel=0.03)
    assert thick.mean_intercept_px == pytest.approx(thin.mean_intercept_px, rel=0.05)
    assert thick.mean_chord_px < thin.mean_chord_px  # chords are measured between strokes
    assert thick.boundary_fraction > 2 * thin.boundary_fraction


# --------------------------------------------------------------------------- units


def test_pixel_size_gives_um_values_and_astm_g() -> None:
    mask = _grid()
    px = grains.grain_stats(mask)
    sized = grains.grain_stats(mask, 0.5, pixel_size_source="--pixel-size")
    assert px.astm_g is None and px.pixel_size_um is None
    length, crossings = _reference_intercept(grains.grain_map(mask).skeleton)
    intercept_mm = length / crossings * 0.5 / 1000
    assert sized.astm_g == pytest.approx(-6.6439 * math.log10(intercept_mm) - 3.2877, abs=0.05)
    assert sized.mean_intercept_um == pytest.approx(px.mean_intercept_px * 0.5)
    assert sized.mean_chord_um == pytest.approx(9.5)
    assert sized.pixel_size_source == "--pixel-size"
    # The same microstructure imaged at half the pixel size gives the same G.
    cells = synth.voronoi_grains((300, 300), 25.0, np.random.default_rng(7))
    coarse = grains.grain_stats(synth.grain_boundaries(cells), 0.5)
    fine_cells = np.kron(cells, np.ones((2, 2), cells.dtype))
    fine = grains.grain_stats(synth.grain_boundaries(fine_cells), 0.25)
    # (Sampling the skeleton on pixel test lines costs about 0.2 in G between the two.)
    assert fine.astm_g == pytest.approx(coarse.astm_g, abs=0.3)


@pytest.mark.parametrize(
    "text", ["0.5um", "500nm", "0.0005mm", "0.5µm", "0.5 μm", "0.5 UM", "5e-1um", "0.5micron"]
)
def test_parse_pixel_size(text: str) -> None:
    assert grains.parse_pixel_size(text) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("text", "words"),
    [("0.5", "unit"), ("3 furlongs", "unknown unit"), ("0um", "> 0"), ("um", "unit")],
)
def test_parse_pixel_size_refuses(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        grains.parse_pixel_size(text)


def test_astm_formula() -> None:
    assert grains.astm_grain_size(0.01) == pytest.approx(-6.6439 * -2 - 3.2877)
    with pytest.raises(ValueError, match="> 0"):
        grains.astm_grain_size(0.0)


# --------------------------------------------------------------------------- bad input


def test_empty_tracing_is_one_grainless_result() -> None:
    for grey in (np.zeros((64, 64), np.uint8), np.full((64, 64), 255, np.uint8)):
        boundary = grains.tracing_boundary(grey)
        assert not boundary.any()
        stats = grains.grain_stats(boundary, 0.5)
        assert stats.grains == 0 and stats.mean_area_px is None
        assert stats.mean_chord_px is None and stats.mean_intercept_px is None
        assert stats.astm_g is None and stats.boundary_fraction == 0
        assert "empty tracing" in stats.notes[0]
        data = json.loads(stats.model_dump_json())
        assert data["mean_intercept_px"] is None and data["grains"] == 0


def test_lines_without_a_closed_grain_say_so() -> None:
    mask = np.zeros((64, 64), bool)
    mask[:, 20] = True
    mask[30, :] = True
    stats = grains.grain_stats(mask)
    assert stats.grains == 0 and stats.mean_area_px is None
    assert stats.mean_intercept_px is not None  # lines are still crossed
    assert "no complete grain" in stats.notes[0]


def test_micrograph_is_not_a_tracing() -> None:
    micrograph = synth.make_sample(1, (96, 96), 20.0, fields_of_view=1, strip=0).originals[0]
    with pytest.raises(ValueError, match="not a tracing: .* mid-grey"):
        grains.tracing_boundary(micrograph)
    with pytest.raises(ValueError, match=r"2-D \(H, W\)"):
        grains.grain_map(np.zeros((4, 4, 3), bool))


def test_gimp_tracing_either_polarity_gives_the_same_grains() -> None:
    sample = synth.make_sample(2, (160, 160), 24.0, fields_of_view=1, strip=0)
    black_on_white = grains.grain_stats(grains.tracing_boundary(sample.tracing))
    white_on_black = grains.grain_stats(grains.tracing_boundary(255 - sample.tracing))
    assert black_on_white == white_on_black
    cells_truth = grains.grain_stats(sample.boundaries)
    assert black_on_white.grains == cells_truth.grains > 10


def test_untraced_fraction_and_count_follow_the_skeleton_definition() -> None:
    mask = _grid(size=96, pitch=24, offset=0)
    assert grains.count_complete_grains(mask) == 9
    assert grains.untraced_fraction(mask) == 0.0
    half = mask.copy()
    half[:, 49:] = False
    assert grains.untraced_fraction(half) > 0.4
    # A 3-px label counts like its 1-px skeleton.
    assert grains.count_complete_grains(ndi.binary_dilation(mask)) == 9


def test_colour_labels_is_rgb_black_on_the_lines() -> None:
    gmap = grains.grain_map(_grid())
    picture = grains.colour_labels(gmap.labels)
    assert picture.shape == (105, 105, 3) and picture.dtype == np.uint8
    assert (picture[gmap.skeleton] == 0).all() and (picture[~gmap.skeleton] > 0).any(axis=-1).all()


# --------------------------------------------------------------------------- command line


def _write_tracing(path, seed: int = 2, size: int = 160) -> np.ndarray:
    from datatool import io

    tracing = synth.make_sample(seed, (size, size), 24.0, fields_of_view=1, strip=0).tracing
    io.write_png(path, tracing)
    return tracing


def test_cli_json_one_object_per_file_in_order(tmp_path, run_cli) -> None:
    from datatool import io

    first, second = tmp_path / "b_trace.png", tmp_path / "a_trace.png"
    _write_tracing(first, seed=2)
    _write_tracing(second, seed=3)
    io.write_png(tmp_path / "empty.png", np.zeros((40, 40), np.uint8))
    code, out, err = run_cli(
        "grains", first, second, tmp_path / "empty.png", "--json", "--pixel-size", "500nm"
    )
    assert code == 0, err
    data = json.loads(out)
    assert [d["file"] for d in data] == [str(first), str(second), str(tmp_path / "empty.png")]
    expected = grains.grain_stats(grains.tracing_boundary(io.read_grey(first)), 0.5)
    for key in (
        "grains",
        "mean_chord_px",
        "mean_intercept_px",
        "astm_g",
        "open_ends",
        "boundary_fraction",
    ):
        assert data[0][key] == getattr(expected, key), key
    assert data[0]["pixel_size_source"] == "--pixel-size" and data[0]["grains"] > 10
    assert data[2]["grains"] == 0 and data[2]["mean_area_px"] is None


def test_cli_text_names_the_pixel_size_source(tmp_path, run_cli) -> None:
    tracing = tmp_path / "t.png"
    _write_tracing(tracing)
    code, out, _ = run_cli("grains", tracing)
    assert code == 0 and "sizes in px only" in out and "—" in out  # no ASTM G without a size
    code, out, _ = run_cli("grains", tracing, "--pixel-size", "0.5µm")
    assert code == 0 and "0.5 µm from --pixel-size" in out


def test_cli_reads_the_pixel_size_of_a_tiff(tmp_path, run_cli) -> None:
    tifffile = pytest.importorskip("tifffile")
    tracing = synth.make_sample(2, (160, 160), 24.0, fields_of_view=1, strip=0).tracing
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, tracing, imagej=True, resolution=(4.0, 4.0), metadata={"unit": "um"})
    code, out, err = run_cli("grains", path, "--json")
    assert code == 0, err
    data = json.loads(out)[0]
    assert data["pixel_size_um"] == 0.25 and "ImageJ" in data["pixel_size_source"]
    assert data["astm_g"] is not None
    zeiss = tmp_path / "zeiss.tif"
    header = "0\r\nAP_IMAGE_PIXEL_SIZE\r\nImage Pixel Size = 250 nm\r\n"
    tifffile.imwrite(zeiss, tracing, extratags=[(34118, "s", 0, header, True)])
    fei = tmp_path / "fei.tif"
    tifffile.imwrite(
        fei, tracing, extratags=[(34682, "s", 0, "[Scan]\r\nPixelWidth=2.5e-07\r\n", True)]
    )
    for path, source in ((zeiss, "Zeiss"), (fei, "FEI")):
        data = json.loads(run_cli("grains", path, "--json")[1])[0]
        assert data["pixel_size_um"] == pytest.approx(0.25) and source in data["pixel_size_source"]
    # The option wins over the metadata.
    data = json.loads(run_cli("grains", fei, "--json", "--pixel-size", "1um")[1])[0]
    assert data["pixel_size_um"] == 1.0 and data["pixel_size_source"] == "--pixel-size"


def test_cli_labels_out_writes_16_bit_labels(tmp_path, run_cli) -> None:
    from PIL import Image

    from datatool import io

    tracing = tmp_path / "t.png"
    _write_tracing(tracing)
    code, _, err = run_cli("grains", tracing, "--labels-out", tmp_path / "out")
    assert code == 0, err
    with Image.open(tmp_path / "out" / "t_grains.png") as img:
        assert img.mode.startswith("I")
        written = np.asarray(img).astype(np.int64)
    gmap = grains.grain_map(grains.tracing_boundary(io.read_grey(tracing)))
    assert (written == gmap.labels).all()
    colour = io.read_image(tmp_path / "out" / "t_grains_colour.png")
    assert colour.pixels.shape == gmap.labels.shape


@pytest.mark.parametrize(
    ("make", "args", "code", "words"),
    [
        ("micrograph", (), 1, "not a tracing"),
        ("garbage", (), 1, "not an image"),
        ("tracing", ("--pixel-size", "0.5"), 2, "--pixel-size"),
        ("missing", (), 1, "cannot open"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, run_cli, make, args, code, words) -> None:
    from datatool import io

    path = tmp_path / "x.png"
    if make == "micrograph":
        io.write_png(path, synth.make_sample(1, (96, 96), 20.0, 1, strip=0).originals[0])
    elif make == "garbage":
        path.write_bytes(b"not a png at all")
    elif make == "tracing":
        _write_tracing(path)
    got, out, err = run_cli("grains", path, *args)
    assert got == code and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- check


def test_check_warns_of_open_ends_naming_where_they_are(sample_tree) -> None:
    from datatool import io
    from datatool.check import run_check
    from datatool.checks import CheckOptions

    rel = "training/0101_training/aligned/label/0101_1_2.png"
    label = io.read_grey(sample_tree / rel).copy()
    skeleton = grains.grain_map(label > 127).skeleton
    # Open three gaps in the middle of branches away from the edge.
    branches = skeleton & (grains.skeleton_neighbours(skeleton) == 2)
    ys, xs = np.nonzero(branches)
    inner = (ys > 20) & (ys < 108) & (xs > 20) & (xs < 108)
    gaps = []
    for y, x in zip(ys[inner], xs[inner], strict=True):
        if all(abs(y - gy) + abs(x - gx) > 30 for gy, gx in gaps):
            gaps.append((y, x))
    for y, x in gaps[:3]:
        label[y - 3 : y + 4, x - 3 : x + 4] = 0
    io.write_png(sample_tree / rel, label)
    report = run_check(sample_tree, CheckOptions(workers=1, alignment=False))
    found = [f for f in report.findings if f.code == "open-ends"]
    assert [f.path for f in found] == [rel]
    ends = grains.open_ends(grains.grain_map(label > 127).skeleton)
    assert found[0].measured == len(ends) >= 4 and found[0].severity.value == "warning"
    y, x = ends[0]
    assert f"({x}, {y})" in found[0].message
    # The untouched crops of the tree have none.
    assert all(f.path == rel for f in report.findings if f.code in ("open-ends", "few-grains"))
