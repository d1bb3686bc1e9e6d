"""The tiny training loop: seeded, saves <name>_<epoch>.pth from epoch 0, and learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datatool.torch.checkpoints import find_checkpoints, load_unet
from datatool.torch.inference import predict
from datatool.torch.train import TrainConfig, train_unet

TINY = TrainConfig(
    name="tiny",
    base_width=2,
    epochs=4,
    resolution=32,
    batch_size=4,
    save_every=2,
    learning_rate=1e-2,
)


def stripes(count: int = 6, side: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dark lines on a bright noisy background, the truth on the dark lines."""
    rng = np.random.default_rng(seed)
    truths = np.zeros((count, side, side), bool)
    for i in range(count):
        truths[i, :, rng.integers(2, side - 2, 3)] = True
        truths[i, rng.integers(2, side - 2, 2), :] = True
    images = np.where(truths, 0.2, 0.7) + rng.normal(0, 0.05, truths.shape)
    return np.clip(images, 0, 1).astype(np.float32), truths


def test_checkpoints_are_named_like_the_lab_and_cover_epoch_zero(tmp_path):
    images, truths = stripes()
    written = train_unet(images, truths, tmp_path, TINY)
    assert [p.name for p in written] == ["tiny_0.pth", "tiny_2.pth", "tiny_4.pth"]
    assert [c.epoch for c in find_checkpoints([tmp_path])] == [0, 2, 4]
    assert load_unet(written[-1]).base_width == 2


def test_same_seed_gives_identical_weights(tmp_path):
    images, truths = stripes()
    a = train_unet(images, truths, tmp_path / "a", TINY)[-1]
    b = train_unet(images, truths, tmp_path / "b", TINY)[-1]
    state_a, state_b = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_training_lowers_the_bce_on_the_training_images(tmp_path):
    images, truths = stripes()
    config = TrainConfig(
        name="t", base_width=2, epochs=15, resolution=32, save_every=15, learning_rate=1e-2
    )
    first, last = train_unet(images, truths, tmp_path, config)
    losses = []
    for path in (first, last):
        prob = predict(load_unet(path), images)
        losses.append(
            torch.nn.functional.binary_cross_entropy(
                torch.from_numpy(prob), torch.from_numpy(truths.astype(np.float32))
            ).item()
        )
    assert losses[1] < losses[0]


@pytest.mark.parametrize(
    "bad", [{"epochs": 0}, {"base_width": 0}, {"learning_rate": 0.0}, {"batch_size": 0}]
)
def test_bad_config_is_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        TrainConfig(**bad)


def test_mismatched_shapes_are_refused(tmp_path):
    images, truths = stripes()
    with pytest.raises(ValueError, match="must both be"):
        train_unet(images, truths[:2], tmp_path, TINY)
