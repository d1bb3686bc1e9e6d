"""Mutated PNG and TIFF files never crash the check, and every finding names its file.

Hypothesis damages one or two files of a small flat set (crops of the bundled
micrographs and their labels, PNG and TIFF) the ways files really get damaged:
truncation, flipped bits, edited header fields (with or without repaired CRCs),
other pixel modes, other sizes. Whatever it does, ``io.read_image`` either
decodes or raises ``ImageReadError``; the check returns a report (never an
internal error), every finding names an existing file (or the root), and every
other pair is still checked.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from datatool import io
from datatool.check import run_check
from datatool.checks import CheckOptions
from datatool.errors import ImageReadError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "training_validation_data"
STEMS = ("0101_1_1", "0101_2_2", "0201_1_3")
MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "F")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flat set of three pairs; the last pair's image is a 16-bit TIFF."""
    root = tmp_path_factory.mktemp("pristine")
    for sub in ("image", "label"):
        (root / sub).mkdir()
    for stem in STEMS:
        for sub in ("image", "label"):
            source = next(FIXTURE.glob(f"*/*/aligned/{sub}/{stem}.png"))
            shutil.copy(source, root / sub / source.name)
    tif = root / "image" / f"{STEMS[-1]}.png"
    grey = np.asarray(Image.open(tif)).astype(np.uint16) * 257
    tif.unlink()
    Image.fromarray(grey[:64, :64]).save(tif.with_suffix(".tif"))
    label = root / "label" / f"{STEMS[-1]}.png"
    Image.open(label).crop((0, 0, 64, 64)).save(label)
    return root


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC, so the decoder itself meets the damaged fields."""
    out, pos = bytearray(data[:8]), 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        end = pos + 12 + length
        if end > len(data):
            break
        body = data[pos + 4 : end - 4]
        out += data[pos : pos + 4] + body + struct.pack(">I", zlib.crc32(body))
        pos = end
    return bytes(out + data[pos:])


def truncate(data: bytes, draw) -> bytes:
    return data[: draw(st.integers(0, max(0, len(data) - 1)))]


def flip_bits(data: bytes, draw) -> bytes:
    out = bytearray(data)
    for at in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=8)):
        out[at] ^= 1 << draw(st.integers(0, 7))
    return bytes(out)


def header_field(data: bytes, draw) -> bytes:
    """Overwrite bytes inside the first 40 (PNG IHDR: size, depth, colour type; TIFF IFD)."""
    out = bytearray(data)
    at = draw(st.integers(8 if data.startswith(b"\x89PNG") else 0, min(39, len(data) - 1)))
    value = draw(st.sampled_from([0, 1, 2, 3, 7, 8, 16, 255, 0x7F]))
    out[at] = value
    out = bytes(out)
    return fix_png_crcs(out) if out.startswith(b"\x89PNG") and draw(st.booleans()) else out


def mutate_file(path: Path, draw) -> None:
    kind = draw(st.sampled_from(["truncate", "flip", "header", "mode", "size"]))
    if kind in ("mode", "size"):
        img = Image.open(path)
        img.load()
        if kind == "mode":
            mode = draw(st.sampled_from(MODES))
            img = img.convert("I") if mode == "I;16" else img.convert(mode)
            if mode == "I;16":
                img = Image.fromarray(np.asarray(img).astype(np.uint16))
            # PNG has no float mode: a float image is a TIFF, whatever its name says.
            fmt = "TIFF" if mode == "F" or (mode == "I;16" and draw(st.booleans())) else None
            img.save(path, format=fmt or ("TIFF" if path.suffix == ".tif" else "PNG"))
        else:
            side = draw(st.integers(1, 96))
            img.resize((side, draw(st.integers(1, 96)))).save(path)
        return
    data = path.read_bytes()
    mutation = {"truncate": truncate, "flip": flip_bits, "header": header_field}[kind]
    path.write_bytes(mutation(data, draw))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_files_give_findings_never_a_crash(pristine: Path, data) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "set"
        shutil.copytree(pristine, root)
        files = sorted(p for p in root.rglob("*") if p.is_file())
        victims = data.draw(
            st.lists(st.sampled_from(files), min_size=1, max_size=2, unique=True), label="files"
        )
        for victim in victims:
            mutate_file(victim, data.draw)
        for path in files:
            try:
                decoded = io.read_image(path, role="label" if "label" in path.parts else "image")
            except ImageReadError as exc:
                assert exc.reason and str(path) in str(exc)
            else:
                assert decoded.pixels.ndim == 2
                assert decoded.pixels.dtype in (np.uint8, np.uint16)
        report = run_check(root, CheckOptions(workers=1))
        assert len(report.pairs) == len(STEMS)  # no file stopped the others being checked
        for finding in report.findings:
            assert finding.path, finding
            assert finding.path == "." or (root / finding.path).exists(), finding
        untouched = {f.relative_to(root).as_posix() for f in files} - {
            v.relative_to(root).as_posix() for v in victims
        }
        for finding in report.errors():
            if finding.code in ("unreadable", "too-large", "bad-values"):
                assert finding.path not in untouched, finding


def test_cli_never_reports_an_internal_error_on_a_damaged_file(pristine, tmp_path, run_cli):
    root = tmp_path / "set"
    shutil.copytree(pristine, root)
    label = root / "label" / f"{STEMS[0]}.png"
    label.write_bytes(fix_png_crcs(label.read_bytes()[:33] + b"\x00" * 40))
    image = root / "image" / f"{STEMS[-1]}.tif"
    image.write_bytes(image.read_bytes()[:20])
    code, out, err = run_cli("check", root, "--workers", "1")
    assert code == 1 and "internal error" not in (out + err).lower()
