"""The ``lockstep`` command.

One typer app; each area registers its commands from its own module (``core``: run, demo,
status, bench, generate; ``validate``; ``reconcile``: reconcile, certify, explain, rollback,
override, diff; ``orchestrate``: airflow, backfill). Every command prints a clear message
and exits non-zero on a :class:`~pipelines.errors.LockstepError` (a traceback only with
``--debug``), and has ``--json`` for machines.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

app = typer.Typer(
    name="lockstep",
    help="Multi-region feature pipelines: models read only validated, reconciled, certified data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=False)
err_console = Console(stderr=True)

#: command modules, registered in this order when they exist
COMMAND_MODULES = ["core", "validate", "reconcile", "orchestrate", "check", "maintain", "init"]

JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document for machines")]
RootOpt = Annotated[
    str | None,
    typer.Option("--root", help="storage root (overrides $LOCKSTEP_ROOT and the spec)", show_default=False),
]
PipelineArg = Annotated[str, typer.Argument(help="a shipped pipeline's name or a path to a spec file")]

F = TypeVar("F", bound=Callable[..., Any])


@app.callback()
def _root_options(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
) -> None:
    if debug:
        os.environ["LOCKSTEP_DEBUG"] = "1"


def handle_errors(fn: F) -> F:
    """Turn a LockstepError into one line on stderr and exit code 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pipelines.errors import LockstepError

        try:
            return fn(*args, **kwargs)
        except LockstepError as exc:
            if os.environ.get("LOCKSTEP_DEBUG"):
                raise
            # the message is text, never markup: a region pattern like [a-z] must print intact
            err_console.print(Text.assemble(("error:", "bold red"), " ", str(exc)), highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    """``@app.command`` with the shared error handler."""

    def deco(fn: F) -> F:
        app.command(*args, **kwargs)(handle_errors(fn))
        return fn

    return deco


def _register() -> None:
    for name in COMMAND_MODULES:
        try:
            importlib.import_module(f"pipelines.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"pipelines.cli.{name}":
                raise


def main() -> None:
    _register()
    app()
