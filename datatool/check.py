"""The check engine: scan the layout, run every registered check, build one report.

Structure checks run first on names alone. Then each sample (or, for a flat
set, a chunk of pairs) is a unit of work: its files are decoded once in a
worker process and every pair and sample check runs on them. Dataset checks
(duplicates, leakage) run last on what the workers handed back. All findings
are collected; the verdict is decided once, in :meth:`Report.build`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from datatool import io
from datatool.checks import (
    CheckOptions,
    DatasetData,
    PairData,
    PairRecords,
    SampleData,
    checks_for,
    decode_file,
    once_per_run,
    share_label_measures,
)
from datatool.findings import Finding, PairStats, Report, share_fields_set
from datatool.layout import DatasetLayout, PairEntry, SampleEntry, scan
from datatool.schedule import Scheduler

_FLAT_CHUNK = 32

UnitResult = tuple[
    list[Finding], list[tuple[PairStats, dict[str, Any]]], tuple[str, dict[str, Any]] | None
]


def _decode(
    root: Path, rel: str | None, findings: list[Finding], role: io.Role, max_pixels: int
) -> io.DecodedImage | None:
    return decode_file(root, rel, findings, role=role, max_pixels=max_pixels)


def _pair_data(root: Path, entry: PairEntry, findings: list[Finding], max_pixels: int) -> PairData:
    image = _decode(root, entry.image, findings, "image", max_pixels)
    label = _decode(root, entry.label, findings, "label", max_pixels)
    stats = PairStats(
        image=entry.image,
        label=entry.label,
        split=entry.split,
        sample=entry.sample_id,
        fov=entry.fov,
        crop=entry.crop,
    )
    if image is not None:
        stats.height, stats.width = (int(v) for v in image.pixels.shape)
    return PairData(entry=entry, image=image, label=label, stats=stats)


def check_unit(
    root: str, sample: SampleEntry | None, pairs: list[PairEntry], options: CheckOptions
) -> UnitResult:
    """Decode one sample (or a chunk of flat pairs) and run the pair and sample checks.

    Runs in a worker process; returns plain data: findings, per-pair stats and
    extras, and ``(sample folder, sample extras)`` for a sample unit.
    """
    root_path = Path(root)
    findings: list[Finding] = []
    datas = [_pair_data(root_path, entry, findings, options.max_pixels) for entry in pairs]
    share_label_measures(datas)
    for data in datas:
        for check in checks_for("pair", options):
            findings.extend(check.func(data, options))
    sample_extras = None
    if sample is not None:
        sample_data = SampleData(
            entry=sample, root=root_path, pairs=datas, max_pixels=options.max_pixels
        )
        # Originals and the tracing must decode, whatever the other checks need.
        for fov in sorted(sample.originals):
            sample_data.original(fov)
        sample_data.tracing()
        for check in checks_for("sample", options):
            findings.extend(check.func(sample_data, options))
        findings.extend(sample_data.findings)
        sample_extras = (sample.folder, sample_data.extras)
    return findings, [(d.stats, d.extras) for d in datas], sample_extras


def _units(layout: DatasetLayout) -> list[tuple[SampleEntry | None, list[PairEntry]]]:
    units: list[tuple[SampleEntry | None, list[PairEntry]]] = [(s, s.pairs) for s in layout.samples]
    flat = layout.flat_pairs
    units += [(None, flat[i : i + _FLAT_CHUNK]) for i in range(0, len(flat), _FLAT_CHUNK)]
    return units


def _check_unit_item(item: tuple[str, SampleEntry | None, list[PairEntry], CheckOptions]):
    """:func:`check_unit` on one ``(root, sample, pairs, options)`` tuple (a picklable unit)."""
    return check_unit(*item)


def _preload_for_workers() -> None:
    """Import, before the local worker processes fork, what every unit imports on first use.

    skimage's morphology package (thinning) costs about 0.2 s to import, and
    PIL's first ``open`` about 25 ms (its common format plugins); done once
    here, the forked workers share them instead of each importing them again.
    """
    from PIL import Image
    from skimage.filters import threshold_otsu  # noqa: F401
    from skimage.morphology import skeletonize  # noqa: F401

    Image.preinit()


def _run_units(
    layout: DatasetLayout,
    options: CheckOptions,
    progress: Callable[[int, int], None] | None,
    scheduler: str | Scheduler,
) -> Iterator[tuple[list[PairEntry], UnitResult]]:
    """Each unit's pairs and result, in unit order, streamed from wherever the units run."""
    units = _units(layout)
    total = len(units)
    items = ((layout.root, sample, pairs, options) for sample, pairs in units)
    if scheduler == "local" and min(options.workers, total) > 1:
        _preload_for_workers()
    if isinstance(scheduler, str):
        context: Any = Scheduler(scheduler, max(1, min(options.workers, total)))
    else:
        context = nullcontext(scheduler)
    with context as running:
        results = running.map(_check_unit_item, items)
        for done, ((_, pairs), result) in enumerate(zip(units, results, strict=True), start=1):
            yield pairs, _compact(pairs, result)
            if progress:
                progress(done, total)


def _compact(pairs: list[PairEntry], result: UnitResult) -> UnitResult:
    """``result`` as the client keeps it for the rest of the run: fewer bytes per pair.

    Each unpickled finding and pair's stats shares its set of explicitly set
    fields (:func:`~datatool.findings.share_fields_set`); the stats and the
    findings take the entry's own path, split and sample strings instead of
    equal copies, and the findings one copy of each code and family name.
    """
    unit_findings, unit_pairs, _ = result
    paths = {path: path for entry in pairs for path in (entry.image, entry.label) if path}
    for found in unit_findings:
        share_fields_set(found)
        values = found.__dict__
        values["path"] = paths.get(found.path, found.path)
        values["code"] = sys.intern(found.code)
        values["check"] = sys.intern(found.check)
    for entry, (stats, _) in zip(pairs, unit_pairs, strict=True):
        share_fields_set(stats)
        values = stats.__dict__
        for field, same in (
            ("image", entry.image),
            ("label", entry.label),
            ("split", entry.split),
            ("sample", entry.sample_id),
        ):
            if values[field] == same:
                values[field] = same
    return result


def run_check(
    root: str | Path,
    options: CheckOptions | None = None,
    *,
    layout: DatasetLayout | None = None,
    progress: Callable[[int, int], None] | None = None,
    scheduler: str | Scheduler = "local",
) -> Report:
    """Check a dataset folder and return the full report (never stops at the first problem).

    Parameters
    ----------
    root : path
        A tree or a flat set (see :mod:`datatool.layout`).
    options : CheckOptions, optional
    layout : DatasetLayout, optional
        An already scanned layout of ``root``.
    progress : callable, optional
        Called as ``progress(done, total)`` after each unit of work.
    scheduler : str or Scheduler
        Where the units (one per sample, or per chunk of flat pairs) run:
        ``local`` (``options.workers`` processes), ``dask`` (a LocalCluster of
        ``options.workers`` processes) or a Dask scheduler address, or an open
        :class:`~datatool.schedule.Scheduler`. The findings and their order do
        not depend on it.

    Raises
    ------
    UsageError
        ``root`` is missing or not a folder.
    """
    options = options or CheckOptions()
    started = time.perf_counter()
    layout = layout or scan(root, follow_links=options.follow_links)
    findings: list[Finding] = []
    for check in checks_for("structure", options):
        findings.extend(check.func(layout, options))
    collected = PairRecords()
    samples: dict[str, dict[str, Any]] = {}
    units = _run_units(layout, options, progress, scheduler)
    for _, (unit_findings, unit_pairs, sample_extras) in units:
        findings.extend(unit_findings)
        collected.extend(unit_pairs)
        if sample_extras is not None:
            samples[sample_extras[0]] = sample_extras[1]
    dataset = DatasetData(layout=layout, pairs=collected, samples=samples)
    for check in checks_for("dataset", options):
        findings.extend(check.func(dataset, options))
    findings = once_per_run(findings)
    files = sum(bool(p.image) + bool(p.label) for p in layout.pairs) + sum(
        len(s.originals) + (s.tracing is not None) for s in layout.samples
    )
    return Report.build(
        str(root),
        findings,
        strict=options.strict,
        pairs=collected.stats,
        files=files,
        ignored=len(layout.ignored),
        options=options.model_dump(),
        seconds=time.perf_counter() - started,
    )
