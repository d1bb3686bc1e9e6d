"""Orchestration of model evaluation: the loss-versus-epoch sweep and its prediction cache.

The network, checkpoints and inference live in :mod:`datatool.torch`; the
scores in :mod:`datatool.metrics`. Importing this package does not load torch.
"""
