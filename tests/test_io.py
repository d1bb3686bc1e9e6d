"""Decoding (greyscale, 16-bit, corrupt files) and atomic writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datatool import io
from datatool.errors import ImageReadError


def test_sixteen_bit_tiff_keeps_its_range(tmp_path: Path) -> None:
    pixels = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(pixels).save(tmp_path / "a.tif")
    decoded = io.read_image(tmp_path / "a.tif")
    assert decoded.pixels.dtype == np.uint16 and decoded.max_value == 65535
    np.testing.assert_array_equal(decoded.pixels, pixels)
    assert io.read_grey_float(tmp_path / "a.tif").max() == pytest.approx(63000 / 65535)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty"), (b"not an image", "not an image"), (None, "cannot open")],
)
def test_unreadable_files_raise_one_clear_error(tmp_path: Path, content, reason) -> None:
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason) as info:
        io.read_image(path)
    assert str(path) in str(info.value)


def test_truncated_png_is_an_error(tmp_path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(
        tmp_path / "t.png"
    )
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        io.read_image(tmp_path / "t.png")


def test_write_png_roundtrip_and_determinism(tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 255, (16, 24), np.uint8)
    first = io.write_png(tmp_path / "a.png", pixels)
    assert io.write_png(tmp_path / "b.png", pixels) == first
    np.testing.assert_array_equal(io.read_grey(tmp_path / "a.png"), pixels)
    assert io.sha256_file(tmp_path / "a.png") == io.sha256_bytes(first)


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_writes_follow_the_umask_not_private(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        io.atomic_write_text(tmp_path / "shared.html", "<p>hi</p>")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.html").stat().st_mode & 0o777 == 0o644
