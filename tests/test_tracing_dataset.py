"""TracingDataset: refuses what sorted pairing mispairs, keeps pairs aligned, works in workers."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from datatool.errors import DatatoolError
from datatool.torch import TracingDataset


def flat_set(tree: Path, dest: Path) -> Path:
    """The training crops of a tree as the flat image/ + label/ folder the lab's loader reads."""
    for kind in ("image", "label"):
        (dest / kind).mkdir(parents=True)
        for path in sorted(tree.glob(f"training/*/aligned/{kind}/*.png")):
            shutil.copy(path, dest / kind / path.name)
    return dest


def test_an_extra_image_that_sorted_pairing_would_mispair_is_refused(sample_tree, tmp_path):
    flat = flat_set(sample_tree, tmp_path / "flat")
    # "0101_1_1a.png" sorts between 0101_1_1 and 0101_1_2: the lab's sorted(zip(images, labels))
    # would pair every later image with the label of the crop before it.
    shutil.copy(flat / "image" / "0101_1_1.png", flat / "image" / "0101_1_1a.png")
    images = sorted(p.name for p in (flat / "image").iterdir())
    labels = sorted(p.name for p in (flat / "label").iterdir())
    mispaired = [(i, lab) for i, lab in zip(images, labels, strict=False) if i != lab]
    assert mispaired, "the extra file must shift sorted-order pairs"
    with pytest.raises(DatatoolError, match=r"refusing to train.*image/0101_1_1a\.png"):
        TracingDataset(flat)


def test_a_clean_flat_set_pairs_by_name(sample_tree, tmp_path):
    flat = flat_set(sample_tree, tmp_path / "flat")
    data = TracingDataset(flat, resolution=64)
    assert len(data) == 16
    assert all(Path(p.image).name == Path(p.label).name for p in data.pairs)
    image, label = data[0]
    assert image.shape == label.shape == (1, 64, 64)
    assert image.dtype == label.dtype == torch.float32
    assert set(label.unique().tolist()) <= {0.0, 1.0}


def test_windows_and_flips_keep_image_and_label_aligned(sample_tree):
    plain = TracingDataset(sample_tree, resolution=64, window="centre", check=False)
    moved = TracingDataset(sample_tree, resolution=64, augment=True, check=False, seed=3)
    full_image, full_label = plain.read(0)
    seen = set()
    for epoch in range(6):
        moved.set_epoch(epoch)
        image, label = (t[0].numpy() for t in moved[0])
        # Find the window and the flip that produced the image; the label must match them.
        found = _locate(full_image, image)
        assert found is not None, "the augmented image is a flipped/turned window of the crop"
        (top, left), turns, flip = found
        expected = _transform(full_label[top : top + 64, left : left + 64], turns, flip)
        assert np.array_equal(label, expected.astype(np.float32))
        seen.add((turns, flip))
    assert len(seen) > 1, "augmentation should vary with the epoch"


def _transform(window: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    out = np.rot90(window, turns)
    return out[:, ::-1] if flip else out


def _locate(full: np.ndarray, patch: np.ndarray):
    side = patch.shape[0]
    for turns in range(4):
        for flip in (False, True):
            # Undo the transform, then find the window by exact comparison.
            undone = np.rot90(patch[:, ::-1] if flip else patch, -turns)
            for top in range(full.shape[0] - side + 1):
                for left in range(full.shape[1] - side + 1):
                    if np.array_equal(full[top : top + side, left : left + side], undone):
                        return (top, left), turns, flip
    return None


def test_small_crops_are_scaled_up_together(sample_tree):
    data = TracingDataset(sample_tree, resolution=160, window="centre", check=False)
    image, label = data[0]
    assert image.shape == label.shape == (1, 160, 160)
    assert 0 < label.mean() < 0.5


def test_dataloader_with_two_workers_is_repeatable(sample_tree):
    data = TracingDataset(sample_tree, resolution=64, augment=True, check=False)
    pickle.loads(pickle.dumps(data))  # what the workers receive

    def batches(workers: int) -> list[torch.Tensor]:
        loader = DataLoader(data, batch_size=4, num_workers=workers)
        return [torch.cat([images, labels], dim=1) for images, labels in loader]

    with_workers, in_process = batches(2), batches(0)
    assert len(with_workers) == 4
    assert all(torch.equal(a, b) for a, b in zip(with_workers, in_process, strict=True))


def test_splits_of_a_tree(sample_tree):
    assert len(TracingDataset(sample_tree, "training", resolution=64, check=False)) == 16
    assert len(TracingDataset(sample_tree, "validation", resolution=64, check=False)) == 8
    assert len(TracingDataset(sample_tree, "test", resolution=64, check=False)) == 0
