"""Everything that needs PyTorch, and the public API for people who train.

The U-Net with the lab's checkpoint layout, strict checkpoint loading,
inference, the differentiable losses, a checked dataset and the training loop.
This is the only package of datatool that imports torch. Training code imports
from here::

    from datatool.torch import TolerantBCELoss, CombinedLoss, TracingDataset, UNet, load_unet

The names are loaded on first use, so importing a submodule stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "UNet": "datatool.torch.unet",
    "load_unet": "datatool.torch.checkpoints",
    "TolerantBCELoss": "datatool.torch.losses",
    "CombinedLoss": "datatool.torch.losses",
    "GaussianLoss": "datatool.torch.losses",
    "TopHatLoss": "datatool.torch.losses",
    "TracingDataset": "datatool.torch.data",
    "TrainConfig": "datatool.torch.train",
    "run_training": "datatool.torch.train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
