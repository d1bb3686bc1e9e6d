"""The registry of checks, their options and the data they see.

A check is a small function that *yields* :class:`~datatool.findings.Finding`
objects; it never raises on bad data. Four levels exist, from cheap to costly:

``structure``  ``(layout, options)``: names and folders only, no pixels.
``pair``       ``(pair: PairData, options)``: one decoded image/label pair.
``sample``     ``(sample: SampleData, options)``: a sample with its originals.
``dataset``    ``(dataset: DatasetData, options)``: across samples and splits.

Pair and sample checks run in worker processes, one sample at a time, so each
original is decoded once. What a pair check wants to hand to a dataset check
(a perceptual hash, say) goes into ``pair.extras``, and a sample check into
``sample.extras``; the dataset check reads them back from ``dataset.pairs`` and
``dataset.samples``.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from datatool import grains, io, labels
from datatool.crop import Border, detect_border, strip_border
from datatool.errors import ImageReadError
from datatool.findings import Finding, PairStats, Severity
from datatool.layout import DatasetLayout, PairEntry, SampleEntry

Level = Literal["structure", "pair", "sample", "dataset"]


class CheckOptions(BaseModel):
    """Options of ``datatool check`` (and of the checks run by build and merge)."""

    model_config = ConfigDict(extra="forbid")

    line_width: int = Field(default=3, ge=1, le=64, description="Expected label line width, px.")
    line_width_tolerance: float = Field(
        default=1.0, ge=0, description="Allowed difference from the expected width, px."
    )
    grey_tolerance: float = Field(
        default=labels.NON_BINARY_LIMIT,
        ge=0,
        le=1,
        description="Share of grey label pixels tolerated.",
    )
    min_grains: int = Field(default=5, ge=0, description="Warn below this many complete grains.")
    max_offset: float = Field(
        default=1.0, ge=0, le=64, description="Largest image/label box offset accepted, px."
    )
    alignment: bool = Field(
        default=True, description="Run the costly pixel checks (alignment, pairing by content)."
    )
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, le=1024, description="Worker processes."
    )
    strict: bool = Field(default=False, description="Warnings fail the check too.")
    max_pixels: int = Field(
        default=io.DEFAULT_MAX_PIXELS,
        ge=1,
        description="Pixel budget per image; larger files are refused from their header.",
    )
    follow_links: bool = Field(
        default=False, description="Read through symbolic links that leave the root."
    )


@dataclass(frozen=True)
class Check:
    """A registered check."""

    name: str
    level: Level
    func: Callable[..., Iterator[Finding]]
    costly: bool = False


REGISTRY: list[Check] = []


def register(name: str, level: Level, *, costly: bool = False) -> Callable:
    """Decorator adding a check function to the registry under ``name``."""

    def wrap(func: Callable[..., Iterator[Finding]]) -> Callable[..., Iterator[Finding]]:
        REGISTRY.append(Check(name, level, func, costly))
        return func

    return wrap


def checks_for(level: Level, options: CheckOptions) -> list[Check]:
    """Registered checks of ``level`` that the options enable."""
    _load_modules()
    return [c for c in REGISTRY if c.level == level and (options.alignment or not c.costly)]


def finding(
    severity: Severity | str,
    code: str,
    check: str,
    path: str,
    message: str,
    measured: Any = None,
    expected: Any = None,
    related: list[str] | None = None,
) -> Finding:
    """Shorthand to build a :class:`Finding`."""
    return Finding(
        severity=Severity(severity),
        code=code,
        check=check,
        path=path,
        message=message,
        measured=measured,
        expected=expected,
        related=related or [],
    )


_UNMEASURED = object()


@dataclass
class LabelMeasures:
    """What the checks measure on a label's pixels, each measured once, on first use.

    Labels with identical pixels (the same box of one tracing cut for several
    fields of view) share one instance, so a run measures each distinct label
    once; the findings are still made, and reported, per file.
    """

    pixels: np.ndarray
    _mask: np.ndarray | None = field(default=None, repr=False)
    _skeleton: np.ndarray | None = field(default=None, repr=False)
    _line_width: float | None | object = field(default=_UNMEASURED, repr=False)
    _grains: grains.GrainMap | None = field(default=None, repr=False)
    _open_ends: np.ndarray | None = field(default=None, repr=False)
    _inverted: bool | None = field(default=None, repr=False)

    @property
    def inverted(self) -> bool:
        """Mostly white: black lines on white (:func:`~datatool.labels.is_inverted`)."""
        if self._inverted is None:
            self._inverted = labels.is_inverted(self.pixels)
        return self._inverted

    @property
    def mask(self) -> np.ndarray:
        """``(H, W)`` bool: the label's lines (:func:`~datatool.labels.label_lines`)."""
        if self._mask is None:
            self._mask = labels.label_lines(self.pixels)
        return self._mask

    @property
    def skeleton(self) -> np.ndarray:
        """``(H, W)`` bool: :func:`~datatool.labels.skeleton` of :attr:`mask`, thinned once."""
        if self._skeleton is None:
            self._skeleton = labels.skeleton(self.mask)
        return self._skeleton

    @property
    def line_width(self) -> float | None:
        """Stroke width of the lines in px; None when empty or mostly white (inverted)."""
        if self._line_width is _UNMEASURED:
            usable = self.mask.any() and not self.inverted
            self._line_width = (
                labels.estimate_line_width(self.mask, self.skeleton) if usable else None
            )
        return self._line_width  # type: ignore[return-value]

    @property
    def grains(self) -> grains.GrainMap:
        """:func:`~datatool.grains.grain_map` of the lines, on :attr:`skeleton`."""
        if self._grains is None:
            self._grains = grains.grain_map(self.mask, skeleton=self.skeleton)
        return self._grains

    @property
    def open_ends(self) -> np.ndarray:
        """``(n, 2)`` open line ends away from the edge (:func:`~datatool.grains.open_ends`)."""
        if self._open_ends is None:
            self._open_ends = grains.open_ends(self.skeleton)
        return self._open_ends


@dataclass
class PairData:
    """One pair as the pair and sample checks see it: decoded once, per worker.

    ``image`` / ``label`` are ``None`` when the file is missing or unreadable
    (the engine has already reported that). ``measures`` holds what is
    measured on the label, shared with other pairs whose labels have the same
    pixels (see :func:`share_label_measures`).
    """

    entry: PairEntry
    image: io.DecodedImage | None
    label: io.DecodedImage | None
    stats: PairStats
    extras: dict[str, Any] = field(default_factory=dict)
    measures: LabelMeasures | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.measures is None and self.label is not None:
            self.measures = LabelMeasures(self.label.pixels)

    @property
    def label_mask(self) -> np.ndarray | None:
        """``(H, W)`` bool: the label's lines (:func:`~datatool.labels.label_lines`), or None."""
        return None if self.measures is None else self.measures.mask

    @property
    def label_skeleton(self) -> np.ndarray | None:
        """``(H, W)`` bool: :func:`~datatool.labels.skeleton` of :attr:`label_mask`, thinned once.

        Every measure of a pair that needs the skeleton (line width, grains)
        takes this one; None without a label.
        """
        return None if self.measures is None else self.measures.skeleton

    @property
    def line_width(self) -> float | None:
        """Estimated stroke width of the label's lines in px, measured once; None if unknown.

        None without a label, for an empty label, or for one that is mostly
        white (an inverted label, whose "width" would be the background's).
        """
        return None if self.measures is None else self.measures.line_width


def share_label_measures(pairs: list[PairData]) -> None:
    """Give pairs whose labels have identical pixels one :class:`LabelMeasures`.

    The same box of one tracing, cut for each field of view, gives the same
    label; its skeleton, width and grains are then measured once.
    """
    seen: dict[tuple, LabelMeasures] = {}
    for pair in pairs:
        if pair.label is None or pair.measures is None:
            continue
        pixels = pair.label.pixels
        digest = hashlib.blake2b(np.ascontiguousarray(pixels).tobytes(), digest_size=16)
        key = (pixels.shape, pixels.dtype.str, digest.digest())
        pair.measures = seen.setdefault(key, pair.measures)


@dataclass
class SampleData:
    """A sample's decoded pairs plus lazy access to its originals and tracing."""

    entry: SampleEntry
    root: Path
    pairs: list[PairData]
    findings: list[Finding] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    max_pixels: int = io.DEFAULT_MAX_PIXELS
    _cache: dict[str, io.DecodedImage | None] = field(default_factory=dict)
    _border: Border | None = field(default=None, repr=False)
    _lines: tuple[Border, np.ndarray] | None | object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._lines = _UNMEASURED

    def _load(self, rel: str | None, role: io.Role) -> io.DecodedImage | None:
        if rel is None:
            return None
        if rel not in self._cache:
            self._cache[rel] = decode_file(
                self.root, rel, self.findings, role=role, max_pixels=self.max_pixels
            )
        return self._cache[rel]

    def original(self, fov: int) -> io.DecodedImage | None:
        """The decoded original of field of view ``fov`` (None if absent or unreadable)."""
        return self._load(self.entry.originals.get(fov), "image")

    def tracing(self) -> io.DecodedImage | None:
        """The decoded original tracing, alpha read as drawn (None if absent or unreadable)."""
        return self._load(self.entry.tracing, "tracing")

    def border(self) -> Border:
        """The scale-bar strip of the first readable original (fields of view in order).

        Detected once per sample; no border when no original can be read.
        """
        if self._border is None:
            self._border = Border()
            for fov in sorted(self.entry.originals):
                decoded = self.original(fov)
                if decoded is not None:
                    self._border = detect_border(decoded.pixels)
                    break
        return self._border

    def tracing_lines(self) -> tuple[Border, np.ndarray] | None:
        """The tracing's 1-px centre lines inside the originals' strip, thinned once per sample.

        The alignment check dilates them into the processed tracing and the
        registration check lays them on the micrographs, so the 1024 px tracing
        is binarized and thinned once, not once per check and field of view.

        Returns
        -------
        (Border, (h, w) bool) or None
            The border cut off and :func:`~datatool.labels.centre_lines` of
            :func:`~datatool.labels.line_mask` of the tracing without it;
            ``Border()`` (the whole tracing) when the originals' strip does not
            fit the tracing. None without a readable, non-empty tracing.
        """
        if self._lines is _UNMEASURED:
            decoded = self.tracing()
            self._lines = None
            if decoded is not None and decoded.pixels.size:
                border = self.border()
                try:
                    inner = strip_border(decoded.pixels, border)
                except ValueError:
                    border, inner = Border(), decoded.pixels
                self._lines = (border, labels.centre_lines(labels.line_mask(inner)))
        return self._lines  # type: ignore[return-value]


class _Column:
    """The values of one extras key: bytes of one length packed together, anything else listed."""

    def __init__(self) -> None:
        self.size: int | None = None
        self.count = 0
        self.packed = bytearray()
        self.items: list[Any] | None = None

    def append(self, value: Any) -> None:
        if self.items is None and isinstance(value, bytes) and self.size in (None, len(value)):
            self.size = len(value)
            self.packed += value
            self.count += 1
            return
        if self.items is None:  # a value that does not pack: list what was packed so far
            self.items = [self[k] for k in range(self.count)]
            self.packed = bytearray()
        self.items.append(value)

    def __getitem__(self, k: int) -> Any:
        if self.items is not None:
            return self.items[k]
        size = self.size or 0
        return bytes(self.packed[k * size : (k + 1) * size])


class PairRecords:
    """Every pair's ``(stats, extras)``, as the dataset checks read them, kept compact.

    Nearly every pair hands over the same extras (an image crop's fixed-size
    fingerprint record): a tuple and a dict per pair would cost more than the
    record itself. The stats are kept as they are (the report needs them); the
    extras by key set, one column per key, fixed-length bytes packed into one
    buffer. Iterating rebuilds each ``(stats, extras)`` pair, in order.

    >>> records = PairRecords()
    >>> records.extend([("a", {"leak": b"12"}), ("b", {}), ("c", {"leak": b"34", "n": 1})])
    >>> list(records)
    [('a', {'leak': b'12'}), ('b', {}), ('c', {'leak': b'34', 'n': 1})]
    """

    def __init__(self) -> None:
        self.stats: list[PairStats] = []
        self._group_of = array("I")
        self._groups: dict[tuple[str, ...], int] = {}
        self._columns: list[dict[str, _Column]] = []

    def extend(self, items: Iterable[tuple[PairStats, dict[str, Any]]]) -> None:
        """Append ``(stats, extras)`` pairs (as :func:`~datatool.check.check_unit` returns them)."""
        for stats, extras in items:
            keys = tuple(extras)
            group = self._groups.get(keys)
            if group is None:
                group = self._groups[keys] = len(self._columns)
                self._columns.append({key: _Column() for key in keys})
            self.stats.append(stats)
            self._group_of.append(group)
            columns = self._columns[group]
            for key, value in extras.items():
                columns[key].append(value)

    def __len__(self) -> int:
        return len(self.stats)

    def __iter__(self) -> Iterator[tuple[PairStats, dict[str, Any]]]:
        taken = [0] * len(self._columns)
        for stats, group in zip(self.stats, self._group_of, strict=True):
            k = taken[group]
            taken[group] += 1
            yield stats, {key: column[k] for key, column in self._columns[group].items()}


@dataclass
class DatasetData:
    """What dataset-level checks see.

    The layout, every pair's stats and extras (iterated as ``(stats, extras)``;
    :class:`PairRecords` in a check), and every sample's extras (keyed by the
    sample's aligned/ folder).
    """

    layout: DatasetLayout
    pairs: Iterable[tuple[PairStats, dict[str, Any]]]
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)


def unreadable(rel: str, reason: str, code: str = "unreadable") -> Finding:
    """The finding for a file that cannot be decoded (``code`` from the ImageReadError)."""
    return finding("error", code, "files", rel, f"cannot read image: {reason}")


def decode_file(
    root: Path,
    rel: str | None,
    findings: list[Finding],
    *,
    role: io.Role = "image",
    max_pixels: int = io.DEFAULT_MAX_PIXELS,
) -> io.DecodedImage | None:
    """Decode ``root / rel`` once; append its read problem or decoding notes to ``findings``.

    Returns ``None`` (after appending an error finding) when the file cannot be
    decoded: too large, not a regular file, corrupt, unscaled values.
    """
    if rel is None:
        return None
    try:
        decoded = io.read_image(root / rel, role=role, max_pixels=max_pixels)
    except ImageReadError as exc:
        findings.append(unreadable(rel, exc.reason, exc.code))
        return None
    for note in decoded.notes:
        findings.append(finding(note.severity, note.code, "files", rel, note.message))
    return decoded


ONCE_PER_RUN = ("reduced-precision",)
"""Codes said once per run (one finding naming the first file, the others as related)."""


def once_per_run(findings: list[Finding], *, max_related: int = 20) -> list[Finding]:
    """Fold the findings whose code is in :data:`ONCE_PER_RUN` into one finding per code."""
    kept = [f for f in findings if f.code not in ONCE_PER_RUN]
    for code in ONCE_PER_RUN:
        same = sorted((f for f in findings if f.code == code), key=lambda f: f.path)
        if not same:
            continue
        first = same[0]
        more = f" and {len(same) - 1} other file(s)" if len(same) > 1 else ""
        kept.append(
            first.model_copy(
                update={
                    "message": f"{first.message} ({first.path}{more})",
                    "measured": float(len(same)),  # model_copy does not validate: a float
                    "related": [f.path for f in same[1 : 1 + max_related]],
                }
            )
        )
    return kept


_LOADED = False


def _load_modules() -> None:
    """Import the check modules once, so their ``@register`` decorators run."""
    global _LOADED
    if _LOADED:
        return
    import importlib

    for module in ("files", "pairs", "registration"):
        importlib.import_module(f"{__name__}.{module}")
    for module in ("alignment", "leakage"):  # added by later work; optional until then
        try:
            importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{module}":
                raise
    _LOADED = True
