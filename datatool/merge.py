"""Merge datasets into one training set, with provenance and no silent loss.

``merge(sources, dest, options)`` combines trees and flat sets (``image/`` +
``label/``, possibly in split folders, possibly the output of an earlier merge)
into ``dest``. The steps, in order:

1. **Read and check** every source through :func:`datatool.layout.scan` and
   :func:`datatool.check.run_check`; a source with errors is refused (all of
   them listed) unless ``allow_errors``.
2. **Hash** every pair: sha256 of the file bytes (what the manifest records) and
   of the decoded pixels (so a picture saved with another PNG compression is
   still recognised as the same picture).
3. **Plan** without writing: exact duplicates (same image and label content) are
   kept once; the same image with a different label is *conflicting truth* and
   refuses the merge unless ``allow_errors``; colliding names get the source tag
   added (``0101_1_2`` from source ``new`` becomes ``0101-new_1_2``, so the name
   still parses as ``<id>_<n>_<m>``); the optional split is group-aware.
4. **Write** into a temporary folder beside ``dest`` (file bytes copied
   unchanged, never re-encoded), write ``manifest.json``, **verify** (every file
   present with the hash the manifest records; ``taken + deduplicated +
   refused == input`` for every source), then rename into place. Any failure
   removes the temporary folder and leaves ``dest`` as it was (a hard kill can
   leave a ``.<dest>.tmp-*`` folder beside it, which is safe to delete).

Decisions the issue left open, documented here:

* Manifest paths: ``source_image`` / ``source_label`` are relative to the
  source's root; the source's absolute root is in ``parameters.sources``.
* Without ``--split`` each pair keeps its source split (``training/``,
  ``validation/``...); pairs from sources without splits go to ``image/`` and
  ``label/`` at the root. With ``--split`` every pair is re-assigned.
* Split groups: all pairs of one original sample id (any field of view, any
  crop, any source: the lab's ids name the micrograph) share a side. The group
  travels in the manifest, so renamed pairs and later merges keep it.
* Names are unique over the whole output (all splits, case-insensitively, so a
  copy to a case-insensitive disk loses nothing); the first source keeps its
  names, later ones are renamed.
* ``--allow-errors``: pairs missing a side or with an unreadable file are
  refused (counted, listed); of two conflicting pairs the first is kept and the
  second refused, both listed in ``conflicts``.
* ``--layout tree`` needs every pair to have a split and a ``<id>_<n>_<m>``
  name; originals, tracing and plan of tree sources are copied along (renamed
  with the output sample id). A sample that would get originals from two
  sources with different bytes is refused (use the flat layout).
* ``--update`` needs ``dest`` to be an earlier merge (its manifest lists every
  file); old pairs keep their names and splits, new pairs of a group already
  present join that group's side.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from datatool import __version__, io
from datatool import layout as layout_mod
from datatool.errors import DatatoolError, ImageReadError, UsageError
from datatool.layout import DatasetLayout, PairEntry, parse_crop_stem, scan

_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
TRAINING = "training"
_MAX_LISTED = 10


# --------------------------------------------------------------------------- models


class SourceInfo(BaseModel):
    """One source of a merge run."""

    model_config = ConfigDict(extra="forbid")

    tag: str = Field(description="The source's tag (SRC=TAG, default the folder name).")
    path: str = Field(description="Absolute path of the source root at merge time.")
    kind: Literal["tree", "flat"] = Field(description="Layout of the source.")
    pairs: int = Field(description="Image/label pairs (by name) found in the source.")
    check_errors: int = Field(description="Errors the check found in the source.")
    check_warnings: int = Field(description="Warnings the check found in the source.")
    merged_from: str | None = Field(
        default=None, description="Name of the earlier merge this source is the output of."
    )


class MergeParameters(BaseModel):
    """How a merge run was called."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Name of the merged dataset, e.g. 'Gong_sum'.")
    sources: list[SourceInfo] = Field(description="Sources in the order they were given.")
    layout: Literal["flat", "tree"] = Field(description="Output layout.")
    full: bool = Field(description="Whether the costly checks (alignment) ran on the sources.")
    allow_errors: bool = Field(description="Whether sources with errors were accepted.")
    update: bool = Field(description="Whether pairs were added to an existing merge.")
    split: dict[str, float] | None = Field(
        default=None, description="Held-out split and its share of pairs, e.g. {'validation': 0.1}."
    )
    seed: int | None = Field(default=None, description="Seed of the group-aware split.")
    created: str = Field(description="UTC time of the run, ISO 8601.")
    tool_version: str = Field(description="datatool version that ran the merge.")


class MergedPair(BaseModel):
    """One output pair and where it came from."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Output file stem (unique in the merged set).")
    image: str = Field(description="Output image path, relative to the merged root (POSIX).")
    label: str = Field(description="Output label path, relative to the merged root (POSIX).")
    split: str | None = Field(description="Split the pair is in, or null for the root set.")
    source_tag: str = Field(description="Tag of the source the pair was taken from.")
    source_image: str = Field(description="Image path relative to that source's root.")
    source_label: str = Field(description="Label path relative to that source's root.")
    original_name: str = Field(description="The stem the pair had in its source.")
    renamed: bool = Field(description="True when the name was changed to avoid a collision.")
    image_sha256: str = Field(description="sha256 of the image file bytes.")
    label_sha256: str = Field(description="sha256 of the label file bytes.")
    image_content_sha256: str = Field(
        description="sha256 of the decoded image (dtype, shape, pixels): same picture, same hash."
    )
    label_content_sha256: str = Field(description="sha256 of the decoded label.")
    lineage: list[str] = Field(
        description="Tags and merge names from the oldest source to this merge, "
        "e.g. ['OG', 'Gong_sum', 'GG_sum']."
    )
    group: str = Field(
        description="Original sample the pair was cut from (split group); the name when unknown."
    )


class PairRef(BaseModel):
    """A pair of a source, by tag and paths."""

    model_config = ConfigDict(extra="forbid")

    source_tag: str = Field(description="Tag of the source.")
    image: str = Field(description="Image path relative to the source root.")
    label: str = Field(description="Label path relative to the source root.")


class DuplicateRecord(BaseModel):
    """An input pair stored once because an identical pair was already taken."""

    model_config = ConfigDict(extra="forbid")

    dropped: PairRef = Field(description="The duplicate that was not copied.")
    kept_name: str = Field(description="Output name of the identical pair that was kept.")
    kept_source_tag: str = Field(description="Source tag of the kept pair.")
    identical_bytes: bool = Field(
        description="True when the files are byte-identical, False when only the pixels are."
    )


class ConflictRecord(BaseModel):
    """The same image with a different label: conflicting truth."""

    model_config = ConfigDict(extra="forbid")

    kept: PairRef = Field(description="The pair seen first (kept with --allow-errors).")
    refused: PairRef = Field(description="The pair with the same image and another label.")


class RefusedRecord(BaseModel):
    """An input pair that was not merged, and why."""

    model_config = ConfigDict(extra="forbid")

    source_tag: str = Field(description="Tag of the source.")
    name: str = Field(description="Stem of the pair in the source.")
    reason: str = Field(description="Why it was refused.")


class SourceCounts(BaseModel):
    """What happened to one source's pairs; input = taken + deduplicated + refused."""

    model_config = ConfigDict(extra="forbid")

    input: int = Field(description="Pairs (by name) in the source.")
    taken: int = Field(description="Pairs copied into the merged set.")
    renamed: int = Field(description="Of the taken pairs, those renamed to avoid a collision.")
    deduplicated: int = Field(description="Pairs identical to one already taken, not copied.")
    refused: int = Field(description="Pairs not merged (incomplete, unreadable, conflicting).")


class SampleFile(BaseModel):
    """An original, tracing or plan copied along in the tree layout."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Output path relative to the merged root.")
    sha256: str = Field(description="sha256 of the file bytes.")
    source_tag: str = Field(description="Tag of the source it was copied from.")
    source_path: str = Field(description="Path relative to that source's root.")


class MergeManifest(BaseModel):
    """``manifest.json`` of a merged dataset: every output pair and where it came from."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["merge"] = Field(default="merge", description="Always 'merge'.")
    tool_version: str = Field(description="datatool version that wrote the manifest.")
    name: str = Field(description="Name of the merged dataset.")
    created: str = Field(description="UTC time of the latest run, ISO 8601.")
    parameters: MergeParameters = Field(description="The latest run's parameters.")
    previous_runs: list[MergeParameters] = Field(
        default_factory=list, description="Parameters of earlier runs (--update), oldest first."
    )
    pairs: list[MergedPair] = Field(description="Every output pair.")
    sample_files: list[SampleFile] = Field(
        default_factory=list, description="Originals, tracings and plans (tree layout)."
    )
    duplicates: list[DuplicateRecord] = Field(
        default_factory=list, description="Input pairs stored once."
    )
    conflicts: list[ConflictRecord] = Field(
        default_factory=list, description="Conflicting truth accepted with --allow-errors."
    )
    refused: list[RefusedRecord] = Field(
        default_factory=list, description="Input pairs not merged."
    )
    counts: dict[str, SourceCounts] = Field(description="Per source tag, over all runs.")


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Source:
    """A folder to merge and its tag."""

    path: Path
    tag: str

    @classmethod
    def parse(cls, text: str) -> Source:
        """Read ``PATH`` or ``PATH=TAG`` (the tag defaults to the folder name)."""
        path, sep, tag = text.rpartition("=")
        if not sep or not path or "/" in tag:
            path, tag = text, ""
        folder = Path(path)
        tag = tag or folder.resolve().name
        check_tag(tag, f"tag of {text!r}")
        return cls(folder, tag)


def check_tag(tag: str, what: str = "tag") -> str:
    """Return ``tag`` when it is a usable tag/name (letters, digits, ``._-``)."""
    if not _TAG.fullmatch(tag):
        raise UsageError(
            f"{what} {tag!r} must start with a letter or digit and use only letters, "
            "digits, '.', '_' and '-'"
        )
    return tag


def parse_split(text: str) -> tuple[str, float]:
    """Read ``validation=0.1`` into ``("validation", 0.1)``."""
    name, sep, value = text.partition("=")
    try:
        fraction = float(value)
    except ValueError:
        fraction = -1.0
    if not sep or not name or not 0 < fraction < 1:
        raise UsageError(f"--split {text!r}: expected NAME=FRACTION with 0 < FRACTION < 1")
    check_tag(name, "split name")
    if name == TRAINING:
        raise UsageError(f"--split {text!r}: name the held-out split, not {TRAINING!r}")
    return name, fraction


class MergeOptions(BaseModel):
    """Options of ``datatool merge``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Name of the merged dataset (last element of the lineage).")
    layout: Literal["flat", "tree"] = Field(default="flat", description="Output layout.")
    full: bool = Field(default=False, description="Run the costly checks (alignment) too.")
    allow_errors: bool = Field(default=False, description="Merge sources with errors anyway.")
    update: bool = Field(default=False, description="Add to an existing merged DEST.")
    split: tuple[str, float] | None = Field(
        default=None, description="Held-out split name and share, e.g. ('validation', 0.1)."
    )
    seed: int = Field(default=0, description="Seed of the group-aware split.")
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, le=1024, description="Workers."
    )


class SplitShare(BaseModel):
    """The share of pairs one split got, next to the share asked with ``--split``."""

    model_config = ConfigDict(extra="forbid")

    split: str = Field(description="Split name, e.g. 'validation'.")
    pairs: int = Field(description="Pairs in the split (whole merged set, old pairs included).")
    share: float = Field(description="pairs / all pairs of the merged set.")
    asked: float = Field(description="The share asked for (1 - held-out share for training).")


@dataclass
class MergeResult:
    """What :func:`merge` did: the destination and its manifest (this run's counts).

    ``warnings`` are sentences for a person: leftovers of an interrupted merge
    that were cleaned up, a source whose manifest does not match its files, a
    split whose share is off the one asked. ``split_shares`` is filled with
    ``--split``.
    """

    dest: Path
    manifest: MergeManifest
    run_counts: dict[str, SourceCounts]
    run_duplicates: list[DuplicateRecord]
    run_conflicts: list[ConflictRecord]
    run_refused: list[RefusedRecord]
    warnings: list[str] = field(default_factory=list)
    split_shares: list[SplitShare] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """False when conflicting truth was accepted with --allow-errors."""
        return not self.run_conflicts


# --------------------------------------------------------------------------- hashing


def content_sha256(decoded: io.DecodedImage) -> str:
    """sha256 of a decoded image's dtype, shape and pixels (independent of file encoding)."""
    pixels = np.ascontiguousarray(decoded.pixels)
    digest = hashlib.sha256(f"{pixels.dtype.str}:{pixels.shape}:".encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


@dataclass
class _Candidate:
    """An input pair with its hashes, before the plan decides its fate."""

    tag: str
    entry: PairEntry
    source_root: Path
    source_kind: str
    lineage: list[str]
    group: str
    image_sha256: str = ""
    label_sha256: str = ""
    image_content: str = ""
    label_content: str = ""
    problem: str | None = None
    #: (image, label) sha256 a source's merge manifest records for this pair, if it lists it.
    recorded: tuple[str, str] | None = None

    @property
    def ref(self) -> PairRef:
        return PairRef(
            source_tag=self.tag, image=self.entry.image or "", label=self.entry.label or ""
        )


def _hash(candidate: _Candidate) -> None:
    entry = candidate.entry
    if entry.image is None or entry.label is None:
        missing = "label" if entry.label is None else "image"
        candidate.problem = f"no {missing} of the same name"
        return
    try:
        image_path = candidate.source_root / entry.image
        label_path = candidate.source_root / entry.label
        candidate.image_content = content_sha256(io.read_image(image_path))
        candidate.label_content = content_sha256(io.read_image(label_path, role="label"))
        candidate.image_sha256 = io.sha256_file(image_path)
        candidate.label_sha256 = io.sha256_file(label_path)
    except ImageReadError as exc:
        candidate.problem = f"unreadable: {exc}"
        return
    if candidate.recorded not in (None, (candidate.image_sha256, candidate.label_sha256)):
        # Changed since that merge: the recorded lineage is no longer this pair's.
        candidate.lineage = [candidate.tag]


# --------------------------------------------------------------------------- reading sources


@dataclass
class _ReadSource:
    source: Source
    layout: DatasetLayout
    info: SourceInfo
    errors: list[str]
    candidates: list[_Candidate] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def load_manifest(root: Path, layout: DatasetLayout) -> MergeManifest | None:
    """The source's merge manifest, or None when it has none (or a build manifest)."""
    if layout.manifest is None:
        return None
    path = root / layout.manifest
    text = path.read_text(encoding="utf-8")
    if '"kind": "merge"' not in text and '"kind":"merge"' not in text:
        return None
    try:
        return MergeManifest.model_validate_json(text)
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        raise DatatoolError(f"{path}: not a valid merge manifest ({first})") from None


def _read_source(source: Source, options: MergeOptions) -> _ReadSource:
    from datatool.check import run_check
    from datatool.checks import CheckOptions

    layout = scan(source.path)
    if not layout.pairs:
        raise DatatoolError(empty_source_message(source, layout))
    root = Path(layout.root)
    report = run_check(
        root,
        CheckOptions(alignment=options.full, workers=options.workers),
        layout=layout,
    )
    errors = [f"{f.path}: {f.message}" for f in report.errors()]
    manifest = load_manifest(root, layout)
    known = {p.image: p for p in manifest.pairs} if manifest else {}
    info = SourceInfo(
        tag=source.tag,
        path=str(root),
        kind=layout.kind,
        pairs=len(layout.pairs),
        check_errors=report.summary.errors,
        check_warnings=report.summary.warnings,
        merged_from=manifest.name if manifest else None,
    )
    read = _ReadSource(source, layout, info, errors)
    if manifest is not None:
        try:
            verify(root)
        except DatatoolError as exc:
            read.warnings.append(
                f"source {source.tag}: its merge manifest does not match its files, merged as "
                f"found; lineage kept only for pairs whose bytes match the manifest ({exc})"
            )
    for entry in layout.pairs:
        lineage, group, recorded = [source.tag], entry.sample_id or entry.name, None
        previous = known.get(entry.image)
        if previous is not None and previous.label == entry.label:
            lineage, group = list(previous.lineage), previous.group
            recorded = (previous.image_sha256, previous.label_sha256)
        read.candidates.append(
            _Candidate(source.tag, entry, root, layout.kind, lineage, group, recorded=recorded)
        )
    return read


def empty_source_message(source: Source, layout: DatasetLayout) -> str:
    """One line for a source without a single image/label pair: what was looked for and seen.

    The diagnosis is :func:`datatool.layout.diagnose_empty`'s (the usual mistakes:
    ``images/`` + ``masks/``, a flat folder of images, the folder above the tree).
    """
    return f"source {source.tag}: {layout_mod.diagnose_empty(layout.root)}"


def _refusal_message(refused: list[_ReadSource]) -> str:
    lines = ["refusing to merge: source(s) with errors (fix them, or pass --allow-errors)"]
    for read in refused:
        shown = read.errors[:_MAX_LISTED]
        lines.append(
            f"  {read.source.tag} ({read.info.path}): {len(read.errors)} error(s)"
            + (f", first {len(shown)}:" if len(read.errors) > len(shown) else ":")
        )
        lines += [f"    {line}" for line in shown]
    return "\n".join(lines)


# --------------------------------------------------------------------------- planning


@dataclass
class _Planned:
    candidate: _Candidate
    name: str
    renamed: bool
    split: str | None = None


def _renamed(stem: str, tag: str, attempt: int) -> str:
    suffix = tag if attempt == 1 else f"{tag}{attempt}"
    parsed = parse_crop_stem(stem)
    if parsed is not None:
        return f"{parsed[0]}-{suffix}_{parsed[1]}_{parsed[2]}"
    return f"{stem}-{suffix}"


def _unique_name(stem: str, tag: str, used: set[str]) -> tuple[str, bool]:
    if stem.casefold() not in used:
        return stem, False
    attempt = 1
    while (name := _renamed(stem, tag, attempt)).casefold() in used:
        attempt += 1
    return name, True


def group_split(
    groups: dict[str, int], held_out: str, fraction: float, seed: int
) -> dict[str, str]:
    """Assign whole groups to ``held_out`` or ``training``.

    Groups are sorted, shuffled with ``numpy.random.default_rng(seed)`` and taken
    into the held-out split until it holds ``round(fraction * total)`` pairs (at
    least one group, and at least one group left for training, when there are
    two or more).

    Parameters
    ----------
    groups : dict
        Group key to its number of pairs.
    held_out : str
        Name of the held-out split, e.g. ``"validation"``.
    fraction : float
        Share of pairs wanted in the held-out split, in (0, 1).
    seed : int

    Returns
    -------
    dict
        Group key to split name.

    >>> sides = group_split({"a": 2, "b": 2, "c": 2}, "validation", 0.3, seed=0)
    >>> sorted(sides.values())
    ['training', 'training', 'validation']
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    order = sorted(groups)
    shuffled = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
    target = round(fraction * sum(groups.values()))
    assignment = dict.fromkeys(order, TRAINING)
    taken = 0
    for index, key in enumerate(shuffled):
        leaves_training = index < len(shuffled) - 1 or len(shuffled) == 1
        if (taken < target or (taken == 0 and len(shuffled) > 1)) and leaves_training:
            assignment[key] = held_out
            taken += groups[key]
    return assignment


def _output_paths(planned: _Planned, layout: Literal["flat", "tree"]) -> tuple[str, str]:
    entry = planned.candidate.entry
    image_suffix = PurePosixPath(entry.image or "").suffix
    label_suffix = PurePosixPath(entry.label or "").suffix
    if layout == "tree":
        sample_id = parse_crop_stem(planned.name)[0]  # checked before writing
        base = (
            f"{planned.split}/{layout_mod.sample_folder(sample_id, planned.split)}/"
            f"{layout_mod.ALIGNED_DIR}/"
        )
    else:
        base = f"{planned.split}/" if planned.split else ""
    return (
        f"{base}{layout_mod.IMAGE_DIR}/{planned.name}{image_suffix}",
        f"{base}{layout_mod.LABEL_DIR}/{planned.name}{label_suffix}",
    )


# --------------------------------------------------------------------------- writing


def copy_file(source: Path, target: Path) -> None:
    """Copy ``source``'s bytes to ``target``, which must not exist (never overwrite)."""
    if target.exists():
        raise DatatoolError(f"{target}: would be overwritten (merge bug; nothing was changed)")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        copy_file(source, target)


def verify(root: Path, expected_input: dict[str, int] | None = None) -> MergeManifest:
    """Prove that a merged folder is what its manifest says; return the manifest.

    Checks that the files of the folder are exactly the manifest's files, each
    with the recorded sha256, and (``expected_input``: tag to input pairs) that
    ``taken + deduplicated + refused`` equals each source's input count.

    Raises
    ------
    DatatoolError
        Naming the first problems found.
    """
    manifest = MergeManifest.model_validate_json(
        (root / layout_mod.MANIFEST_FILE).read_text(encoding="utf-8")
    )
    recorded: dict[str, str] = {}
    for pair in manifest.pairs:
        recorded[pair.image] = pair.image_sha256
        recorded[pair.label] = pair.label_sha256
    recorded.update({f.path: f.sha256 for f in manifest.sample_files})
    on_disk = {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != layout_mod.MANIFEST_FILE
    }
    problems = [f"{rel}: not in the manifest" for rel in sorted(on_disk - set(recorded))]
    problems += [f"{rel}: in the manifest but missing" for rel in sorted(set(recorded) - on_disk)]
    for rel in sorted(set(recorded) & on_disk):
        if io.sha256_file(root / rel) != recorded[rel]:
            problems.append(f"{rel}: sha256 differs from the manifest")
    scanned = {p.image for p in scan(root).pairs}
    problems += [
        f"{p.image}: not seen as a pair by the layout scan"
        for p in manifest.pairs
        if p.image not in scanned
    ]
    taken_by_tag = Counter(p.source_tag for p in manifest.pairs)
    for tag, counts in manifest.counts.items():
        accounted = counts.taken + counts.deduplicated + counts.refused
        if accounted != counts.input:
            problems.append(
                f"source {tag}: {counts.taken} taken + {counts.deduplicated} de-duplicated + "
                f"{counts.refused} refused = {accounted}, but it has {counts.input} pairs"
            )
        if expected_input is not None and tag in expected_input:
            if counts.input < expected_input[tag]:
                problems.append(f"source {tag}: {expected_input[tag]} input pairs not all counted")
    if sum(c.taken for c in manifest.counts.values()) != len(manifest.pairs):
        problems.append(
            f"{len(manifest.pairs)} output pairs but {sum(taken_by_tag.values())} counted as taken"
        )
    if problems:
        listed = "; ".join(problems[:_MAX_LISTED])
        raise DatatoolError(f"{root}: merge verification failed ({len(problems)}): {listed}")
    return manifest


@contextlib.contextmanager
def _staging(dest: Path) -> Iterator[Path]:
    """A hidden temporary folder beside ``dest``, removed if anything goes wrong.

    A :class:`_KeptStaging` error means the verified result was moved aside
    to be kept; everything else removes the folder.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}{_STAGING_INFIX}", dir=dest.parent))
    try:
        yield tmp
    except _KeptStaging:
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- beside DEST

_STAGING_INFIX = ".tmp-"
_RETIRED_INFIX = ".old-"


class _KeptStaging(DatatoolError):
    """The merge could not be put at DEST; its verified result was kept elsewhere."""


def lock_path(dest: Path) -> Path:
    """The lock file a merge into ``dest`` holds: ``.DEST.lock`` beside it."""
    return dest.parent / f".{dest.name}.lock"


@contextlib.contextmanager
def _exclusive_lock(dest: Path) -> Iterator[None]:
    """Hold ``.DEST.lock`` exclusively for the whole merge, or fail at once saying why.

    The lock (``fcntl.flock``) dies with the process that holds it, so a killed
    merge never blocks the next one. The file is removed on the way out while
    still held; a run that opened it just before checks, once locked, that the
    path still names the file it locked.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks; merges into one DEST must not overlap
        yield
        return
    path = lock_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DatatoolError(f"{path}: cannot create the merge lock ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise DatatoolError(
                f"{dest}: another merge into it is running (it holds {path}); "
                "run again when it has finished"
            ) from None
        try:
            held, named = os.fstat(fd), os.stat(path)
            if (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino):
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the file was removed by the run that held it: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def _leftovers(dest: Path, infix: str) -> list[Path]:
    """Folders ``.DEST<infix>XXXXXXXX`` beside ``dest`` (what a killed merge leaves)."""
    pattern = re.compile(rf"\.{re.escape(dest.name)}{re.escape(infix)}[A-Za-z0-9_]+")
    if not dest.parent.is_dir():
        return []
    return sorted(
        p
        for p in dest.parent.iterdir()
        if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink()
    )


def _recover(dest: Path) -> list[str]:
    """Clean up after merges into ``dest`` that were killed; return what was done.

    Runs under the lock: no other merge into ``dest`` is using these folders. A
    merge --update killed between its two renames left the earlier merge under
    ``.DEST.old-*`` and no ``dest``: it is put back. One killed after them left
    the earlier merge's files, all also in ``dest``: they are retired. Staging
    folders ``.DEST.tmp-*`` hold no finished result: they are removed.
    """
    notes: list[str] = []
    for old in _leftovers(dest, _RETIRED_INFIX):
        if not dest.exists() and not dest.is_symlink():
            os.rename(old, dest)
            notes.append(
                f"{dest}: put back the earlier merge from {old.name} "
                "(a merge --update was killed while swapping it)"
            )
            continue
        notes.append(f"{old}: retired the earlier merge a killed merge --update replaced")
        notes += _retire_notes(old, dest, *_retire(old, dest))
    for tmp in _leftovers(dest, _STAGING_INFIX):
        files = sum(1 for p in tmp.rglob("*") if not p.is_dir())
        try:
            shutil.rmtree(tmp)
        except OSError as exc:
            notes.append(
                f"{tmp}: staging folder of an interrupted merge ({files} file(s)) "
                f"could not be removed ({exc.strerror}); delete it by hand"
            )
        else:
            notes.append(
                f"removed {tmp} ({files} file(s)), the staging folder of an interrupted merge"
            )
    return notes


def _same_bytes(a: Path, b: Path) -> bool:
    """True when ``b`` is the same file as ``a`` (a hard link) or has the same bytes."""
    try:
        if os.path.samefile(a, b):
            return True
        return (
            b.is_file()
            and a.stat().st_size == b.stat().st_size
            and io.sha256_file(a) == io.sha256_file(b)
        )
    except OSError:
        return False


def _retire(old: Path, dest: Path) -> tuple[list[str], list[str]]:
    """Remove the folder a --update swapped out of ``dest``, losing nothing.

    A file whose counterpart in ``dest`` is the same file or has the same bytes
    goes. Any other file (one written into DEST while the merge ran) moves into
    ``dest`` when its place there is free, and otherwise stays in ``old``. The
    earlier ``manifest.json`` goes: the new one lists every earlier pair.

    Returns
    -------
    (moved, kept) : two lists of str
        Paths relative to the folders: moved into ``dest``; left in ``old``.
    """
    moved: list[str] = []
    kept: list[str] = []
    for path in sorted(p for p in old.rglob("*") if not p.is_dir() or p.is_symlink()):
        rel = path.relative_to(old)
        target = dest / rel
        if rel.as_posix() == layout_mod.MANIFEST_FILE or _same_bytes(path, target):
            path.unlink()
        elif not target.exists() and not target.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, target)
            moved.append(rel.as_posix())
        else:
            kept.append(rel.as_posix())
    for folder in sorted((p for p in old.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            (dest / folder.relative_to(old)).mkdir(parents=True, exist_ok=True)
            folder.rmdir()
    if not kept:
        old.rmdir()
    return moved, kept


def _retire_notes(old: Path, dest: Path, moved: list[str], kept: list[str]) -> list[str]:
    """Sentences about files that were not the earlier merge's."""
    notes = []
    if moved:
        notes.append(
            f"{dest}: {len(moved)} file(s) not in its manifest were kept in place "
            f"(written into it while the merge ran?), e.g. {moved[0]}"
        )
    if kept:
        notes.append(
            f"{old}: {len(kept)} file(s) of {dest} that differ from the new merge's stay "
            f"here, e.g. {kept[0]}"
        )
    return notes


def _keep_staged(tmp: Path, dest: Path, why: str) -> _KeptStaging:
    """Move the verified result out of the staging name (so no later run removes it)."""
    kept = dest.parent / f"{dest.name}.merged-{tmp.name.rsplit('-', 1)[-1]}"
    try:
        os.rename(tmp, kept)
    except OSError:
        kept = tmp
    return _KeptStaging(
        f"{dest}: {why}; nothing in it was touched; the merged result, verified, "
        f"is kept at {kept} (move it where you want it)"
    )


def _publish(tmp: Path, dest: Path, existing: MergeManifest | None) -> list[str]:
    """Put the verified staging folder at ``dest``; never remove what this run did not write.

    Without ``existing``, one rename moves it there: it replaces at most an
    empty folder, atomically, and fails when DEST appeared with content. With
    ``existing`` (--update), the earlier merge is renamed aside, the new one
    renamed in, and the earlier one retired by :func:`_retire`.
    """
    if existing is None:
        try:
            os.rename(tmp, dest)
        except OSError:
            raise _keep_staged(tmp, dest, "appeared while this merge ran") from None
        return []
    old = dest.parent / f".{dest.name}{_RETIRED_INFIX}{tmp.name.rsplit('-', 1)[-1]}"
    try:
        os.rename(dest, old)
    except OSError:
        raise _keep_staged(tmp, dest, "moved or removed while this merge ran") from None
    try:
        os.rename(tmp, dest)
    except OSError:
        os.rename(old, dest)
        raise
    return _retire_notes(old, dest, *_retire(old, dest))


# --------------------------------------------------------------------------- merge


def _read_existing(dest: Path, options: MergeOptions) -> MergeManifest | None:
    if not dest.exists() or (dest.is_dir() and not any(dest.iterdir())):
        return None
    if not options.update:
        raise DatatoolError(
            f"{dest}: already exists; pass --update to add pairs to it, or choose another --into"
        )
    if not (dest / layout_mod.MANIFEST_FILE).is_file():
        raise DatatoolError(
            f"{dest}: --update needs an earlier merge (no manifest.json); merge it as a source"
        )
    manifest = load_manifest(dest, scan(dest))
    if manifest is None:
        raise DatatoolError(f"{dest / layout_mod.MANIFEST_FILE}: not a merge manifest")
    try:
        verify(dest)
    except DatatoolError as exc:
        raise DatatoolError(
            f"--update refused: {dest} changed since it was merged: {exc}"
        ) from None
    old_layout = "tree" if manifest.sample_files or manifest.parameters.layout == "tree" else "flat"
    if old_layout != options.layout:
        raise DatatoolError(f"{dest}: is a {old_layout} merge; --layout {options.layout} differs")
    return manifest


def _check_paths(sources: list[Source], dest: Path) -> None:
    if not sources:
        raise UsageError("give at least one source to merge")
    tags = Counter(s.tag for s in sources)
    if repeated := sorted(t for t, n in tags.items() if n > 1):
        raise UsageError(
            f"source tags must differ: {', '.join(repeated)} given twice (use SRC=TAG)"
        )
    target = dest.resolve()
    for source in sources:
        root = source.path.resolve()
        if root == target or target.is_relative_to(root) or root.is_relative_to(target):
            raise UsageError(f"{dest}: must not be a source, nor inside one, nor contain one")


def merge(
    sources: list[Source],
    dest: str | os.PathLike[str],
    options: MergeOptions,
    *,
    progress: Callable[[str], None] | None = None,
) -> MergeResult:
    """Merge ``sources`` into ``dest`` (see the module docstring for the rules).

    The named steps: read and check the sources (:func:`_read_sources`), plan
    the copy (:func:`_plan_copy`), copy (:func:`_copy`), write the lineage
    (:func:`_write_lineage`), verify (:func:`verify`) and publish
    (:func:`_publish`), all under an exclusive lock beside ``dest``.

    Parameters
    ----------
    sources : list of Source
        Trees or flat sets, each with a unique tag.
    dest : path
        Created atomically; an existing non-empty ``dest`` needs ``options.update``.
    options : MergeOptions
    progress : callable, optional
        Called with a short description of each stage.

    Returns
    -------
    MergeResult

    Raises
    ------
    DatatoolError
        A source has errors (without ``allow_errors``) or no pairs, conflicting
        truth, an existing ``dest`` without ``update``, another merge into
        ``dest`` running, or verification failed. ``dest`` is then unchanged.
        When ``dest`` appeared while the merge ran, the message says where the
        verified result was kept.
    """
    check_tag(options.name, "--name")
    dest = Path(dest)
    _check_paths(sources, dest)
    say = progress or (lambda _msg: None)
    with _exclusive_lock(dest):
        notes = _recover(dest)
        existing = _read_existing(dest, options)
        say("checking sources")
        reads = _read_sources(sources, options)
        notes += [w for r in reads for w in r.warnings]
        say("hashing pairs")
        candidates = [c for r in reads for c in r.candidates]
        with ThreadPoolExecutor(max_workers=options.workers) as pool:
            list(pool.map(_hash, candidates))
        plan = _plan_copy(reads, existing, options)
        say("copying files")
        with _staging(dest) as tmp:
            pairs, sample_files = _copy(plan, dest, tmp, options)
            manifest = _write_lineage(plan, pairs, sample_files, options, tmp)
            say("verifying")
            verify(tmp, {tag: c.input for tag, c in plan.run_counts.items()})
            notes += _publish(tmp, dest, existing)
    shares: list[SplitShare] = []
    if options.split is not None:
        shares, off = split_shares(manifest.pairs, *options.split)
        notes += off
    return MergeResult(
        dest, manifest, plan.run_counts, plan.duplicates, plan.conflicts, plan.refused,
        warnings=notes, split_shares=shares,
    )  # fmt: skip


def _read_sources(sources: list[Source], options: MergeOptions) -> list[_ReadSource]:
    """Read and check every source; refuse (listing every error) unless allow_errors."""
    reads = [_read_source(source, options) for source in sources]
    refused_sources = [r for r in reads if r.errors]
    if refused_sources and not options.allow_errors:
        raise DatatoolError(_refusal_message(refused_sources))
    return reads


# --------------------------------------------------------------------------- plan the copy


@dataclass
class _Kept:
    """The pair taken first with a given image content (what a later identical image meets)."""

    label_content: str
    ref: PairRef
    name: str
    tag: str
    image_sha256: str
    label_sha256: str


@dataclass
class _CopyPlan:
    """Every input pair's fate, decided before a byte is written."""

    reads: list[_ReadSource]
    existing: MergeManifest | None
    run_counts: dict[str, SourceCounts]
    planned: list[_Planned] = field(default_factory=list)
    duplicates: list[DuplicateRecord] = field(default_factory=list)
    conflicts: list[ConflictRecord] = field(default_factory=list)
    refused: list[RefusedRecord] = field(default_factory=list)
    seen: dict[str, _Kept] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)


def _plan_copy(
    reads: list[_ReadSource], existing: MergeManifest | None, options: MergeOptions
) -> _CopyPlan:
    """Decide duplicates, conflicts, names and splits; refuse conflicting truth."""
    plan = _CopyPlan(
        reads,
        existing,
        run_counts={
            r.source.tag: SourceCounts(
                input=len(r.candidates), taken=0, renamed=0, deduplicated=0, refused=0
            )
            for r in reads
        },
    )
    for old in existing.pairs if existing is not None else []:
        plan.used.add(old.name.casefold())
        plan.seen[old.image_content_sha256] = _Kept(
            old.label_content_sha256,
            PairRef(source_tag=old.source_tag, image=old.source_image, label=old.source_label),
            old.name,
            old.source_tag,
            old.image_sha256,
            old.label_sha256,
        )
    for candidate in (c for r in reads for c in r.candidates):
        _plan_candidate(plan, candidate)
    if plan.conflicts and not options.allow_errors:
        listed = [
            f"  same image, different label: {c.kept.source_tag}:{c.kept.image} "
            f"(label {c.kept.label}) and {c.refused.source_tag}:{c.refused.image} "
            f"(label {c.refused.label})"
            for c in plan.conflicts[:_MAX_LISTED]
        ]
        raise DatatoolError(
            f"refusing to merge: {len(plan.conflicts)} conflicting-truth pair(s) "
            "(fix the labels, or pass --allow-errors to keep the first of each)\n"
            + "\n".join(listed)
        )
    if options.split is not None:
        _assign_splits(plan, *options.split, options.seed)
    if options.layout == "tree":
        _check_tree_names(plan.planned)
    return plan


def _plan_candidate(plan: _CopyPlan, candidate: _Candidate) -> None:
    """Take, de-duplicate or refuse one hashed input pair."""
    counts = plan.run_counts[candidate.tag]
    if candidate.problem is not None:
        counts.refused += 1
        plan.refused.append(
            RefusedRecord(
                source_tag=candidate.tag, name=candidate.entry.name, reason=candidate.problem
            )
        )
        return
    previous = plan.seen.get(candidate.image_content)
    if previous is not None and previous.label_content == candidate.label_content:
        counts.deduplicated += 1
        plan.duplicates.append(
            DuplicateRecord(
                dropped=candidate.ref,
                kept_name=previous.name,
                kept_source_tag=previous.tag,
                identical_bytes=(previous.image_sha256, previous.label_sha256)
                == (candidate.image_sha256, candidate.label_sha256),
            )
        )
        return
    if previous is not None:
        counts.refused += 1
        plan.conflicts.append(ConflictRecord(kept=previous.ref, refused=candidate.ref))
        plan.refused.append(
            RefusedRecord(
                source_tag=candidate.tag,
                name=candidate.entry.name,
                reason=f"conflicting-truth: same image as {previous.tag}:{previous.ref.image} "
                "with a different label",
            )
        )
        return
    name, renamed = _unique_name(candidate.entry.name, candidate.tag, plan.used)
    plan.used.add(name.casefold())
    plan.seen[candidate.image_content] = _Kept(
        candidate.label_content,
        candidate.ref,
        name,
        candidate.tag,
        candidate.image_sha256,
        candidate.label_sha256,
    )
    counts.taken += 1
    counts.renamed += renamed
    plan.planned.append(_Planned(candidate, name, renamed, candidate.entry.split))


def _assign_splits(plan: _CopyPlan, held_out: str, fraction: float, seed: int) -> None:
    """Group-aware split; groups already in an updated merge keep their side."""
    fixed: dict[str, str] = {}
    for old in plan.existing.pairs if plan.existing is not None else []:
        if old.split is not None:
            fixed.setdefault(old.group, old.split)
    new_groups = Counter(p.candidate.group for p in plan.planned if p.candidate.group not in fixed)
    assignment = dict(fixed)
    if new_groups:
        assignment.update(group_split(dict(new_groups), held_out, fraction, seed))
    for item in plan.planned:
        item.split = assignment[item.candidate.group]


def _check_tree_names(planned: list[_Planned]) -> None:
    bad = [
        f"{p.candidate.tag}:{p.candidate.entry.name}"
        for p in planned
        if p.split is None or parse_crop_stem(p.name) is None
    ]
    if bad:
        raise DatatoolError(
            f"--layout tree needs a split and an <id>_<n>_<m> name for every pair; "
            f"{len(bad)} pair(s) lack one, e.g. {', '.join(bad[:5])} "
            "(use --split, or the flat layout)"
        )


def split_shares(
    pairs: list[MergedPair], held_out: str, fraction: float
) -> tuple[list[SplitShare], list[str]]:
    """The share each split got, and a warning per split off the asked share by more than a pair.

    Whole sample groups stay on one side, so on a small set the shares can be
    far from the ones asked; more than one pair's share (``1 / len(pairs)``)
    off is worth a word.

    >>> pair = dict(image="i", label="l", source_tag="s", source_image="i",
    ...     source_label="l", original_name="n", renamed=False, image_sha256="",
    ...     label_sha256="", image_content_sha256="", label_content_sha256="",
    ...     lineage=[], group="g")
    >>> pairs = [MergedPair(name=f"p{i}", split="validation" if i < 5 else "training",
    ...     **{**pair, "group": f"g{i // 5}"}) for i in range(10)]
    >>> shares, warnings = split_shares(pairs, "validation", 0.3)
    >>> [(s.split, s.pairs, s.share) for s in shares]
    [('validation', 5, 0.5), ('training', 5, 0.5)]
    >>> len(warnings)  # both sides are 20 points off, more than one pair's 10
    2
    """
    total = len(pairs)
    if total == 0:
        return [], []
    shares, warnings = [], []
    groups = len({p.group for p in pairs})
    for split, asked in ((held_out, fraction), (TRAINING, 1 - fraction)):
        count = sum(p.split == split for p in pairs)
        shares.append(SplitShare(split=split, pairs=count, share=count / total, asked=asked))
        if abs(count / total - asked) > 1 / total + 1e-9:
            warnings.append(
                f"--split {held_out}={fraction:g}: {split} holds {count} of {total} pairs "
                f"({count / total:.0%}), asked {asked:.0%}, more than one pair's share "
                f"({1 / total:.0%}) off: whole samples stay on one side ({groups} sample "
                "group(s) in the set)"
            )
    return shares, warnings


# --------------------------------------------------------------------------- copy


def _copy(
    plan: _CopyPlan, dest: Path, tmp: Path, options: MergeOptions
) -> tuple[list[MergedPair], list[SampleFile]]:
    """Copy the planned pairs (and an updated merge's files) into ``tmp``; never re-encode."""
    pairs: list[MergedPair] = []
    sample_files: list[SampleFile] = []
    if plan.existing is not None:
        for old in plan.existing.pairs:
            _link_or_copy(dest / old.image, tmp / old.image)
            _link_or_copy(dest / old.label, tmp / old.label)
        for old_file in plan.existing.sample_files:
            _link_or_copy(dest / old_file.path, tmp / old_file.path)
        pairs = list(plan.existing.pairs)
        sample_files = list(plan.existing.sample_files)
    for item in plan.planned:
        c = item.candidate
        image_rel, label_rel = _output_paths(item, options.layout)
        copy_file(c.source_root / c.entry.image, tmp / image_rel)
        copy_file(c.source_root / c.entry.label, tmp / label_rel)
        pairs.append(
            MergedPair(
                name=item.name,
                image=image_rel,
                label=label_rel,
                split=item.split,
                source_tag=c.tag,
                source_image=c.entry.image,
                source_label=c.entry.label,
                original_name=c.entry.name,
                renamed=item.renamed,
                image_sha256=c.image_sha256,
                label_sha256=c.label_sha256,
                image_content_sha256=c.image_content,
                label_content_sha256=c.label_content,
                lineage=[*c.lineage, options.name],
                group=c.group,
            )
        )
    if options.layout == "tree":
        sample_files += _copy_sample_files(plan.planned, plan.reads, tmp, sample_files)
    return pairs, sample_files


# --------------------------------------------------------------------------- write lineage


def _write_lineage(
    plan: _CopyPlan,
    pairs: list[MergedPair],
    sample_files: list[SampleFile],
    options: MergeOptions,
    tmp: Path,
) -> MergeManifest:
    """Write ``manifest.json`` into ``tmp``: parameters, pairs, lineage, counts over all runs."""
    existing = plan.existing
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    parameters = MergeParameters(
        name=options.name,
        sources=[r.info for r in plan.reads],
        layout=options.layout,
        full=options.full,
        allow_errors=options.allow_errors,
        update=options.update,
        split={options.split[0]: options.split[1]} if options.split else None,
        seed=options.seed if options.split else None,
        created=now,
        tool_version=__version__,
    )
    total_counts = dict(existing.counts) if existing else {}
    for tag, counts in plan.run_counts.items():
        before = total_counts.get(tag)
        total_counts[tag] = (
            SourceCounts(
                **{k: getattr(before, k) + getattr(counts, k) for k in SourceCounts.model_fields}
            )
            if before is not None
            else counts
        )
    manifest = MergeManifest(
        tool_version=__version__,
        name=options.name,
        created=now,
        parameters=parameters,
        previous_runs=([*existing.previous_runs, existing.parameters] if existing else []),
        pairs=pairs,
        sample_files=sample_files,
        duplicates=[*(existing.duplicates if existing else []), *plan.duplicates],
        conflicts=[*(existing.conflicts if existing else []), *plan.conflicts],
        refused=[*(existing.refused if existing else []), *plan.refused],
        counts=total_counts,
    )
    io.atomic_write_json(tmp / layout_mod.MANIFEST_FILE, manifest)
    return manifest


def _copy_sample_files(
    planned: list[_Planned], reads: list[_ReadSource], tmp: Path, existing: list[SampleFile]
) -> list[SampleFile]:
    """Copy originals, tracing and plan of tree sources next to their crops (renamed)."""
    by_tag = {r.source.tag: r for r in reads}
    done = {f.path: f for f in existing}
    added: list[SampleFile] = []
    for item in planned:
        c = item.candidate
        if c.source_kind != "tree":
            continue
        sample = by_tag[c.tag].layout.sample(c.entry.sample_id, c.entry.split)
        out_id = parse_crop_stem(item.name)[0]
        sample_dir = layout_mod.sample_folder(out_id, item.split)
        folder = f"{item.split}/{sample_dir}/{layout_mod.ALIGNED_DIR}"
        files = [
            (rel, layout_mod.original_name(out_id, fov, PurePosixPath(rel).suffix))
            for fov, rel in sample.originals.items()
        ]
        if sample.tracing:
            suffix = PurePosixPath(sample.tracing).suffix
            files.append((sample.tracing, layout_mod.tracing_name(out_id, suffix)))
        if sample.plan:
            files.append((sample.plan, PurePosixPath(sample.plan).name))
        for source_rel, out_name in files:
            out_rel = f"{folder}/{out_name}"
            digest = io.sha256_file(c.source_root / source_rel)
            if out_rel in done:
                if done[out_rel].sha256 != digest:
                    raise DatatoolError(
                        f"--layout tree: {out_rel} would get different files from "
                        f"{done[out_rel].source_tag}:{done[out_rel].source_path} and "
                        f"{c.tag}:{source_rel}; use the flat layout"
                    )
                continue
            copy_file(c.source_root / source_rel, tmp / out_rel)
            record = SampleFile(
                path=out_rel, sha256=digest, source_tag=c.tag, source_path=source_rel
            )
            done[out_rel] = record
            added.append(record)
    return added


# --------------------------------------------------------------------------- info
