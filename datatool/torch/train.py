"""A tiny, seeded U-Net training loop that saves checkpoints like the lab does.

It exists so that the demo and the tests have a real training run to sweep:
a small-width :class:`~datatool.torch.unet.UNet` trained with BCE on the
synthetic sample data for a few epochs on the CPU, saving
``<name>_<epoch>.pth`` state dicts (epoch 0 is the untrained network, as in
the lab's 0-300 sweeps). It is not meant to train production models.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datatool.errors import DatatoolError
from datatool.io import atomic_path
from datatool.torch.inference import check_resolution, load_input
from datatool.torch.unet import UNet


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a tiny training run.

    Attributes
    ----------
    name : str
        Checkpoint prefix: files are ``<name>_<epoch>.pth``.
    base_width : int
        U-Net base width (the lab's is 64; 4-8 trains in seconds on a CPU).
    epochs : int
        Training epochs after the epoch-0 (untrained) checkpoint.
    resolution : int
        Side the images and labels are resized to, a multiple of 16.
    batch_size : int
        Images per optimiser step.
    learning_rate : float
        Adam learning rate.
    save_every : int
        Save a checkpoint every this many epochs (the last epoch is always saved).
    seed : int
        Seeds weights, shuffling and flips: the same seed gives the same checkpoints.
    line_width : int
        Width labels are brought to after resizing (the lab's is 3 px).
    """

    name: str = "demo"
    base_width: int = 8
    epochs: int = 40
    resolution: int = 128
    batch_size: int = 4
    learning_rate: float = 3e-3
    save_every: int = 5
    seed: int = 0
    line_width: int = 3

    def __post_init__(self) -> None:
        for field in ("base_width", "epochs", "batch_size", "save_every"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1, got {getattr(self, field)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        check_resolution(self.resolution)


def load_pairs(
    pairs: list[tuple[Path, Path]], resolution: int, line_width: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Read (image, label) files at ``resolution``.

    Returns
    -------
    images : (N, R, R) float32
        In [0, 1], read as for inference.
    truths : (N, R, R) bool
        Labels resized the build step's way (binary, ``line_width`` px lines).
    """
    from datatool.io import read_truth
    from datatool.labels import resize_label

    if not pairs:
        raise DatatoolError("no (image, label) pairs to train on")
    images = np.stack([load_input(image, resolution) for image, _ in pairs])
    truths = np.stack(
        [resize_label(read_truth(label), resolution, line_width) for _, label in pairs]
    )
    return images, truths


def train_unet(
    images: np.ndarray,
    truths: np.ndarray,
    out_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> list[Path]:
    """Train a small U-Net on the CPU and save ``<name>_<epoch>.pth`` checkpoints.

    Parameters
    ----------
    images : (N, R, R) float32
        Inputs in [0, 1], ``R`` a multiple of 16.
    truths : (N, R, R) bool
        Tracings, True on boundaries.
    out_dir : path-like
        Where the checkpoints go (created).
    config : TrainConfig, optional
        Defaults to ``TrainConfig()``.
    on_epoch : callable, optional
        Called with ``(epoch, mean training loss)`` after each epoch.

    Returns
    -------
    list of Path
        The checkpoints written, epoch 0 first.
    """
    if images.shape != truths.shape or images.ndim != 3:
        raise ValueError(f"images {images.shape} and truths {truths.shape} must both be (N, R, R)")
    config = config or TrainConfig()
    out_dir = Path(out_dir)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = UNet(base_width=config.base_width)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x_all = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
    y_all = torch.from_numpy(np.ascontiguousarray(truths, dtype=np.float32))[:, None]
    written = [_save(model, out_dir, config.name, 0)]
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(x_all), generator=generator)
        total, seen = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            x, y = x_all[index], y_all[index]
            # Random flips and quarter turns: free augmentation that keeps lines on lines.
            turns = int(torch.randint(0, 4, (1,), generator=generator))
            flip = bool(torch.randint(0, 2, (1,), generator=generator))
            x, y = torch.rot90(x, turns, (2, 3)), torch.rot90(y, turns, (2, 3))
            if flip:
                x, y = torch.flip(x, (3,)), torch.flip(y, (3,))
            optimiser.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(index)
            seen += len(index)
        if on_epoch is not None:
            on_epoch(epoch, total / seen)
        if epoch % config.save_every == 0 or epoch == config.epochs:
            written.append(_save(model, out_dir, config.name, epoch))
    return written


def _save(model: UNet, out_dir: Path, name: str, epoch: int) -> Path:
    target = out_dir / f"{name}_{epoch}.pth"
    with atomic_path(target) as tmp:
        torch.save(model.state_dict(), tmp)
    return target


def train_from_dataset(
    root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    split: str | None = "training",
    on_epoch: Callable[[int, float], None] | None = None,
) -> list[Path]:
    """Train on the complete pairs of a dataset (one split of a tree, or all of a flat set)."""
    from datatool import layout

    config = config or TrainConfig()
    scanned = layout.scan(root)
    pairs = [
        (scanned.path(p.image), scanned.path(p.label))
        for p in scanned.pairs
        if p.image and p.label and (split is None or p.split in (split, None))
    ]
    if not pairs:
        if scanned.pairs and split is not None:
            raise DatatoolError(f"{root}: no image with a matching label in split {split!r}")
        raise DatatoolError(layout.diagnose_empty(root))
    images, truths = load_pairs(pairs, config.resolution, config.line_width)
    return train_unet(images, truths, out_dir, config, on_epoch)
