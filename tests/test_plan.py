"""datatool plan: proposed boxes hold enough complete grains, overlap, and build cleanly."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from datatool import io, labels, layout
from datatool.build import BuildOptions, build, load_plan, validate_plan
from datatool.crop import cut
from datatool.errors import DatatoolError
from datatool.plan import plan_sample, propose_boxes

STRIP = 24  # scale-bar rows at the bottom of the synthetic originals (datatool.synth)


def _grid(size: int = 96, pitch: int = 12) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[::pitch, :] = True
    mask[:, ::pitch] = True
    return mask


def _overlap(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    dx = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    dy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(dx, 0) * max(dy, 0)


@pytest.mark.parametrize(("sample_id", "min_grains"), [("0101", 5), ("0102", 8), ("0201", 5)])
def test_every_proposed_box_holds_the_grains_the_rule_asks(
    sample_tree: Path, sample_id: str, min_grains: int
) -> None:
    (next(sample_tree.glob(f"*/{sample_id}_*/aligned")) / "crops.json").unlink()
    proposal = plan_sample(sample_tree, sample_id, 128, 0.25, min_grains)
    sample = layout.scan(sample_tree).sample(sample_id)
    # Counted independently: the tracing without its strip, processed as labels are.
    mask = labels.process_tracing(io.read_grey(sample_tree / sample.tracing)[:-STRIP], 3)
    boxes = load_plan(proposal.path).boxes
    assert proposal.path == sample_tree / sample.plan and len(boxes) >= 4
    for box in boxes:
        assert box[2:] == (128, 128)
        assert labels.count_complete_grains(cut(mask, box)) >= min_grains, box
    validate_plan(load_plan(proposal.path), mask.shape)
    # Neighbours overlap, so boundaries at one crop's edge are whole in the next.
    for box in boxes:
        assert any(_overlap(box, other) > 0 for other in boxes if other != box)
    for role in (layout.IMAGE_DIR, layout.LABEL_DIR):  # the bundled crops follow another plan
        shutil.rmtree(sample_tree / sample.folder / role)
    result = build(sample_tree, BuildOptions(), samples=[sample_id])
    assert len(result.written) == 2 * 2 * len(boxes) and not result.stale


def test_boxes_prefer_traced_areas() -> None:
    mask = _grid(160, 12)
    mask[:, 100:] = False  # right part untraced, as at the edge of a tracing
    mask[:, 100] = True
    proposed = propose_boxes(mask, 64, overlap=0.25, min_grains=5)
    assert proposed
    for scored in proposed:
        assert scored.grains >= 5
    fully_traced = [s for s in proposed if s.box[0] + 64 <= 101]
    assert fully_traced and all(s.untraced == 0 for s in fully_traced)
    # Beyond x = 100 nothing is traced: windows reaching far into it are left out, although
    # the slivers between the last lines count as grains.
    assert all(s.untraced <= 0.5 and s.box[0] + 64 <= 120 for s in proposed)
    assert propose_boxes(mask, 64, overlap=0.25, min_grains=5, max_untraced=1.0) != proposed


def test_an_impossible_rule_gives_no_boxes_and_writes_nothing(sample_tree: Path) -> None:
    assert propose_boxes(_grid(), 48, min_grains=1000) == []
    plan = next(sample_tree.glob("*/0101_*/aligned")) / "crops.json"
    before = plan.read_bytes()
    with pytest.raises(DatatoolError, match="no 64 px window holds 500 complete grains"):
        plan_sample(sample_tree, "0101", 64, min_grains=500, force=True)
    assert plan.read_bytes() == before


def test_existing_plan_is_kept_unless_forced(sample_tree: Path, tmp_path: Path) -> None:
    plan = next(sample_tree.glob("*/0101_*/aligned")) / "crops.json"
    before = plan.read_bytes()
    with pytest.raises(DatatoolError, match="a crop plan exists.*--force"):
        plan_sample(sample_tree, "0101")
    assert plan.read_bytes() == before
    plan_sample(sample_tree, "0101", 96, force=True)
    assert load_plan(plan).crop_size == 96
    out = tmp_path / "elsewhere.json"
    assert plan_sample(sample_tree, "0102", out=out).path == out and out.exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crop_size": 0}, "crop_size 0"),
        ({"crop_size": 200}, "crop_size 200"),
        ({"crop_size": 32, "overlap": 1.0}, "overlap"),
    ],
)
def test_propose_boxes_refuses_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        propose_boxes(_grid(), **kwargs)


def test_cli_plan_writes_an_editable_plan(sample_tree: Path, run_cli) -> None:
    plan = next(sample_tree.glob("*/0201_*/aligned")) / "crops.json"
    plan.unlink()
    code, out, err = run_cli("plan", sample_tree, "--sample", "0201", "--size", "100")
    assert code == 0, err
    assert "removed bottom 24 px" in out and "grains" in out
    text = plan.read_text()
    assert text.count("\n    [") == len(load_plan(plan).boxes)  # one box per line
    code, _, err = run_cli("plan", sample_tree, "--sample", "0201")
    assert code == 1 and "a crop plan exists" in err
    code, _, err = run_cli("plan", sample_tree, "--sample", "9999")
    assert code == 1 and "no sample 9999" in err
