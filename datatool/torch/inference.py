"""U-Net inference as the lab runs it, batched and without autograd.

The lab's inference reads an image as greyscale, resizes it to the target
resolution and runs the network once per image; the sigmoid of the logits is
the prediction. Here the same preprocessing feeds batches under
:func:`torch.inference_mode`, values are scaled by the maximum of the image's
integer type (so 16-bit TIFFs work), and predictions are written as 8-bit
greyscale ``predict_<name>.png``.

``datatool infer`` keeps each image's aspect ratio: it is scaled so that its
longer side is the network's side, padded square by reflection, and the
prediction is cropped and resized back to the image's own size (:class:`Fit`
says what was done); the sweep and training keep the lab's square resize.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as functional

from datatool.crop import Border, strip_border
from datatool.errors import UsageError
from datatool.io import read_image, write_png
from datatool.metrics.results import DEFAULT_BATCH_SIZE, DEFAULT_RESOLUTION
from datatool.torch.unet import SIDE_MULTIPLE, UNet


def select_device(name: str = "auto") -> torch.device:
    """The torch device for ``name``: auto (CUDA if available, else CPU), cpu or cuda[:i].

    Raises
    ------
    UsageError
        The name is not a device, or CUDA was asked for and is not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine; use cpu")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    return device


def check_resolution(resolution: int) -> int:
    """Return ``resolution`` if the U-Net can take it, else raise :class:`UsageError`."""
    if resolution < SIDE_MULTIPLE or resolution % SIDE_MULTIPLE:
        lower = max(SIDE_MULTIPLE, resolution // SIDE_MULTIPLE * SIDE_MULTIPLE)
        raise UsageError(
            f"--resolution {resolution}: the U-Net needs a multiple of {SIDE_MULTIPLE} "
            f"(four 2x2 poolings); try {lower} or {lower + SIDE_MULTIPLE}"
        )
    return resolution


def strip_scale_bar(pixels: np.ndarray, *also: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cut the scale-bar strip off ``pixels`` (and the same rows/columns off ``also``).

    Uses the build step's border detection so evaluation crops as dataset
    building does; a label traced on the image loses the same strip.

    Returns
    -------
    tuple of ndarray
        ``pixels`` then each of ``also``, without the border.
    """
    from datatool.crop import detect_border, strip_border

    border = detect_border(pixels)
    for other in also:
        if other.shape[:2] != pixels.shape[:2]:
            raise ValueError(
                f"label shape {other.shape[:2]} differs from image shape {pixels.shape[:2]}"
            )
    return tuple(strip_border(a, border) for a in (pixels, *also))


def resize_image(pixels: np.ndarray, resolution: int) -> np.ndarray:
    """Resize a ``(H, W)`` float32 image to ``(resolution, resolution)`` float32.

    Bilinear with antialiasing, as torchvision's ``Resize`` does on tensors in
    the lab's inference transform.
    """
    if pixels.ndim != 2:
        raise ValueError(f"expected a (H, W) image, got shape {pixels.shape}")
    if pixels.shape == (resolution, resolution):
        return pixels.astype(np.float32, copy=False)
    tensor = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))[None, None]
    resized = functional.interpolate(
        tensor, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True
    )
    return resized[0, 0].clamp_(0.0, 1.0).numpy()


def load_input(
    path: str | os.PathLike[str], resolution: int, *, remove_border: bool = False
) -> np.ndarray:
    """Read an image the way the lab does at inference.

    Parameters
    ----------
    path : path-like
        PNG or TIFF, any bit depth or colour mode (converted to greyscale).
    resolution : int
        Output side, a multiple of 16.
    remove_border : bool
        Cut off scale bar and frame first (the build step's border detection).

    Returns
    -------
    (resolution, resolution) float32 ndarray
        Values in [0, 1], scaled by the maximum of the file's integer type.
    """
    check_resolution(resolution)
    decoded = read_image(path)
    pixels = decoded.pixels
    if remove_border:
        (pixels,) = strip_scale_bar(pixels)
    scaled = pixels.astype(np.float32) / np.float32(decoded.max_value)
    return resize_image(scaled, resolution)


@dataclass(frozen=True)
class Fit:
    """How one image was fitted to the network's square input, and back.

    The image is scaled so that its longer side is the network's side (aspect
    ratio kept), padded by reflection at the bottom and right to a square,
    predicted, and the prediction is cropped and resized back to the image's
    own size; a scale-bar strip cut off first is filled with 0 (no boundary).

    Attributes
    ----------
    size : (H, W)
        The input file's size; the prediction is written at this size.
    border : Border
        The strip cut off before fitting (none unless ``remove_border``).
    scaled : (h, w)
        Size of the (stripped) image at the network's scale.
    side : int
        The network's input side (``--resolution``).
    """

    size: tuple[int, int]
    border: Border
    scaled: tuple[int, int]
    side: int

    def describe(self) -> str:
        """One sentence saying what was done, e.g. for an 800x600 px micrograph at 512."""
        height, width = self.size
        inner_h = height - self.border.top - self.border.bottom
        inner_w = width - self.border.left - self.border.right
        h, w = self.scaled
        steps = []
        if self.border.total:
            steps.append(f"scale-bar strip ({self.border.describe()}) cut off")
        if (h, w) != (inner_h, inner_w):
            steps.append(f"scaled by {h / inner_h:.3g} to {w}x{h} px (aspect ratio kept)")
        if (h, w) != (self.side, self.side):
            steps.append(f"padded by reflection to {self.side}x{self.side} px")
        if not steps:
            return f"{width}x{height} px, predicted at its own size"
        undo = ["cropped"] if (h, w) != (self.side, self.side) else []
        if (h, w) != (inner_h, inner_w):
            undo.append(f"resized back to {width}x{height} px")
        back = "; prediction " + (" and ".join(undo) or "placed back")
        strip = ", 0 over the strip" if self.border.total else ""
        return f"{width}x{height} px: " + ", ".join(steps) + back + strip


def _resize_float(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear antialiased resize of ``(H, W)`` float32 to ``size = (h, w)``, clamped to 0..1."""
    if pixels.shape == size:
        return pixels.astype(np.float32, copy=False)
    tensor = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))[None, None]
    resized = functional.interpolate(
        tensor, size=size, mode="bilinear", align_corners=False, antialias=True
    )
    return resized[0, 0].clamp_(0.0, 1.0).numpy()


def fit_to_network(
    pixels: np.ndarray, resolution: int, border: Border | None = None
) -> tuple[np.ndarray, Fit]:
    """Scale an image to the network's side keeping its aspect ratio, then pad it square.

    Parameters
    ----------
    pixels : (H, W) float32 in [0, 1]
        The whole image.
    resolution : int
        The network's side, a multiple of 16.
    border : Border, optional
        A strip to cut off first (the scale bar).

    Returns
    -------
    square : (resolution, resolution) float32
    fit : Fit
        What :func:`fit_back` needs to put the prediction onto the image.

    >>> square, fit = fit_to_network(np.zeros((600, 800), np.float32), 512)
    >>> square.shape, fit.scaled
    ((512, 512), (384, 512))
    """
    check_resolution(resolution)
    if pixels.ndim != 2:
        raise ValueError(f"expected a (H, W) image, got shape {pixels.shape}")
    border = border or Border()
    inner = strip_border(pixels, border) if border.total else pixels
    height, width = inner.shape
    factor = resolution / max(height, width)
    scaled = (max(1, min(resolution, round(height * factor))),
              max(1, min(resolution, round(width * factor))))  # fmt: skip
    small = _resize_float(inner, scaled)
    # Reflection continues the grain structure into the padding (a 1-px side cannot reflect).
    mode = "reflect" if min(scaled) > 1 else "edge"
    square = np.pad(small, ((0, resolution - scaled[0]), (0, resolution - scaled[1])), mode=mode)
    return square.astype(np.float32, copy=False), Fit(pixels.shape, border, scaled, resolution)


def fit_back(prob: np.ndarray, fit: Fit) -> np.ndarray:
    """The network's ``(S, S)`` prediction put back onto the image: ``fit.size`` float32.

    The padding is cropped off, the rest resized to the (stripped) image's size
    and placed in it; a cut-off strip gets 0.
    """
    h, w = fit.scaled
    height, width = fit.size
    b = fit.border
    inner = _resize_float(prob[:h, :w], (height - b.top - b.bottom, width - b.left - b.right))
    out = np.zeros(fit.size, np.float32)
    out[b.top : height - b.bottom, b.left : width - b.right] = inner
    return out


def load_fitted(
    path: str | os.PathLike[str], resolution: int, *, remove_border: bool = False
) -> tuple[np.ndarray, Fit]:
    """Read an image for :func:`infer_files`: scaled keeping its aspect, padded square.

    Returns
    -------
    square : (resolution, resolution) float32 in [0, 1]
    fit : Fit
    """
    from datatool.crop import detect_border

    decoded = read_image(path)
    pixels = decoded.pixels
    border = detect_border(pixels) if remove_border else Border()
    scaled = pixels.astype(np.float32) / np.float32(decoded.max_value)
    return fit_to_network(scaled, resolution, border)


# --------------------------------------------------------------------------- precision

#: What ``--precision`` accepts: measure and choose, plain float32, or bfloat16 (guarded).
PRECISIONS = ("auto", "fp32", "bf16")
#: The most a faster form's probabilities may differ from float32's on the probe: one grey
#: level of the 8-bit predictions the tool writes.
GREY_LEVEL = 1.0 / 255.0
#: Runs of each form on the probe; the fastest counts (the first also builds oneDNN kernels).
_PROBE_RUNS = 2


@dataclass(frozen=True)
class Form:
    """How the network runs: float32 or bfloat16 autocast, NCHW or channels_last memory.

    Attributes
    ----------
    name : str
        Short name stored in options and cache keys: ``fp32``, ``fp32-cl``, ``bf16-cl``.
    bf16 : bool
        Forward pass under bfloat16 autocast (weights stay float32).
    channels_last : bool
        Weights and inputs in ``torch.channels_last`` memory format.
    """

    name: str
    bf16: bool
    channels_last: bool

    def describe(self) -> str:
        """``fp32``, ``fp32 + channels_last`` or ``bf16 + channels_last``."""
        kind = "bf16" if self.bf16 else "fp32"
        return f"{kind} + channels_last" if self.channels_last else kind


FP32 = Form("fp32", bf16=False, channels_last=False)
FP32_CL = Form("fp32-cl", bf16=False, channels_last=True)
BF16_CL = Form("bf16-cl", bf16=True, channels_last=True)
#: Every form by name.
FORMS = {form.name: form for form in (FP32, FP32_CL, BF16_CL)}


def form_named(form: Form | str) -> Form:
    """The :class:`Form` of a name in :data:`FORMS` (a Form is returned as it is)."""
    if isinstance(form, Form):
        return form
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
    return FORMS[form]


def _cpu_flags() -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_native(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` runs bfloat16 natively, and the reason in a few words.

    CUDA: ``torch.cuda.is_bf16_supported()``. CPU: AMX or AVX512-BF16, read from
    ``torch.backends.cpu.get_cpu_capability()`` and the CPU flags; elsewhere
    bfloat16 is emulated and slower than float32.
    """
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return True, f"bf16 native on {torch.cuda.get_device_name(device)}"
        return False, "bf16 not native on this GPU"
    capability = torch.backends.cpu.get_cpu_capability().upper()
    flags = _cpu_flags()
    if "AMX" in capability or "amx_bf16" in flags:
        return True, "AMX bf16 on this CPU"
    if "BF16" in capability or "avx512_bf16" in flags:
        return True, "AVX512-BF16 on this CPU"
    return False, "bf16 not native on this CPU"


def set_memory_format(model: torch.nn.Module, form: Form) -> None:
    """Put ``model``'s weights in ``form``'s memory format (in place; values unchanged)."""
    model.to(memory_format=torch.channels_last if form.channels_last else torch.contiguous_format)


def forward(model: torch.nn.Module, batch: torch.Tensor, form: Form) -> torch.Tensor:
    """Sigmoid probabilities ``(N, 1, S, S)`` float32 of a ``(N, 1, S, S)`` batch in ``form``.

    The model must already be in ``form``'s memory format (:func:`set_memory_format`).
    """
    if form.channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=batch.device.type, dtype=torch.bfloat16, enabled=form.bf16):
        logits = model(batch)
    return torch.sigmoid(logits.float()).contiguous()


def _time_form(
    model: torch.nn.Module, probe: torch.Tensor, form: Form, runs: int = _PROBE_RUNS
) -> tuple[float, np.ndarray]:
    """Seconds of the fastest of ``runs`` forward passes, and the probabilities."""
    set_memory_format(model, form)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(runs):
            if probe.device.type == "cuda":
                torch.cuda.synchronize(probe.device)
            started = time.perf_counter()
            probs = forward(model, probe, form)
            if probe.device.type == "cuda":
                torch.cuda.synchronize(probe.device)
            best = min(best, time.perf_counter() - started)
    return best, probs.cpu().numpy()


@dataclass(frozen=True)
class PrecisionChoice:
    """The form the network runs in, and why.

    Attributes
    ----------
    form : Form
    message : str
        One line for the command line, e.g. ``precision: fp32 + channels_last (1.27x
        faster than fp32; bf16 not native on this CPU)``.
    seconds : dict of str to float
        Probe time of each form measured (by form name); empty when nothing was timed.
    grey_levels : dict of str to float
        Largest difference from float32 on the probe, in grey levels (1/255), by form name.
    """

    form: Form
    message: str
    seconds: dict[str, float]
    grey_levels: dict[str, float]


#: Probe times by (device, architecture, probe shape, candidates): speed is a property of the
#: hardware and the network's shape, so a process measures it once; accuracy is always checked.
_SPEED_MEMO: dict[tuple, dict[str, float]] = {}


def _architecture(model: torch.nn.Module) -> tuple:
    return (type(model).__name__, tuple(tuple(p.shape) for p in model.parameters()))


def choose_precision(
    model: torch.nn.Module | None, probe: np.ndarray, precision: str = "auto"
) -> PrecisionChoice:
    """Choose the fastest form of ``model`` whose output stays within 1 grey level of float32.

    ``auto`` times float32, float32 + channels_last and, where the hardware runs
    it natively (:func:`bf16_native`), bfloat16 autocast + channels_last on the
    probe; forms whose sigmoid output differs from float32's by more than
    :data:`GREY_LEVEL` anywhere on the probe are dropped; the fastest left wins.
    ``fp32`` is plain float32 (nothing is run). ``bf16`` is bfloat16 +
    channels_last even where it is emulated, but still guarded: if it is more
    than one grey level off, float32 runs instead and the message says so.

    Parameters
    ----------
    model : torch.nn.Module or None
        In ``eval()`` mode, on its device; left in the chosen memory format
        (None only with ``fp32``, which runs nothing).
    probe : (N, S, S) float32 ndarray
        Images in [0, 1] as the network will see them (one is enough).
    precision : {"auto", "fp32", "bf16"}

    Returns
    -------
    PrecisionChoice
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        if model is not None:
            set_memory_format(model, FP32)
        return PrecisionChoice(FP32, "precision: fp32 (as asked)", {}, {})
    if model is None:
        raise ValueError(f"precision {precision!r} needs the model to measure, got None")
    stack = np.asarray(probe, dtype=np.float32)
    if stack.ndim != 3:
        raise ValueError(f"expected an (N, S, S) probe, got shape {stack.shape}")
    device = next(model.parameters()).device
    native, why = bf16_native(device)
    candidates = [FP32, FP32_CL, BF16_CL] if native or precision == "bf16" else [FP32, FP32_CL]
    batch = torch.from_numpy(stack)[:, None].to(device)
    key = (str(device), _architecture(model), stack.shape, tuple(c.name for c in candidates))
    outputs: dict[str, np.ndarray] = {}
    seconds = _SPEED_MEMO.get(key)
    if seconds is None:
        seconds = {}
        # Interleaved (fp32, fp32-cl, ..., fp32, fp32-cl, ...) so that a burst of other work
        # on a shared machine slows every form alike instead of one form's two runs.
        for _ in range(_PROBE_RUNS):
            for form in candidates:
                took, outputs[form.name] = _time_form(model, batch, form, runs=1)
                seconds[form.name] = min(seconds.get(form.name, float("inf")), took)
        _SPEED_MEMO[key] = seconds
    ranked = sorted(candidates, key=lambda f: seconds[f.name])
    if precision == "bf16":  # asked for: bf16 first, then the fastest float32 form
        ranked = [BF16_CL, *[f for f in ranked if f is not BF16_CL]]
    grey_levels: dict[str, float] = {}
    for form in ranked:
        reference = outputs.get(FP32.name)
        if reference is None:
            outputs[FP32.name] = reference = _time_form(model, batch, FP32, runs=1)[1]
        if form.name not in outputs:  # speed known from the memo: one pass for the guard
            outputs[form.name] = _time_form(model, batch, form, runs=1)[1]
        grey_levels[form.name] = float(np.abs(outputs[form.name] - reference).max()) / GREY_LEVEL
        if grey_levels[form.name] <= 1.0:
            set_memory_format(model, form)
            message = _precision_message(form, precision, seconds, grey_levels, why, native)
            return PrecisionChoice(form, message, dict(seconds), grey_levels)
    raise AssertionError("float32 is always within 0 grey levels of itself")  # pragma: no cover


def _precision_message(
    form: Form, precision: str, seconds: dict, grey: dict, why: str, native: bool
) -> str:
    """The one line of :class:`PrecisionChoice` (which form, and why)."""
    notes = []
    speedup = seconds[FP32.name] / max(seconds[form.name], 1e-12)
    if form is FP32:
        others = [FORMS[n].describe() for n in seconds if n != FP32.name and grey.get(n, 0) <= 1]
        notes.append(f"fastest of {', '.join(['fp32', *others])}" if others else "fastest")
    else:
        notes.append(f"{speedup:.2f}x faster than fp32")
    if BF16_CL.name in grey and grey[BF16_CL.name] > 1.0:
        asked = "bf16 asked for, but " if precision == "bf16" else ""
        notes.append(
            f"{asked}bf16 + channels_last was {grey[BF16_CL.name]:.1f} grey levels off fp32 on "
            f"the probe (limit 1), not used"
        )
    elif form is BF16_CL:
        notes.append(f"within {grey[form.name]:.2f} grey level of fp32")
    notes.append(why if native or form is not BF16_CL else f"{why}: emulated, may be slow")
    return f"precision: {form.describe()} ({'; '.join(notes)})"


def predict(
    model: UNet,
    images: np.ndarray | Sequence[np.ndarray],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    amp: bool = False,
    on_batch: Callable[[int], None] | None = None,
    form: Form | str = "fp32",
) -> np.ndarray:
    """Run ``model`` on images and return sigmoid probabilities.

    Parameters
    ----------
    model : UNet
        In ``eval()`` mode; images go to the device its weights are on.
    images : (N, S, S) float32 ndarray or sequence of (S, S) arrays
        Values in [0, 1]; ``S`` a multiple of 16.
    batch_size : int
        Images per forward pass.
    amp : bool
        Autocast to float16 on CUDA (ignored on CPU); the old ``--amp``, kept for
        compatibility: it overrides ``form``'s bfloat16 on CUDA.
    on_batch : callable, optional
        Called with the number of images after each batch (progress bars).
    form : Form or str
        How the network runs (:data:`FORMS`: ``fp32``, ``fp32-cl``, ``bf16-cl``),
        e.g. :func:`choose_precision`'s choice; ``fp32`` is plain float32, NCHW.

    Returns
    -------
    (N, S, S) float32 ndarray
        Probabilities in [0, 1].
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    stack = np.asarray(images, dtype=np.float32)
    if stack.ndim != 3:
        raise ValueError(f"expected (N, S, S) images, got shape {stack.shape}")
    device = next(model.parameters()).device
    form = form_named(form)
    use_amp = amp and device.type == "cuda"
    out = np.empty_like(stack)
    set_memory_format(model, form)
    with torch.inference_mode():
        for start in range(0, len(stack), batch_size):
            batch = torch.from_numpy(stack[start : start + batch_size])[:, None].to(device)
            if use_amp:
                with torch.autocast(device_type=device.type, dtype=torch.float16):
                    probs = torch.sigmoid(model(batch).float())[:, 0]
            else:
                probs = forward(model, batch, form)[:, 0]
            out[start : start + len(batch)] = probs.cpu().numpy()
            if on_batch is not None:
                on_batch(len(batch))
    return out


def probability_to_uint8(prob: np.ndarray) -> np.ndarray:
    """Map probabilities in [0, 1] to 8-bit grey levels (``round(p * 255)``)."""
    return np.clip(np.rint(np.asarray(prob, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def prediction_name(image_path: str | os.PathLike[str]) -> str:
    """File name of an image's prediction: ``predict_<stem>.png``."""
    return f"predict_{Path(image_path).stem}.png"


@dataclass(frozen=True)
class Inferred:
    """One written prediction and how its image was fitted to the network."""

    path: Path
    fit: Fit


def infer_files(
    checkpoint: str | os.PathLike[str],
    image_paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    resolution: int = DEFAULT_RESOLUTION,
    device: str = "auto",
    batch_size: int = DEFAULT_BATCH_SIZE,
    remove_border: bool = False,
    amp: bool = False,
    precision: str = "fp32",
    on_precision: Callable[[str], None] | None = None,
) -> list[Inferred]:
    """Predict every image with one checkpoint and write ``predict_<name>.png`` files.

    Each image is predicted at the network's side with its aspect ratio kept
    (:func:`fit_to_network`) and its prediction is written at the image's own
    size (:func:`fit_back`), so that it lies on the micrograph. One helper
    thread keeps everything but the forward pass off the critical path: it
    reads and fits the next batch while the current one runs, and fits back,
    encodes and writes each batch's predictions while the next one runs
    (:func:`_pipeline`); one thread, not two, so that on a small CPU it takes
    as little as possible from torch's threads.

    ``precision`` is :func:`choose_precision`'s (``datatool infer`` passes
    ``auto``; the library's default is plain float32), decided on the first
    image; ``on_precision`` receives its one-line message.

    Returns
    -------
    list of Inferred
        The written predictions with what was done, in the order of ``image_paths``.

    Raises
    ------
    DatatoolError
        Bad checkpoint, unreadable image, or two images with the same name.
    """
    from datatool.schedule import chunks
    from datatool.torch.checkpoints import load_unet

    check_resolution(resolution)
    if not image_paths:
        raise UsageError("no image given")
    names = [prediction_name(p) for p in image_paths]
    seen: dict[str, str] = {}
    for name, path in zip(names, image_paths, strict=True):
        if name in seen:
            raise UsageError(f"{path}: same output name {name} as {seen[name]}; rename one")
        seen[name] = str(path)
    model = load_unet(checkpoint, select_device(device))
    targets = [Path(out_dir) / name for name in names]
    batches = chunks(list(zip(targets, image_paths, strict=True)), batch_size)
    form: Form | None = None

    def load(batch: Sequence[tuple[Path, str | os.PathLike[str]]]) -> list[tuple[np.ndarray, Fit]]:
        return [load_fitted(path, resolution, remove_border=remove_border) for _, path in batch]

    written: list[Inferred] = []

    def run(batch: Sequence[tuple[Path, object]], fitted: list) -> np.ndarray:
        nonlocal form
        squares = np.stack([square for square, _ in fitted])
        if form is None:  # decided on the first image, once
            choice = choose_precision(model, squares[:1], precision)
            form = choice.form
            if on_precision is not None:
                on_precision(choice.message)
        written.extend(
            Inferred(target, fit) for (target, _), (_, fit) in zip(batch, fitted, strict=True)
        )
        return predict(model, squares, batch_size=batch_size, amp=amp, form=form)

    def write(batch: Sequence[tuple[Path, object]], fitted: list, probs: np.ndarray) -> None:
        for (target, _), prob, (_, fit) in zip(batch, probs, fitted, strict=True):
            write_png(target, probability_to_uint8(fit_back(prob, fit)))

    _pipeline(batches, load, run, write)
    return written


def _pipeline(
    batches: Sequence[Any],
    load: Callable[[Any], Any],
    run: Callable[[Any, Any], Any],
    write: Callable[[Any, Any, Any], None],
) -> None:
    """``write(batch, load(batch), run(batch, load(batch)))`` for each batch, in order.

    ``run`` (the forward pass) runs in the calling thread; ``load`` and
    ``write`` run in one helper thread, in the order batch 0 load, batch 1
    load, batch 0 write, batch 2 load, batch 1 write...: the next batch is
    loaded while the current one runs, and a batch is written while the next
    one runs, so neither waits on the other and at most two batches of inputs
    and two of outputs are held. An error of ``load``, ``run`` or ``write`` is
    raised here, after the batches before it have been written.
    """
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="infer-io") as helper:
        upcoming = helper.submit(load, batches[0])
        writes: deque[Future] = deque()
        try:
            for index, batch in enumerate(batches):
                loaded = upcoming.result()
                if index + 1 < len(batches):
                    upcoming = helper.submit(load, batches[index + 1])
                result = run(batch, loaded)
                writes.append(helper.submit(write, batch, loaded, result))
                while writes and writes[0].done():  # a failed write stops the run early
                    writes.popleft().result()
            while writes:
                writes.popleft().result()
        except BaseException:
            upcoming.cancel()  # not loaded yet: not needed; earlier writes still finish
            raise
