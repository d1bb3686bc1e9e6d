"""Command line: a thin shell over the library.

Each module in this package registers its commands on :data:`app`. The modules
are discovered automatically, so adding a command is adding a module. Heavy
imports (torch, matplotlib, skimage) happen inside the command functions so that
``datatool --help`` stays fast.

:class:`~datatool.errors.DatatoolError` is caught here, once, and shown as one
line on stderr; ``DATATOOL_DEBUG=1`` (or ``--debug`` before the command) shows
the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

from datatool.cli._app import app
from datatool.errors import DatatoolError

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``datatool`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("DATATOOL_DEBUG") == "1"
    if "--debug" in args:
        args.remove("--debug")
        debug = True
    try:
        # Standalone mode: typer handles --help, usage errors (exit 2) and typer.Exit codes.
        app(args=args, prog_name="datatool", standalone_mode=True)
    except DatatoolError as exc:
        if debug:
            raise
        print(f"datatool: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("datatool: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # anything unforeseen still gets one line, not a traceback
        if debug:
            raise
        if isinstance(exc, OSError) and exc.filename is not None:
            # A file the system refused (an output under a read-only place, a full disk):
            # one line naming it, not an internal error.
            print(f"datatool: error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
            sys.exit(1)
        print(
            f"datatool: internal error: {type(exc).__name__}: {exc} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        sys.exit(3)
