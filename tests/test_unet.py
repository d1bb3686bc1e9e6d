"""The U-Net reproduces the lab's checkpoint layout and checks its input size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from datatool.torch.unet import UNet, check_input_shape, expected_shapes

KEYS_FILE = Path(__file__).parent / "data" / "unet_checkpoint_keys.json"


def lab_keys() -> dict[str, tuple[int, ...]]:
    data = json.loads(KEYS_FILE.read_text())
    return {name: tuple(shape) for name, shape in data["keys"]}


def test_full_width_state_dict_matches_lab_keys_and_shapes_in_order():
    shapes = expected_shapes(64)
    assert list(shapes) == list(lab_keys())
    assert shapes == lab_keys()


def test_full_width_parameter_count_matches_the_lab_figure():
    assert sum(int(torch.Size(s).numel()) for s in expected_shapes(64).values()) == 31_030_593


@pytest.mark.parametrize("width", [1, 2, 4])
def test_small_widths_scale_every_shape(width):
    shapes = expected_shapes(width)
    assert list(shapes) == list(lab_keys())
    assert shapes["down_conv.0.first.weight"] == (width, 1, 3, 3)
    assert shapes["middle_conv.second.weight"] == (16 * width, 16 * width, 3, 3)
    assert shapes["final_conv.weight"] == (1, width, 1, 1)


@pytest.mark.parametrize("side", [16, 32, 48])
def test_forward_keeps_spatial_size_and_gives_one_logit_channel(side):
    torch.manual_seed(0)
    net = UNet(base_width=2).eval()
    out = net(torch.rand(2, 1, side, side))
    assert out.shape == (2, 1, side, side)


def test_eval_mode_is_deterministic_despite_dropout():
    torch.manual_seed(0)
    net = UNet(base_width=2).eval()
    x = torch.rand(1, 1, 32, 32)
    assert torch.equal(net(x), net(x))


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        ((1, 1, 100, 100), "multiples of 16"),
        ((1, 1, 32, 40), "32x40"),
        ((1, 3, 32, 32), "greyscale"),
        ((32, 32), "greyscale"),
    ],
)
def test_bad_input_shapes_are_refused_with_the_actual_shape(shape, fragment):
    with pytest.raises(ValueError, match=fragment):
        check_input_shape(shape)


def test_forward_refuses_a_side_not_divisible_by_16():
    with pytest.raises(ValueError, match="100x100"):
        UNet(base_width=1)(torch.zeros(1, 1, 100, 100))


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_bad_base_width_is_refused(bad):
    with pytest.raises(ValueError, match="base_width"):
        UNet(base_width=bad)
