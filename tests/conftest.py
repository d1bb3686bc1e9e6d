"""Shared seeded factories: copies of the bundled sample tree and small synthetic trees."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE_TREE = REPO / "fixtures" / "training_validation_data"


@pytest.fixture
def sample_tree(tmp_path: Path) -> Path:
    """A fresh, writable copy of ``fixtures/training_validation_data``."""
    dest = tmp_path / "training_validation_data"
    shutil.copytree(FIXTURE_TREE, dest)
    return dest


@pytest.fixture
def tree(sample_tree: Path) -> Path:
    """The sample tree, under the name the alignment and leakage tests use."""
    return sample_tree


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run ``datatool ARGS...`` in-process; return (exit code, stdout, stderr)."""
    from datatool.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        code = exit_info.value.code
        return (code if isinstance(code, int) else (0 if code is None else 1)), out, err

    return run


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    """A width-2 U-Net checkpoint of epoch 40 (random weights)."""
    import torch

    from datatool.torch.unet import UNet

    torch.manual_seed(0)
    path = tmp_path / "ckpt" / "unet_40.pth"
    path.parent.mkdir()
    torch.save(UNet(base_width=2).state_dict(), path)
    return path
