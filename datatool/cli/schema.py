"""``datatool schema``: export the JSON Schemas of the user-facing models."""

from __future__ import annotations

from pathlib import Path

import typer

from datatool.cli._app import app, examples


@app.command("schema", epilog=examples("datatool schema", "datatool schema --out /tmp/schemas"))
def schema_command(
    out: Path = typer.Option(Path("schemas"), "--out", help="Folder to write the schemas into."),
) -> None:
    """Write the JSON Schemas (layout, check report, plans, manifests...) into a folder."""
    from datatool.schema import write_schemas

    for path in write_schemas(out):
        typer.echo(str(path))
