"""``datatool build``: from originals, a tracing and a crop plan to aligned crop pairs.

For every sample of a tree, the same boxes of its crop plan are cut from every
field of view ``<id>_<n>.png`` and from the processed tracing, so each image
crop ``image/<id>_<n>_<m>.png`` has its own label ``label/<id>_<n>_<m>.png``.

Coordinates
-----------
Boxes are ``[left, top, width, height]`` in the pixel coordinates of the
*border-stripped* original. With the usual scale-bar strip at the bottom (or
right) these are the raw original's coordinates too; with a strip at the top or
left they are shifted by its size. A box reaching into the strip is refused.

Processing
----------
1. The scale-bar strip is detected on every field of view (the largest strip
   per side wins) unless ``BuildOptions.border`` or the plan's ``border`` gives
   it; the tracing loses the same strip.
2. The whole stripped tracing is binarized (Otsu unless a threshold is given),
   made white-on-black, thinned to 1 px and dilated to the line width, once;
   label crops are cut from it.
3. Image crops are the stripped original's pixels (16-bit originals are
   rounded to 8 bit); ``resolution`` resizes image crops by area averaging and
   label crops with :func:`datatool.labels.resize_label`.

Safety
------
Every input is hashed and every plan validated before anything is written.
Outputs are written atomically and only when their bytes change. A crop that
exists, differs from what the build would write and was not written by an
earlier build (per ``manifest.json``) is kept unless ``force`` is set. The
manifest is rewritten only when its content changes, so a second build is a
no-op byte for byte.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
)

from datatool import __version__, io, labels, layout
from datatool.crop import Border, Box, cut, detect_border, resize_image, strip_border
from datatool.errors import DatatoolError, UsageError

BoxSpec = tuple[StrictInt, StrictInt, StrictInt, StrictInt]
_TEMP_NAME = re.compile(r"^\..+\.png\..+\.tmp$")


# --------------------------------------------------------------------------- models


class BorderSides(BaseModel):
    """Pixels removed from each side of an original (the scale-bar / data-bar strip)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top: int = Field(default=0, ge=0, description="Rows removed at the top, px.")
    bottom: int = Field(default=0, ge=0, description="Rows removed at the bottom, px.")
    left: int = Field(default=0, ge=0, description="Columns removed at the left, px.")
    right: int = Field(default=0, ge=0, description="Columns removed at the right, px.")

    def to_border(self) -> Border:
        """The :class:`datatool.crop.Border` with the same sides."""
        return Border(top=self.top, bottom=self.bottom, left=self.left, right=self.right)

    @classmethod
    def of(cls, border: Border) -> BorderSides:
        """From a :class:`datatool.crop.Border`."""
        return cls(top=border.top, bottom=border.bottom, left=border.left, right=border.right)

    def describe(self) -> str:
        """``'bottom 24 px'``, or ``'none'``."""
        return self.to_border().describe()


class CropPlan(BaseModel):
    """A sample's crop plan (``aligned/crops.json``): the boxes cut from every field of view.

    Crop index m is the 1-based position of a box in ``boxes``.
    """

    model_config = ConfigDict(extra="forbid")

    boxes: list[BoxSpec] = Field(
        description=(
            "Boxes [left, top, width, height] in px, in the coordinates of the original "
            "with its scale-bar strip removed (the raw original's when the strip is at the "
            "bottom or right). Crop m is the m-th box, from 1."
        )
    )
    crop_size: StrictInt | None = Field(
        default=None,
        gt=0,
        description="When set, every box must be a square of this side, px.",
    )
    border: BorderSides | None = Field(
        default=None,
        description=(
            "Scale-bar strip of this sample's originals, when detection gets it wrong; "
            "the build's --border option overrides it."
        ),
    )
    note: str | None = Field(default=None, description="Free text for people, e.g. who drew it.")


class BuildOptions(BaseModel):
    """Parameters of ``datatool build``; recorded in full in the manifest."""

    model_config = ConfigDict(extra="forbid")

    line_width: int = Field(
        default=3, ge=1, le=64, description="Label line width in px (1: skeleton)."
    )
    threshold: float | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Tracing binarization threshold in its grey levels; Otsu's when null.",
    )
    border: BorderSides | None = Field(
        default=None,
        description=(
            "Strip to remove from every original and tracing instead of detecting it; "
            "an integer means that many rows at the bottom."
        ),
    )
    resolution: int | None = Field(
        default=None,
        ge=16,
        le=8192,
        description="Resize every crop to N x N px; null keeps the box size.",
    )
    force: bool = Field(
        default=False, description="Overwrite crops that were edited since they were built."
    )

    @field_validator("border", mode="before")
    @classmethod
    def _bottom_rows(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"bottom": value}
        return value


class BuildEntry(BaseModel):
    """One file the build wrote (or kept): where it came from and its hashes."""

    model_config = ConfigDict(extra="forbid")

    output: str = Field(description="The crop, relative to the root.")
    role: Literal["image", "label"] = Field(description="Image crop or label crop.")
    sample: str = Field(description="Sample id.")
    split: str = Field(description="Split the sample lives in.")
    fov: int = Field(description="Field of view n.")
    crop: int = Field(description="Crop index m (1-based position of the box in the plan).")
    source: str = Field(description="The original (image) or tracing (label), root-relative.")
    box: tuple[int, int, int, int] = Field(
        description="[left, top, width, height] in the border-stripped source, px."
    )
    border: BorderSides = Field(description="Strip removed from the source before cutting.")
    source_sha256: str = Field(description="sha256 of the source file, taken before writing.")
    output_sha256: str = Field(description="sha256 of the output file as it is on disk.")
    width: int = Field(description="Output width, px.")
    height: int = Field(description="Output height, px.")
    edited: bool = Field(
        default=False,
        description=(
            "True when the file on disk was edited after a build and kept; its sha256 is "
            "then the edited file's."
        ),
    )


class BuildSample(BaseModel):
    """How one sample was built."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Sample id.")
    split: str = Field(description="Split the sample lives in.")
    plan: str = Field(description="Crop plan used (root-relative, or as given).")
    plan_sha256: str = Field(description="sha256 of the crop plan file.")
    tracing: str = Field(description="The tracing, root-relative.")
    border: BorderSides = Field(description="Strip removed from originals and tracing.")
    border_from: Literal["option", "plan", "detected"] = Field(
        description="Where the strip came from: --border, the plan, or detection."
    )
    threshold: float = Field(description="Threshold used to binarize the tracing.")
    parameters: BuildOptions = Field(description="Parameters this sample was built with.")


class BuildManifest(BaseModel):
    """``manifest.json`` written at the root by ``datatool build``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["build"] = Field(default="build", description="Always 'build'.")
    tool_version: str = Field(description="datatool version that wrote the manifest.")
    created: datetime = Field(description="When the manifest content last changed (UTC).")
    parameters: BuildOptions = Field(description="Parameters of the build that wrote it.")
    samples: list[BuildSample] = Field(description="Samples built, in layout order.")
    entries: list[BuildEntry] = Field(description="Every crop file, image and label.")


# --------------------------------------------------------------------------- plans


def _box_label(index: int, boxes: list | None = None) -> str:
    raw = boxes[index] if boxes is not None and index < len(boxes) else None
    shown = json.dumps(raw) if raw is not None else "?"
    return f"box {index + 1} {shown}"


def _validation_message(exc: ValidationError, data: object) -> str:
    boxes = data.get("boxes") if isinstance(data, dict) else None
    boxes = boxes if isinstance(boxes, list) else None
    parts = []
    for error in exc.errors():
        loc = error["loc"]
        if len(loc) >= 2 and loc[0] == "boxes" and isinstance(loc[1], int):
            what = _box_label(loc[1], boxes)
            if len(loc) == 2 or error["type"] == "missing":
                parts.append(f"{what}: expected [left, top, width, height] ({error['msg']})")
            else:
                parts.append(f"{what}: value {error['input']!r}: {error['msg']}")
        else:
            parts.append(f"{'.'.join(str(p) for p in loc) or 'plan'}: {error['msg']}")
    return "; ".join(dict.fromkeys(parts))


def plan_problems(
    plan: CropPlan, image_shape: tuple[int, int] | None = None, border: Border | None = None
) -> list[str]:
    """Every problem of a plan, one sentence each naming the box; empty when it is good.

    Parameters
    ----------
    plan : CropPlan
    image_shape : (H, W), optional
        Shape of the *border-stripped* original; bounds are checked when given.
    border : Border, optional
        The strip that was removed, to say when a box reaches into it.
    """
    problems = []
    if not plan.boxes:
        problems.append("no boxes")
    seen: dict[tuple[int, ...], int] = {}
    shown = [list(b) for b in plan.boxes]
    for index, box in enumerate(plan.boxes):
        left, top, width, height = box
        what = _box_label(index, shown)
        if width <= 0 or height <= 0:
            problems.append(f"{what}: zero or negative size {width} x {height}")
            continue
        if left < 0 or top < 0:
            problems.append(f"{what}: negative position ({left}, {top})")
            continue
        if plan.crop_size is not None and (width, height) != (plan.crop_size, plan.crop_size):
            problems.append(f"{what}: {width} x {height} px but crop_size is {plan.crop_size}")
        if tuple(box) in seen:
            problems.append(f"{what}: duplicate of box {seen[tuple(box)] + 1}")
        else:
            seen[tuple(box)] = index
        if image_shape is not None:
            h, w = image_shape
            if left + width > w or top + height > h:
                where = f"reaches outside the image ({w} x {h} px"
                if border is not None and border.total:
                    where += f" once the {border.describe()} strip is removed"
                problems.append(f"{what}: {where}; box ends at x={left + width}, y={top + height})")
    return problems


def _join(problems: list[str], limit: int = 8) -> str:
    more = f"; ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more


def load_plan(path: str | Path) -> CropPlan:
    """Read and check a crop plan file (JSON); bounds are checked later by :func:`validate_plan`.

    Raises
    ------
    DatatoolError
        The file is missing, not JSON, has wrong fields or types, an empty list,
        zero-size, negative or duplicate boxes; the message names the box.
    """
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        raise DatatoolError(f"{path}: YAML crop plans are not supported; write crops.json")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatatoolError(f"{path}: cannot read the crop plan ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise DatatoolError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "a crop plan is JSON saved as UTF-8"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatatoolError(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise DatatoolError(
            f"{path}: JSON nested too deeply to be a crop plan (expected "
            '{"boxes": [[left, top, width, height], ...]})'
        ) from None
    if isinstance(data, list):  # a bare list of boxes is the simplest plan of all
        data = {"boxes": data}
    try:
        plan = CropPlan.model_validate(data)
    except ValidationError as exc:
        raise DatatoolError(f"{path}: {_validation_message(exc, data)}") from None
    problems = plan_problems(plan)
    if problems:
        raise DatatoolError(f"{path}: {_join(problems)}")
    return plan


def validate_plan(
    plan: CropPlan,
    image_shape: tuple[int, int],
    *,
    source: str = "crop plan",
    border: Border | None = None,
) -> None:
    """Raise :class:`DatatoolError` naming every bad box of ``plan`` for this image.

    ``image_shape`` is the ``(H, W)`` of the border-stripped original.
    """
    problems = plan_problems(plan, image_shape, border)
    if problems:
        raise DatatoolError(f"{source}: {_join(problems)}")


def format_plan(plan: CropPlan) -> str:
    """JSON text of a plan with one box per line, easy to edit by hand."""
    lines = ["{", '  "boxes": [']
    boxes = [json.dumps(list(b)) for b in plan.boxes]
    lines += [f"    {b}," for b in boxes[:-1]] + ([f"    {boxes[-1]}"] if boxes else [])
    lines.append("  ]")
    extra = plan.model_dump(exclude={"boxes"}, exclude_none=True)
    body = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in extra.items()]
    if body:
        lines[-1] += ","
        lines += [b + "," for b in body[:-1]] + [body[-1]]
    lines.append("}")
    return "\n".join(lines) + "\n"


def parse_border(text: str) -> BorderSides:
    """``"24"`` (rows at the bottom) or ``"bottom=24,left=8"`` to :class:`BorderSides`.

    Raises
    ------
    UsageError
        The text is neither form.
    """
    text = text.strip()
    if text.isdigit():
        return BorderSides(bottom=int(text))
    sides: dict[str, int] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip().lower()
        if name not in ("top", "bottom", "left", "right") or not value.strip().isdigit():
            raise UsageError(
                f"--border {text!r}: expected a pixel count (bottom) or e.g. 'bottom=24,left=0'"
            )
        sides[name] = int(value)
    return BorderSides(**sides)


# --------------------------------------------------------------------------- pixels


def to_uint8(grey: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 as is; uint16 rounded to 8 bit (``v / 257``)."""
    if grey.dtype == np.uint8:
        return grey
    if grey.dtype == np.uint16:
        return np.round(grey.astype(np.float32) / 257.0).astype(np.uint8)
    raise TypeError(f"expected uint8 or uint16 pixels, got {grey.dtype}")


def image_crop(stripped: np.ndarray, box: Box, resolution: int | None = None) -> np.ndarray:
    """The ``(h, w)`` uint8 image crop at ``box``, resized by area averaging to ``resolution``."""
    pixels = to_uint8(cut(stripped, box))
    if resolution is None:
        return np.ascontiguousarray(pixels)
    return np.clip(np.round(resize_image(pixels, resolution)), 0, 255).astype(np.uint8)


def label_crop(
    label_full: np.ndarray, box: Box, line_width: int, resolution: int | None = None
) -> np.ndarray:
    """The ``(h, w)`` bool label crop at ``box`` of the processed tracing, resized if asked."""
    mask = cut(label_full, box)
    if resolution is None:
        return np.ascontiguousarray(mask)
    return labels.resize_label(mask, resolution, line_width)


def detect_sample_border(originals: dict[int, np.ndarray]) -> tuple[Border, dict[int, Border]]:
    """The strip of a sample: the largest detected per side over its fields of view.

    Returns the combined border and each field of view's own detection, so a
    disagreement can be reported.
    """
    found = {fov: detect_border(grey) for fov, grey in originals.items()}
    combined = Border(
        top=max(b.top for b in found.values()),
        bottom=max(b.bottom for b in found.values()),
        left=max(b.left for b in found.values()),
        right=max(b.right for b in found.values()),
    )
    return combined, found


# --------------------------------------------------------------------------- build


@dataclass
class SampleSummary:
    """What happened to one sample, for the command's output."""

    id: str
    split: str
    border: Border
    border_from: str
    border_note: str | None
    fields_of_view: int
    boxes: int
    threshold: float


@dataclass
class BuildResult:
    """What a build did. Paths are root-relative."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    removed_temp: list[str] = field(default_factory=list)
    samples: list[SampleSummary] = field(default_factory=list)
    manifest: Path | None = None
    manifest_written: bool = False


@dataclass
class _Prepared:
    sample: layout.SampleEntry
    plan: CropPlan
    plan_name: str
    plan_sha: str
    border: Border
    border_from: str
    border_note: str | None
    hashes: dict[str, str]
    max_pixels: int | None = io.DEFAULT_MAX_PIXELS


def _rel_or_given(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _select(lay: layout.DatasetLayout, samples: list[str] | None) -> list[layout.SampleEntry]:
    if lay.kind != "tree":
        raise DatatoolError(
            f"{lay.root}: build needs a tree <split>/<id>_<split>/aligned/ with originals, "
            "not a flat image/ + label/ set"
        )
    if not samples:
        if not lay.samples:
            raise DatatoolError(f"{lay.root}: no sample folders <split>/<id>_<split>/aligned/")
        return list(lay.samples)
    known = {s.id for s in lay.samples}
    missing = [s for s in samples if s not in known]
    if missing:
        raise DatatoolError(
            f"{lay.root}: no sample {', '.join(missing)} (samples: {', '.join(sorted(known))})"
        )
    return [s for s in lay.samples if s.id in samples]


def _decode_inputs(
    root: Path, sample: layout.SampleEntry, max_pixels: int | None = io.DEFAULT_MAX_PIXELS
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    if not sample.originals:
        raise DatatoolError(
            f"{sample.folder}: no original {layout.original_name(sample.id, 1)} "
            "(fields of view <id>_<n>.png)"
        )
    if sample.tracing is None:
        raise DatatoolError(f"{sample.folder}: no tracing {layout.tracing_name(sample.id)}")
    originals = {
        fov: io.read_grey(root / rel, max_pixels=max_pixels)
        for fov, rel in sorted(sample.originals.items())
    }
    tracing = io.read_grey(root / sample.tracing, role="tracing", max_pixels=max_pixels)
    if tracing.size and int(tracing.max()) == int(tracing.min()):
        raise DatatoolError(
            f"{sample.tracing}: every pixel is grey level {int(tracing.min())}: nothing is "
            "traced (lines only in a colour channel or layer that was not exported?)"
        )
    first_fov = min(originals)
    shape = originals[first_fov].shape
    for fov, grey in originals.items():
        if grey.shape != shape:
            raise DatatoolError(
                f"{sample.originals[fov]}: {grey.shape[1]} x {grey.shape[0]} px, but "
                f"{sample.originals[first_fov]} is {shape[1]} x {shape[0]} px; fields of view "
                "must share one size"
            )
    if tracing.shape != shape:
        raise DatatoolError(
            f"{sample.tracing}: {tracing.shape[1]} x {tracing.shape[0]} px, but the originals "
            f"are {shape[1]} x {shape[0]} px"
        )
    return originals, tracing


def _prepare(
    root: Path,
    sample: layout.SampleEntry,
    options: BuildOptions,
    plan_override: Path | None,
    max_pixels: int | None = io.DEFAULT_MAX_PIXELS,
) -> _Prepared:
    """Hash and decode the inputs, settle the border and validate the plan; writes nothing."""
    if plan_override is not None:
        plan_path = plan_override
    elif sample.plan is not None:
        plan_path = root / sample.plan
    else:
        raise DatatoolError(
            f"{sample.folder}: no crop plan {layout.PLAN_FILES[0]}; write one or run "
            f"`datatool plan ROOT --sample {sample.id}`"
        )
    plan_name = _rel_or_given(plan_path, root)
    plan = load_plan(plan_path)
    hashes = {plan_name: io.sha256_file(plan_path)}
    inputs = [*sample.originals.values()] + ([sample.tracing] if sample.tracing else [])
    for rel in inputs:
        hashes[rel] = io.sha256_file(root / rel)
    originals, tracing = _decode_inputs(root, sample, max_pixels)
    note = None
    if options.border is not None:
        border, border_from = options.border.to_border(), "option"
    elif plan.border is not None:
        border, border_from = plan.border.to_border(), "plan"
    else:
        border, found = detect_sample_border(originals)
        border_from = "detected"
        if len(set(found.values())) > 1:
            note = (
                "fields of view disagree ("
                + ", ".join(f"{n}: {b.describe()}" for n, b in sorted(found.items()))
                + "); the largest strip per side is removed from all"
            )
    shape = next(iter(originals.values())).shape
    try:
        stripped_shape = strip_border(np.empty(shape, np.uint8), border).shape
    except ValueError:
        raise DatatoolError(
            f"{sample.folder}: border {border.describe()} removes the whole "
            f"{shape[1]} x {shape[0]} px original"
        ) from None
    validate_plan(plan, stripped_shape, source=plan_name, border=border)
    if options.threshold is not None:
        # A threshold outside the tracing's grey levels gives empty labels that would pass
        # every size check; refuse it before anything is written.
        lines = labels.line_mask(strip_border(tracing, border), options.threshold)
        if not lines.any():
            low, high = int(tracing.min()), int(tracing.max())
            raise DatatoolError(
                f"{sample.tracing}: threshold {options.threshold:g} leaves no lines "
                f"(the tracing's grey levels are {low}..{high})"
            )
    return _Prepared(
        sample, plan, plan_name, hashes[plan_name], border, border_from, note, hashes, max_pixels
    )


def _inside(root: Path, path: Path) -> bool:
    """True when ``path``, with every link on the way resolved, lies inside ``root``."""
    real_root = Path(os.path.realpath(root))
    target = Path(os.path.realpath(path))
    return target == real_root or target.is_relative_to(real_root)


def refuse_outside_root(root: Path, rel: str) -> None:
    """Raise when writing ``root / rel`` would go through a link to a place outside ``root``.

    Raises
    ------
    DatatoolError
        Naming the file and where the link leads.
    """
    if not _inside(root, root / rel):
        raise DatatoolError(
            f"{rel}: refusing to write: the path leads through a symbolic link to "
            f"{os.path.realpath(root / rel)}, outside {root}; nothing was written for this "
            "sample"
        )


def _refuse_lost_lines(
    prep: _Prepared,
    stripped_tracing: np.ndarray,
    label_full: np.ndarray,
    threshold: float,
    line_width: int,
) -> None:
    """Refuse to write an empty label crop where the tracing has lines inside the box.

    Lines crossing only the box's edge can leave an empty crop legitimately, so
    only drawn pixels at least two line widths inside the box count.
    """
    drawn = labels.line_mask(stripped_tracing, threshold)
    margin = max(3, 2 * line_width)
    for m, box in enumerate(prep.plan.boxes, start=1):
        box = tuple(int(v) for v in box)
        if cut(label_full, box).any():
            continue
        inner = cut(drawn, box)[margin:-margin, margin:-margin]
        if int(inner.sum()) >= 16:
            raise DatatoolError(
                f"{prep.sample.tracing}: box {m} {list(box)} of {prep.plan_name} would get an "
                f"empty label, but the tracing has {int(inner.sum())} drawn pixels inside it "
                f"(threshold {threshold:g}); nothing was written for this sample"
            )


def _previous_manifest(path: Path, force: bool) -> BuildManifest | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("kind") == "build":
            return BuildManifest.model_validate(data)
        kind = data.get("kind") if isinstance(data, dict) else None
        reason = f"a {kind!r} manifest" if kind else "not a build manifest"
    except (OSError, ValueError) as exc:
        reason = f"unreadable ({str(exc).splitlines()[0]})"
    if force:
        return None
    raise DatatoolError(f"{path}: {reason}; the build would replace it (use --force to allow that)")


def _remove_stale_temps(folder: Path, root: Path) -> list[str]:
    """Remove temporary files a killed build left behind (``.<name>.png.<random>.tmp``)."""
    removed = []
    for sub in (layout.IMAGE_DIR, layout.LABEL_DIR):
        if not (folder / sub).is_dir() or not _inside(root, folder / sub):
            continue
        for path in sorted((folder / sub).iterdir()):
            if _TEMP_NAME.match(path.name) and path.is_file():
                path.unlink()
                removed.append(path.relative_to(root).as_posix())
    return removed


class _Journal:
    """The sha256 of every file a build is about to write, on disk until the manifest is.

    A build killed after overwriting some of its own earlier crops would otherwise
    leave files that match neither the old manifest nor the new one, and the next
    build would take them for hand edits. Hidden name: layouts ignore it.
    """

    NAME = ".datatool-build-journal.json"

    def __init__(self, root: Path) -> None:
        self.path = root / self.NAME
        self.pending: dict[str, str] = {}
        self.earlier: dict[str, str] = {}
        if self.path.exists():
            try:
                self.earlier = dict(json.loads(self.path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError):
                self.earlier = {}

    def ours(self, rel: str, sha: str) -> bool:
        """True when an interrupted earlier build meant to write ``sha`` to ``rel``."""
        return self.earlier.get(rel) == sha

    def announce(self, files: dict[str, str]) -> None:
        self.pending.update(files)
        io.atomic_write_text(self.path, json.dumps({**self.earlier, **self.pending}, indent=0))

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


def _decide(
    path: Path,
    rel: str,
    data: bytes,
    previous: dict[str, BuildEntry],
    journal: _Journal,
    force: bool,
) -> tuple[str, str]:
    """What to do with one output: ``("unchanged"|"write"|"replace"|"keep", sha on disk after)``."""
    new_sha = io.sha256_bytes(data)
    if not path.exists():
        return "write", new_sha
    old = path.read_bytes()
    if old == data:
        return "unchanged", new_sha
    old_sha = io.sha256_bytes(old)
    before = previous.get(rel)
    ours = (
        before is not None and not before.edited and before.output_sha256 == old_sha
    ) or journal.ours(rel, old_sha)
    if ours:
        return "write", new_sha
    return ("replace", new_sha) if force else ("keep", old_sha)


def _build_sample(
    root: Path,
    prep: _Prepared,
    options: BuildOptions,
    previous: dict[str, BuildEntry],
    journal: _Journal,
    result: BuildResult,
) -> tuple[BuildSample, list[BuildEntry]]:
    sample = prep.sample
    folder = root / sample.folder
    result.removed_temp += _remove_stale_temps(folder, root)
    originals, tracing = _decode_inputs(root, sample, prep.max_pixels)
    stripped_tracing = strip_border(tracing, prep.border)
    threshold = (
        labels.otsu_threshold(stripped_tracing) if options.threshold is None else options.threshold
    )
    label_full = labels.process_tracing(stripped_tracing, options.line_width, threshold)
    _refuse_lost_lines(prep, stripped_tracing, label_full, threshold, options.line_width)
    sides = BorderSides.of(prep.border)
    planned: list[tuple[BuildEntry, bytes, str]] = []
    for fov, original in originals.items():
        stripped = strip_border(original, prep.border)
        for m, box in enumerate(prep.plan.boxes, start=1):
            box = tuple(int(v) for v in box)
            stem = layout.crop_stem(sample.id, fov, m)
            outputs = (
                ("image", sample.originals[fov], image_crop(stripped, box, options.resolution)),
                (
                    "label",
                    sample.tracing,
                    label_crop(label_full, box, options.line_width, options.resolution),
                ),
            )
            for role, source, pixels in outputs:
                rel = f"{sample.folder}/{role}/{stem}.png"
                data = io.encode_png(pixels)
                action, sha = _decide(root / rel, rel, data, previous, journal, options.force)
                entry = BuildEntry(
                    output=rel,
                    role=role,
                    sample=sample.id,
                    split=sample.split,
                    fov=fov,
                    crop=m,
                    source=source,
                    box=box,
                    border=sides,
                    source_sha256=prep.hashes[source],
                    output_sha256=sha,
                    width=int(pixels.shape[1]),
                    height=int(pixels.shape[0]),
                    edited=action == "keep",
                )
                planned.append((entry, data, action))
    to_write = {e.output: e.output_sha256 for e, _, a in planned if a in ("write", "replace")}
    for rel in to_write:
        refuse_outside_root(root, rel)
    if to_write:
        journal.announce(to_write)
    for entry, data, action in planned:
        if action in ("write", "replace"):
            io.atomic_write_bytes(root / entry.output, data)
            result.written.append(entry.output)
        {"replace": result.replaced, "keep": result.kept, "unchanged": result.unchanged}.get(
            action, []
        ).append(entry.output)
    entries = [e for e, _, _ in planned]
    produced = {e.output for e in entries}
    for pair in sample.pairs:
        for rel in (pair.image, pair.label):
            if rel is not None and rel not in produced:
                result.stale.append(rel)
    record = BuildSample(
        id=sample.id,
        split=sample.split,
        plan=prep.plan_name,
        plan_sha256=prep.plan_sha,
        tracing=sample.tracing or "",
        border=sides,
        border_from=prep.border_from,
        threshold=float(threshold),
        parameters=options,
    )
    result.samples.append(
        SampleSummary(
            sample.id,
            sample.split,
            prep.border,
            prep.border_from,
            prep.border_note,
            len(originals),
            len(prep.plan.boxes),
            float(threshold),
        )
    )
    return record, entries


def build(
    root: str | Path,
    options: BuildOptions | None = None,
    samples: list[str] | None = None,
    plan_override: str | Path | None = None,
    *,
    max_pixels: int | None = io.DEFAULT_MAX_PIXELS,
    follow_links: bool = False,
) -> BuildResult:
    """Build the crop pairs of every sample (or of ``samples``) and write ``manifest.json``.

    Parameters
    ----------
    root : path
        A ``training_validation_data`` tree.
    options : BuildOptions, optional
    samples : list of str, optional
        Sample ids to build; all when omitted. Other samples' manifest records
        are carried over.
    plan_override : path, optional
        A crop plan used for the selected samples instead of their ``crops.json``.
    max_pixels : int or None
        Pixel budget per original and tracing (see :func:`datatool.io.read_image`).
    follow_links : bool
        Read samples through symbolic links that leave ``root``; nothing is
        ever written through such a link (the sample is refused).

    Returns
    -------
    BuildResult

    Raises
    ------
    DatatoolError
        Missing or unreadable originals or tracing, a bad plan, a foreign
        manifest; raised before anything is written.
    """
    options = options or BuildOptions()
    lay = layout.scan(root, follow_links=follow_links)
    root_path = Path(lay.root)
    selected = _select(lay, samples)
    manifest_path = root_path / layout.MANIFEST_FILE
    previous = _previous_manifest(manifest_path, options.force)
    override = Path(plan_override) if plan_override is not None else None
    prepared = [_prepare(root_path, s, options, override, max_pixels) for s in selected]

    result = BuildResult(manifest=manifest_path)
    previous_entries = {e.output: e for e in previous.entries} if previous else {}
    records: dict[tuple[str, str], BuildSample] = {}
    entries_by_sample: dict[tuple[str, str], list[BuildEntry]] = {}
    if previous is not None:
        present = {(s.id, s.split) for s in lay.samples}
        for rec in previous.samples:
            if (rec.id, rec.split) in present:
                records[(rec.id, rec.split)] = rec
                entries_by_sample[(rec.id, rec.split)] = [
                    e for e in previous.entries if (e.sample, e.split) == (rec.id, rec.split)
                ]
    journal = _Journal(root_path)
    for prep in prepared:
        record, entries = _build_sample(root_path, prep, options, previous_entries, journal, result)
        records[(record.id, record.split)] = record
        entries_by_sample[(record.id, record.split)] = entries

    order = [(s.id, s.split) for s in lay.samples if (s.id, s.split) in records]
    manifest = BuildManifest(
        tool_version=__version__,
        created=datetime.now(UTC).replace(microsecond=0),
        parameters=options,
        samples=[records[key] for key in order],
        entries=[e for key in order for e in entries_by_sample[key]],
    )
    if previous is not None and manifest.model_dump(exclude={"created"}) == previous.model_dump(
        exclude={"created"}
    ):
        manifest.created = previous.created
    text = manifest.model_dump_json(indent=2) + "\n"
    if not manifest_path.exists() or manifest_path.read_text(encoding="utf-8") != text:
        io.atomic_write_text(manifest_path, text)
        result.manifest_written = True
    journal.close()
    return result
