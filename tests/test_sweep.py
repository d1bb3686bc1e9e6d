"""The sweep: epochs in order, scores equal the losses' own, cache reuse, outputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from datatool.errors import DatatoolError, UsageError
from datatool.evaluate import sweep
from datatool.metrics.losses import gaussian_loss
from datatool.metrics.results import score
from datatool.synth import write_tree
from datatool.torch.checkpoints import find_checkpoints, load_unet
from datatool.torch.inference import predict
from datatool.torch.train import TrainConfig, train_unet

RES = 32


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny dataset (two images) and a tiny training run with epochs 0, 1, 2."""
    root = tmp_path_factory.mktemp("sweep")
    data = write_tree(
        root / "data", {"0101": "validation"}, size=(80, 80), crop=64, crops_per_fov=1,
        fields_of_view=2, grain_px=16.0,
    )  # fmt: skip
    pairs = sweep.pairs_from_dataset(data)
    options = sweep.SweepOptions(resolution=RES, device="cpu", sigmas=[3.0, 1.0])
    prepared = [sweep.prepare_pair(p, options) for p in pairs]
    images = np.stack([p.pixels for p in prepared])
    truths = np.stack([p.truth for p in prepared])
    config = TrainConfig(name="run", base_width=2, epochs=2, resolution=RES, save_every=1)
    written = train_unet(images, truths, root / "ckpt", config)
    return root, pairs, find_checkpoints(written), options, prepared


def test_rows_follow_epochs_and_match_the_losses_functions(run):
    _, pairs, checkpoints, options, prepared = run
    result = sweep.run_sweep(checkpoints, pairs, options)
    assert [m.epoch for m in result.means] == [0, 1, 2]
    assert len(result.rows) == 3 * len(pairs) == 6
    row = result.rows[-1]
    model = load_unet(checkpoints[-1].path)
    pred = predict(model, [prepared[-1].pixels])[0].astype(np.float16).astype(np.float32)
    expected = score(pred, prepared[-1].truth, options.score_params())
    assert row.bce == pytest.approx(expected.bce)
    assert row.tophat == pytest.approx(expected.tophat)
    assert row.gaussian_sigmas["3"] == pytest.approx(expected.gaussian)
    assert row.gaussian_sigmas["1"] == pytest.approx(gaussian_loss(pred, prepared[-1].truth, 1.0))
    assert row.f1 == pytest.approx(expected.f1)
    mean = result.means[-1]
    assert mean.kind == "mean" and mean.images == 2
    assert mean.bce == pytest.approx(np.mean([r.bce for r in result.rows[-2:]]))


def test_grains_measure_each_truth_once_and_match_the_agreement(run, monkeypatch):
    """With --grains each truth's grain map is made once per image, not once per checkpoint."""
    from datatool import grains
    from datatool.metrics.grains import grain_agreement

    _, pairs, checkpoints, options, _ = run
    options = options.model_copy(update={"grains": True})
    calls = []
    real = grains.grain_map

    def counting(boundary, *args, **kwargs):
        calls.append(boundary.shape)
        return real(boundary, *args, **kwargs)

    monkeypatch.setattr(grains, "grain_map", counting)
    result = sweep.run_sweep(checkpoints, pairs, options)
    # One map per truth (2 images), one per prediction (3 checkpoints x 2 images).
    assert len(calls) == len(pairs) + len(checkpoints) * len(pairs) == 8
    monkeypatch.setattr(grains, "grain_map", real)
    row = result.rows[-1]
    prepared = sweep.prepare_pair(pairs[-1], options)
    model = load_unet(checkpoints[-1].path)
    pred = predict(model, [prepared.pixels])[0].astype(np.float16).astype(np.float32)
    assert row.grains == grain_agreement(pred, prepared.truth)


def test_cache_avoids_running_the_network_and_gives_identical_scores(run, tmp_path, monkeypatch):
    _, pairs, checkpoints, options, _ = run
    first = sweep.run_sweep(checkpoints, pairs, options, cache_dir=tmp_path)
    assert (first.cache_hits, first.cache_misses) == (0, 6)

    def no_network(*args, **kwargs):
        raise AssertionError("the network ran although every prediction was cached")

    monkeypatch.setattr(sweep, "load_unet", no_network)
    rescored = options.model_copy(update={"sigmas": [5.0], "tophat_kernel_size": 5})
    second = sweep.run_sweep(checkpoints, pairs, rescored, cache_dir=tmp_path)
    assert (second.cache_hits, second.cache_misses) == (6, 0)
    monkeypatch.undo()
    uncached = sweep.run_sweep(checkpoints, pairs, rescored, cache_dir=None)
    assert [r.model_dump() for r in second.rows] == [r.model_dump() for r in uncached.rows]


def test_cache_misses_when_the_checkpoint_or_resolution_changes(run, tmp_path):
    root, pairs, checkpoints, options, _ = run
    sweep.run_sweep(checkpoints[:1], pairs, options, cache_dir=tmp_path)
    other = sweep.run_sweep(
        checkpoints[:1], pairs, options.model_copy(update={"resolution": 16}), cache_dir=tmp_path
    )
    assert other.cache_misses == 2
    changed = root / "changed_0.pth"
    state = torch.load(checkpoints[0].path, weights_only=True)
    state["final_conv.bias"] += 1.0
    torch.save(state, changed)
    again = sweep.run_sweep(find_checkpoints([changed]), pairs, options, cache_dir=tmp_path)
    assert again.cache_misses == 2


def test_evaluate_writes_csv_json_plot_and_overlays(run, tmp_path):
    root, pairs, checkpoints, options, _ = run
    ticks = []
    result, paths = sweep.evaluate(
        [root / "ckpt"], pairs, tmp_path, options, overlay_epochs=[0, 2],
        on_start=ticks.append, on_progress=ticks.append,
    )  # fmt: skip
    assert ticks == [6] + [1] * 6
    with open(paths["csv"], newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["kind"] for r in table] == ["image"] * 6 + ["mean"] * 3
    assert "gaussian_sigma3" in table[0] and "gaussian_sigma1" in table[0]
    assert float(table[-1]["bce"]) == pytest.approx(result.means[-1].bce)
    loaded = sweep.SweepResult.model_validate(json.loads(paths["json"].read_text()))
    assert loaded == result
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for epoch in (0, 2):
        assert sorted(p.name for p in (tmp_path / "overlays" / f"epoch_{epoch}").iterdir())
    assert not (tmp_path / "overlays" / "epoch_1").exists()


def test_unknown_overlay_epoch_lists_the_available_ones(run):
    _, pairs, checkpoints, options, _ = run
    with pytest.raises(UsageError, match="epochs available: 0, 1, 2"):
        sweep.run_sweep(checkpoints, pairs, options, overlay_epochs=[50])


def test_label_of_another_size_is_an_error(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "i.png")
    Image.fromarray(np.zeros((40, 32), np.uint8)).save(tmp_path / "l.png")
    pair = sweep.single_pair(tmp_path / "i.png", tmp_path / "l.png")[0]
    with pytest.raises(DatatoolError, match="label is 32x40 px but its image"):
        sweep.prepare_pair(pair, sweep.SweepOptions(resolution=32))


def test_dataset_without_pairs_is_an_error(tmp_path):
    (tmp_path / "image").mkdir()
    (tmp_path / "label").mkdir()
    with pytest.raises(DatatoolError, match="no image/label pairs.*image/ holds no image file"):
        sweep.pairs_from_dataset(tmp_path)


@pytest.mark.slow
def test_demo_gaussian_loss_falls_from_first_to_last_epoch(tmp_path):
    config = TrainConfig(epochs=40, save_every=20, resolution=sweep.DEMO_TRAIN_RESOLUTION)
    result, paths = sweep.run_demo(tmp_path, config)
    first, last = result.means[0], result.means[-1]
    assert (first.epoch, last.epoch) == (0, 40)
    assert last.gaussian_sigmas["3"] < first.gaussian_sigmas["3"]
    assert all(p.exists() for p in paths.values())
