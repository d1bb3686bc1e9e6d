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
from collections.abc import Callable
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
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, description="Workers.")


@dataclass
class MergeResult:
    """What :func:`merge` did: the destination and its manifest (this run's counts)."""

    dest: Path
    manifest: MergeManifest
    run_counts: dict[str, SourceCounts]
    run_duplicates: list[DuplicateRecord]
    run_conflicts: list[ConflictRecord]
    run_refused: list[RefusedRecord]

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
        candidate.label_content = content_sha256(io.read_image(label_path))
        candidate.image_sha256 = io.sha256_file(image_path)
        candidate.label_sha256 = io.sha256_file(label_path)
    except ImageReadError as exc:
        candidate.problem = f"unreadable: {exc}"


# --------------------------------------------------------------------------- reading sources


@dataclass
class _ReadSource:
    source: Source
    layout: DatasetLayout
    info: SourceInfo
    errors: list[str]
    candidates: list[_Candidate] = field(default_factory=list)


def _load_manifest(root: Path, layout: DatasetLayout) -> MergeManifest | None:
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
    root = Path(layout.root)
    report = run_check(
        root,
        CheckOptions(alignment=options.full, workers=options.workers),
        layout=layout,
    )
    errors = [f"{f.path}: {f.message}" for f in report.errors()]
    manifest = _load_manifest(root, layout)
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
    for entry in layout.pairs:
        lineage, group = [source.tag], entry.sample_id or entry.name
        previous = known.get(entry.image)
        if previous is not None and previous.label == entry.label:
            lineage, group = list(previous.lineage), previous.group
        read.candidates.append(_Candidate(source.tag, entry, root, layout.kind, lineage, group))
    return read


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
def _staging(dest: Path):
    """A temporary folder beside ``dest``, removed if anything goes wrong."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_into_place(tmp: Path, dest: Path) -> None:
    if not dest.exists():
        os.rename(tmp, dest)
        return
    if dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()
        os.rename(tmp, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    old.rmdir()
    os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


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
    manifest = _load_manifest(dest, scan(dest))
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
        A source has errors (without ``allow_errors``), conflicting truth, an
        existing ``dest`` without ``update``, or verification failed. ``dest``
        is then unchanged.
    """
    check_tag(options.name, "--name")
    dest = Path(dest)
    _check_paths(sources, dest)
    existing = _read_existing(dest, options)
    say = progress or (lambda _msg: None)

    say("checking sources")
    reads = [_read_source(source, options) for source in sources]
    refused_sources = [r for r in reads if r.errors]
    if refused_sources and not options.allow_errors:
        raise DatatoolError(_refusal_message(refused_sources))

    say("hashing pairs")
    candidates = [c for r in reads for c in r.candidates]
    with ThreadPoolExecutor(max_workers=options.workers) as pool:
        list(pool.map(_hash, candidates))

    # ---- plan: duplicates, conflicts, names
    run_counts = {
        r.source.tag: SourceCounts(
            input=len(r.candidates), taken=0, renamed=0, deduplicated=0, refused=0
        )
        for r in reads
    }
    seen: dict[str, tuple[str, PairRef, str, str, str, str]] = {}
    used: set[str] = set()
    if existing is not None:
        for old in existing.pairs:
            used.add(old.name.casefold())
            seen[old.image_content_sha256] = (
                old.label_content_sha256,
                PairRef(source_tag=old.source_tag, image=old.source_image, label=old.source_label),
                old.name,
                old.source_tag,
                old.image_sha256,
                old.label_sha256,
            )
    planned: list[_Planned] = []
    duplicates: list[DuplicateRecord] = []
    conflicts: list[ConflictRecord] = []
    refused: list[RefusedRecord] = []
    for candidate in candidates:
        counts = run_counts[candidate.tag]
        if candidate.problem is not None:
            counts.refused += 1
            refused.append(
                RefusedRecord(
                    source_tag=candidate.tag, name=candidate.entry.name, reason=candidate.problem
                )
            )
            continue
        previous = seen.get(candidate.image_content)
        if previous is not None:
            label_content, kept_ref, kept_name, kept_tag, image_sha, label_sha = previous
            if label_content == candidate.label_content:
                counts.deduplicated += 1
                duplicates.append(
                    DuplicateRecord(
                        dropped=candidate.ref,
                        kept_name=kept_name,
                        kept_source_tag=kept_tag,
                        identical_bytes=(image_sha, label_sha)
                        == (candidate.image_sha256, candidate.label_sha256),
                    )
                )
            else:
                counts.refused += 1
                conflicts.append(ConflictRecord(kept=kept_ref, refused=candidate.ref))
                refused.append(
                    RefusedRecord(
                        source_tag=candidate.tag,
                        name=candidate.entry.name,
                        reason=f"conflicting-truth: same image as {kept_tag}:{kept_ref.image} "
                        "with a different label",
                    )
                )
            continue
        name, renamed = _unique_name(candidate.entry.name, candidate.tag, used)
        used.add(name.casefold())
        seen[candidate.image_content] = (
            candidate.label_content,
            candidate.ref,
            name,
            candidate.tag,
            candidate.image_sha256,
            candidate.label_sha256,
        )
        counts.taken += 1
        counts.renamed += renamed
        planned.append(_Planned(candidate, name, renamed, candidate.entry.split))
    if conflicts and not options.allow_errors:
        listed = [
            f"  same image, different label: {c.kept.source_tag}:{c.kept.image} "
            f"(label {c.kept.label}) and {c.refused.source_tag}:{c.refused.image} "
            f"(label {c.refused.label})"
            for c in conflicts[:_MAX_LISTED]
        ]
        raise DatatoolError(
            f"refusing to merge: {len(conflicts)} conflicting-truth pair(s) "
            "(fix the labels, or pass --allow-errors to keep the first of each)\n"
            + "\n".join(listed)
        )

    # ---- split
    if options.split is not None:
        held_out, fraction = options.split
        fixed: dict[str, str] = {}
        if existing is not None:
            for old in existing.pairs:
                if old.split is not None:
                    fixed.setdefault(old.group, old.split)
        new_groups = Counter(p.candidate.group for p in planned if p.candidate.group not in fixed)
        assignment = dict(fixed)
        if new_groups:
            assignment.update(group_split(dict(new_groups), held_out, fraction, options.seed))
        for item in planned:
            item.split = assignment[item.candidate.group]

    if options.layout == "tree":
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

    # ---- write, verify, swap
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    parameters = MergeParameters(
        name=options.name,
        sources=[r.info for r in reads],
        layout=options.layout,
        full=options.full,
        allow_errors=options.allow_errors,
        update=options.update,
        split={options.split[0]: options.split[1]} if options.split else None,
        seed=options.seed if options.split else None,
        created=now,
        tool_version=__version__,
    )
    say("copying files")
    with _staging(dest) as tmp:
        pairs: list[MergedPair] = []
        sample_files: list[SampleFile] = []
        if existing is not None:
            for old in existing.pairs:
                _link_or_copy(dest / old.image, tmp / old.image)
                _link_or_copy(dest / old.label, tmp / old.label)
            for old_file in existing.sample_files:
                _link_or_copy(dest / old_file.path, tmp / old_file.path)
            pairs = list(existing.pairs)
            sample_files = list(existing.sample_files)
        for item in planned:
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
            sample_files += _copy_sample_files(planned, reads, tmp, sample_files)
        total_counts = dict(existing.counts) if existing else {}
        for tag, counts in run_counts.items():
            if tag in total_counts:
                before = total_counts[tag]
                counts_sum = SourceCounts(
                    **{k: getattr(before, k) + getattr(counts, k) for k in counts.model_fields}
                )
                total_counts[tag] = counts_sum
            else:
                total_counts[tag] = counts
        manifest = MergeManifest(
            tool_version=__version__,
            name=options.name,
            created=now,
            parameters=parameters,
            previous_runs=([*existing.previous_runs, existing.parameters] if existing else []),
            pairs=pairs,
            sample_files=sample_files,
            duplicates=[*(existing.duplicates if existing else []), *duplicates],
            conflicts=[*(existing.conflicts if existing else []), *conflicts],
            refused=[*(existing.refused if existing else []), *refused],
            counts=total_counts,
        )
        io.atomic_write_json(tmp / layout_mod.MANIFEST_FILE, manifest)
        say("verifying")
        verify(tmp, {tag: c.input for tag, c in run_counts.items()})
        _swap_into_place(tmp, dest)
    return MergeResult(dest, manifest, run_counts, duplicates, conflicts, refused)


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


class DatasetInfo(BaseModel):
    """What ``datatool info`` reports about a dataset."""

    model_config = ConfigDict(extra="forbid")

    root: str = Field(description="Absolute path of the dataset.")
    kind: Literal["tree", "flat"] = Field(description="Layout of the dataset.")
    name: str | None = Field(default=None, description="Merge name, when it is a merged set.")
    pairs: int = Field(description="Image/label pairs (by name).")
    per_split: dict[str, int] = Field(description="Pairs per split ('-' for no split).")
    per_source: dict[str, int] = Field(
        default_factory=dict, description="Pairs per source tag (merged sets)."
    )
    per_lineage: dict[str, int] = Field(
        default_factory=dict, description="Pairs per lineage, e.g. 'OG > Gong_sum > GG_sum'."
    )
    measured: int = Field(description="Pairs decoded for sizes and line widths.")
    sizes: dict[str, int] = Field(description="Image crops per size 'WxH'.")
    line_width: dict[str, float] = Field(
        description="Label line width over the measured pairs: min, median, max (px)."
    )
    duplicates: int = Field(default=0, description="Input pairs stored once (merged sets).")
    refused: int = Field(default=0, description="Input pairs not merged (merged sets).")
    manifest_matches: bool | None = Field(
        default=None, description="True when every file matches the manifest; null without one."
    )


def describe(root: str | os.PathLike[str], *, max_measured: int = 500) -> DatasetInfo:
    """Summarise a dataset: pairs per split and source, sizes, line widths, lineage.

    Parameters
    ----------
    root : path
        A tree or flat set; a merged set's manifest adds sources and lineage.
    max_measured : int
        Decode at most this many pairs (evenly spread) for sizes and line widths.
    """
    from datatool import labels

    layout = scan(root)
    pairs = [p for p in layout.pairs if p.image and p.label]
    step = max(1, int(np.ceil(len(pairs) / max(1, max_measured))))
    sizes: Counter[str] = Counter()
    widths = []
    measured = pairs[::step]
    for entry in measured:
        try:
            image = io.read_image(layout.path(entry.image))
            width = labels.estimate_line_width(io.read_truth(layout.path(entry.label)))
        except ImageReadError:
            continue
        h, w = image.pixels.shape
        sizes[f"{w}x{h}"] += 1
        if width is not None:
            widths.append(width)
    info = DatasetInfo(
        root=layout.root,
        kind=layout.kind,
        pairs=len(layout.pairs),
        per_split=dict(Counter(p.split or "-" for p in layout.pairs)),
        measured=len(measured),
        sizes=dict(sizes.most_common()),
        line_width=(
            {
                "min": round(float(np.min(widths)), 2),
                "median": round(float(np.median(widths)), 2),
                "max": round(float(np.max(widths)), 2),
            }
            if widths
            else {}
        ),
    )
    manifest = _load_manifest(Path(layout.root), layout)
    if manifest is not None:
        info.name = manifest.name
        info.per_source = dict(Counter(p.source_tag for p in manifest.pairs))
        info.per_lineage = dict(Counter(" > ".join(p.lineage) for p in manifest.pairs))
        info.duplicates = len(manifest.duplicates)
        info.refused = len(manifest.refused)
        try:
            verify(Path(layout.root))
            info.manifest_matches = True
        except DatatoolError:
            info.manifest_matches = False
    return info
