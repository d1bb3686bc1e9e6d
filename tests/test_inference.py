"""Inference: preprocessing as the lab does it, batching, 8-bit output, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from datatool.errors import DatatoolError, ImageReadError, UsageError
from datatool.io import read_grey
from datatool.torch.checkpoints import load_unet
from datatool.torch.inference import (
    check_resolution,
    fit_back,
    infer_files,
    load_input,
    predict,
    probability_to_uint8,
    select_device,
)
from datatool.torch.unet import UNet


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "ckpt" / "tiny_3.pth"
    path.parent.mkdir()
    torch.save(UNet(base_width=2).state_dict(), path)
    return path


def write_image(path, pixels):
    Image.fromarray(pixels).save(path)
    return path


def test_16_bit_and_8_bit_versions_of_an_image_give_the_same_input(tmp_path):
    rng = np.random.default_rng(0)
    eight = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    sixteen = eight.astype(np.uint16) * 257  # same brightness on the 16-bit scale
    a = load_input(write_image(tmp_path / "a.png", eight), 32)
    b = load_input(write_image(tmp_path / "b.tif", sixteen), 32)
    assert a.shape == (32, 32) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert 0.0 <= a.min() and a.max() <= 1.0


def test_colour_image_is_read_as_greyscale(tmp_path):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 1] = 200
    out = load_input(write_image(tmp_path / "c.png", rgb), 32)
    assert out.shape == (32, 32)
    assert out.mean() == pytest.approx(round(200 * 0.587) / 255, abs=0.01)


def test_border_removal_drops_the_scale_bar_before_resizing(tmp_path):
    rng = np.random.default_rng(1)
    micrograph = rng.integers(60, 200, (64, 64), dtype=np.uint8)
    with_bar = np.vstack([micrograph, np.zeros((12, 64), np.uint8)])
    path = write_image(tmp_path / "bar.png", with_bar)
    stripped = load_input(path, 64, remove_border=True)
    np.testing.assert_allclose(stripped, micrograph / 255.0, atol=1e-6)
    kept = load_input(path, 64, remove_border=False)
    assert kept[-4:].mean() < 0.2  # the black bar is squeezed in, not removed


@pytest.mark.parametrize("resolution", [0, 8, 100, 1000])
def test_resolution_not_a_multiple_of_16_is_refused_clearly(resolution):
    with pytest.raises(UsageError, match="multiple of 16"):
        check_resolution(resolution)


def test_predict_batches_give_the_same_result_as_one_by_one(checkpoint):
    model = load_unet(checkpoint)
    images = np.random.default_rng(2).random((5, 32, 32), dtype=np.float32)
    batched = predict(model, images, batch_size=3)
    single = np.stack([predict(model, images[i : i + 1], batch_size=1)[0] for i in range(5)])
    assert batched.shape == (5, 32, 32)
    np.testing.assert_allclose(batched, single, atol=1e-6)
    assert 0.0 <= batched.min() and batched.max() <= 1.0
    with torch.inference_mode():
        logits = model(torch.from_numpy(images[:1])[:, None])
    np.testing.assert_allclose(batched[0], torch.sigmoid(logits)[0, 0].numpy(), atol=1e-6)


def test_probability_to_uint8_rounds_and_clips():
    prob = np.array([[0.0, 1.0, 0.5, 1 / 255 * 0.49, 1.2, -0.1]], np.float32)
    assert probability_to_uint8(prob).tolist() == [[0, 255, 128, 0, 255, 0]]


def test_infer_files_writes_8_bit_predictions_named_after_the_images(tmp_path, checkpoint):
    rng = np.random.default_rng(3)
    images = [
        write_image(tmp_path / "0417_1_2.png", rng.integers(0, 256, (40, 40), dtype=np.uint8)),
        write_image(tmp_path / "deep.tif", rng.integers(0, 65536, (40, 40), dtype=np.uint16)),
    ]
    written = infer_files(checkpoint, images, tmp_path / "out", resolution=32, batch_size=1)
    assert [p.path.name for p in written] == ["predict_0417_1_2.png", "predict_deep.png"]
    model = load_unet(checkpoint)
    for image, out in zip(images, written, strict=True):
        grey = read_grey(out.path)
        # Square inputs are resized square, as the lab does; the prediction comes back at 40 px.
        assert grey.dtype == np.uint8 and grey.shape == (40, 40)
        expected = predict(model, [load_input(image, 32)])[0]
        np.testing.assert_array_equal(grey, probability_to_uint8(fit_back(expected, out.fit)))


def test_infer_files_errors_are_one_line_datatool_errors(tmp_path, checkpoint):
    good = write_image(tmp_path / "g.png", np.zeros((32, 32), np.uint8))
    with pytest.raises(DatatoolError, match="checkpoint not found"):
        infer_files(tmp_path / "none_1.pth", [good], tmp_path / "o", resolution=32)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="bad.png"):
        infer_files(checkpoint, [tmp_path / "bad.png"], tmp_path / "o", resolution=32)
    other = tmp_path / "sub"
    other.mkdir()
    twin = write_image(other / "g.png", np.zeros((32, 32), np.uint8))
    with pytest.raises(UsageError, match="same output name"):
        infer_files(checkpoint, [good, twin], tmp_path / "o", resolution=32)


def test_select_device():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UsageError, match="expected auto, cpu"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            select_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_and_amp_stays_within_one_grey_level():
    torch.manual_seed(0)
    state = UNet(base_width=64).state_dict()
    cpu_model = UNet(base_width=64).eval()
    cpu_model.load_state_dict(state)
    gpu_model = UNet(base_width=64).eval().cuda()
    gpu_model.load_state_dict(state)
    images = np.random.default_rng(4).random((2, 256, 256), dtype=np.float32)
    reference = probability_to_uint8(predict(cpu_model, images))
    fp32 = probability_to_uint8(predict(gpu_model, images))
    amp = probability_to_uint8(predict(gpu_model, images, amp=True))
    assert np.abs(fp32.astype(int) - reference).max() <= 1
    assert np.abs(amp.astype(int) - fp32).max() <= 1
