"""Training the lab's U-Net: one seeded, resumable loop for ``datatool train`` and ``demo``.

:func:`run_training` trains a :class:`~datatool.torch.unet.UNet` on any dataset
of ``(1, R, R)`` image/label tensor pairs, computes every loss on a held-out
set after each epoch, and saves ``<name>_<epoch>.pth`` state dicts that
``datatool evaluate`` (and, at width 64, the lab's own code) loads, with
``training_log.csv`` and the optimiser and random state in
``training_state.pt`` so that ``--resume`` continues exactly.
:func:`train_tree` is ``datatool train``: the dataset is checked first
(:class:`~datatool.torch.data.TracingDataset`) and nothing is written when the
check fails. :func:`train_from_dataset` (the demo) and :func:`train_unet`
(arrays already in memory) run the same loop.
"""

from __future__ import annotations

import csv
import io as _io
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from datatool.errors import DatatoolError, UsageError
from datatool.io import atomic_path, atomic_write_text
from datatool.torch.checkpoints import TRAINING_STATE_FILE
from datatool.torch.inference import (
    FP32,
    PRECISIONS,
    Form,
    check_resolution,
    choose_precision,
    forward,
    select_device,
    set_memory_format,
)
from datatool.torch.losses import CombinedLoss, GaussianLoss, TolerantBCELoss, TopHatLoss
from datatool.torch.unet import UNet

LOSSES = ("bce", "tolerant", "bce+tolerant")
LOG_FILE = "training_log.csv"
#: Losses computed on the validation split after every epoch (``training_log.csv`` columns).
VALIDATION_LOSSES = ("bce", "tolerant_bce", "tophat", "gaussian")
#: Settings a resumed run must share with the run it continues.
_RUN_SETTINGS = (
    "name", "base_width", "resolution", "batch_size", "learning_rate", "seed", "loss", "augment",
)  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a training run.

    Attributes
    ----------
    name : str
        Checkpoint prefix: files are ``<name>_<epoch>.pth``.
    base_width : int
        U-Net base width (the lab's is 64; 4-8 trains in seconds on a CPU).
    epochs : int
        Epochs to train up to (a resumed run continues up to this epoch).
    resolution : int
        Side ``R`` of the windows the network sees, a multiple of 16.
    batch_size : int
        Images per optimiser step.
    learning_rate : float
        Adam learning rate.
    save_every : int
        Save a checkpoint every this many epochs (the last epoch is always saved).
    seed : int
        Seeds weights, shuffling, windows, flips and dropout: the same seed gives
        the same checkpoints on the CPU.
    line_width : int
        Width labels are brought to when a crop is scaled up (the lab's is 3 px).
    loss : {"bce", "tolerant", "bce+tolerant"}
        The training loss (:class:`~datatool.torch.losses.TolerantBCELoss`,
        :class:`~datatool.torch.losses.CombinedLoss`).
    augment : bool
        Random flips and quarter turns of the training pairs.
    device : str
        auto, cpu, cuda or cuda:N.
    save_untrained : bool
        Also save epoch 0, the untrained network (the lab's sweeps start there).
    workers : int
        ``DataLoader`` worker processes (0: load in the training process).
    precision : {"fp32", "auto", "bf16"}
        The form of the forward passes (:func:`~datatool.torch.inference.choose_precision`,
        decided on the first training window before epoch 1): bfloat16 runs under
        autocast with float32 master weights and float32 losses. ``fp32`` (the
        library's default) is plain float32, the same checkpoints for the same seed;
        ``datatool train`` defaults to ``auto``.
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
    loss: str = "bce"
    augment: bool = True
    device: str = "cpu"
    save_untrained: bool = True
    workers: int = 0
    precision: str = "fp32"

    def __post_init__(self) -> None:
        for name in ("base_width", "epochs", "batch_size", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        check_resolution(self.resolution)


@dataclass(frozen=True)
class EpochRecord:
    """One line of ``training_log.csv``."""

    epoch: int
    train_loss: float
    validation: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def as_row(self) -> dict[str, object]:
        """The CSV row: epoch, train_loss, ``val_<loss>`` (empty without validation), seconds."""
        row: dict[str, object] = {"epoch": self.epoch, "train_loss": f"{self.train_loss:.6g}"}
        for name in VALIDATION_LOSSES:
            value = self.validation.get(name)
            row[f"val_{name}"] = "" if value is None else f"{value:.6g}"
        row["seconds"] = f"{self.seconds:.2f}"
        return row


def make_loss(name: str) -> nn.Module:
    """The training loss on probabilities for ``bce``, ``tolerant`` or ``bce+tolerant``."""
    if name == "bce":
        return nn.BCELoss()
    if name == "tolerant":
        return TolerantBCELoss()
    if name == "bce+tolerant":
        return CombinedLoss(bce_weight=1.0, tolerant_weight=1.0)
    raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {name!r}")


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffling generator of one epoch, from the seed alone (nothing to save on resume)."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def train_epoch(
    model: UNet,
    optimiser: torch.optim.Optimizer,
    loss_fn: nn.Module,
    data: Dataset,
    config: TrainConfig,
    epoch: int,
    on_batch: Callable[[int], None] | None = None,
    form: Form = FP32,
) -> float:
    """One pass over ``data`` in shuffled batches; return the mean training loss per image.

    The forward pass runs in ``form`` (bfloat16 autocast where it says so; the
    weights and the optimiser stay float32, the loss is computed in float32).
    """
    device = next(model.parameters()).device
    if hasattr(data, "set_epoch"):
        data.set_epoch(epoch)
    loader = DataLoader(
        data,
        batch_size=config.batch_size,
        shuffle=True,
        generator=_epoch_generator(config.seed, epoch),
        num_workers=config.workers,
    )
    model.train()
    set_memory_format(model, form)
    total, seen = 0.0, 0
    for images, truths in loader:
        images, truths = images.to(device), truths.to(device)
        optimiser.zero_grad()
        loss = loss_fn(forward(model, images, form), truths)
        loss.backward()
        optimiser.step()
        total += float(loss.detach()) * len(images)
        seen += len(images)
        if on_batch is not None:
            on_batch(1)
    return total / max(seen, 1)


def validation_losses(
    model: UNet, data: Dataset, batch_size: int = 4, form: Form = FP32
) -> dict[str, float]:
    """Every loss of :data:`VALIDATION_LOSSES`, the mean over the images of ``data``."""
    device = next(model.parameters()).device
    per_image = {
        "tolerant_bce": TolerantBCELoss(reduction="none"),
        "tophat": TopHatLoss(reduction="none"),
        "gaussian": GaussianLoss(reduction="none"),
    }
    sums = dict.fromkeys(VALIDATION_LOSSES, 0.0)
    count = 0
    model.eval()
    with torch.no_grad():
        for images, truths in DataLoader(data, batch_size=batch_size, shuffle=False):
            images, truths = images.to(device), truths.to(device)
            probs = forward(model, images, form)
            bce = nn.functional.binary_cross_entropy(probs, truths, reduction="none")
            sums["bce"] += float(bce.mean(dim=(1, 2, 3)).sum())
            for name, loss in per_image.items():
                sums[name] += float(loss(probs, truths).sum())
            count += len(images)
    model.train()
    return {name: value / max(count, 1) for name, value in sums.items()}


def _save_checkpoint(model: UNet, out_dir: Path, name: str, epoch: int) -> Path:
    target = out_dir / f"{name}_{epoch}.pth"
    with atomic_path(target) as tmp:
        torch.save(model.state_dict(), tmp)
    return target


def _save_state(out_dir, model, optimiser, config, epoch, log) -> None:
    state = {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimiser.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "settings": {k: getattr(config, k) for k in _RUN_SETTINGS},
        "log": [_log_row(r) for r in log],
    }
    with atomic_path(out_dir / TRAINING_STATE_FILE) as tmp:
        torch.save(state, tmp)


def _log_row(record: EpochRecord | dict) -> dict:
    """A log row: an epoch of this call, or a row restored from the state of an earlier one."""
    return record.as_row() if isinstance(record, EpochRecord) else record


def _write_log(out_dir: Path, log: list[EpochRecord]) -> None:
    buffer = _io.StringIO()
    fields = list(EpochRecord(0, 0.0).as_row())
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_log_row(r) for r in log)
    atomic_write_text(out_dir / LOG_FILE, buffer.getvalue())


def read_training_state(out_dir: Path) -> dict:
    """The saved ``training_state.pt`` of a run (epoch, weights, optimiser, random state, log).

    Raises
    ------
    DatatoolError
        The file is missing or unreadable.
    """
    path = Path(out_dir) / TRAINING_STATE_FILE
    if not path.is_file():
        raise DatatoolError(f"{path}: not found; nothing to resume in {out_dir}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and weights-only errors all mean "not usable"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatatoolError(f"{path}: not a readable training state ({reason})") from None


def _restore(out_dir: Path, config: TrainConfig, model, optimiser, device) -> tuple[int, list]:
    """Load ``training_state.pt`` into the model and optimiser; return (epoch, log rows)."""
    path = out_dir / TRAINING_STATE_FILE
    state = read_training_state(out_dir)
    different = [
        f"{k} {getattr(config, k)!r} (the run used {state['settings'].get(k)!r})"
        for k in _RUN_SETTINGS
        if state["settings"].get(k) != getattr(config, k)
    ]
    if different:
        raise UsageError(f"{path}: cannot resume with other settings: {'; '.join(different)}")
    newest = out_dir / f"{config.name}_{state['epoch']}.pth"
    if not newest.is_file():
        raise DatatoolError(f"{path}: holds epoch {state['epoch']} but {newest.name} is missing")
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and state["cuda_rng"]:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["epoch"]), list(state["log"])


def _training_form(
    model: UNet, data: Dataset, config: TrainConfig, on_precision: Callable[[str], None] | None
) -> Form:
    """The form of the forward passes, measured on the first training window (not a draw)."""
    probe = None
    if config.precision != "fp32":
        state = torch.get_rng_state()  # a dataset may draw from torch's generator: keep it
        probe = data[0][0].numpy()  # (1, R, R)
        torch.set_rng_state(state)
    model.eval()
    choice = choose_precision(model, probe, config.precision)
    model.train()
    if on_precision is not None:
        on_precision(choice.message)
    return choice.form


def run_training(
    train_data: Dataset,
    out_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    validation_data: Dataset | None = None,
    resume: bool = False,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    on_precision: Callable[[str], None] | None = None,
) -> list[Path]:
    """Train a U-Net on ``train_data`` and save checkpoints, the log and the training state.

    Parameters
    ----------
    train_data : Dataset of ((1, R, R) float32, (1, R, R) float32) pairs
        Images in [0, 1] and 0/1 labels, e.g. a :class:`~datatool.torch.data.TracingDataset`.
    out_dir : path-like
        Gets ``<name>_<epoch>.pth``, ``training_log.csv`` and ``training_state.pt``.
    config : TrainConfig, optional
    validation_data : Dataset, optional
        Scored with every loss after each epoch (nothing is held out when None).
    resume : bool
        Continue from ``training_state.pt`` (the newest checkpoint) up to ``config.epochs``.
    on_epoch : callable, optional
        Called with each epoch's :class:`EpochRecord`.
    on_batch : callable, optional
        Called with 1 after every training batch (progress bars).
    on_precision : callable, optional
        Receives the one-line message of the form chosen from ``config.precision``.

    Returns
    -------
    list of Path
        The checkpoints written by this call, by epoch.
    """
    config = config or TrainConfig()
    if len(train_data) == 0:
        raise DatatoolError("no (image, label) pairs to train on")
    out_dir = Path(out_dir)
    device = select_device(config.device)
    torch.manual_seed(config.seed)
    model = UNet(base_width=config.base_width).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss_fn = make_loss(config.loss)
    written: list[Path] = []
    start, log = 0, []
    if resume:
        start, log = _restore(out_dir, config, model, optimiser, device)
        log = [row for row in log if int(row["epoch"]) <= start]
    elif config.save_untrained:
        written.append(_save_checkpoint(model, out_dir, config.name, 0))
    form = _training_form(model, train_data, config, on_precision)
    for epoch in range(start + 1, config.epochs + 1):
        started = time.perf_counter()
        loss = train_epoch(model, optimiser, loss_fn, train_data, config, epoch, on_batch, form)
        scores = validation_losses(model, validation_data, form=form) if validation_data else {}
        record = EpochRecord(epoch, loss, scores, time.perf_counter() - started)
        log.append(record)
        _write_log(out_dir, log)
        if epoch % config.save_every == 0 or epoch == config.epochs:
            written.append(_save_checkpoint(model, out_dir, config.name, epoch))
            _save_state(out_dir, model, optimiser, config, epoch, log)
        if on_epoch is not None:
            on_epoch(record)
    return written


class _ArrayPairs(Dataset):
    """In-memory ``(N, R, R)`` images and truths as a dataset, flipped like TracingDataset."""

    def __init__(self, images: np.ndarray, truths: np.ndarray, augment: bool, seed: int) -> None:
        self.images = np.ascontiguousarray(images, dtype=np.float32)
        self.truths = np.ascontiguousarray(truths, dtype=np.float32)
        self.augment, self.seed, self.epoch = augment, seed, 0

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, truth = self.images[index], self.truths[index]
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            turns, flip = int(rng.integers(4)), bool(rng.integers(2))
            image, truth = np.rot90(image, turns), np.rot90(truth, turns)
            if flip:
                image, truth = image[:, ::-1], truth[:, ::-1]
        return (
            torch.from_numpy(np.ascontiguousarray(image))[None],
            torch.from_numpy(np.ascontiguousarray(truth))[None],
        )


def _loss_callback(on_epoch: Callable[[int, float], None] | None):
    return None if on_epoch is None else (lambda record: on_epoch(record.epoch, record.train_loss))


def train_unet(
    images: np.ndarray,
    truths: np.ndarray,
    out_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> list[Path]:
    """Train on images already in memory (same loop as :func:`run_training`).

    Parameters
    ----------
    images : (N, R, R) float32
        Inputs in [0, 1], ``R`` a multiple of 16.
    truths : (N, R, R) bool
        Tracings, True on boundaries.
    out_dir : path-like
    config : TrainConfig, optional
    on_epoch : callable, optional
        Called with ``(epoch, mean training loss)`` after each epoch.

    Returns
    -------
    list of Path
        The checkpoints written, epoch 0 first (with ``save_untrained``).
    """
    if images.shape != truths.shape or images.ndim != 3:
        raise ValueError(f"images {images.shape} and truths {truths.shape} must both be (N, R, R)")
    config = config or TrainConfig()
    data = _ArrayPairs(images, truths, config.augment, config.seed)
    return run_training(data, out_dir, config, on_epoch=_loss_callback(on_epoch))


def train_from_dataset(
    root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    split: str | None = "training",
    on_epoch: Callable[[int, float], None] | None = None,
) -> list[Path]:
    """Train on one split of a checked dataset (the demo's path; see :func:`train_tree`)."""
    config = config or TrainConfig()
    data = _dataset(root, split, config, check=True)
    if len(data) == 0:
        _no_pairs(root, split)
    return run_training(data, out_dir, config, on_epoch=_loss_callback(on_epoch))


def _dataset(root, split, config: TrainConfig, *, check: bool):
    from datatool.torch.data import TracingDataset

    training = split == "training"
    return TracingDataset(
        root, split, config.resolution, augment=config.augment and training,
        window="random" if training else "centre", line_width=config.line_width,
        check=check, seed=config.seed,
    )  # fmt: skip


def _no_pairs(root, split) -> None:
    from datatool import layout

    scanned = layout.scan(root)
    if scanned.pairs and split is not None:
        raise DatatoolError(
            f"{root}: no {split} split (no image with a matching label in split {split!r}; "
            f"splits found: {', '.join(scanned.splits) or 'none'})"
        )
    raise DatatoolError(layout.diagnose_empty(root))


@dataclass(frozen=True)
class TrainingPlan:
    """What :func:`train_tree` is about to do, for the command line to say."""

    train_pairs: int
    validation_pairs: int
    start_epoch: int
    config: dict = field(default_factory=dict)


def train_tree(
    root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: TrainConfig,
    *,
    resume: bool = False,
    on_plan: Callable[[TrainingPlan], None] | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    on_precision: Callable[[str], None] | None = None,
) -> list[Path]:
    """``datatool train``: check the dataset, train on ``training``, validate on ``validation``.

    Nothing is written when the check has errors, when there is no training
    split, or when ``out_dir`` already holds a run and ``resume`` is False.

    Raises
    ------
    DatatoolError
        The check found errors (naming the files), no training pairs, a run
        already in ``out_dir``, or nothing to resume.
    """
    train_data = _dataset(root, "training", config, check=True)
    if len(train_data) == 0:
        _no_pairs(root, "training")
    validation = _dataset(root, "validation", config, check=False)
    out_dir = Path(out_dir)
    existing = sorted(out_dir.glob(f"{config.name}_*.pth")) if out_dir.is_dir() else []
    if not resume and (existing or (out_dir / TRAINING_STATE_FILE).exists()):
        shown = existing[-1].name if existing else TRAINING_STATE_FILE
        raise DatatoolError(
            f"{out_dir}: already holds a training run ({shown}); "
            "use --resume to continue it, or another --out"
        )
    start = int(read_training_state(out_dir)["epoch"]) if resume else 0
    if on_plan is not None:
        on_plan(TrainingPlan(len(train_data), len(validation), start, asdict(config)))
    return run_training(
        train_data, out_dir, config, validation_data=validation if len(validation) else None,
        resume=resume, on_epoch=on_epoch, on_batch=on_batch, on_precision=on_precision,
    )  # fmt: skip
