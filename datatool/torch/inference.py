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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

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
        back = "; prediction cropped" if (h, w) != (self.side, self.side) else "; prediction"
        back += f" and resized back to {width}x{height} px" if (h, w) != (inner_h, inner_w) else ""
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


def predict(
    model: UNet,
    images: np.ndarray | Sequence[np.ndarray],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    amp: bool = False,
    on_batch: Callable[[int], None] | None = None,
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
        Autocast to float16 on CUDA (ignored on CPU).
    on_batch : callable, optional
        Called with the number of images after each batch (progress bars).

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
    use_amp = amp and device.type == "cuda"
    out = np.empty_like(stack)
    with torch.inference_mode():
        for start in range(0, len(stack), batch_size):
            batch = torch.from_numpy(stack[start : start + batch_size])[:, None].to(device)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                logits = model(batch)
            probs = torch.sigmoid(logits.float())[:, 0]
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
) -> list[Inferred]:
    """Predict every image with one checkpoint and write ``predict_<name>.png`` files.

    Each image is predicted at the network's side with its aspect ratio kept
    (:func:`fit_to_network`) and its prediction is written at the image's own
    size (:func:`fit_back`), so that it lies on the micrograph.

    Returns
    -------
    list of Inferred
        The written predictions with what was done, in the order of ``image_paths``.

    Raises
    ------
    DatatoolError
        Bad checkpoint, unreadable image, or two images with the same name.
    """
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
    fitted = [load_fitted(p, resolution, remove_border=remove_border) for p in image_paths]
    out_dir = Path(out_dir)
    written = []
    # Batch by batch so that memory stays at one batch of predictions, not all of them.
    for start in range(0, len(fitted), batch_size):
        batch = fitted[start : start + batch_size]
        chunk = predict(model, [square for square, _ in batch], batch_size=batch_size, amp=amp)
        for name, prob, (_, fit) in zip(
            names[start : start + batch_size], chunk, batch, strict=True
        ):
            target = out_dir / name
            write_png(target, probability_to_uint8(fit_back(prob, fit)))
            written.append(Inferred(target, fit))
    return written
