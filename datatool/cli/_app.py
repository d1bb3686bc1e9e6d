"""The one typer application every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="datatool",
    help="Build, check, merge and evaluate grain-boundary tracing datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
