"""Strict loading of U-Net checkpoints and discovery of a training run's epochs.

The lab's loader falls back to random weights when ``load_state_dict`` fails,
so a typo in a path silently produces a plausible-looking but meaningless
prediction. Here every failure is a :class:`~datatool.errors.DatatoolError`
that names the file and the offending keys.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from datatool.errors import DatatoolError
from datatool.torch.unet import UNet, expected_shapes

CHECKPOINT_SUFFIXES = (".pth", ".pt")
#: Optimiser and random state of a training run, kept beside its checkpoints (not a checkpoint).
TRAINING_STATE_FILE = "training_state.pt"
#: The tensor whose first dimension is the base width.
WIDTH_KEY = "down_conv.0.first.weight"
_WRAPPER_KEYS = ("state_dict", "model_state_dict")
_DATAPARALLEL_PREFIX = "module."
_MAX_NAMED_KEYS = 6


def _name_keys(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_NAMED_KEYS])
    more = len(keys) - _MAX_NAMED_KEYS
    return shown + (f" (and {more} more)" if more > 0 else "")


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a plain ``{key: tensor}`` state dict on the CPU.

    Accepts a plain state dict, a dict holding one under ``state_dict`` or
    ``model_state_dict`` (training checkpoints), and keys prefixed ``module.``
    (saved from ``DataParallel``). Loads with ``weights_only=True``, so a file
    cannot run code.

    Raises
    ------
    DatatoolError
        The file is missing, is not a torch checkpoint, or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise DatatoolError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # pickle-protocol notes: the refusal below says enough
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and weights-only errors all mean "not usable"
        raise DatatoolError(f"{path}: {_refusal(path, exc)}") from None
    if isinstance(payload, dict):
        for wrapper in _WRAPPER_KEYS:
            if isinstance(payload.get(wrapper), dict):
                payload = payload[wrapper]
                break
    if not isinstance(payload, dict) or not payload:
        raise DatatoolError(
            f"{path}: expected a state_dict (a dict of tensors, possibly under 'state_dict' or "
            f"'model_state_dict'), found {type(payload).__name__}"
        )
    non_tensors = [str(k) for k, v in payload.items() if not isinstance(v, torch.Tensor)]
    if non_tensors:
        raise DatatoolError(
            f"{path}: expected a state_dict of tensors; these entries are not tensors: "
            f"{_name_keys(non_tensors)}"
        )
    keys = [str(k) for k in payload]
    if all(k.startswith(_DATAPARALLEL_PREFIX) for k in keys):
        payload = {k[len(_DATAPARALLEL_PREFIX) :]: v for k, v in payload.items()}
    return payload


def _refusal(path: Path, exc: Exception) -> str:
    """Why a file is not a usable checkpoint, never suggesting to turn weights-only loading off.

    PyTorch's own message advises re-running with ``weights_only=False``, which
    would let the file run code; that advice is never passed on.
    """
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head and b"\0" not in head:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            first = text.strip().splitlines()[0][:40] if text.strip() else ""
            return f"not a readable torch checkpoint: a text file (it starts {first!r})"
    message = str(exc).strip()
    if "weights_only" in message or "Weights only" in message:
        return (
            "not a readable torch checkpoint: it holds Python objects besides tensors, which "
            "could run code when loaded (datatool loads weights only; save the model's "
            "state_dict() with torch.save)"
        )
    reason = message.splitlines()[0] if message else type(exc).__name__
    return f"not a readable torch checkpoint ({reason})"


def infer_base_width(state: dict[str, torch.Tensor], path: object = "checkpoint") -> int:
    """Base width of the U-Net that saved ``state``: dim 0 of ``down_conv.0.first.weight``.

    Raises
    ------
    DatatoolError
        The key is missing or its tensor is not a ``(W, 1, 3, 3)`` convolution weight.
    """
    weight = state.get(WIDTH_KEY)
    if weight is None:
        raise DatatoolError(
            f"{path}: missing key {WIDTH_KEY} (cannot tell the network's width); "
            f"keys found start with {_name_keys(sorted(state))}"
        )
    if weight.ndim != 4 or tuple(weight.shape[1:]) != (1, 3, 3):
        raise DatatoolError(
            f"{path}: {WIDTH_KEY} has shape {tuple(weight.shape)}, expected (W, 1, 3, 3) "
            "for a greyscale U-Net"
        )
    return int(weight.shape[0])


def check_state_dict(state: dict[str, torch.Tensor], path: object = "checkpoint") -> int:
    """Check ``state`` against the lab's U-Net layout; return its base width.

    Raises
    ------
    DatatoolError
        Naming every missing key, unexpected key and shape mismatch.
    """
    width = infer_base_width(state, path)
    expected = expected_shapes(width)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {expected[k]})"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_name_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_name_keys(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes: {_name_keys(wrong)}")
    if problems:
        raise DatatoolError(
            f"{path}: not a grain U-Net checkpoint of base width {width}: " + "; ".join(problems)
        )
    return width


def load_unet(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> UNet:
    """Load a checkpoint strictly into a :class:`UNet` in ``eval()`` mode on ``device``.

    Never falls back to random weights: any problem raises.

    Raises
    ------
    DatatoolError
        The file is missing or unreadable, or its keys or shapes do not match.
    """
    state = read_state_dict(path)
    width = check_state_dict(state, path)
    model = UNet(base_width=width)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


@dataclass(frozen=True)
class Checkpoint:
    """One saved model of a training run.

    Attributes
    ----------
    path : Path
        The checkpoint file.
    epoch : int
        The last integer in the file name (``grains_120.pth`` -> 120).
    """

    path: Path
    epoch: int


_INTEGER = re.compile(r"\d+")


def epoch_from_name(path: str | os.PathLike[str]) -> int:
    """The last integer in a checkpoint's file name (the lab saves ``<name>_<epoch>.pth``).

    Examples
    --------
    >>> epoch_from_name("runs/gg_sum_v2_300.pth")
    300

    Raises
    ------
    DatatoolError
        The name holds no integer.
    """
    stem = Path(path).stem
    numbers = _INTEGER.findall(stem)
    if not numbers:
        raise DatatoolError(
            f"{path}: cannot read the epoch from the file name; expected <name>_<epoch>.pth"
        )
    return int(numbers[-1])


def find_checkpoints(paths: list[str | os.PathLike[str]]) -> list[Checkpoint]:
    """Checkpoint files from files and directories of ``*.pth``/``*.pt``, ordered by epoch.

    Raises
    ------
    DatatoolError
        A path is missing, a directory holds no checkpoints, a name has no
        epoch, or two files claim the same epoch.
    """
    if not paths:
        raise DatatoolError("no checkpoint given")
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES and p.name != TRAINING_STATE_FILE
            )
            if not found:
                raise DatatoolError(f"{path}: no *.pth or *.pt checkpoints in this directory")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise DatatoolError(f"{path}: checkpoint not found")
    checkpoints = [Checkpoint(p, epoch_from_name(p)) for p in files]
    by_epoch: dict[int, Path] = {}
    for ckpt in checkpoints:
        if ckpt.epoch in by_epoch and by_epoch[ckpt.epoch] != ckpt.path:
            raise DatatoolError(
                f"{ckpt.path}: epoch {ckpt.epoch} is also claimed by {by_epoch[ckpt.epoch]}; "
                "evaluate one training run at a time"
            )
        by_epoch[ckpt.epoch] = ckpt.path
    return sorted({c.path: c for c in checkpoints}.values(), key=lambda c: (c.epoch, c.path))
