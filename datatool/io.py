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
import stat
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from datatool.errors import ImageReadError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")

DEFAULT_MAX_PIXELS = 100_000_000
"""Pixel budget per image (100 Mpx): larger files are refused from their header alone."""

# The budget above replaces PIL's own bomb guard, which raises an exception that names no
# file (above 2x this limit) and otherwise lets 400-800 Mpx images decode fully.
Image.MAX_IMAGE_PIXELS = None

Role = Literal["image", "tracing", "label"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FORMAT_OF_SUFFIX = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF"}
_UNIFORM_SPREAD = 8  # grey levels: RGB this flat carries no drawing, only the alpha does


@dataclass(frozen=True)
class ImageNote:
    """Something a reader should know about how a file was decoded (becomes a finding).

    Attributes
    ----------
    severity : str
        ``"warning"`` or ``"info"``.
    code : str
        Finding code, e.g. ``"wrong-format"``, ``"float-image"``, ``"multi-page"``.
    message : str
        A sentence naming the measured value and what was done.
    """

    severity: str
    code: str
    message: str


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
    notes : tuple of ImageNote
        Other facts about the decoding (content not matching the suffix,
        float scale, extra TIFF pages, 16-bit depth).
    """

    pixels: np.ndarray
    mode: str
    conversion: str | None
    notes: tuple[ImageNote, ...] = ()

    @property
    def max_value(self) -> int:
        """Largest value of the pixel type (255 or 65535)."""
        return int(np.iinfo(self.pixels.dtype).max)


def read_image(
    path: str | os.PathLike[str],
    *,
    role: Role = "image",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> DecodedImage:
    """Decode an image file to greyscale.

    The header is read first: a file declaring more than ``max_pixels`` is
    refused before any pixel is decoded. PNG chunk CRCs are verified (PIL does
    not; libpng-based loaders in training code reject a bad CRC).

    Parameters
    ----------
    path : path-like
        A PNG or TIFF file.
    role : {"image", "tracing", "label"}
        What the file is. For a tracing or a label the alpha channel is part of
        the drawing: a transparent background is composited onto white (tracing)
        or black (label), and where the RGB is one flat colour the alpha alone is
        the drawing (GIMP's export of lines on a transparent layer). A micrograph
        (``"image"``) keeps its stored grey values and the alpha is ignored.
    max_pixels : int or None
        Pixel budget (width x height); ``None`` for no limit.

    Returns
    -------
    DecodedImage
        ``pixels`` is ``(H, W)`` uint8, or uint16 for 16-bit (and float) files.

    Raises
    ------
    ImageReadError
        The file is missing, not a regular file, empty, truncated, corrupt, over
        the pixel budget (``code="too-large"``), holds NaN/negative/unscaled
        values (``code="bad-values"``) or an ambiguous alpha channel
        (``code="ambiguous-alpha"``).
    """
    path = Path(path)
    _check_regular_file(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ImageReadError(path, f"cannot open ({exc.strerror or exc})") from None
    if data.startswith(_PNG_SIGNATURE):
        problem = png_chunk_problem(data)
        if problem is not None:
            raise ImageReadError(path, f"corrupt PNG: {problem}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(BytesIO(data)) as img:
                notes = _header_notes(path, img, max_pixels)
                img.load()
                decoded = _to_grey(img, role)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image file PIL can read") from None
    except _ValueProblem as exc:
        raise ImageReadError(path, str(exc), code=exc.code) from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageReadError(path, f"corrupt or truncated image ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - a damaged header can trip any decoder error
        # (struct.error, IndexError, KeyError, ZeroDivisionError... seen on mutated TIFFs):
        # whatever the decoder raises on this file, the file is corrupt, not the program.
        raise ImageReadError(path, f"corrupt image ({type(exc).__name__}: {exc})") from None
    if decoded.pixels.dtype == np.uint16 and decoded.mode.startswith("I;16"):
        notes.append(
            ImageNote(
                "info",
                "reduced-precision",
                "16-bit image: build writes 8-bit crops (value / 257); alignment, scoring and "
                "inference read all 16 bits",
            )
        )
    notes = [*decoded.notes, *notes]
    return DecodedImage(decoded.pixels, decoded.mode, decoded.conversion, tuple(notes))


class _ValueProblem(Exception):
    """Pixel values with no known scale (NaN, negative, beyond 16 bits) or ambiguous alpha."""

    def __init__(self, message: str, code: str = "bad-values") -> None:
        super().__init__(message)
        self.code = code


def _check_regular_file(path: Path) -> None:
    try:
        info = path.stat()
    except OSError as exc:
        raise ImageReadError(path, f"cannot open ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a named pipe (FIFO)" if stat.S_ISFIFO(info.st_mode) else "a special file"
        if stat.S_ISDIR(info.st_mode):
            kind = "a folder"
        raise ImageReadError(path, f"not a regular file: it is {kind}", code="not-regular-file")
    if info.st_size == 0:
        raise ImageReadError(path, "the file is empty (0 bytes)")


def png_chunk_problem(data: bytes) -> str | None:
    """Why the chunks of PNG ``data`` are not intact (CRC, length, no IEND), or ``None``.

    >>> png_chunk_problem(encode_png(np.zeros((2, 2), np.uint8))) is None
    True
    """
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        name = kind.decode("latin-1")
        end = pos + 12 + length
        if end > len(data):
            return f"truncated inside chunk {name!r} at byte {pos} ({len(data)} bytes in the file)"
        stored = int.from_bytes(data[end - 4 : end], "big")
        if zlib.crc32(data[pos + 4 : end - 4]) != stored:
            return f"CRC of chunk {name!r} at byte {pos} is wrong (the file is damaged)"
        if kind == b"IEND":
            return None
        pos = end
    return f"no IEND chunk: the file ends after {len(data)} bytes (truncated)"


def _header_notes(path: Path, img: Image.Image, max_pixels: int | None) -> list[ImageNote]:
    """Apply the pixel budget and note what the header tells before decoding."""
    width, height = img.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageReadError(
            path,
            f"declares {width} x {height} px = {width * height / 1e6:.0f} Mpx, over the "
            f"pixel budget of {max_pixels / 1e6:g} Mpx (--max-pixels); not decoded",
            code="too-large",
        )
    notes = []
    expected = _FORMAT_OF_SUFFIX.get(path.suffix.lower())
    if img.format and expected and img.format != expected:
        lossy = " (lossy: compression artefacts are in the pixels)" if img.format == "JPEG" else ""
        notes.append(
            ImageNote(
                "warning",
                "wrong-format",
                f"{img.format} content under a {path.suffix} name{lossy}; re-export it as "
                f"{expected} from the original",
            )
        )
    pages = getattr(img, "n_frames", 1)
    if pages > 1:
        notes.append(
            ImageNote(
                "info", "multi-page", f"{pages} pages/frames in the file: only page 1 is read"
            )
        )
    return notes


def _float_to_grey(arr: np.ndarray, mode: str) -> tuple[np.ndarray, str]:
    """Scale a float image to uint8/uint16, naming the scale; refuse values with none."""
    finite = np.isfinite(arr)
    if not finite.all():
        nan = int(np.isnan(arr).sum())
        raise _ValueProblem(
            f"float image with {nan} NaN and {int((~finite).sum()) - nan} infinite pixel(s) of "
            f"{arr.size}: no grey level for them; export with finite values"
        )
    low, high = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if low < 0:
        raise _ValueProblem(
            f"float image with negative values (min {low:g}, max {high:g}): grey levels "
            "must be 0..1, 0..255 or 0..65535; rescale it before export"
        )
    if high <= 1.0:
        grey = np.rint(arr * 65535.0).astype(np.uint16)
        return grey, f"{mode} float image with values {low:g}..{high:g} read as 0..1 (x 65535)"
    if high <= 255.0:
        grey = np.rint(arr).astype(np.uint8)
        return grey, f"{mode} float image with values {low:g}..{high:g} read as 8-bit 0..255"
    if high <= 65535.0:
        grey = np.rint(arr).astype(np.uint16)
        return grey, f"{mode} float image with values {low:g}..{high:g} read as 16-bit 0..65535"
    raise _ValueProblem(
        f"float image with values up to {high:g}: beyond 16 bits, no known grey scale "
        "(expected 0..1, 0..255 or 0..65535)"
    )


def _to_grey(img: Image.Image, role: Role = "image") -> DecodedImage:
    mode = img.mode
    if mode in ("L", "1"):
        return DecodedImage(np.asarray(img.convert("L")), mode, None)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return DecodedImage(np.asarray(img, dtype=np.uint16), mode, None)
    if mode == "F":
        grey, note = _float_to_grey(np.asarray(img, dtype=np.float32), mode)
        return DecodedImage(grey, mode, None, (ImageNote("warning", "float-image", note),))
    if mode == "I":
        arr = np.asarray(img)
        if arr.size and arr.min() < 0:
            raise _ValueProblem(
                f"32-bit integer image with negative values (min {int(arr.min())}): grey "
                "levels must be 0..65535"
            )
        if arr.size and arr.max() > 65535:
            raise _ValueProblem(
                f"32-bit integer image with values up to {int(arr.max())}: beyond 16 bits"
            )
        return DecodedImage(arr.astype(np.uint16), mode, None)
    if mode == "LA" or "transparency" in img.info or mode in ("RGBA", "PA", "La", "RGBa"):
        rgba = np.asarray(img.convert("RGBA"))
        grey = np.asarray(Image.fromarray(rgba[..., :3]).convert("L"))
        conversion = (
            "palette image; converted to greyscale with ITU-R 601 luma"
            if mode
            in (
                "P",
                "PA",
            )
            else None
        )
        colour = _colour_note(rgba[..., :3]) if mode != "LA" else None
        if role == "image":
            note = _alpha_note(rgba[..., 3])
        else:
            grey, note = _composite_drawing(grey, rgba[..., 3], role)
        parts = [p for p in (conversion, note, colour) if p]
        return DecodedImage(grey, mode, "; ".join(parts) or None)
    conversion = None
    if mode == "P":
        conversion = "palette image; converted to greyscale with ITU-R 601 luma"
    elif mode == "CMYK":
        conversion = "CMYK (print) image; converted to RGB then greyscale, levels depend on it"
    rgb = img.convert("RGB")
    colour = _colour_note(np.asarray(rgb))
    parts = [p for p in (conversion, colour) if p]
    return DecodedImage(np.asarray(rgb.convert("L")), mode, "; ".join(parts) or None)


def _composite_drawing(grey: np.ndarray, alpha: np.ndarray, role: Role) -> tuple[np.ndarray, str]:
    """Read a drawing with a non-opaque alpha as a person sees it.

    Returns ``(grey (H, W) uint8, sentence)``; raises :class:`_ValueProblem` when
    the transparent pixels hide a different picture (the intent is ambiguous).
    """
    if not alpha.size or alpha.min() == 255:
        return grey, ""
    share = float(np.mean(alpha < 255))
    if int(grey.max()) - int(grey.min()) <= _UNIFORM_SPREAD:
        # One flat colour everywhere: the alpha alone holds the lines.
        if role == "tracing":
            return (255 - alpha).astype(np.uint8), (
                f"alpha channel is the drawing (RGB is one flat colour, {share:.1%} of pixels "
                "transparent): read as black lines on white where opaque"
            )
        return alpha.astype(np.uint8), (
            f"alpha channel is the drawing (RGB is one flat colour, {share:.1%} of pixels "
            "transparent): read as white lines on black where opaque"
        )
    hidden = grey[alpha < 128]
    if hidden.size and int(np.percentile(hidden, 99)) - int(np.percentile(hidden, 1)) > 64:
        raise _ValueProblem(
            f"the alpha channel makes {share:.1%} of pixels transparent and the stored grey "
            "under them holds a different picture: ambiguous drawing; flatten the image "
            "(GIMP: Image > Flatten Image) and export it again",
            code="ambiguous-alpha",
        )
    background = 255.0 if role == "tracing" else 0.0
    a = alpha.astype(np.float32) / 255.0
    composed = np.rint(grey.astype(np.float32) * a + background * (1.0 - a)).astype(np.uint8)
    onto = "white" if role == "tracing" else "black"
    return composed, (
        f"alpha channel makes {share:.1%} of pixels transparent: composited onto {onto}"
    )


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


def read_grey(
    path: str | os.PathLike[str],
    *,
    role: Role = "image",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode an image to a ``(H, W)`` uint8/uint16 greyscale array (see :func:`read_image`)."""
    return read_image(path, role=role, max_pixels=max_pixels).pixels


def read_grey_float(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode an image to ``(H, W)`` float32 in [0, 1], scaled by its type's maximum."""
    decoded = read_image(path, max_pixels=max_pixels)
    return decoded.pixels.astype(np.float32) / np.float32(decoded.max_value)


def read_truth(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode a label to a ``(H, W)`` bool mask, True on the lines (see ``labels.label_lines``).

    The alpha channel counts as part of the drawing (``role="label"``).
    """
    from datatool.labels import label_lines

    return label_lines(read_image(path, role="label", max_pixels=max_pixels).pixels)


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
    pixels : (H, W) uint8, uint16 or bool, or (H, W, 3) / (H, W, 4) uint8 ndarray
        Greyscale (bool becomes 0/255; uint16 gives a 16-bit PNG, e.g. a grain
        label image), RGB or RGBA.

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
    if pixels.dtype != np.uint8 and not (pixels.dtype == np.uint16 and pixels.ndim == 2):
        raise TypeError(f"expected uint8 or bool pixels (uint16 greyscale), got {pixels.dtype}")
    buf = _io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(
        buf, format="PNG", optimize=False, compress_level=6
    )
    return buf.getvalue()


def encode_jpeg(pixels: np.ndarray, quality: int = 75) -> bytes:
    """Encode a small picture to look at (a report thumbnail) as JPEG bytes, deterministically.

    Lossy: for pictures embedded in a page, where a noisy micrograph costs
    four times less than as PNG; never for data (crops, labels, predictions).

    Parameters
    ----------
    pixels : (H, W) or (H, W, 3) uint8 ndarray
    quality : int in [1, 95]

    Returns
    -------
    bytes

    >>> encode_jpeg(np.zeros((8, 8, 3), np.uint8))[:2] == bytes([0xFF, 0xD8])
    True
    """
    if pixels.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {pixels.dtype}")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"expected (H, W) or (H, W, 3) pixels, got shape {pixels.shape}")
    if not 1 <= quality <= 95:
        raise ValueError(f"quality must be in [1, 95], got {quality}")
    buf = BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(
        buf, format="JPEG", quality=quality, optimize=True
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


# --------------------------------------------------------------------------- metadata

#: Resolutions (per inch) that image editors write by default: no physical pixel size.
_EDITOR_DPI = (72.0, 96.0, 150.0, 300.0, 600.0)
_TO_UM = {"nm": 1e-3, "um": 1.0, "µm": 1.0, "μm": 1.0, "micron": 1.0, "microns": 1.0, "mm": 1e3}


def _fei_pixel_um(fei: dict) -> float | None:
    for section in ("Scan", "EScan", "Image"):
        value = (fei.get(section) or {}).get("PixelWidth")
        if isinstance(value, int | float) and value > 0:
            return float(value) * 1e6  # metres
    return None


def _zeiss_pixel_um(sem: dict) -> float | None:
    for key in ("ap_image_pixel_size", "ap_pixel_size"):
        entry = sem.get(key)
        if isinstance(entry, tuple) and len(entry) >= 3 and isinstance(entry[1], int | float):
            factor = _TO_UM.get(str(entry[2]).replace("\\u00b5", "µ"))
            if factor and entry[1] > 0:
                return float(entry[1]) * factor
    return None


def _tag_pixel_um(tif: object) -> tuple[float, str] | None:
    page = tif.pages.first  # type: ignore[attr-defined]
    xres = page.tags.get("XResolution")
    unit = page.tags.get("ResolutionUnit")
    if xres is None or unit is None:
        return None
    numerator, denominator = xres.value
    per_unit = numerator / denominator if denominator else 0.0
    if per_unit <= 0:
        return None
    imagej = tif.imagej_metadata or {}  # type: ignore[attr-defined]
    ij_unit = str(imagej.get("unit", "")).replace("\\u00B5", "µ").replace("\\u00b5", "µ")
    if ij_unit in _TO_UM:
        return _TO_UM[ij_unit] / per_unit, f"ImageJ metadata ({ij_unit})"
    code = int(unit.value)
    if code == 3:  # centimetre
        return 1e4 / per_unit, "TIFF resolution tags (per cm)"
    if code == 2 and round(per_unit, 3) not in _EDITOR_DPI:  # inch, not an editor default
        return 25400.0 / per_unit, "TIFF resolution tags (per inch)"
    return None


def tiff_pixel_size(path: str | os.PathLike[str]) -> tuple[float, str] | None:
    """The pixel size a TIFF micrograph records, in µm, and where it was found.

    Looks at FEI and Zeiss SEM headers, ImageJ metadata, then the resolution
    tags (ignoring the 72/96/300 dpi editors write by default). Needs the
    optional ``tifffile`` package (``pip install datatool[tiff]``).

    Returns
    -------
    (float, str) or None
        ``(µm per pixel, source)``; None for a non-TIFF, a TIFF without a
        physical pixel size, or when tifffile is not installed.
    """
    if Path(path).suffix.lower() not in (".tif", ".tiff"):
        return None
    try:
        import tifffile
    except ImportError:
        return None
    try:
        with tifffile.TiffFile(path) as tif:
            fei = _fei_pixel_um(tif.fei_metadata or {})
            if fei:
                return fei, "FEI SEM header (PixelWidth)"
            zeiss = _zeiss_pixel_um(tif.sem_metadata or {})
            if zeiss:
                return zeiss, "Zeiss SEM header (Image Pixel Size)"
            return _tag_pixel_um(tif)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, tifffile.TiffFileError):
        return None
