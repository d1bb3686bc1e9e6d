"""Honest verdicts on bad input: each mistake people make becomes a finding at the right file.

Data: the bundled sample tree (Voronoi micrographs with grey grains, dark blurred
boundaries, noise, a scale-bar strip; GIMP-like blurred black tracings) and
files derived from it the way people damage them (GIMP alpha exports, 16-bit and
float TIFFs, wrong folder names, bombs, links, FIFOs).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datatool import io
from datatool.check import run_check
from datatool.checks import CheckOptions
from datatool.errors import DatatoolError, ImageReadError
from datatool.layout import diagnose_empty

SAMPLE = "training/0101_training/aligned"


def check(root: Path, **options) -> object:
    return run_check(root, CheckOptions(workers=1, **options))


def codes(report, path: str | None = None) -> set[str]:
    return {f.code for f in report.findings if path is None or f.path == path}


def only(report, code: str):
    found = [f for f in report.findings if f.code == code]
    assert len(found) == 1, [f.model_dump() for f in report.findings]
    return found[0]


def flat_copy(tree: Path, dest: Path, image_dir: str = "image", label_dir: str = "label") -> Path:
    """The tree's crop pairs as a flat set with the given folder names."""
    (dest / image_dir).mkdir(parents=True)
    (dest / label_dir).mkdir(parents=True)
    for image in sorted(tree.glob("*/*/aligned/image/*.png")):
        shutil.copy(image, dest / image_dir / image.name)
        shutil.copy(image.parent.parent / "label" / image.name, dest / label_dir / image.name)
    return dest


# --------------------------------------------------------------------------- 1. nothing found


def test_images_and_masks_folders_are_named(sample_tree: Path, tmp_path: Path, run_cli) -> None:
    flat = flat_copy(sample_tree, tmp_path / "set", "images", "masks")
    code, out, _ = run_cli("check", flat, "--workers", "1", "--json")
    report = json.loads(out)
    assert code == 1
    [finding] = [f for f in report["findings"] if f["code"] == "no-pairs"]
    assert finding["severity"] == "error" and finding["path"] == "."
    assert "found images/ and masks/: name them image/ and label/" in finding["message"]
    assert "looked for" in finding["message"]


def test_flat_folder_of_pngs(sample_tree: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pngs"
    folder.mkdir()
    for image in sorted(sample_tree.glob("*/*/aligned/image/*.png"))[:6]:
        shutil.copy(image, folder / image.name)
    report = check(folder)
    assert not report.ok
    message = only(report, "no-pairs").message
    assert "flat folder of 6 image file(s)" in message and "label/" in message


def test_folder_above_the_tree(sample_tree: Path, run_cli) -> None:
    code, out, _ = run_cli("check", sample_tree.parent, "--workers", "1", "--json")
    assert code == 1
    messages = [f["message"] for f in json.loads(out)["findings"] if f["code"] == "no-pairs"]
    assert messages and f"did you mean {sample_tree}?" in messages[0]


def test_labels_with_a_mask_ending(sample_tree: Path, tmp_path: Path) -> None:
    flat = flat_copy(sample_tree, tmp_path / "set")
    for label in (flat / "label").iterdir():
        label.rename(label.with_name(label.stem + "_mask.png"))
    report = check(flat)
    assert not report.ok
    message = only(report, "no-pairs").message
    assert "end in _mask" in message
    assert "labels are matched by the same name in label/" in message
    assert "missing-label" in codes(report)


def test_info_and_evaluate_say_what_was_looked_for(sample_tree: Path, tmp_path: Path, run_cli):
    flat = flat_copy(sample_tree, tmp_path / "set", "images", "masks")
    code, _, err = run_cli("info", flat)
    assert code == 1 and "name them image/ and label/" in err
    from datatool.evaluate.sweep import pairs_from_dataset

    with pytest.raises(DatatoolError, match="did you mean"):
        pairs_from_dataset(sample_tree.parent)


def test_unbuilt_tree_advises_build(sample_tree: Path) -> None:
    for folder in sample_tree.glob("*/*/aligned/*"):
        if folder.is_dir():
            shutil.rmtree(folder)
    assert "datatool build" in diagnose_empty(sample_tree)


def test_the_sample_tree_is_clean(sample_tree: Path, run_cli) -> None:
    code, out, _ = run_cli("check", sample_tree, "--workers", "1", "--json")
    report = json.loads(out)
    assert code == 0 and report["summary"]["errors"] == 0, report["findings"]
    assert "no-pairs" not in report["summary"]["by_code"]


# --------------------------------------------------------------------------- 2. alpha drawings


def alpha_only(path: Path, ink: int = 0) -> None:
    """Rewrite a black-on-white tracing as GIMP exports a transparent layer.

    RGB is one flat colour; the lines live only in the alpha channel.
    """
    grey = np.asarray(Image.open(path).convert("L"))
    rgba = np.zeros((*grey.shape, 4), np.uint8)
    rgba[..., :3] = ink
    rgba[..., 3] = 255 - grey
    Image.fromarray(rgba, "RGBA").save(path)


def built_labels(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.glob(f"{SAMPLE}/label/*.png"))}


def test_alpha_only_tracing_builds_the_same_labels(sample_tree: Path, run_cli) -> None:
    shutil.rmtree(sample_tree / SAMPLE / "label")
    shutil.rmtree(sample_tree / SAMPLE / "image")
    assert run_cli("build", sample_tree, "--no-check")[0] == 0
    expected = built_labels(sample_tree)
    alpha_only(sample_tree / SAMPLE / "0101_trace.png")
    code, out, err = run_cli("build", sample_tree, "--force")
    assert code == 0, out + err
    assert built_labels(sample_tree) == expected
    assert all(np.asarray(Image.open(p)).any() for p in (sample_tree / SAMPLE / "label").iterdir())
    decoded = io.read_image(sample_tree / SAMPLE / "0101_trace.png", role="tracing")
    assert "alpha channel is the drawing" in (decoded.conversion or "")


def test_alpha_only_label_in_a_flat_set_is_read_as_drawn(sample_tree: Path, tmp_path: Path):
    flat = flat_copy(sample_tree, tmp_path / "set")
    label = sorted((flat / "label").iterdir())[0]
    lines = np.asarray(Image.open(label))
    rgba = np.zeros((*lines.shape, 4), np.uint8)  # RGB all black, lines only in alpha
    rgba[..., 3] = lines
    Image.fromarray(rgba, "RGBA").save(label)
    report = check(flat, alignment=False)
    rel = f"label/{label.name}"
    assert report.ok, [f.model_dump() for f in report.errors()]
    assert not {"inverted", "empty-label", "not-binary"} & codes(report, rel)
    warning = [f for f in report.for_path(rel) if f.code == "not-greyscale"]
    assert warning and "alpha channel is the drawing" in warning[0].message


def test_ambiguous_alpha_is_refused_naming_the_alpha_channel(sample_tree: Path) -> None:
    trace = sample_tree / SAMPLE / "0101_trace.png"
    grey = np.asarray(Image.open(trace).convert("L"))
    micrograph = np.asarray(Image.open(sample_tree / SAMPLE / "0101_1.png").convert("L"))
    rgba = np.dstack([micrograph, micrograph, micrograph, 255 - grey]).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(trace)
    report = check(sample_tree, alignment=False)
    finding = only(report, "ambiguous-alpha")
    assert finding.path == f"{SAMPLE}/0101_trace.png" and finding.severity == "error"
    assert "alpha channel" in finding.message and "Flatten" in finding.message


def test_build_refuses_an_empty_label_where_the_tracing_has_lines(sample_tree, monkeypatch):
    from datatool import build as build_mod

    before = built_labels(sample_tree)
    monkeypatch.setattr(
        build_mod.labels, "process_tracing", lambda grey, *a, **k: np.zeros(grey.shape, bool)
    )
    with pytest.raises(DatatoolError, match="empty label.*drawn pixels"):
        build_mod.build(sample_tree, build_mod.BuildOptions(force=True), samples=["0101"])
    assert built_labels(sample_tree) == before


def test_build_refuses_a_tracing_of_one_grey_level(sample_tree: Path, run_cli) -> None:
    trace = sample_tree / SAMPLE / "0101_trace.png"
    Image.fromarray(np.zeros((344, 320), np.uint8)).save(trace)
    code, _, err = run_cli("build", sample_tree, "--sample", "0101", "--force")
    assert code == 1 and "0101_trace.png" in err and "nothing is traced" in err


def test_a_blank_tracing_is_one_error_on_the_tracing(sample_tree: Path) -> None:
    """Not eight wrong pairings: the tracing is what is wrong."""
    trace = sample_tree / SAMPLE / "0101_trace.png"
    Image.fromarray(np.full((344, 320), 255, np.uint8)).save(trace)
    report = check(sample_tree)
    assert [(f.code, f.path) for f in report.errors()] == [
        ("empty-tracing", f"{SAMPLE}/0101_trace.png")
    ]
    assert "8 label(s)" in report.errors()[0].message


# --------------------------------------------------------------------------- 9. precision


def test_16_bit_originals_are_said_once(sample_tree: Path) -> None:
    for original in sorted(sample_tree.glob("*/*/aligned/*_[0-9].png")):
        grey = np.asarray(Image.open(original)).astype(np.uint16) * 257
        original.unlink()
        Image.fromarray(grey).save(original.with_suffix(".tif"))
    report = check(sample_tree)
    assert report.ok, [f.model_dump() for f in report.errors()]
    finding = only(report, "reduced-precision")
    assert finding.severity == "info" and finding.path.endswith(".tif")
    assert "8-bit" in finding.message and finding.measured == 6
    assert len(finding.related) == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydantic warns when a value does not fit its field
        report.model_dump_json()


def replace_label(root: Path, array: np.ndarray, suffix: str = ".tif", **save) -> str:
    label = root / SAMPLE / "label" / "0101_1_1.png"
    label.unlink()
    target = label.with_suffix(suffix)
    Image.fromarray(array).save(target, **save)
    return target.relative_to(root).as_posix()


def label_array(root: Path) -> np.ndarray:
    return np.asarray(Image.open(root / SAMPLE / "label" / "0101_1_1.png"))


def test_float_label_in_0_to_1_is_named_not_called_grey(sample_tree: Path) -> None:
    rel = replace_label(sample_tree, (label_array(sample_tree) / 255.0).astype(np.float32))
    report = check(sample_tree)
    assert codes(report, rel) == {"float-image"}, report.for_path(rel)
    assert "0..1" in only(report, "float-image").message
    assert report.ok


def test_float_image_in_0_to_255_is_named_and_still_located(sample_tree: Path) -> None:
    image = sample_tree / SAMPLE / "image" / "0101_1_1.png"
    pixels = np.asarray(Image.open(image)).astype(np.float32)
    image.unlink()
    Image.fromarray(pixels).save(image.with_suffix(".tif"))
    report = check(sample_tree)
    rel = f"{SAMPLE}/image/0101_1_1.tif"
    assert "0..255" in only(report, "float-image").message
    assert report.ok and codes(report, rel) == {"float-image"}


@pytest.mark.parametrize(
    ("poison", "words"), [(np.nan, "NaN"), (-0.5, "negative")], ids=["nan", "negative"]
)
def test_nan_and_negative_values_name_the_scale_problem(sample_tree, poison, words) -> None:
    array = (label_array(sample_tree) / 255.0).astype(np.float32)
    array[:4, :4] = poison
    rel = replace_label(sample_tree, array)
    report = check(sample_tree)
    assert codes(report, rel) == {"bad-values"}
    finding = only(report, "bad-values")
    assert words in finding.message and finding.severity == "error"
    assert not report.ok


def test_multi_page_tiff_says_page_one(sample_tree: Path) -> None:
    lines = label_array(sample_tree)
    rel = replace_label(
        sample_tree,
        lines,
        save_all=True,
        append_images=[Image.fromarray(255 - lines)],
    )
    report = check(sample_tree)
    finding = only(report, "multi-page")
    assert finding.path == rel and "only page 1" in finding.message and report.ok


# --------------------------------------------------------------------------- bombs and memory


def bomb_png(path: Path, side: int = 30000) -> Path:
    """A valid 1-bit PNG declaring side x side pixels (all black), a few hundred KB."""
    row = b"\x00" + bytes((side + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    return path


def test_bomb_is_an_error_naming_file_and_size_and_the_run_goes_on(sample_tree, run_cli):
    bomb_png(sample_tree / SAMPLE / "image" / "0101_1_1.png")
    code, out, _ = run_cli("check", sample_tree, "--workers", "1", "--json")
    report = json.loads(out)
    assert code == 1
    [bomb] = [f for f in report["findings"] if f["code"] == "too-large"]
    assert bomb["path"] == f"{SAMPLE}/image/0101_1_1.png"
    assert "30000 x 30000" in bomb["message"] and "100 Mpx" in bomb["message"]
    assert report["summary"]["pairs"] == 24  # every other pair was still checked
    assert report["summary"]["errors"] == 1


def test_bomb_in_score_info_and_build(sample_tree: Path, tmp_path: Path, run_cli) -> None:
    bomb = bomb_png(tmp_path / "bomb.png")
    label = sample_tree / SAMPLE / "label" / "0101_1_1.png"
    code, out, err = run_cli("score", label, "--truth", bomb)
    assert code == 1 and "bomb.png" in err and "pixel budget" in err
    code, out, err = run_cli("score", bomb, "--truth", label)
    assert code == 1 and "bomb.png" in err and "30000 x 30000" in err
    bomb_png(sample_tree / SAMPLE / "0101_2.png")
    code, out, err = run_cli("build", sample_tree, "--force")
    assert code == 1 and "0101_2.png" in err and "pixel budget" in err
    assert run_cli("info", sample_tree, "--json")[0] == 0


def test_max_pixels_option_lowers_the_budget(sample_tree: Path, run_cli) -> None:
    code, out, _ = run_cli("check", sample_tree, "--workers", "1", "--json", "--max-pixels", "1000")
    report = json.loads(out)
    assert code == 1 and report["summary"]["by_code"]["too-large"] == 57
    assert run_cli("check", sample_tree, "--max-pixels", "0")[0] == 2


# --------------------------------------------------------------------------- files that lie


def test_wrong_idat_crc_is_corrupt(sample_tree: Path) -> None:
    label = sample_tree / SAMPLE / "label" / "0101_1_2.png"
    data = bytearray(label.read_bytes())
    at = data.index(b"IDAT") + 8
    data[at] ^= 0x01  # one flipped bit in the compressed pixels, CRC left as it was
    label.write_bytes(bytes(data))
    report = check(sample_tree)
    finding = only(report, "unreadable")
    assert finding.path == f"{SAMPLE}/label/0101_1_2.png"
    assert "CRC of chunk 'IDAT'" in finding.message and not report.ok


def test_jpeg_under_a_png_name_and_cmyk_are_warned(sample_tree: Path) -> None:
    image = sample_tree / SAMPLE / "image" / "0101_1_3.png"
    Image.open(image).convert("L").save(image, format="JPEG", quality=95)
    other = sample_tree / SAMPLE / "image" / "0101_1_4.png"
    Image.open(other).convert("CMYK").save(other, format="JPEG", quality=95)
    report = check(sample_tree, alignment=False)
    wrong = [f for f in report.findings if f.code == "wrong-format"]
    assert {f.path for f in wrong} == {
        f"{SAMPLE}/image/0101_1_3.png",
        f"{SAMPLE}/image/0101_1_4.png",
    }
    assert all("JPEG content under a .png name" in f.message for f in wrong)
    assert all("lossy" in f.message for f in wrong)
    cmyk = [f for f in report.for_path(f"{SAMPLE}/image/0101_1_4.png") if f.code == "not-greyscale"]
    assert cmyk and "CMYK" in cmyk[0].message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_is_not_a_regular_file(sample_tree: Path) -> None:
    label = sample_tree / SAMPLE / "label" / "0101_2_1.png"
    label.unlink()
    os.mkfifo(label)  # opening it for reading would block forever
    report = check(sample_tree)
    finding = only(report, "not-regular-file")
    assert finding.path == f"{SAMPLE}/label/0101_2_1.png" and "FIFO" in finding.message


def test_newline_in_a_file_name(sample_tree: Path) -> None:
    image = sample_tree / SAMPLE / "image" / "0101_1_1.png"
    image.rename(image.with_name("0101_1\n_1.png"))
    report = check(sample_tree, alignment=False)
    finding = only(report, "unsafe-name")
    assert finding.path == f"{SAMPLE}/image/0101_1\n_1.png" and "newline" in finding.message


def test_folder_that_cannot_be_entered(sample_tree: Path, monkeypatch) -> None:
    from datatool import layout

    real = os.scandir
    denied = sample_tree / "training" / "0102_training" / "aligned" / "label"

    def scandir(path="."):
        if Path(path) == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(layout.os, "scandir", scandir)
    report = check(sample_tree)
    finding = only(report, "unreadable-folder")
    assert finding.path == "training/0102_training/aligned/label"
    assert "Permission denied" in finding.message and finding.severity == "error"
    assert len(report.pairs) == 24  # the other samples were checked; 0102's images lack labels


# --------------------------------------------------------------------------- symlinks


def test_crop_linked_outside_root_is_reported_and_not_read(sample_tree, tmp_path) -> None:
    outside = tmp_path / "elsewhere.png"
    label = sample_tree / SAMPLE / "label" / "0101_1_1.png"
    shutil.copy(label, outside)
    label.unlink()
    label.symlink_to(outside)
    report = check(sample_tree)
    finding = only(report, "outside-link")
    assert finding.path == f"{SAMPLE}/label/0101_1_1.png" and str(outside) in finding.message
    assert "missing-label" in codes(report) and not report.ok
    followed = check(sample_tree, follow_links=True)
    assert followed.ok and only(followed, "followed-link").severity == "info"


def test_build_never_writes_through_a_link_leaving_root(sample_tree, tmp_path, run_cli) -> None:
    sample = sample_tree / "training" / "0101_training"
    outside = tmp_path / "outside_sample"
    shutil.move(sample, outside)
    sample.symlink_to(outside, target_is_directory=True)
    shutil.rmtree(outside / "aligned" / "label")
    code, out, err = run_cli("build", sample_tree, "--force", "--no-check")
    assert code == 0 and not (outside / "aligned" / "label").exists()
    code, out, err = run_cli("build", sample_tree, "--force", "--follow-links", "--no-check")
    assert code == 1 and "refusing to write" in err and "outside" in err
    assert not (outside / "aligned" / "label").exists()


# --------------------------------------------------------------------------- stale crops


def test_crops_no_box_of_the_plan_made_are_stale(sample_tree: Path) -> None:
    plan = sample_tree / SAMPLE / "crops.json"
    boxes = json.loads(plan.read_text())["boxes"]
    plan.write_text(json.dumps({"boxes": boxes[:2]}))
    report = check(sample_tree, alignment=False)
    stale = sorted(f.path for f in report.findings if f.code == "stale-crop")
    assert len(stale) == 8  # crops 3 and 4 of two fields of view, image and label
    assert f"{SAMPLE}/image/0101_1_3.png" in stale
    assert all(f.severity == "warning" for f in report.findings if f.code == "stale-crop")
    plan.unlink()  # hand-made crops without a plan stay valid
    assert "stale-crop" not in codes(check(sample_tree, alignment=False))


def test_read_image_errors_carry_codes(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError) as info:
        io.read_image(empty)
    assert info.value.code == "unreadable" and "empty" in info.value.reason
