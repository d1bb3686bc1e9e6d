"""Strict checkpoint loading: the lab's layout loads, anything else fails naming the keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from datatool.errors import DatatoolError
from datatool.torch.checkpoints import (
    epoch_from_name,
    find_checkpoints,
    load_unet,
    read_state_dict,
)
from datatool.torch.unet import UNet

KEYS_FILE = Path(__file__).parent / "data" / "unet_checkpoint_keys.json"


def small_state(width: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return UNet(base_width=width).state_dict()


def test_checkpoint_with_exactly_the_lab_key_list_loads_and_runs(tmp_path):
    # Written from the key list alone, not from our module, so a renamed layer fails here.
    keys = json.loads(KEYS_FILE.read_text())["keys"]
    generator = torch.Generator().manual_seed(0)
    state = {name: torch.randn(shape, generator=generator) * 0.01 for name, shape in keys}
    path = tmp_path / "lab_300.pth"
    torch.save(state, path)
    model = load_unet(path)
    assert model.base_width == 64
    assert not model.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    with torch.inference_mode():
        out = model(torch.rand(1, 1, 16, 16))
    assert out.shape == (1, 1, 16, 16)


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda s: s, id="plain"),
        pytest.param(lambda s: {"state_dict": s, "epoch": 3}, id="state_dict"),
        pytest.param(lambda s: {"model_state_dict": s, "optimizer": {}}, id="model_state_dict"),
        pytest.param(lambda s: {f"module.{k}": v for k, v in s.items()}, id="dataparallel"),
        pytest.param(
            lambda s: {"model_state_dict": {f"module.{k}": v for k, v in s.items()}},
            id="wrapped-dataparallel",
        ),
    ],
)
def test_accepted_checkpoint_layouts_load_the_same_weights(tmp_path, wrap):
    state = small_state(width=2)
    path = tmp_path / "run_5.pth"
    torch.save(wrap(state), path)
    model = load_unet(path)
    assert model.base_width == 2
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[name])


def test_missing_key_fails_naming_the_key_and_the_file(tmp_path):
    state = small_state()
    del state["up_conv.2.second.bias"]
    path = tmp_path / "broken_1.pth"
    torch.save(state, path)
    with pytest.raises(DatatoolError, match=r"missing keys: up_conv\.2\.second\.bias") as info:
        load_unet(path)
    assert "broken_1.pth" in str(info.value)


def test_unexpected_key_fails_naming_it(tmp_path):
    state = small_state()
    state["extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "extra_1.pth"
    torch.save(state, path)
    with pytest.raises(DatatoolError, match=r"unexpected keys: extra_head\.weight"):
        load_unet(path)


def test_wrong_shape_fails_naming_key_and_both_shapes(tmp_path):
    state = small_state()
    state["final_conv.weight"] = torch.zeros(2, 2, 1, 1)
    path = tmp_path / "shape_1.pth"
    torch.save(state, path)
    with pytest.raises(
        DatatoolError, match=r"final_conv\.weight \(2, 2, 1, 1\) \(expected \(1, 2, 1, 1\)\)"
    ):
        load_unet(path)


def test_missing_width_key_is_named(tmp_path):
    state = small_state()
    del state["down_conv.0.first.weight"]
    path = tmp_path / "nowidth_1.pth"
    torch.save(state, path)
    with pytest.raises(DatatoolError, match=r"missing key down_conv\.0\.first\.weight"):
        load_unet(path)


def test_missing_file_is_an_error_never_random_weights(tmp_path):
    with pytest.raises(DatatoolError, match="checkpoint not found"):
        load_unet(tmp_path / "nope_10.pth")


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"", "not a readable torch checkpoint"),
        (b"this is not a checkpoint", "not a readable torch checkpoint"),
    ],
)
def test_garbage_file_is_an_error(tmp_path, payload, fragment):
    path = tmp_path / "bad_1.pth"
    path.write_bytes(payload)
    with pytest.raises(DatatoolError, match=fragment):
        read_state_dict(path)


def test_pickled_code_is_refused_by_weights_only(tmp_path):
    path = tmp_path / "evil_1.pth"
    torch.save({"state_dict": small_state(), "net": UNet(base_width=1)}, path)
    with pytest.raises(DatatoolError, match="not a readable torch checkpoint"):
        read_state_dict(path)


def test_non_dict_payload_is_an_error(tmp_path):
    path = tmp_path / "list_1.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(DatatoolError, match="expected a state_dict"):
        read_state_dict(path)


@pytest.mark.parametrize(
    ("name", "epoch"),
    [("grains_120.pth", 120), ("gg_sum_v2_300.pt", 300), ("0.pth", 0), ("e7.pth", 7)],
)
def test_epoch_is_the_last_integer_of_the_name(name, epoch):
    assert epoch_from_name(name) == epoch


def test_name_without_integer_is_an_error():
    with pytest.raises(DatatoolError, match="cannot read the epoch"):
        epoch_from_name("final.pth")


def test_find_checkpoints_orders_by_epoch_not_by_name(tmp_path):
    for epoch in (100, 5, 20, 0):
        (tmp_path / f"run_{epoch}.pth").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("ignored")
    found = find_checkpoints([tmp_path])
    assert [c.epoch for c in found] == [0, 5, 20, 100]
    assert all(c.path.parent == tmp_path for c in found)


def test_find_checkpoints_errors(tmp_path):
    with pytest.raises(DatatoolError, match="no \\*.pth or \\*.pt"):
        find_checkpoints([tmp_path])
    with pytest.raises(DatatoolError, match="checkpoint not found"):
        find_checkpoints([tmp_path / "missing_3.pth"])
    (tmp_path / "a_3.pth").write_bytes(b"x")
    (tmp_path / "b_3.pth").write_bytes(b"x")
    with pytest.raises(DatatoolError, match="epoch 3 is also claimed"):
        find_checkpoints([tmp_path])
