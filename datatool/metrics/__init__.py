"""Scoring without torch: losses, tolerance precision/recall/F1, overlays and result rows."""
