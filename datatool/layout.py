"""The one place that knows the folder layout and its naming convention.

:func:`scan` reads a folder into a :class:`DatasetLayout`: paths only, no
pixels. Everything else in datatool reads the tree through it.

Two shapes are understood::

    tree  <root>/<split>/<id>_<split>/aligned/
              <id>_<n>.png  <id>_trace.png  [crops.json]
              image/<id>_<n>_<m>.png  label/<id>_<n>_<m>.png
    flat  <root>/image/<name>.png  <root>/label/<name>.png

Pairs are matched by file stem, one to one, never by sorted order. Hidden and
system files (``.DS_Store``, ``Thumbs.db``, names starting with ``.``) are
ignored and counted; anything else unexpected is recorded for a warning.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from datatool.errors import UsageError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
SYSTEM_LITTER = frozenset({".ds_store", "thumbs.db", "desktop.ini", "__macosx", "ehthumbs.db"})
PLAN_FILES = ("crops.json",)
MANIFEST_FILE = "manifest.json"
ALIGNED_DIR = "aligned"
IMAGE_DIR = "image"
LABEL_DIR = "label"
TRACE_SUFFIX = "trace"

_SAMPLE_DIR = re.compile(r"^(?P<id>.+)_(?P<split>[^_]+)$")
_CROP_NAME = re.compile(r"^(?P<id>.+)_(?P<n>\d+)_(?P<m>\d+)$")


def original_name(sample_id: str, fov: int, suffix: str = ".png") -> str:
    """File name of the original micrograph of field of view ``fov``."""
    return f"{sample_id}_{fov}{suffix}"


def tracing_name(sample_id: str, suffix: str = ".png") -> str:
    """File name of the sample's original tracing."""
    return f"{sample_id}_{TRACE_SUFFIX}{suffix}"


def crop_stem(sample_id: str, fov: int, crop: int) -> str:
    """Stem shared by an image crop and its label: ``<id>_<n>_<m>``."""
    return f"{sample_id}_{fov}_{crop}"


def sample_folder(sample_id: str, split: str) -> str:
    """Folder name of a sample inside its split: ``<id>_<split>``."""
    return f"{sample_id}_{split}"


def parse_crop_stem(stem: str, sample_id: str | None = None) -> tuple[str, int, int] | None:
    """Split ``<id>_<n>_<m>`` into (id, n, m); ``None`` when the stem does not follow it.

    >>> parse_crop_stem("0417_2_5")
    ('0417', 2, 5)
    """
    if sample_id is not None:
        match = re.fullmatch(re.escape(sample_id) + r"_(\d+)_(\d+)", stem)
        return (sample_id, int(match[1]), int(match[2])) if match else None
    match = _CROP_NAME.fullmatch(stem)
    return (match["id"], int(match["n"]), int(match["m"])) if match else None


def is_litter(name: str) -> bool:
    """True for hidden and system files that are ignored (and counted), never paired."""
    return name.startswith(".") or name.lower() in SYSTEM_LITTER or name.startswith("._")


def is_image_name(name: str) -> bool:
    """True when the name has an image suffix datatool reads (.png, .tif, .tiff)."""
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


class PairEntry(BaseModel):
    """An image crop and its label, matched by stem. Either side may be missing."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Shared file stem, e.g. '0417_1_3'.")
    image: str | None = Field(description="Image crop path relative to the root, or null.")
    label: str | None = Field(description="Label crop path relative to the root, or null.")
    split: str | None = Field(default=None, description="Split folder name (tree layout).")
    sample_id: str | None = Field(default=None, description="Sample id parsed from the name.")
    fov: int | None = Field(default=None, description="Field of view n parsed from the name.")
    crop: int | None = Field(default=None, description="Crop index m parsed from the name.")


_ENTRY_FIELDS_SET = set(PairEntry.model_fields)
"""One set of explicitly set fields for every :class:`PairEntry` of a scan, which sets them all.

pydantic keeps that set per instance (728 bytes, most of an entry's memory);
since every field is in it, an assignment never changes it, so sharing it is
invisible."""


class SampleEntry(BaseModel):
    """One sample folder ``<split>/<id>_<split>/aligned/`` of a tree."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Sample id, e.g. '0417'.")
    split: str = Field(description="Split the sample lives in, e.g. 'validation'.")
    folder: str = Field(description="The sample's aligned/ folder relative to the root.")
    originals: dict[int, str] = Field(
        default_factory=dict, description="Original micrograph per field of view n."
    )
    tracing: str | None = Field(default=None, description="The original tracing, if present.")
    plan: str | None = Field(default=None, description="The crop plan file, if present.")
    pairs: list[PairEntry] = Field(default_factory=list, description="Crop pairs, by name.")


class LayoutIssue(BaseModel):
    """Something about the folder structure that is not as the layout says."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal[
        "unexpected-file",
        "bad-name",
        "bad-sample-folder",
        "missing-aligned",
        "empty-folder",
        "ambiguous-name",
        "unsafe-name",
        "unreadable-folder",
        "outside-link",
        "followed-link",
    ] = Field(description="What kind of structural issue it is.")
    path: str = Field(description="The path concerned, relative to the root.")
    detail: str = Field(description="A sentence for a person.")


class DatasetLayout(BaseModel):
    """The typed index of a dataset folder: samples, pairs and structural issues."""

    model_config = ConfigDict(extra="forbid")

    root: str = Field(description="Absolute path of the scanned folder.")
    kind: Literal["tree", "flat"] = Field(description="'tree' or 'flat' (image/ + label/).")
    samples: list[SampleEntry] = Field(default_factory=list, description="Samples (tree layout).")
    flat_pairs: list[PairEntry] = Field(default_factory=list, description="Pairs (flat layout).")
    manifest: str | None = Field(default=None, description="manifest.json at the root, if any.")
    ignored: list[str] = Field(default_factory=list, description="Hidden/system files ignored.")
    issues: list[LayoutIssue] = Field(default_factory=list, description="Structural issues.")

    @property
    def pairs(self) -> list[PairEntry]:
        """Every pair of the dataset, samples in order then flat pairs."""
        return [p for s in self.samples for p in s.pairs] + list(self.flat_pairs)

    @property
    def splits(self) -> list[str]:
        """Split names in order of appearance."""
        return list(dict.fromkeys(s.split for s in self.samples))

    def path(self, relative: str) -> Path:
        """Absolute path of a root-relative path from this layout."""
        return Path(self.root) / relative

    def sample(self, sample_id: str, split: str | None = None) -> SampleEntry:
        """The sample with this id (and split, when ids repeat across splits)."""
        for s in self.samples:
            if s.id == sample_id and (split is None or s.split == split):
                return s
        raise KeyError(sample_id)


class _Scanner:
    def __init__(self, root: Path, follow_links: bool = False) -> None:
        self.root = root
        self.follow_links = follow_links
        self.ignored: list[str] = []
        self.issues: list[LayoutIssue] = []

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _keep(self, entry: os.DirEntry) -> bool:
        """Record odd names and links leaving the root; False for entries not to read."""
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in entry.name):
            self.issue(
                "unsafe-name",
                Path(entry.path),
                f"the name {entry.name!r} contains a newline or control character; file "
                "lists and training loaders split on it: rename it",
            )
        if not entry.is_symlink():
            return True
        path = Path(entry.path)
        target = Path(os.path.realpath(entry.path))
        if target == self.root or target.is_relative_to(self.root):
            return True
        if self.follow_links:
            self.issue(
                "followed-link", path, f"symbolic link to {target}, outside the root: read only"
            )
            return True
        self.issue(
            "outside-link",
            path,
            f"symbolic link to {target}, outside the root: not read (--follow-links reads "
            "through it; nothing is ever written through it)",
        )
        return False

    def issue(self, kind: str, path: Path, detail: str) -> None:
        self.issues.append(LayoutIssue(kind=kind, path=self.rel(path), detail=detail))

    def entries(self, folder: Path) -> list[os.DirEntry]:
        """Children of ``folder`` without litter (counted), naturally sorted."""
        kept = []
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if is_litter(entry.name):
                        self.ignored.append(self.rel(Path(entry.path)))
                    elif self._keep(entry):
                        kept.append(entry)
        except OSError as exc:
            self.issue(
                "unreadable-folder",
                folder,
                f"cannot list this folder ({exc.strerror or exc}); nothing in it is checked",
            )
        return sorted(kept, key=lambda e: _natural_key(e.name))

    def dir_ok(self, path: Path) -> bool:
        """A folder to read: it exists and is no link leaving the root (unless followed)."""
        if not path.is_dir():
            return False
        if self.follow_links or not path.is_symlink():
            return True
        target = Path(os.path.realpath(path))
        return target == self.root or target.is_relative_to(self.root)

    def image_files(self, folder: Path) -> dict[str, str]:
        """Image files of ``folder``: root-relative path by stem; other files are unexpected.

        Works on names, not :class:`~pathlib.Path` objects (pathlib interns every
        name it parses, which keeps memory per file after the scan).
        """
        by_stem: dict[str, str] = {}
        prefix = self.rel(folder) + "/"
        for entry in self.entries(folder):
            stem = os.path.splitext(entry.name)[0]
            if entry.is_dir():
                self.issue(
                    "unexpected-file", Path(entry.path), "unexpected folder inside a crop folder"
                )
            elif not is_image_name(entry.name):
                self.issue(
                    "unexpected-file", Path(entry.path), "not an image file (.png, .tif, .tiff)"
                )
            elif stem in by_stem:
                self.issue(
                    "ambiguous-name",
                    Path(entry.path),
                    f"two files share the name {stem!r} "
                    f"({by_stem[stem].rsplit('/', 1)[-1]} and {entry.name}); pairing would be "
                    "ambiguous",
                )
            else:
                by_stem[stem] = prefix + entry.name
        if not by_stem and _is_empty(folder):
            self.issue("empty-folder", folder, "empty folder")
        return by_stem

    def pairs(self, folder: Path, split: str | None, sample_id: str | None) -> list[PairEntry]:
        images = self.image_files(folder / IMAGE_DIR) if self.dir_ok(folder / IMAGE_DIR) else {}
        labels = self.image_files(folder / LABEL_DIR) if self.dir_ok(folder / LABEL_DIR) else {}
        out = []
        for stem in sorted(set(images) | set(labels), key=_natural_key):
            parsed = parse_crop_stem(stem, sample_id)
            if parsed is None and sample_id is not None:
                where = images.get(stem) or labels[stem]
                self.issue(
                    "bad-name",
                    self.root / where,
                    f"crop name {stem!r} does not follow <id>_<n>_<m> with id {sample_id!r}",
                )
            entry = PairEntry(
                name=stem,
                image=images.get(stem),
                label=labels.get(stem),
                split=split,
                sample_id=parsed[0] if parsed else sample_id,
                fov=parsed[1] if parsed else None,
                crop=parsed[2] if parsed else None,
            )
            object.__setattr__(entry, "__pydantic_fields_set__", _ENTRY_FIELDS_SET)
            out.append(entry)
        return out

    def sample(self, folder: Path, split: str) -> SampleEntry | None:
        match = _SAMPLE_DIR.fullmatch(folder.name)
        if match is None or match["split"] != split:
            self.issue(
                "bad-sample-folder",
                folder,
                f"sample folder should be named <id>_{split}, e.g. 0417_{split}",
            )
            return None
        sample_id = match["id"]
        aligned = folder / ALIGNED_DIR
        for entry in self.entries(folder):
            if entry.name != ALIGNED_DIR:
                self.issue("unexpected-file", Path(entry.path), f"unexpected beside {ALIGNED_DIR}/")
        if not aligned.is_dir():
            self.issue("missing-aligned", folder, f"no {ALIGNED_DIR}/ folder in the sample")
            return None
        if not self.dir_ok(aligned):
            return None  # a link leaving the root, recorded as outside-link
        sample = SampleEntry(id=sample_id, split=split, folder=self.rel(aligned))
        original = re.compile(re.escape(sample_id) + r"_(\d+)")
        for entry in self.entries(aligned):
            path = Path(entry.path)
            if entry.is_dir():
                if entry.name not in (IMAGE_DIR, LABEL_DIR):
                    self.issue("unexpected-file", path, "unexpected folder in aligned/")
                continue
            if entry.name in PLAN_FILES:
                sample.plan = self.rel(path)
                continue
            if not is_image_name(entry.name):
                self.issue("unexpected-file", path, "not an image file (.png, .tif, .tiff)")
                continue
            stem = path.stem
            if stem == f"{sample_id}_{TRACE_SUFFIX}":
                sample.tracing = self.rel(path)
            elif (m := original.fullmatch(stem)) is not None:
                fov = int(m[1])
                if fov in sample.originals:
                    self.issue("ambiguous-name", path, f"field of view {fov} appears twice")
                else:
                    sample.originals[fov] = self.rel(path)
            else:
                self.issue(
                    "bad-name",
                    path,
                    f"expected {sample_id}_<n> (original) or {sample_id}_trace (tracing)",
                )
        sample.pairs = self.pairs(aligned, split, sample_id)
        return sample


def _is_empty(folder: Path) -> bool:
    try:
        with os.scandir(folder) as it:
            return not any(True for _ in it)
    except OSError:
        return False  # reported as unreadable-folder by the scan


def _holds_flat_pairs(folder: Path) -> bool:
    return (folder / IMAGE_DIR).is_dir() or (folder / LABEL_DIR).is_dir()


def _natural_key(name: str) -> list[object]:
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def scan(root: str | os.PathLike[str], *, follow_links: bool = False) -> DatasetLayout:
    """Read a dataset folder into a :class:`DatasetLayout` (paths only, no pixels).

    Parameters
    ----------
    root : path-like
        A tree (``<split>/<id>_<split>/aligned/...``) or a flat set (``image/`` and
        ``label/`` side by side).
    follow_links : bool
        Keep symbolic links whose target lies outside ``root`` (recorded as
        ``followed-link``); by default they are left out and recorded as
        ``outside-link``. Folders that cannot be listed are recorded as
        ``unreadable-folder``; names with a newline or control character as
        ``unsafe-name``.

    Raises
    ------
    UsageError
        ``root`` does not exist or is not a directory.
    """
    root_path = Path(root)
    if not root_path.exists():
        raise UsageError(f"{root}: no such folder")
    if not root_path.is_dir():
        raise UsageError(f"{root}: not a folder")
    root_path = root_path.resolve()
    scanner = _Scanner(root_path, follow_links)
    layout = DatasetLayout(root=str(root_path), kind="tree")
    top = scanner.entries(root_path)
    top_dirs = [e for e in top if e.is_dir()]
    split_dirs = [e for e in top_dirs if _holds_flat_pairs(Path(e.path))]
    if _holds_flat_pairs(root_path) or (top_dirs and len(split_dirs) == len(top_dirs)):
        # Flat: image/ + label/ here, and/or split folders that each hold image/ + label/.
        layout.kind = "flat"
        if _holds_flat_pairs(root_path):
            layout.flat_pairs = scanner.pairs(root_path, None, None)
        for entry in top:
            if entry.name == MANIFEST_FILE:
                layout.manifest = MANIFEST_FILE
            elif entry.name in (IMAGE_DIR, LABEL_DIR):
                continue
            elif entry.is_dir() and _holds_flat_pairs(Path(entry.path)):
                layout.flat_pairs.extend(scanner.pairs(Path(entry.path), entry.name, None))
                for inner in scanner.entries(Path(entry.path)):
                    if inner.name not in (IMAGE_DIR, LABEL_DIR):
                        scanner.issue(
                            "unexpected-file", Path(inner.path), "unexpected in a split folder"
                        )
            else:
                scanner.issue("unexpected-file", Path(entry.path), "unexpected in a flat set")
    else:
        for entry in top:
            path = Path(entry.path)
            if entry.name == MANIFEST_FILE:
                layout.manifest = MANIFEST_FILE
            elif not entry.is_dir():
                scanner.issue("unexpected-file", path, "unexpected file at the root of the tree")
            else:
                split_entries = scanner.entries(path)
                if not split_entries:
                    scanner.issue("empty-folder", path, "empty split folder")
                for sample_entry in split_entries:
                    if not sample_entry.is_dir():
                        scanner.issue(
                            "unexpected-file", Path(sample_entry.path), "unexpected file in a split"
                        )
                        continue
                    sample = scanner.sample(Path(sample_entry.path), entry.name)
                    if sample is not None:
                        layout.samples.append(sample)
    layout.ignored = scanner.ignored
    layout.issues = scanner.issues
    return layout


_IMAGE_FOLDER_NAMES = ("images", "imgs", "img", "input", "inputs", "micrographs", "raw")
_LABEL_FOLDER_NAMES = ("masks", "mask", "labels", "annotations", "gt", "ground_truth", "traces")
_LABEL_NAME_ENDINGS = ("_mask", "_label", "_labels", "_gt", "_trace", "_seg")
LOOKED_FOR = (
    "<split>/<id>_<split>/aligned/image/ + label/ (tree) or image/ + label/ (flat set), "
    "with the same file names on both sides"
)


def _listing(folder: Path) -> tuple[list[str], list[str]]:
    """Visible sub-folder names and image file names of ``folder`` (empty when unreadable)."""
    try:
        with os.scandir(folder) as it:
            entries = [e for e in it if not is_litter(e.name)]
    except OSError:
        return [], []
    dirs = sorted(e.name for e in entries if e.is_dir())
    images = sorted(e.name for e in entries if not e.is_dir() and is_image_name(e.name))
    return dirs, images


def _stems(folder: Path) -> set[str]:
    return {Path(name).stem for name in _listing(folder)[1]}


def diagnose_empty(root: str | os.PathLike[str]) -> str:
    """Say why a folder yields no image/label pair: what was looked for, what was seen, advice.

    Knows the usual mistakes: ``images/`` + ``masks/`` instead of ``image/`` +
    ``label/``, a flat folder of image files, the folder above
    ``training_validation_data``, label names with a ``_mask`` ending, and a
    tree whose crops are not built yet.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     (Path(d) / "images").mkdir(); (Path(d) / "masks").mkdir()
    ...     "name them image/ and label/" in diagnose_empty(d)
    True
    """
    root_path = Path(root)
    dirs, images = _listing(root_path)
    lower = {d.lower(): d for d in dirs}
    seen = ", ".join([f"{d}/" for d in dirs[:6]] + images[:3]) or "nothing"
    if len(dirs) + len(images) > 9:
        seen += f", ... ({len(dirs)} folders, {len(images)} image files)"
    head = f"no image/label pairs in {root}: looked for {LOOKED_FOR}; found {seen}"
    if "training_validation_data" in dirs:
        return f"{head}: did you mean {root_path / 'training_validation_data'}?"
    image_dir = next((lower[n] for n in _IMAGE_FOLDER_NAMES if n in lower), None)
    label_dir = next((lower[n] for n in _LABEL_FOLDER_NAMES if n in lower), None)
    if IMAGE_DIR in dirs and label_dir and LABEL_DIR not in dirs:
        image_dir = IMAGE_DIR
    if image_dir and label_dir and (image_dir, label_dir) != (IMAGE_DIR, LABEL_DIR):
        return f"{head}: found {image_dir}/ and {label_dir}/: name them image/ and label/"
    if IMAGE_DIR in dirs and LABEL_DIR in dirs:
        return f"{head}: {_mismatch_advice(root_path / IMAGE_DIR, root_path / LABEL_DIR)}"
    if images and not dirs:
        return (
            f"{head}: a flat folder of {len(images)} image file(s): put the micrographs in "
            "image/ and each label, under the same file name, in label/"
        )
    trees = _unbuilt_samples(root_path, dirs)
    if trees:
        return (
            f"{head}: {trees} sample folder(s) hold originals but no crops yet: run "
            f"`datatool build {root}`"
        )
    return f"{head}: arrange the files as image/ + label/, or as the tree shown in the README"


def _mismatch_advice(image_dir: Path, label_dir: Path) -> str:
    images, labels = _stems(image_dir), _stems(label_dir)
    if not images or not labels:
        empty = "image/" if not images else "label/"
        return f"{empty} holds no image file (.png, .tif, .tiff)"
    for ending in _LABEL_NAME_ENDINGS:
        stripped = {s[: -len(ending)] for s in labels if s.endswith(ending)}
        if stripped and stripped & images:
            return (
                f"file names in label/ end in {ending} (e.g. {sorted(stripped & images)[0]}"
                f"{ending}): labels are matched by the same name in label/; rename them "
                "without the ending"
            )
    return (
        f"no file name appears in both image/ ({len(images)} files) and label/ "
        f"({len(labels)} files): labels are matched by the same name in label/"
    )


def _unbuilt_samples(root: Path, dirs: list[str]) -> int:
    count = 0
    for split in dirs:
        for sample in _listing(root / split)[0]:
            if _listing(root / split / sample / ALIGNED_DIR)[1]:
                count += 1
    return count
