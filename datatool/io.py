"""The one place that decodes and writes pixels, and writes files atomically.

Every image enters the program through :func:`read_image` (or the helpers on top
of it) and leaves through :func:`write_png`; every other file the tool writes
goes through :func:`atomic_write`. Nothing here changes a user's original files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from datatool.errors import ImageReadError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")

# Decompression bombs are still refused, but micrographs can be large.
Image.MAX_IMAGE_PIXELS = 20000 * 20000


@dataclass(frozen=True)
class DecodedImage:
    """A decoded greyscale image.

    Attributes
    ----------
    pixels : (H, W) ndarray of uint8 or uint16
        Greyscale values as stored (16-bit TIFFs stay 16-bit).
    mode : str
        The PIL mode of the file before conversion (``"L"``, ``"RGB"``, ``"I;16"``...).
    conversion : str or None
        A sentence saying how a non-greyscale file was converted (palette,
        colour, meaningful alpha), or ``None`` when the file was greyscale.
    """

    pixels: np.ndarray
    mode: str
    conversion: str | None

    @property
    def max_value(self) -> int:
        """Largest value of the pixel type (255 or 65535)."""
        return int(np.iinfo(self.pixels.dtype).max)


def read_image(path: str | os.PathLike[str]) -> DecodedImage:
    """Decode an image file to greyscale.

    Parameters
    ----------
    path : path-like
        A PNG or TIFF file.

    Returns
    -------
    DecodedImage
        ``pixels`` is ``(H, W)`` uint8, or uint16 for 16-bit files.

    Raises
    ------
    ImageReadError
        The file is missing, empty, truncated or not an image.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageReadError(path, f"cannot open ({exc.strerror or exc})") from None
    if size == 0:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                img.load()
                return _to_grey(img)
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(path, f"corrupt or truncated image ({exc})") from None


def _to_grey(img: Image.Image) -> DecodedImage:
    mode = img.mode
    if mode in ("L", "1"):
        return DecodedImage(np.asarray(img.convert("L")), mode, None)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return DecodedImage(np.asarray(img, dtype=np.uint16), mode, None)
    if mode in ("I", "F"):
        arr = np.asarray(img)
        if arr.size and arr.min() >= 0 and arr.max() <= 65535:
            return DecodedImage(arr.astype(np.uint16), mode, None)
        clipped = np.clip(arr, 0, 65535).astype(np.uint16)
        return DecodedImage(clipped, mode, f"{mode} values clipped to 0..65535")
    if mode == "LA":
        alpha = np.asarray(img.getchannel("A"))
        note = _alpha_note(alpha)
        return DecodedImage(np.asarray(img.getchannel("L")), mode, note)
    conversion = None
    if mode == "P":
        conversion = "palette image; converted to greyscale with ITU-R 601 luma"
        if "transparency" in img.info:
            img = img.convert("RGBA")
            mode_after = "RGBA"
        else:
            img = img.convert("RGB")
            mode_after = "RGB"
    else:
        mode_after = mode
    if mode_after == "RGBA":
        alpha = np.asarray(img.getchannel("A"))
        note = _alpha_note(alpha)
        rgb = img.convert("RGB")
        grey = np.asarray(rgb.convert("L"))
        colour = _colour_note(np.asarray(rgb))
        parts = [p for p in (conversion, note, colour) if p]
        return DecodedImage(grey, mode, "; ".join(parts) or None)
    rgb = img.convert("RGB")
    colour = _colour_note(np.asarray(rgb))
    parts = [p for p in (conversion, colour) if p]
    return DecodedImage(np.asarray(rgb.convert("L")), mode, "; ".join(parts) or None)


def _alpha_note(alpha: np.ndarray) -> str | None:
    if alpha.size and alpha.min() < 255:
        share = float(np.mean(alpha < 255))
        return (
            f"alpha channel is not opaque on {share:.1%} of pixels and will be "
            "ignored (transparent areas keep their stored grey value)"
        )
    return None


def _colour_note(rgb: np.ndarray) -> str | None:
    if rgb.ndim != 3:
        return None
    spread = np.ptp(rgb.astype(np.int16), axis=2)
    if spread.size and float(np.mean(spread > 2)) > 0.001:
        return "colour image; converted to greyscale with ITU-R 601 luma"
    return None


def read_grey(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image to a ``(H, W)`` uint8/uint16 greyscale array (see :func:`read_image`)."""
    return read_image(path).pixels


def read_grey_float(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image to ``(H, W)`` float32 in [0, 1], scaled by its type's maximum."""
    decoded = read_image(path)
    return decoded.pixels.astype(np.float32) / np.float32(decoded.max_value)


def read_truth(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode a label to a ``(H, W)`` bool mask, True on the lines (see ``labels.label_lines``)."""
    from datatool.labels import label_lines

    return label_lines(read_image(path).pixels)


# --------------------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    If the body raises (or the process dies), ``path`` is untouched and the
    temporary file is removed (or left with a ``.tmp`` suffix on a hard kill).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # mkstemp makes the file private (0600); outputs are shared like any other file.
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary name, fsync, rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], data: object) -> None:
    """Write ``data`` as indented JSON atomically (pydantic models via ``model_dump``)."""
    if hasattr(data, "model_dump_json"):
        text = data.model_dump_json(indent=2)  # type: ignore[union-attr]
    else:
        text = json.dumps(data, indent=2, sort_keys=False)
    atomic_write_text(path, text + "\n")


def encode_png(pixels: np.ndarray) -> bytes:
    """Encode pixels as PNG bytes, deterministically (the only PNG encoder of datatool).

    Parameters
    ----------
    pixels : (H, W) uint8 or bool, or (H, W, 3) / (H, W, 4) uint8 ndarray
        Greyscale (bool becomes 0/255), RGB or RGBA.

    Returns
    -------
    bytes

    >>> encode_png(np.zeros((2, 2), bool)).startswith(bytes([0x89]) + b"PNG")
    True
    """
    import io as _io

    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))):
        raise ValueError(
            f"expected (H, W), (H, W, 3) or (H, W, 4) pixels, got shape {pixels.shape}"
        )
    if pixels.dtype != np.uint8:
        raise TypeError(f"expected uint8 or bool pixels, got {pixels.dtype}")
    buf = _io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(
        buf, format="PNG", optimize=False, compress_level=6
    )
    return buf.getvalue()


def write_png(path: str | os.PathLike[str], pixels: np.ndarray) -> bytes:
    """Write ``pixels`` (see :func:`encode_png`) as a PNG atomically; return the bytes written."""
    data = encode_png(pixels)
    atomic_write_bytes(path, data)
    return data


def figure_pixels(fig, dpi: int = 100) -> np.ndarray:
    """Render a matplotlib figure to ``(H, W, 3)`` uint8 RGB and close it.

    Figures become pixels here so that they are encoded, like every other
    picture, by :func:`encode_png`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return rgb


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
