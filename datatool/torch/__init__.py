"""Everything that needs PyTorch, and the public API for people who train.

The U-Net with the lab's checkpoint layout, strict checkpoint loading,
inference, and the differentiable losses. This is the only package of datatool
that imports torch.
"""
