"""Precision forms: measured choice within 1 grey level, forced forms, prefetch, cache keys."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from datatool.evaluate import sweep
from datatool.io import read_grey
from datatool.metrics.results import SweepOptions
from datatool.schedule import prefetch
from datatool.torch import inference
from datatool.torch.checkpoints import load_unet
from datatool.torch.inference import (
    BF16_CL,
    FORMS,
    FP32,
    FP32_CL,
    GREY_LEVEL,
    choose_precision,
    fit_back,
    infer_files,
    load_fitted,
    predict,
    probability_to_uint8,
)
from datatool.torch.unet import UNet


@pytest.fixture
def model():
    torch.manual_seed(0)
    return UNet(base_width=4).eval()


@pytest.fixture
def probe():
    return np.random.default_rng(0).random((1, 64, 64), dtype=np.float32)


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(1)
    path = tmp_path / "ckpt" / "tiny_5.pth"
    path.parent.mkdir()
    torch.save(UNet(base_width=4).state_dict(), path)
    return path


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(2)
    paths = []
    for i, shape in enumerate([(64, 64), (48, 80), (64, 64), (70, 50), (64, 64)]):
        path = tmp_path / "in" / f"m{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_auto_picks_a_form_within_one_grey_level(model, probe, monkeypatch):
    monkeypatch.setattr(inference, "_SPEED_MEMO", {})
    choice = choose_precision(model, probe, "auto")
    assert choice.form in FORMS.values()
    assert choice.grey_levels[choice.form.name] <= 1.0
    assert choice.message.startswith(f"precision: {choice.form.describe()} (")
    assert set(choice.seconds) >= {"fp32", "fp32-cl"}  # both float32 forms were measured
    reference = predict(model, probe, form=FP32)
    chosen = predict(model, probe, form=choice.form)
    assert np.abs(chosen - reference).max() <= GREY_LEVEL


def _fast_but_wrong(monkeypatch, wrong: dict[str, float], seconds: dict[str, float]):
    """bf16 'native', each form timed as ``seconds`` says, ``wrong`` forms off by that much."""
    real = inference._time_form
    monkeypatch.setattr(inference, "_SPEED_MEMO", {})
    monkeypatch.setattr(inference, "bf16_native", lambda device: (True, "bf16 native (test)"))

    def timed(model, batch, form, runs=2):
        _, probs = real(model, batch, FP32 if form.bf16 else form)
        return seconds[form.name], probs + wrong.get(form.name, 0.0)

    monkeypatch.setattr(inference, "_time_form", timed)


def test_the_guard_rejects_a_fast_form_outside_one_grey_level(model, probe, monkeypatch):
    _fast_but_wrong(
        monkeypatch, {"bf16-cl": 3 * GREY_LEVEL}, {"fp32": 1.0, "fp32-cl": 0.5, "bf16-cl": 0.01}
    )
    choice = choose_precision(model, probe, "auto")
    assert choice.form is FP32_CL
    assert choice.grey_levels["bf16-cl"] == pytest.approx(3.0, abs=0.01)
    assert "2.00x faster than fp32" in choice.message
    assert "bf16 + channels_last was 3.0 grey levels off fp32" in choice.message


def test_the_guard_falls_back_to_fp32_when_every_faster_form_is_wrong(model, probe, monkeypatch):
    wrong = {"bf16-cl": 5 * GREY_LEVEL, "fp32-cl": 1.5 * GREY_LEVEL}
    _fast_but_wrong(monkeypatch, wrong, {"fp32": 1.0, "fp32-cl": 0.5, "bf16-cl": 0.01})
    choice = choose_precision(model, probe, "auto")
    assert choice.form is FP32
    assert choice.message.startswith("precision: fp32 (fastest")


def test_a_good_bf16_wins_and_forced_bf16_outside_the_guard_falls_back(model, probe, monkeypatch):
    _fast_but_wrong(monkeypatch, {}, {"fp32": 1.0, "fp32-cl": 0.5, "bf16-cl": 0.25})
    choice = choose_precision(model, probe, "auto")
    assert choice.form is BF16_CL and "4.00x faster than fp32" in choice.message
    _fast_but_wrong(
        monkeypatch, {"bf16-cl": 2 * GREY_LEVEL}, {"fp32": 1.0, "fp32-cl": 2.0, "bf16-cl": 0.1}
    )
    forced = choose_precision(model, probe, "bf16")
    assert forced.form is FP32
    assert "bf16 asked for, but bf16 + channels_last was 2.0 grey levels off" in forced.message


def test_real_bf16_on_this_machine_is_guarded(model, probe, monkeypatch):
    monkeypatch.setattr(inference, "_SPEED_MEMO", {})
    choice = choose_precision(model, probe, "bf16")
    assert choice.form in (BF16_CL, FP32_CL, FP32)
    assert choice.grey_levels[choice.form.name] <= 1.0
    assert "bf16" in choice.message


def test_forced_fp32_is_plain_float32_and_identical_to_before(model, probe):
    with torch.inference_mode():
        direct = torch.sigmoid(model(torch.from_numpy(probe)[:, None]))[:, 0].numpy()
    choice = choose_precision(model, probe, "fp32")
    assert choice.form is FP32 and choice.seconds == {}
    predict(model, probe, form=FP32_CL)  # leaves the weights channels_last ...
    again = predict(model, probe, form="fp32")  # ... and fp32 puts them back
    np.testing.assert_array_equal(again, direct)
    assert next(model.parameters()).is_contiguous()


def test_prefetch_keeps_order_and_raises_at_the_failing_item():
    def slow(i: int) -> tuple[int, str]:
        time.sleep(0.02 * (3 - i % 3))  # later items finish loading sooner
        if i == 4:
            raise ValueError("item 4 is broken")
        return i, threading.current_thread().name

    stream = prefetch(range(6), slow)
    got = [next(stream) for _ in range(4)]
    assert [i for i, _ in got] == [0, 1, 2, 3]
    assert all(name.startswith("prefetch") for _, name in got)  # loaded off the caller's thread
    with pytest.raises(ValueError, match="item 4"):
        next(stream)


def test_prefetched_infer_equals_one_image_at_a_time(tmp_path, checkpoint, images):
    messages: list[str] = []
    written = infer_files(
        checkpoint, images, tmp_path / "out", resolution=64, batch_size=2,
        precision="fp32", on_precision=messages.append,
    )  # fmt: skip
    assert [w.path.name for w in written] == [f"predict_m{i}.png" for i in range(5)]
    assert messages == ["precision: fp32 (as asked)"]
    model = load_unet(checkpoint)
    for image, out in zip(images, written, strict=True):
        square, fit = load_fitted(image, 64)
        expected = probability_to_uint8(fit_back(predict(model, [square])[0], fit))
        np.testing.assert_array_equal(read_grey(out.path), expected)


def test_cache_key_differs_by_form_and_plain_fp32_keeps_its_old_key():
    keys = {
        form: sweep.PredictionCache.key("c" * 64, "i" * 64, SweepOptions(form=form))
        for form in ("fp32", "fp32-cl", "bf16-cl")
    }
    assert len(set(keys.values())) == 3
    assert keys["fp32"] == sweep.PredictionCache.key("c" * 64, "i" * 64, SweepOptions())
    assert keys["fp32"].endswith("-r1024-b0-a0")  # the key of caches written before forms


def test_sweep_records_the_form_and_does_not_reuse_another_forms_cache(tmp_path, checkpoint):
    from datatool.synth import write_tree
    from datatool.torch.checkpoints import find_checkpoints

    data = write_tree(tmp_path / "data", {"0201": "validation"}, seed=3, crop=64)
    pairs = sweep.pairs_from_dataset(data)[:2]
    checkpoints = find_checkpoints([checkpoint])
    run = {"cache_dir": tmp_path / "cache"}
    base = {"resolution": 64, "device": "cpu"}
    plain = sweep.run_sweep(checkpoints, pairs, SweepOptions(**base), **run)
    assert plain.options.form == "fp32" and plain.cache_misses == len(pairs)
    messages: list[str] = []
    other = sweep.run_sweep(
        checkpoints, pairs, SweepOptions(**base, form="fp32-cl"), on_precision=messages.append,
        **run,
    )  # fmt: skip
    assert other.cache_misses == len(pairs) and messages == []  # form given: nothing measured
    auto = sweep.run_sweep(
        checkpoints, pairs, SweepOptions(**base, precision="auto"), on_precision=messages.append,
        **run,
    )  # fmt: skip
    assert auto.options.form in ("fp32", "fp32-cl", "bf16-cl") and len(messages) == 1
    assert auto.cache_hits == len(pairs)  # whichever form won, its predictions were cached
    for a, b in zip(plain.rows, other.rows, strict=True):
        assert a.bce == pytest.approx(b.bce, rel=1e-3)


def test_cli_infer_precision(tmp_path, checkpoint, images, run_cli):
    code, out, err = run_cli(
        "infer", checkpoint, images[0], "--out", tmp_path / "o", "--resolution", "64",
        "--precision", "fp32",
    )  # fmt: skip
    assert code == 0, err
    assert "precision: fp32 (as asked)" in out
    assert (tmp_path / "o" / "predict_m0.png").is_file()
    code, out, err = run_cli(
        "infer", checkpoint, images[0], "--out", tmp_path / "o2", "--precision", "fp16"
    )
    assert code == 2 and "fp16" in err
    assert not (tmp_path / "o2").exists()


def test_training_forward_passes_take_the_form(tmp_path, monkeypatch):
    from datatool.torch.train import TrainConfig, train_unet

    _fast_but_wrong(monkeypatch, {}, {"fp32": 1.0, "fp32-cl": 0.5, "bf16-cl": 0.25})
    used: list[str] = []
    real_forward = inference.forward

    def spy(model, batch, form):
        used.append(form.name)
        return real_forward(model, batch, form)

    monkeypatch.setattr("datatool.torch.train.forward", spy)
    rng = np.random.default_rng(4)
    config = TrainConfig(
        base_width=4, epochs=1, resolution=32, batch_size=2, precision="auto", seed=0
    )
    images = rng.random((2, 32, 32), dtype=np.float32)
    written = train_unet(images, images > 0.9, tmp_path / "run", config)
    assert used and set(used) == {"bf16-cl"}
    state = torch.load(written[-1], weights_only=True)
    assert all(t.dtype == torch.float32 for t in state.values() if t.is_floating_point())
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp16")
