"""Evaluation: losses, overlays, the U-Net, checkpoints, inference and sweeps.

Submodules import torch lazily; importing this package stays light.
"""
