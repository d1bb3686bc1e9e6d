"""``infer_files``' pipeline: decode and PNG writing off the forward pass's thread, in order."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from datatool.torch import inference
from datatool.torch.inference import _pipeline, infer_files
from datatool.torch.unet import UNet


def _recorder(fail: str | None = None):
    """load / run / write that log (step, batch, thread name) and fail at step ``fail``."""
    log: list[tuple[str, int, str]] = []

    def step(name: str, batch: int) -> None:
        log.append((name, batch, threading.current_thread().name))
        if fail == f"{name}{batch}":
            raise ValueError(f"{name} of batch {batch} failed")

    def load(batch):
        step("load", batch)
        return 10 * batch

    def run(batch, loaded):
        step("run", batch)
        assert loaded == 10 * batch
        return loaded + 1

    def write(batch, loaded, result):
        assert (loaded, result) == (10 * batch, 10 * batch + 1)
        step("write", batch)

    return log, load, run, write


def test_load_and_write_run_in_one_helper_thread_around_the_forward_pass():
    log, load, run, write = _recorder()
    _pipeline([0, 1, 2], load, run, write)
    main = threading.current_thread().name
    assert [(s, b) for s, b, t in log if t == main] == [("run", 0), ("run", 1), ("run", 2)]
    helper = [(s, b) for s, b, t in log if t != main]
    # The next batch loads while this one runs; this one is written while the next runs.
    assert helper == [
        ("load", 0), ("load", 1), ("write", 0), ("load", 2), ("write", 1), ("write", 2),
    ]  # fmt: skip
    assert {t for _, _, t in log if t != main} == {"infer-io_0"}  # one helper thread, not two


def test_a_failed_load_is_raised_after_the_batches_before_it_are_written():
    log, load, run, write = _recorder(fail="load2")
    with pytest.raises(ValueError, match="load of batch 2"):
        _pipeline([0, 1, 2, 3], load, run, write)
    steps = [(s, b) for s, b, _ in log]
    assert ("write", 0) in steps and ("write", 1) in steps
    assert ("run", 2) not in steps and ("load", 3) not in steps


@pytest.mark.parametrize("fail", ["write0", "run1"])
def test_a_failed_write_or_forward_is_raised(fail):
    log, load, run, write = _recorder(fail=fail)
    with pytest.raises(ValueError, match="failed"):
        _pipeline([0, 1, 2, 3, 4], load, run, write)
    assert ("run", 4) not in [(s, b) for s, b, _ in log]


def test_infer_files_writes_in_the_helper_thread_and_matches_batch_of_one(tmp_path, monkeypatch):
    torch.manual_seed(4)
    checkpoint = tmp_path / "tiny_3.pth"
    torch.save(UNet(base_width=4).state_dict(), checkpoint)
    rng = np.random.default_rng(5)
    images = []
    for i, shape in enumerate([(48, 64), (64, 64), (30, 70)]):
        images.append(tmp_path / f"m{i}.png")
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(images[-1])
    threads: list[str] = []
    real_write = inference.write_png

    def write_png(path, pixels):
        threads.append(threading.current_thread().name)
        return real_write(path, pixels)

    monkeypatch.setattr(inference, "write_png", write_png)
    batched = infer_files(checkpoint, images, tmp_path / "a", resolution=32, batch_size=2)
    single = infer_files(checkpoint, images, tmp_path / "b", resolution=32, batch_size=1)
    assert threads and all(name.startswith("infer-io") for name in threads)
    assert [w.path.name for w in batched] == ["predict_m0.png", "predict_m1.png", "predict_m2.png"]
    assert [w.fit for w in batched] == [w.fit for w in single]
    for a, b in zip(batched, single, strict=True):
        assert np.array_equal(np.asarray(Image.open(a.path)), np.asarray(Image.open(b.path)))
        assert Image.open(a.path).size == Image.open(images[batched.index(a)]).size


def test_the_precision_probe_interleaves_the_forms(monkeypatch):
    """A burst of load on a shared machine must not fall on one form's runs only."""
    torch.manual_seed(0)
    model = UNet(base_width=4).eval()
    probe = np.random.default_rng(0).random((1, 32, 32), dtype=np.float32)
    real = inference._time_form
    order: list[str] = []
    clock = iter([5.0, 4.0, 1.0, 3.0])  # fp32, fp32-cl, fp32, fp32-cl: each form's best counts

    def timed(model, batch, form, runs=2):
        order.append(form.name)
        return next(clock), real(model, batch, form, runs=1)[1]

    monkeypatch.setattr(inference, "_SPEED_MEMO", {})
    monkeypatch.setattr(inference, "bf16_native", lambda device: (False, "not native (test)"))
    monkeypatch.setattr(inference, "_time_form", timed)
    choice = inference.choose_precision(model, probe, "auto")
    assert order == ["fp32", "fp32-cl", "fp32", "fp32-cl"]
    assert choice.seconds == {"fp32": 1.0, "fp32-cl": 3.0}
    assert choice.form is inference.FP32
