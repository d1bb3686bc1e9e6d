"""Usage errors of the command line, formatted in one place.

Option bounds live on the option models (pydantic ``Field(ge=..., le=...)``)
or, for options without a model, on the typer option (``min=``/``max=``);
both are checked before any work starts and end in exit 2 with a message
naming the option, the value given and the allowed range.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from datatool.errors import UsageError

M = TypeVar("M", bound=BaseModel)


def option_name(field: str, names: Mapping[str, str] | None = None) -> str:
    """The command-line spelling of a model field: ``kernel_size -> --kernel-size``.

    >>> option_name("tophat_kernel_size")
    '--tophat-kernel-size'
    >>> option_name("sigmas", {"sigmas": "--sigma"})
    '--sigma'
    """
    if names and field in names:
        return names[field]
    return "--" + field.replace("_", "-")


def allowed_range(model: type[BaseModel], field: str) -> str | None:
    """The bounds a model puts on ``field``, as text (``16 <= value <= 8192``), or None.

    >>> from pydantic import Field
    >>> class Options(BaseModel):
    ...     size: int = Field(1, ge=16, le=8192)
    >>> allowed_range(Options, "size")
    '16 <= value <= 8192'
    """
    info = model.model_fields.get(field)
    if info is None:
        return None
    low = high = None
    for bound in info.metadata:
        for attr, sign in (("ge", "<="), ("gt", "<")):
            if getattr(bound, attr, None) is not None:
                low = f"{getattr(bound, attr)} {sign} "
        for attr, sign in (("le", "<="), ("lt", "<")):
            if getattr(bound, attr, None) is not None:
                high = f" {sign} {getattr(bound, attr)}"
    if low is None and high is None:
        return None
    return f"{low or ''}value{high or ''}"


def usage_error_from(
    exc: ValidationError,
    model: type[BaseModel] | None = None,
    names: Mapping[str, str] | None = None,
) -> UsageError:
    """One usage error (exit 2) for options a model refused: each option, its value, its range.

    Parameters
    ----------
    exc : pydantic.ValidationError
        Raised by the option model.
    model : pydantic model class, optional
        The model, to state each field's allowed range.
    names : mapping, optional
        Field name to option spelling where they differ (``{"sigmas": "--sigma"}``).
    """
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        given = error.get("input")
        shown = "" if isinstance(given, dict) else f" {given!r}"
        message = str(error["msg"]).removeprefix("Value error, ")
        bounds = allowed_range(model, field) if model is not None else None
        problems.append(
            f"{option_name(field, names)}{shown}: {message[:1].lower()}{message[1:]}"
            + (f" (allowed: {bounds})" if bounds else "")
        )
    return UsageError(f"invalid option: {'; '.join(problems)}")


def parse_options(model: type[M], names: Mapping[str, str] | None = None, **values: Any) -> M:
    """Build an option model from command-line values; refused values end in a usage error.

    >>> from pydantic import Field
    >>> class Options(BaseModel):
    ...     epochs: int = Field(1, ge=1, le=1000)
    >>> parse_options(Options, epochs=0)
    Traceback (most recent call last):
    ...
    datatool.errors.UsageError: invalid option: --epochs 0: input should be greater than or equal to 1 (allowed: 1 <= value <= 1000)
    """  # noqa: E501
    try:
        return model(**values)
    except ValidationError as exc:
        raise usage_error_from(exc, model, names) from None


def writable_output(
    path: str | os.PathLike[str] | None, option: str, *, folder: bool = False
) -> Path | None:
    """Fail now, in one line naming the path, when an output cannot be created there.

    Checks the nearest existing folder above ``path``: it must be a folder the
    user may write in; ``path`` itself, if it exists, must be a folder
    (``folder``) or a file. Nothing is created.

    >>> writable_output("/dev/null/report/out.html", "--out")
    Traceback (most recent call last):
    ...
    datatool.errors.UsageError: --out /dev/null/report/out.html: cannot be created: /dev/null is not a folder
    """  # noqa: E501
    if path is None:
        return None
    target = Path(path)
    what = f"{option} {target}"
    if target.exists():
        if folder and not target.is_dir():
            raise UsageError(f"{what}: exists and is not a folder")
        if not folder and target.is_dir():
            raise UsageError(f"{what}: is a folder; give a file name")
    above = target if folder and target.is_dir() else target.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if above.exists() and not above.is_dir():
        raise UsageError(f"{what}: cannot be created: {above} is not a folder")
    if not os.access(above, os.W_OK | os.X_OK) or _read_only_mount(above):
        raise UsageError(f"{what}: cannot be created: {above} is not writable")
    return target


def _read_only_mount(folder: Path) -> bool:
    """True on a read-only file system (where even root cannot write)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


class Precision(StrEnum):
    """Values of ``--precision`` (``infer``, ``evaluate``, ``train``); typer refuses others."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


#: Help of ``--precision``, shared by the commands that run the network.
PRECISION_HELP = (
    "auto: the fastest of fp32, fp32 + channels_last and (where native) bf16 + channels_last "
    "whose output stays within 1 grey level of fp32, measured on the first image; fp32: plain "
    "float32; bf16: bfloat16 autocast, falling back to fp32 past 1 grey level."
)
