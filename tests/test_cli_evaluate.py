"""The infer, evaluate and demo commands: outputs, exit codes, one-line errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from datatool.cli import main
from datatool.synth import write_tree
from datatool.torch.unet import UNet


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = write_tree(
        root / "data", {"0101": "validation"}, size=(80, 80), crop=64, crops_per_fov=1,
        fields_of_view=1, grain_px=16.0,
    )  # fmt: skip
    ckpt = root / "ckpt"
    ckpt.mkdir()
    for epoch in (0, 10):
        torch.manual_seed(epoch)
        torch.save(UNet(base_width=2).state_dict(), ckpt / f"run_{epoch}.pth")
    return root, data, ckpt


def test_infer_writes_predictions(setup, tmp_path, capsys):
    root, data, ckpt = setup
    image = next(data.rglob("image/*.png"))
    code, out, _ = run_cli(
        ["infer", str(ckpt / "run_10.pth"), str(image), "--out", str(tmp_path),
         "--resolution", "32", "--device", "cpu"],
        capsys,
    )  # fmt: skip
    assert code == 0
    written = tmp_path / f"predict_{image.stem}.png"
    with Image.open(written) as img, Image.open(image) as source:
        assert img.mode == "L" and img.size == source.size  # at the input's own size


def test_evaluate_dataset_end_to_end(setup, tmp_path, capsys, monkeypatch):
    root, data, ckpt = setup
    monkeypatch.setenv("COLUMNS", "200")  # room for every column, the checkpoint names too
    code, out, err = run_cli(
        ["evaluate", str(ckpt), "--dataset", str(data), "--out", str(tmp_path),
         "--resolution", "32", "--device", "cpu", "--sigma", "1", "--sigma", "3",
         "--overlays", "10"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "run_10.pth" in out and "2 computed" in out
    with open(tmp_path / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows if r["kind"] == "mean"] == ["0", "10"]
    assert (tmp_path / "loss_vs_epoch.png").exists()
    assert any((tmp_path / "overlays" / "epoch_10").iterdir())
    code, out, _ = run_cli(
        ["evaluate", str(ckpt), "--dataset", str(data), "--out", str(tmp_path),
         "--resolution", "32", "--device", "cpu"],
        capsys,
    )  # fmt: skip
    assert code == 0 and "0 computed, 2 from cache" in out


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["{missing}", "--dataset", "{data}"], 1, "checkpoint not found"),
        (["{empty}", "--dataset", "{data}"], 1, "no *.pth or *.pt checkpoints"),
        (["{ckpt}", "--image", "{bad}", "--truth", "{bad}"], 1, "not an image file"),
        (["{ckpt}", "--dataset", "{data}", "--resolution", "100"], 2, "multiple of 16"),
        (["{ckpt}"], 2, "give either --image IMG --truth LABEL, or --dataset ROOT"),
        (["{ckpt}", "--dataset", "{data}", "--overlays", "x"], 2, "expected epochs like"),
        (["{ckpt}", "--dataset", "{data}", "--kernel-size", "4"], 2, "--kernel-size"),
    ],
)
def test_evaluate_errors_are_one_line(setup, tmp_path, capsys, args, code, fragment):
    root, data, ckpt = setup
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.png").write_bytes(b"nope")
    values = {
        "missing": tmp_path / "gone_3.pth", "empty": tmp_path / "empty", "data": data,
        "ckpt": ckpt, "bad": tmp_path / "bad.png",
    }  # fmt: skip
    argv = ["evaluate", *[a.format(**values) for a in args], "--out", str(tmp_path / "o"),
            "--resolution" if "--resolution" not in args else "--device", "32"
            if "--resolution" not in args else "cpu"]  # fmt: skip
    got, _, err = run_cli(argv, capsys)
    assert got == code
    assert fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_corrupt_checkpoint_is_one_line_error(setup, tmp_path, capsys):
    root, data, ckpt = setup
    bad = tmp_path / "bad_5.pth"
    bad.write_bytes(b"\x00" * 10)
    image = next(data.rglob("image/*.png"))
    code, _, err = run_cli(
        ["infer", str(bad), str(image), "--out", str(tmp_path), "--resolution", "32"], capsys
    )
    assert code == 1 and "bad_5.pth: not a readable torch checkpoint" in err


def test_infer_reads_16_bit_tiff(setup, tmp_path, capsys):
    root, data, ckpt = setup
    tif = tmp_path / "deep.tif"
    Image.fromarray(np.full((40, 40), 40000, np.uint16)).save(tif)
    code, _, err = run_cli(
        ["infer", str(ckpt / "run_0.pth"), str(tif), "--out", str(tmp_path / "p"),
         "--resolution", "16", "--device", "cpu"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "p" / "predict_deep.png").exists()
