"""plan with its defaults covers micrographs of both kinds of structure, and draws a preview."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from datatool import io, layout, synth
from datatool.build import load_plan
from datatool.plan import coverage, plan_sample


def _write_sample(root: Path, sample_id: str, micrograph: np.ndarray, lines: np.ndarray) -> Path:
    """One sample folder: an original and a black-on-white tracing (antialiased strokes)."""
    folder = root / "training" / layout.sample_folder(sample_id, "training") / layout.ALIGNED_DIR
    ink = ndi.gaussian_filter(ndi.binary_dilation(lines, iterations=1).astype(float), 0.8)
    tracing = np.clip(np.round(255 * (1 - 1.6 * ink)), 0, 255).astype(np.uint8)
    io.write_png(folder / layout.original_name(sample_id, 1), micrograph)
    io.write_png(folder / layout.tracing_name(sample_id), tracing)
    return root


def _micrograph(grains: np.ndarray, lines: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    levels = rng.uniform(70, 200, size=int(grains.max()) + 1)
    img = np.where(lines, 50.0, levels[grains]) + rng.normal(0, 6, grains.shape)
    return np.clip(np.round(ndi.gaussian_filter(img, 1.0)), 0, 255).astype(np.uint8)


@pytest.fixture
def coarse_and_fine(tmp_path: Path) -> Path:
    """480 x 320 px: grains of about 70 px on the left half, about 18 px on the right."""
    rng = np.random.default_rng(3)
    h, w = 320, 480
    coarse = synth.voronoi_grains((h, w), 70.0, rng)
    fine = synth.voronoi_grains((h, w), 18.0, rng)
    grains = np.where(np.arange(w)[None, :] < w // 2, coarse, fine + coarse.max() + 1)
    lines = synth.complete_grain_boundaries(grains)
    return _write_sample(tmp_path / "tree", "0301", _micrograph(grains, lines, rng), lines)


@pytest.fixture
def lamellar(tmp_path: Path) -> Path:
    """384 x 384 px of lamellar colonies: parallel traced lines ending inside the colonies."""
    rng = np.random.default_rng(5)
    h = w = 384
    colonies = synth.voronoi_grains((h, w), 160.0, rng)
    yy, xx = np.mgrid[0:h, 0:w]
    lines = np.zeros((h, w), bool)
    for colony in range(int(colonies.max()) + 1):
        angle = rng.uniform(0, np.pi)
        along = xx * np.cos(angle) + yy * np.sin(angle)
        across = -xx * np.sin(angle) + yy * np.cos(angle)
        spacing = rng.uniform(9, 13)
        lamella = np.abs((across % spacing) - spacing / 2) < 0.6
        # Each lamella boundary stops somewhere: gaps give open ends, as real tracings have.
        gaps = np.sin(along / rng.uniform(25, 40) + (across // spacing) * 1.7) > 0.85
        lines |= (colonies == colony) & lamella & ~gaps
    micrograph = np.clip(120 + 70 * lines + rng.normal(0, 8, (h, w)), 0, 255).astype(np.uint8)
    return _write_sample(tmp_path / "tree", "0402", micrograph, lines)


def test_defaults_cover_a_coarse_and_fine_micrograph(coarse_and_fine: Path, tmp_path) -> None:
    proposal = plan_sample(coarse_and_fine, "0301", preview=tmp_path / "preview.png")
    assert proposal.criterion == "grains"
    assert proposal.coverage >= 0.8
    boxes = load_plan(proposal.path).boxes
    assert coverage(list(boxes), proposal.stripped_shape) == pytest.approx(proposal.coverage)
    assert proposal.plan.crop_size % 32 == 0
    # Both halves get boxes, not only the fine-grained one.
    left = [b for b in boxes if b[0] + b[2] / 2 < 240]
    right = [b for b in boxes if b[0] + b[2] / 2 >= 240]
    assert left and right
    assert all(s.grains >= 5 for s in proposal.scored)


def test_lamellar_tracing_uses_crossings(lamellar: Path, run_cli, tmp_path) -> None:
    preview = tmp_path / "lamellar.png"
    code, out, err = run_cli("plan", lamellar, "--sample", "0402", "--preview", preview)
    assert code == 0, err
    assert "criterion crossings" in out and "open ends" in out
    proposal = plan_sample(lamellar, "0402", write=False)
    assert proposal.criterion == "crossings" and proposal.coverage >= 0.8
    assert all((s.crossings or 0) >= 40 for s in proposal.scored)
    assert f"cover {proposal.coverage:.0%}" in out
    # The grains rule alone refuses this tracing, which is why the crossings exist.
    with pytest.raises(Exception, match="complete grains"):
        plan_sample(lamellar, "0402", write=False, criterion="grains", crop_size=64)


@pytest.mark.parametrize("shape", [(320, 480), (480, 256)])
def test_preview_has_the_micrographs_aspect_ratio(tmp_path: Path, shape) -> None:
    rng = np.random.default_rng(1)
    grains = synth.voronoi_grains(shape, 30.0, rng)
    lines = synth.complete_grain_boundaries(grains)
    root = _write_sample(tmp_path / "tree", "0501", _micrograph(grains, lines, rng), lines)
    preview = tmp_path / "p.png"
    plan_sample(root, "0501", preview=preview)
    with Image.open(preview) as picture:
        width, height = picture.size
        rgb = np.asarray(picture.convert("RGB"))
    assert width / height == pytest.approx(shape[1] / shape[0], rel=0.01)
    assert width >= shape[1] / 2 and height >= shape[0] / 2
    # The tracing is drawn in colour over the grey micrograph.
    assert ((rgb[..., 2] > 200) & (rgb[..., 0] < 50)).mean() > 0.02
