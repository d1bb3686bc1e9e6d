"""Findings and reports: validation results as data.

A check never raises on bad data; it *yields* :class:`Finding` objects. The
engine collects all of them and builds one :class:`Report`, which decides
``ok`` at the end (errors fail; with ``strict`` warnings fail too).
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Severity(StrEnum):
    """How bad a finding is. Errors fail a check; warnings fail only with ``--strict``."""

    error = "error"
    warning = "warning"
    info = "info"

    @property
    def rank(self) -> int:
        """0 for errors, 1 for warnings, 2 for info: sorts the worst first."""
        return {"error": 0, "warning": 1, "info": 2}[self.value]


class _SharedFieldsSet(set):
    """A model's set of explicitly set fields, shared by many instances (copied before it grows)."""

    __slots__ = ()


_SHARED_FIELDS_SETS: dict[frozenset[str], _SharedFieldsSet] = {}


def share_fields_set(model: BaseModel) -> None:
    """Let ``model`` share its set of explicitly set fields with every model that set the same.

    pydantic keeps that set per instance (728 bytes for 5 to 18 fields): most
    of the memory of a small model. A check of 10,000 pairs holds tens of
    thousands of :class:`Finding` and :class:`PairStats`, nearly all with one
    of a handful of sets. The shared set is copied before an assignment adds
    a field to it (:class:`_SharedFieldsModel`), so ``model_fields_set`` stays
    exactly the instance's own. A model of another class is left as it is.
    """
    if not isinstance(model, _SharedFieldsModel):
        return
    fields = model.__pydantic_fields_set__
    key = frozenset(fields)
    shared = _SHARED_FIELDS_SETS.get(key)
    if shared is None:
        shared = _SHARED_FIELDS_SETS.setdefault(key, _SharedFieldsSet(key))
    object.__setattr__(model, "__pydantic_fields_set__", shared)


class _SharedFieldsModel(BaseModel):
    """A model whose set of explicitly set fields may be shared (:func:`share_fields_set`)."""

    def __setattr__(self, name: str, value: Any) -> None:
        fields = self.__pydantic_fields_set__
        if type(fields) is _SharedFieldsSet and name not in fields:
            object.__setattr__(self, "__pydantic_fields_set__", set(fields))
        super().__setattr__(name, value)


class Finding(_SharedFieldsModel):
    """One problem (or fact) about one file of the dataset."""

    model_config = ConfigDict(extra="forbid")

    severity: Severity = Field(description="error, warning or info.")
    code: str = Field(description="Stable short slug of the check, e.g. 'missing-label'.")
    check: str = Field(description="The family of checks that produced it, e.g. 'pairing'.")
    path: str = Field(description="The file concerned, relative to the checked root (POSIX).")
    message: str = Field(description="What is wrong, for a person, with the measured value.")
    measured: float | str | list[float] | None = Field(
        default=None, description="The measured value, when there is one (e.g. 7.1 px)."
    )
    expected: float | str | list[float] | None = Field(
        default=None, description="The limit or expected value it was compared with."
    )
    related: list[str] = Field(
        default_factory=list,
        description="Other files involved (the other split's copy, the other sample's tracing).",
    )


class PairStats(_SharedFieldsModel):
    """Per-pair measurements the check computed on its way (used by reports and info)."""

    model_config = ConfigDict(extra="forbid")

    image: str | None = Field(description="Image crop path relative to the root.")
    label: str | None = Field(description="Label crop path relative to the root.")
    split: str | None = Field(default=None, description="Split name (tree layout) or None.")
    sample: str | None = Field(default=None, description="Sample id, when the name carries one.")
    fov: int | None = Field(default=None, description="Field of view n, when known.")
    crop: int | None = Field(default=None, description="Crop index m, when known.")
    width: int | None = Field(default=None, description="Pixel width of the image crop.")
    height: int | None = Field(default=None, description="Pixel height of the image crop.")
    line_width: float | None = Field(default=None, description="Estimated label stroke width, px.")
    grains: int | None = Field(default=None, description="Complete grains enclosed by the label.")
    untraced_fraction: float | None = Field(
        default=None, description="Share of the crop in large regions with no boundary at all."
    )
    offset: list[float] | None = Field(
        default=None, description="Measured label offset (dx, dy) in px against its image's box."
    )
    box: list[int] | None = Field(
        default=None, description="Box [left, top, width, height] found in the original."
    )


class Summary(BaseModel):
    """Counts of a report."""

    model_config = ConfigDict(extra="forbid")

    errors: int = Field(description="Number of error findings.")
    warnings: int = Field(description="Number of warning findings.")
    infos: int = Field(description="Number of info findings.")
    pairs: int = Field(description="Image/label pairs (by name) found.")
    files: int = Field(description="Image files looked at.")
    ignored: int = Field(description="Hidden or system files ignored (.DS_Store, Thumbs.db, ...).")
    by_code: dict[str, int] = Field(description="Number of findings per code.")
    seconds: float = Field(default=0.0, description="Wall time of the check.")
    pairs_per_second: float | None = Field(
        default=None, description="Throughput of the per-pair checks."
    )


class Report(BaseModel):
    """Result of ``datatool check``: the verdict, counts and every finding."""

    model_config = ConfigDict(extra="forbid")

    ok: bool = Field(description="True when there are no errors (and no warnings with strict).")
    root: str = Field(description="The checked root folder.")
    strict: bool = Field(default=False, description="Whether warnings fail the check.")
    options: dict[str, float | int | str | bool | None] = Field(
        default_factory=dict, description="The options the check ran with."
    )
    summary: Summary = Field(description="Counts per severity and per code.")
    findings: list[Finding] = Field(description="All findings, worst first.")
    pairs: list[PairStats] = Field(
        default_factory=list, description="Per-pair measurements (line width, grains, offset...)."
    )

    @classmethod
    def build(
        cls,
        root: str,
        findings: list[Finding],
        *,
        strict: bool = False,
        pairs: list[PairStats] | None = None,
        files: int = 0,
        ignored: int = 0,
        options: dict | None = None,
        seconds: float = 0.0,
    ) -> Report:
        """Collect ``findings`` into a report; the verdict is decided here, once."""
        ordered = sorted(findings, key=lambda f: (f.severity.rank, f.check, f.code, f.path))
        counts = Counter(f.severity for f in ordered)
        errors, warnings = counts[Severity.error], counts[Severity.warning]
        pair_list = pairs or []
        return cls(
            ok=errors == 0 and (not strict or warnings == 0),
            root=root,
            strict=strict,
            options=options or {},
            summary=Summary(
                errors=errors,
                warnings=warnings,
                infos=counts[Severity.info],
                pairs=len(pair_list),
                files=files,
                ignored=ignored,
                by_code=dict(sorted(Counter(f.code for f in ordered).items())),
                seconds=round(seconds, 3),
                pairs_per_second=round(len(pair_list) / seconds, 2) if seconds > 0 else None,
            ),
            findings=ordered,
            pairs=pair_list,
        )

    def errors(self) -> list[Finding]:
        """The error findings."""
        return [f for f in self.findings if f.severity is Severity.error]

    def for_path(self, path: str) -> list[Finding]:
        """Findings about ``path`` (as the report writes it, relative to the root)."""
        return [f for f in self.findings if f.path == path or path in f.related]
