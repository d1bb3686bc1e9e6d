"""``datatool train``: checked data, lab-layout checkpoints, validation log, seeds, resume."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from datatool import io
from datatool.crop import cut
from datatool.labels import process_tracing
from datatool.torch.unet import expected_shapes

REPO = Path(__file__).resolve().parents[1]
LAB_KEYS = REPO / "tests" / "data" / "unet_checkpoint_keys.json"
MISALIGNED = "training/0101_training/aligned/label/0101_1_1.png"
QUICK = ["--save-every", "1", "--width", "4", "--resolution", "64", "--loss", "bce+tolerant",
         "--device", "cpu", "--seed", "0"]  # fmt: skip


def train_args(root: Path, out: Path, epochs: int = 2, *extra: str) -> list[str]:
    return ["train", str(root), "--out", str(out), "--epochs", str(epochs), *QUICK, *extra]


def states_equal(a: Path, b: Path) -> bool:
    state_a, state_b = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    return state_a.keys() == state_b.keys() and all(
        torch.equal(state_a[k], state_b[k]) for k in state_a
    )


def misalign_one_label(tree: Path, offset: tuple[int, int] = (4, 3)) -> None:
    """Re-cut the label of 0101_1_1 (box (0, 0, 128, 128)) from the tracing, moved by ``offset``."""
    aligned = tree / "training" / "0101_training" / "aligned"
    tracing = io.read_grey(aligned / "0101_trace.png")
    height = io.read_grey(aligned / "0101_1.png").shape[0] - 24  # the synthetic scale-bar strip
    label = process_tracing(tracing[:height], 3)
    io.write_png(tree / MISALIGNED, cut(label, (offset[0], offset[1], 128, 128)))


def test_train_writes_checkpoints_that_evaluate_sweeps(sample_tree, tmp_path, run_cli):
    ck = tmp_path / "ck"
    code, out, err = run_cli(*train_args(sample_tree, ck))
    assert code == 0, err
    assert "16 pairs" in out and "8 validation pairs" in out
    assert sorted(p.name for p in ck.glob("*.pth")) == ["grain_unet_1.pth", "grain_unet_2.pth"]
    assert (ck / "training_state.pt").is_file()
    with open(ck / "training_log.csv", newline="") as fh:
        log = list(csv.DictReader(fh))
    assert [row["epoch"] for row in log] == ["1", "2"]
    for row in log:
        for column in ("train_loss", "val_bce", "val_tolerant_bce", "val_tophat", "val_gaussian"):
            assert float(row[column]) == float(row[column])  # a number, not empty or NaN
    # The lab's keys, in the lab's order; at width 64 the lab's shapes.
    lab = json.loads(LAB_KEYS.read_text())["keys"]
    state = torch.load(ck / "grain_unet_2.pth", weights_only=True)
    assert list(state) == [key for key, _ in lab]
    assert expected_shapes(64) == {key: tuple(shape) for key, shape in lab}
    code, out, err = run_cli(
        "evaluate", ck, "--dataset", sample_tree, "--out", tmp_path / "ev",
        "--resolution", "64", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    with open(tmp_path / "ev" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows if r["kind"] == "mean"] == ["1", "2"]
    assert "tolerant_bce_sigma3" in rows[0]


def test_misaligned_pair_is_refused_before_anything_is_written(sample_tree, tmp_path, run_cli):
    misalign_one_label(sample_tree)
    ck = tmp_path / "ck"
    code, _, err = run_cli(*train_args(sample_tree, ck))
    assert code == 1
    assert "misaligned" in err and MISALIGNED in err
    assert not ck.exists()


def test_same_seed_same_checkpoints_and_resume_continues_exactly(sample_tree, tmp_path, run_cli):
    for name in ("a", "b"):
        code, _, err = run_cli(*train_args(sample_tree, tmp_path / name, 2))
        assert code == 0, err
    assert states_equal(tmp_path / "a" / "grain_unet_2.pth", tmp_path / "b" / "grain_unet_2.pth")
    # Stop after epoch 1, then resume to epoch 2: the same weights as the uninterrupted run.
    code, _, err = run_cli(*train_args(sample_tree, tmp_path / "c", 1))
    assert code == 0, err
    code, out, err = run_cli(*train_args(sample_tree, tmp_path / "c", 2, "--resume"))
    assert code == 0, err
    assert "resuming after epoch 1" in out
    assert states_equal(tmp_path / "a" / "grain_unet_2.pth", tmp_path / "c" / "grain_unet_2.pth")
    with open(tmp_path / "c" / "training_log.csv", newline="") as fh:
        assert [row["epoch"] for row in csv.DictReader(fh)] == ["1", "2"]
    # A run in the folder is not overwritten without --resume; other settings cannot resume it.
    code, _, err = run_cli(*train_args(sample_tree, tmp_path / "c", 3))
    assert code == 1 and "already holds a training run" in err
    code, _, err = run_cli(*train_args(sample_tree, tmp_path / "c", 3, "--resume", "--lr", "0.5"))
    assert code == 2 and "learning_rate" in err


def test_a_tree_without_validation_says_so_and_without_training_fails(
    sample_tree, tmp_path, run_cli
):
    validation = tmp_path / "validation_only"
    shutil.copytree(sample_tree / "validation", validation / "validation")
    shutil.rmtree(sample_tree / "validation")
    code, out, err = run_cli(*train_args(sample_tree, tmp_path / "ck", 1))
    assert code == 0, err
    assert "no validation split" in out
    with open(tmp_path / "ck" / "training_log.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["val_bce"] == ""
    code, _, err = run_cli(*train_args(validation, tmp_path / "none", 1))
    assert code == 1 and "training" in err
    assert not (tmp_path / "none").exists()


def test_bad_options_are_usage_errors(sample_tree, tmp_path, run_cli):
    code, _, err = run_cli(*train_args(sample_tree, tmp_path / "ck", 1, "--resolution", "100"))
    assert code == 2 and "multiple of 16" in err
    code, _, err = run_cli(*train_args(sample_tree, tmp_path / "ck", 1, "--loss", "dice"))
    assert code == 2
    assert not (tmp_path / "ck").exists()


@pytest.mark.parametrize("loss", ["bce", "tolerant", "bce+tolerant"])
def test_every_loss_trains_and_lowers_nothing_to_nan(loss, tmp_path):
    from datatool.torch.train import TrainConfig, train_unet
    from tests.test_unet_train import stripes

    images, truths = stripes()
    config = TrainConfig(name="t", base_width=2, epochs=2, resolution=32, loss=loss, save_every=2)
    written = train_unet(images, truths, tmp_path, config)
    state = torch.load(written[-1], weights_only=True)
    assert all(torch.isfinite(t).all() for t in state.values())
