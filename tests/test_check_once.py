"""The check decodes each file once and thins each label once per run."""

from __future__ import annotations

import collections

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


def test_each_label_is_thinned_once(sample_tree, monkeypatch):
    thinned = _count_calls(monkeypatch, labels, "skeleton")
    monkeypatch.setattr(labels, "_thin", labels.skeleton)  # the alias grain_map calls
    report = run_check(sample_tree, CheckOptions(workers=1, alignment=False))
    assert report.ok
    assert sum(thinned.values()) == len(scan(sample_tree).pairs)


def test_each_tracing_is_thinned_once_in_the_full_check(sample_tree, monkeypatch):
    """Alignment and registration (once per field of view) share one thinned tracing."""
    thinned = _count_calls(monkeypatch, labels, "skeleton")
    monkeypatch.setattr(labels, "_thin", labels.skeleton)
    report = run_check(sample_tree, CheckOptions(workers=1))
    layout = scan(sample_tree)
    assert report.ok
    assert any(len(s.originals) > 1 for s in layout.samples)  # several fields of view per tracing
    assert sum(thinned.values()) == len(layout.pairs) + sum(
        s.tracing is not None for s in layout.samples
    )
