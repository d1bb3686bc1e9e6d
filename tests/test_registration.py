"""Registration of each tracing on its micrographs (issue 13, item 3).

The micrographs are built to look like the lab's: an etched optical steel (bright grains, dark
grooves 2-6 px wide, dark blobs at triple points, uneven lighting, blur, noise, inclusions, a
scale bar) hand-traced in GIMP (antialiased 3-px strokes, blobs at junctions, only complete
grains, the tracer following one side of the groove), and an SEM image of lamellar Ti-6Al-4V
(colonies of parallel lamellae, a dark lamella beside each colony boundary) with an automatic
binary segmentation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from datatool import labels, layout, synth
from datatool.checks.registration import (
    MAX_SHIFT,
    evidence_maps,
    offset_scores,
    register_tracing,
    two_level_share,
)

SIZE = (232, 296)  # micrograph area (H, W); a 24-px scale bar is added below
STRIP = 24


def _junctions(grains: np.ndarray) -> np.ndarray:
    """Pixels where three or more grains meet in a 3x3 window."""
    counts = np.zeros(grains.shape, np.int32)
    padded = np.pad(grains, 1, mode="edge")
    seen = []
    for dy in range(3):
        for dx in range(3):
            seen.append(padded[dy : dy + grains.shape[0], dx : dx + grains.shape[1]])
    stack = np.sort(np.stack(seen), axis=0)
    counts = 1 + (np.diff(stack, axis=0) != 0).sum(axis=0)
    return counts >= 3


def _scale_bar(width: int, rng: np.random.Generator) -> np.ndarray:
    bar = np.full((STRIP, width), 10, np.uint8)
    bar[10:14, 12 : 12 + width // 5] = 250
    for k in range(3):
        x0 = width // 2 + k * 24
        bar[6:18, x0 : x0 + int(rng.integers(6, 16))] = 235
    return bar


def _gimp_tracing(boundaries: np.ndarray, junctions: np.ndarray, shift=(0, 0)) -> np.ndarray:
    """Black antialiased 3-px strokes on white with blobs at junctions, strip white."""
    stroke = ndi.binary_dilation(boundaries, iterations=1)
    stroke |= ndi.binary_dilation(junctions & boundaries, iterations=3)
    stroke = np.roll(stroke, (shift[1], shift[0]), axis=(0, 1))
    ink = ndi.gaussian_filter(stroke.astype(np.float64), 0.7)
    tracing = np.clip(np.round(255 * (1 - 1.5 * ink)), 0, 255).astype(np.uint8)
    return np.vstack([tracing, np.full((STRIP, tracing.shape[1]), 255, np.uint8)])


def optical_steel(seed: int, shift=(0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """An etched optical micrograph and its hand tracing (moved by ``shift`` = (dx, dy))."""
    rng = np.random.default_rng(seed)
    grains = synth.voronoi_grains(SIZE, 34.0, rng)
    edges = synth.grain_boundaries(grains)
    junctions = _junctions(grains)
    # Groove width varies per grain (2, 4 or 6 px, mostly narrow): widen the 1-px boundary.
    ids = grains.max() + 1
    width = rng.choice([2, 4, 6], p=[0.4, 0.4, 0.2], size=ids)[grains]
    two = edges | np.roll(edges, 1, axis=1) | np.roll(edges, 1, axis=0)
    groove = two & (width == 2)
    groove |= ndi.binary_dilation(two, iterations=1) & (width == 4)
    groove |= ndi.binary_dilation(two, iterations=2) & (width == 6)
    groove |= ndi.binary_dilation(junctions, iterations=3)  # etch pits at triple points
    img = rng.uniform(165, 225, size=ids)[grains]
    img = np.where(groove, img * rng.uniform(0.3, 0.5), img)
    inclusions = rng.random(SIZE) < 0.0004
    img = np.where(ndi.binary_dilation(inclusions, iterations=2), 60.0, img)
    img = ndi.gaussian_filter(img, 1.1)
    yy, xx = np.mgrid[0 : SIZE[0], 0 : SIZE[1]]
    img += 30 * (xx / SIZE[1] - 0.5) + 15 * (yy / SIZE[0] - 0.5)  # uneven lighting
    img += rng.normal(0, 8, size=SIZE)
    micrograph = np.vstack(
        [np.clip(np.round(img), 0, 255).astype(np.uint8), _scale_bar(SIZE[1], rng)]
    )
    traced = synth.complete_grain_boundaries(grains)
    # The tracer follows one side of the groove: one pixel right of the centre line.
    traced = np.roll(traced, (0, 1), axis=(0, 1))
    return micrograph, _gimp_tracing(traced, junctions, shift)


def sem_lamellar(seed: int, shift=(0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """An SEM image of lamellar colonies and an automatic binary segmentation of them."""
    rng = np.random.default_rng(seed)
    grains = synth.voronoi_grains(SIZE, 48.0, rng)
    ids = grains.max() + 1
    yy, xx = np.mgrid[0 : SIZE[0], 0 : SIZE[1]].astype(np.float64)
    angle = rng.uniform(0, np.pi, size=ids)[grains]
    period = rng.uniform(9, 14, size=ids)[grains]
    phase = rng.uniform(0, 2 * np.pi, size=ids)[grains]
    lamellae = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period + phase)
    img = rng.uniform(120, 170, size=ids)[grains] + 25 * (lamellae > 0.3)
    edges = synth.grain_boundaries(grains)
    # A dark lamella runs beside each colony boundary (on its lower-left side), 2-8 px from
    # it, darkest near the boundary: the segmentation follows the boundary, not the lamella.
    inner_band = ndi.binary_dilation(np.roll(edges, (3, -3), axis=(0, 1)), iterations=1)
    outer_band = ndi.binary_dilation(np.roll(edges, (6, -6), axis=(0, 1)), iterations=2)
    keep = ~ndi.binary_dilation(edges, iterations=1)
    img = np.where(outer_band & keep, img * 0.6, img)
    img = np.where(inner_band & keep, img * 0.75, img)
    img = ndi.gaussian_filter(img, 0.9) + rng.normal(0, 10, size=SIZE)
    img += 20 * (yy / SIZE[0] - 0.5)
    micrograph = np.vstack(
        [np.clip(np.round(img), 0, 255).astype(np.uint8), _scale_bar(SIZE[1], rng)]
    )
    segmentation = ndi.binary_dilation(edges, iterations=1)
    segmentation = np.roll(segmentation, (shift[1], shift[0]), axis=(0, 1))
    tracing = np.where(segmentation, 0, 255).astype(np.uint8)
    return micrograph, np.vstack([tracing, np.full((STRIP, SIZE[1]), 255, np.uint8)])


# --- trees ----------------------------------------------------------------------------------

BOXES = [(0, 0, 128, 128), (160, 96, 128, 128)]


def write_sample(
    root: Path,
    micrographs: list[np.ndarray],
    tracing: np.ndarray,
    sample_id: str = "0417",
    label_from: np.ndarray | None = None,
) -> Path:
    """A one-sample tree as ``datatool build`` leaves it: originals, tracing, plan and crops.

    The labels are cut from ``label_from`` (default: the tracing itself), processed as the build
    does, so the crops agree with the tracing whatever its registration.
    """
    from datatool.labels import process_tracing

    folder = root / "training" / f"{sample_id}_training" / layout.ALIGNED_DIR
    folder.mkdir(parents=True)
    source = tracing if label_from is None else label_from
    label_full = process_tracing(source[:-STRIP], 3)
    synth.write_sample(folder, sample_id, micrographs, tracing, label_full, BOXES)
    return root


TRACE = "training/0417_training/aligned/0417_trace.png"
FOV1 = "training/0417_training/aligned/0417_1.png"


def _check(root: Path):
    from datatool.check import run_check
    from datatool.checks import CheckOptions

    return run_check(root, CheckOptions(workers=1))


def _registration(report) -> list:
    return [f for f in report.findings if f.check == "registration"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correctly_traced_optical_micrographs_pass(tmp_path: Path, seed: int) -> None:
    first, tracing = optical_steel(seed)
    second, _ = optical_steel(seed)  # the same grains: a second field of view
    second = np.clip(second.astype(int) * 0.8 + 30, 0, 255).astype(np.uint8)
    report = _check(write_sample(tmp_path, [first, second], tracing))
    assert _registration(report) == []
    assert report.ok, [f.message for f in report.findings if f.severity.value == "error"]


@pytest.mark.parametrize("seed", [0, 1])
def test_correctly_segmented_sem_lamellar_micrographs_pass(tmp_path: Path, seed: int) -> None:
    micrograph, segmentation = sem_lamellar(seed)
    edge_best = register_tracing(segmentation[:-STRIP], micrograph[:-STRIP])
    # As measured on real SEM: edge (-2, 2), dark (-6, 6) with skimage's Zhang-Suen centre
    # lines; the labels' Guo-Hall centre lines (labels.centre_lines) give dark (-6, 5) here.
    assert edge_best.edge == (-2, 2) and edge_best.dark == (-6, 5)
    report = _check(write_sample(tmp_path, [micrograph], segmentation))
    assert _registration(report) == []
    assert report.ok


def test_tracing_shifted_8_px_is_an_error_on_the_tracing(tmp_path: Path, run_cli) -> None:
    micrograph, tracing = optical_steel(1, shift=(8, 0))
    root = write_sample(tmp_path, [micrograph], tracing)
    code, out, _ = run_cli("check", root, "--json", "--workers", "1")
    assert code == 1
    found = [f for f in json.loads(out)["findings"] if f["check"] == "registration"]
    assert [(f["code"], f["severity"], f["path"], f["related"]) for f in found] == [
        ("misregistered", "error", TRACE, [FOV1])
    ]
    dx, dy = found[0]["measured"]
    assert dx <= -5 and abs(dy) <= 4  # the tracing must move left
    assert "field of view 1 (0417_1.png)" in found[0]["message"]
    assert f"({dx:+.0f}, {dy:+.0f}) px" in found[0]["message"]
    assert "move the tracing onto the micrograph" in found[0]["message"]
    # The crops agree with the shifted tracing: only the registration check can see it.
    errors = {f["code"] for f in json.loads(out)["findings"] if f["severity"] == "error"}
    assert errors == {"misregistered"}


@pytest.mark.parametrize(("shift", "axis"), [((0, 8), 1), ((-10, 0), 0)])
def test_shifted_sem_segmentation_is_an_error(tmp_path: Path, shift, axis) -> None:
    micrograph, segmentation = sem_lamellar(2, shift=shift)
    found = _registration(_check(write_sample(tmp_path, [micrograph], segmentation)))
    assert [(f.code, f.path) for f in found] == [("misregistered", TRACE)]
    moved = found[0].measured[axis]
    assert np.sign(moved) == -np.sign(shift[axis]) and abs(moved) > 4


@pytest.mark.parametrize("shift", [(0, 0), (2, -1), (8, 0), (0, -10)])
def test_a_window_gives_the_whole_images_verdict(monkeypatch, shift) -> None:
    """Larger micrographs are registered in a window: same offsets, same verdict."""
    from datatool.checks import registration

    micrograph, tracing = optical_steel(1, shift=shift)
    whole = register_tracing(tracing[:-STRIP], micrograph[:-STRIP])
    monkeypatch.setattr(registration, "WINDOW", 176)  # the images are 232 x 296 px
    windowed = register_tracing(tracing[:-STRIP], micrograph[:-STRIP])
    assert windowed.far == whole.far and windowed.clearly_better == whole.clearly_better
    assert windowed.strength > 0.5
    axis = 0 if shift[0] else 1
    if shift[axis] and abs(shift[axis]) > 4:  # moved back: opposite sign, beyond a line's width
        assert np.sign(windowed.edge[axis]) == -np.sign(shift[axis])
        assert abs(windowed.edge[axis]) > 4
    else:
        assert not windowed.far


def test_the_window_is_where_the_tracing_is(tmp_path: Path, monkeypatch) -> None:
    """A tracing drawn on part of the micrograph is measured there, and its shift is seen."""
    from datatool.checks import registration

    micrograph, tracing = optical_steel(1, shift=(8, 0))
    partial = tracing.copy()
    partial[: SIZE[0], 120:] = 255  # only the left 120 px are traced
    monkeypatch.setattr(registration, "WINDOW", 112)
    rows, cols = registration.line_window(labels.line_mask(partial[:-STRIP]))
    assert cols == slice(0, 112)
    found = _registration(_check(write_sample(tmp_path, [micrograph], partial)))
    assert [f.code for f in found] == ["misregistered"]
    assert found[0].measured[0] <= -5


@pytest.mark.parametrize("shift", [(3, 0), (-2, 3), (4, -4)])
def test_offsets_within_4_px_are_never_an_error(tmp_path: Path, shift) -> None:
    micrograph, tracing = optical_steel(0, shift=shift)
    assert _registration(_check(write_sample(tmp_path, [micrograph], tracing))) == []


def test_swapped_micrograph_and_tracing_is_an_error(tmp_path: Path) -> None:
    micrograph, tracing = optical_steel(2)
    report = _check(write_sample(tmp_path, [tracing], micrograph, label_from=tracing))
    found = _registration(report)
    assert [(f.code, f.severity.value, f.path, f.related) for f in found] == [
        ("swapped", "error", TRACE, [FOV1])
    ]
    assert "swap the two files" in found[0].message
    assert not report.ok


def test_photograph_as_tracing_and_drawing_as_micrograph(tmp_path: Path) -> None:
    micrograph, tracing = optical_steel(0)
    other, _ = optical_steel(5)
    found = _registration(
        _check(write_sample(tmp_path / "a", [micrograph], other, label_from=tracing))
    )
    assert [(f.code, f.path) for f in found] == [("not-a-tracing", TRACE)]
    assert "grey photograph" in found[0].message
    found = _registration(_check(write_sample(tmp_path / "b", [micrograph, tracing], tracing)))
    fov2 = "training/0417_training/aligned/0417_2.png"
    assert [(f.code, f.path) for f in found] == [("not-a-micrograph", fov2)]
    assert "line drawing" in found[0].message


def test_weak_evidence_is_an_info_finding(tmp_path: Path) -> None:
    _, tracing = optical_steel(0)
    unrelated, _ = optical_steel(9)
    rng = np.random.default_rng(0)
    faint = np.clip(128 + rng.normal(0, 9, unrelated.shape), 0, 255).astype(np.uint8)
    faint[-STRIP:] = unrelated[-STRIP:]  # keep the scale bar
    report = _check(write_sample(tmp_path, [faint], tracing))
    found = _registration(report)
    assert [(f.code, f.severity.value, f.path) for f in found] == [
        ("registration-unclear", "info", TRACE)
    ]
    assert "cannot tell" in found[0].message


def test_two_level_share_and_evidence_maps() -> None:
    micrograph, tracing = optical_steel(0)
    assert two_level_share(tracing) > 0.7 > 0.4 > two_level_share(micrograph)
    deep = micrograph.astype(np.uint16) * 257
    assert two_level_share(deep) == pytest.approx(two_level_share(micrograph))
    edge, dark = evidence_maps(micrograph[:-STRIP])
    assert edge.shape == dark.shape == SIZE and edge.dtype == np.float32
    assert abs(float(edge.mean())) < 1e-3 and float(edge.std()) == pytest.approx(1, abs=1e-3)
    lines = np.zeros(SIZE, bool)
    assert not offset_scores(lines, edge).any()
    assert offset_scores(lines, edge).shape == (2 * MAX_SHIFT + 1, 2 * MAX_SHIFT + 1)
