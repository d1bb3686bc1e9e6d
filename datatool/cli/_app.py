"""The one typer application every command module registers on.

Also the CLI's conventions: switches show no ``<bool>`` type in ``--help``,
every command's help ends with real examples (:func:`examples`), and
``datatool --version`` prints the version.
"""

from __future__ import annotations

import typer
from typer.core import TyperOption

_display_type_rich = TyperOption.display_type_rich


def _no_bool_type(self: TyperOption, ctx: object) -> str | None:
    """A switch takes no value, so its help row shows no type (typer shows ``<bool>``)."""
    if self.is_flag and self.is_bool_flag:
        return None
    return _display_type_rich(self, ctx)


TyperOption.display_type_rich = _no_bool_type  # type: ignore[method-assign]


def examples(*commands: str) -> str:
    """The ``--help`` epilog: one or two real command lines, one per line.

    >>> examples("datatool check data/").splitlines()
    ['Examples:', '  datatool check data/']
    """
    return "Examples:\n" + "\n".join(f"  {c}" for c in commands)


app = typer.Typer(
    name="datatool",
    help="Build, check, merge and evaluate grain-boundary tracing datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    epilog=examples(
        "datatool check fixtures/training_validation_data",
        "datatool report fixtures/training_validation_data --out report.html",
    ),
)


def _version(value: bool) -> None:
    if value:
        from datatool import __version__

        typer.echo(f"datatool {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Build, check, merge and evaluate grain-boundary tracing datasets."""
