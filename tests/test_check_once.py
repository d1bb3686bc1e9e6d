"""The check decodes each file once and thins each distinct label once per run."""

from __future__ import annotations

import collections

import numpy as np

from datatool import io, labels
from datatool.check import run_check
from datatool.checks import CheckOptions
from datatool.layout import scan


def _count_calls(monkeypatch, module, name):
    calls = collections.Counter()
    real = getattr(module, name)

    def counting(arg, *args, **kwargs):
        calls[str(arg) if not hasattr(arg, "shape") else arg.shape] += 1
        return real(arg, *args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def test_every_file_is_decoded_once(sample_tree, monkeypatch):
    decodes = _count_calls(monkeypatch, io, "read_image")
    report = run_check(sample_tree, CheckOptions(workers=1))
    layout = scan(sample_tree)
    files = {p for pair in layout.pairs for p in (pair.image, pair.label) if p}
    files |= {r for s in layout.samples for r in [*s.originals.values(), s.tracing] if r}
    assert report.ok
    assert sum(decodes.values()) == len(files)
    assert max(decodes.values()) == 1


def _distinct_labels(root) -> int:
    """Labels with different pixels (one box of a tracing, cut for 2 fields of view, is one)."""
    layout = scan(root)
    return len({io.read_image(root / p.label).pixels.tobytes() for p in layout.pairs})


def test_each_distinct_label_is_thinned_once(sample_tree, monkeypatch):
    distinct = _distinct_labels(sample_tree)
    assert distinct < len(scan(sample_tree).pairs)  # the fixture cuts each box per field of view
    thinned = _count_calls(monkeypatch, labels, "skeleton")
    monkeypatch.setattr(labels, "_thin", labels.skeleton)  # the alias grain_map calls
    report = run_check(sample_tree, CheckOptions(workers=1, alignment=False))
    assert report.ok
    assert sum(thinned.values()) == distinct


def test_labels_with_the_same_pixels_each_get_their_findings(sample_tree):
    """Measured once, reported per file; a label edited in one field of view is its own."""
    twins = [p.label for p in scan(sample_tree).pairs if p.sample_id == "0101" and p.crop == 1]
    pixels = [io.read_image(sample_tree / rel).pixels for rel in twins]
    assert len(twins) == 2 and (pixels[0] == pixels[1]).all()
    for rel in twins:
        io.write_png(sample_tree / rel, 255 - pixels[0])  # both inverted
    third = next(p.label for p in scan(sample_tree).pairs if p.sample_id == "0101" and p.crop == 2)
    edited = io.read_image(sample_tree / third).pixels.copy()
    edited[:, :40] = 0  # a third of the lines erased in one field of view only
    io.write_png(sample_tree / third, edited)
    report = run_check(sample_tree, CheckOptions(workers=1, alignment=False))
    inverted = sorted(f.path for f in report.findings if f.code == "inverted")
    assert inverted == sorted(twins)
    grains = {s.label: s.grains for s in report.pairs if s.sample == "0101" and s.crop == 2}
    assert len(set(grains.values())) == 2, grains  # the edited label was measured on its own


def test_each_tracing_is_thinned_once_in_the_full_check(sample_tree, monkeypatch):
    """Alignment and registration (once per field of view) share one thinned tracing."""
    thinned = _count_calls(monkeypatch, labels, "skeleton")
    monkeypatch.setattr(labels, "_thin", labels.skeleton)
    centre_lines = _count_calls(monkeypatch, labels, "centre_lines")
    report = run_check(sample_tree, CheckOptions(workers=1))
    layout = scan(sample_tree)
    assert report.ok
    assert any(len(s.originals) > 1 for s in layout.samples)  # several fields of view per tracing
    # Each distinct label's grain skeleton K once, each tracing's centre lines once.
    assert sum(thinned.values()) == _distinct_labels(sample_tree)
    assert sum(centre_lines.values()) == sum(s.tracing is not None for s in layout.samples)


def test_each_distinct_label_is_located_once_per_box(sample_tree, monkeypatch):
    """Twin labels (one box of the tracing, cut for each field of view) are located once.

    A twin edited in one field of view is located on its own and keeps its own finding.
    """
    from datatool.checks import alignment

    located = collections.Counter()
    real = alignment._match_label

    def counting(ctx, tracing, lines, image, width):
        located[(ctx.sample.entry.id, image.match.box if image else None)] += 1
        return real(ctx, tracing, lines, image, width)

    monkeypatch.setattr(alignment, "_match_label", counting)
    pairs = [p for p in scan(sample_tree).pairs if p.sample_id == "0101"]
    shifted = next(p.label for p in pairs if p.crop == 2 and p.fov == 2)
    pixels = io.read_image(sample_tree / shifted).pixels
    io.write_png(sample_tree / shifted, np.roll(pixels, 6, axis=1))  # cut 6 px off in one view
    report = run_check(sample_tree, CheckOptions(workers=1))
    misaligned = [f.path for f in report.findings if f.code == "misaligned"]
    assert misaligned == [shifted]
    twins = {(p.sample_id, p.crop) for p in scan(sample_tree).pairs}
    # One search per box; two at the shifted label's box (it and its twin differ now).
    assert sorted(located.values()) == [1] * (len(twins) - 1) + [2]
