"""The lab's grain U-Net, with module names that reproduce its checkpoint keys.

The lab saves ``torch.save(model.state_dict())`` of a 4-level U-Net: two 3x3
convolutions (padding 1, ReLU) per level with 64-128-256-512 channels, a
1024-channel bottleneck followed by dropout 0.5, 2x2 transposed-convolution
up-sampling, skip connections by concatenation and a final 1x1 convolution to
one channel of logits (the sigmoid is applied at inference). :class:`UNet`
reproduces that ``state_dict`` key for key and shape for shape; its base width
is a parameter so that tests and the demo can use tiny networks.
"""

from __future__ import annotations

import torch
from torch import nn

LEVELS = 4
#: Spatial sides must be divisible by this: four 2x2 max-poolings.
SIDE_MULTIPLE = 2**LEVELS
DEFAULT_BASE_WIDTH = 64


class DoubleConvolution(nn.Module):
    """Two 3x3 convolutions with padding 1, each followed by ReLU (keys ``first``, ``second``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.first = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.second = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = torch.relu(self.first(x))
        return torch.relu(self.second(x))


class UpSample(nn.Module):
    """2x2 transposed convolution with stride 2 (key ``up``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.up(x)


class UNet(nn.Module):
    """Grain-boundary U-Net with the lab's checkpoint layout.

    Parameters
    ----------
    base_width : int
        Channels of the first level (the lab's is 64); level ``i`` has
        ``base_width * 2**i`` channels and the bottleneck ``base_width * 16``.
    dropout : float
        Dropout probability after the bottleneck (the lab's is 0.5; inactive in ``eval()``).

    Notes
    -----
    Input is ``(B, 1, H, W)`` float in [0, 1] with ``H`` and ``W`` multiples of
    16; output is ``(B, 1, H, W)`` logits.

    Examples
    --------
    >>> net = UNet(base_width=2).eval()
    >>> net(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 1, 32, 32])
    """

    def __init__(self, base_width: int = DEFAULT_BASE_WIDTH, dropout: float = 0.5) -> None:
        super().__init__()
        if not isinstance(base_width, int) or base_width < 1:
            raise ValueError(f"base_width must be a positive int, got {base_width!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.base_width = base_width
        widths = [base_width * 2**level for level in range(LEVELS)]
        inputs = [1, *widths[:-1]]
        self.down_conv = nn.ModuleList(
            DoubleConvolution(c_in, c_out) for c_in, c_out in zip(inputs, widths, strict=True)
        )
        self.pool = nn.MaxPool2d(2)
        self.middle_conv = DoubleConvolution(widths[-1], widths[-1] * 2)
        self.dropout = nn.Dropout(dropout)
        # The expansive path walks the widths back up: 1024->512, ..., 128->64.
        reversed_widths = widths[::-1]
        self.up_sample = nn.ModuleList(UpSample(c * 2, c) for c in reversed_widths)
        self.up_conv = nn.ModuleList(DoubleConvolution(c * 2, c) for c in reversed_widths)
        self.final_conv = nn.Conv2d(base_width, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, 1, H, W)`` images in [0, 1] to ``(B, 1, H, W)`` logits."""
        check_input_shape(tuple(x.shape))
        skips = []
        for level in self.down_conv:
            x = level(x)
            skips.append(x)
            x = self.pool(x)
        x = self.dropout(self.middle_conv(x))
        for up, conv in zip(self.up_sample, self.up_conv, strict=True):
            x = up(x)
            x = conv(torch.cat([x, skips.pop()], dim=1))
        return self.final_conv(x)


def check_input_shape(shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless ``shape`` is ``(B, 1, H, W)`` with sides multiples of 16.

    Examples
    --------
    >>> check_input_shape((2, 1, 64, 32))
    >>> check_input_shape((1, 1, 100, 100))
    Traceback (most recent call last):
    ...
    ValueError: U-Net input sides must be multiples of 16 (four 2x2 poolings), got 100x100; \
use a --resolution such as 96 or 112
    """
    if len(shape) != 4 or shape[1] != 1:
        raise ValueError(f"U-Net input must be (B, 1, H, W) greyscale, got shape {shape}")
    height, width = shape[2], shape[3]
    if height % SIDE_MULTIPLE or width % SIDE_MULTIPLE or height == 0 or width == 0:
        side = max(height, width)
        lower = max(SIDE_MULTIPLE, side // SIDE_MULTIPLE * SIDE_MULTIPLE)
        raise ValueError(
            f"U-Net input sides must be multiples of {SIDE_MULTIPLE} (four 2x2 poolings), "
            f"got {height}x{width}; use a --resolution such as {lower} or {lower + SIDE_MULTIPLE}"
        )


def expected_shapes(base_width: int = DEFAULT_BASE_WIDTH) -> dict[str, tuple[int, ...]]:
    """The ``state_dict`` key -> tensor shape map of a :class:`UNet` of this base width.

    Computed without allocating the weights, so it is cheap even at width 64.
    """
    with torch.device("meta"):
        model = UNet(base_width)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
