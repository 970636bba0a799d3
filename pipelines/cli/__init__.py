"""The ``lockstep`` command.

One typer app; each area registers its commands from its own module (``core``: run, demo,
status, bench, generate; ``validate``; ``reconcile``: reconcile, certify, explain, rollback,
override, diff; ``verify``; ``orchestrate``: airflow, backfill). Every command ends any error
with one line on stderr (:func:`handle_errors`: exit 2 for a
:class:`~pipelines.errors.LockstepError`, a full disk or a corrupt file, exit 1 for an
internal error; a traceback only with ``--debug``), and has ``--json`` for machines.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import shlex
import sys
from collections.abc import Callable
from contextvars import ContextVar
from functools import wraps
from pathlib import Path
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
COMMAND_MODULES = ["core", "validate", "reconcile", "verify", "orchestrate", "check", "maintain", "init", "release", "govern", "erase"]

JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document for machines")]
RootOpt = Annotated[
    str | None,
    typer.Option("--root", help="storage root (overrides $LOCKSTEP_ROOT and the spec)", show_default=False),
]
PipelineArg = Annotated[str, typer.Argument(help="a shipped pipeline's name or a path to a spec file")]

F = TypeVar("F", bound=Callable[..., Any])


#: ``--debug`` of the running command: set by the app's callback, reset when the command ends
_DEBUG: ContextVar[bool] = ContextVar("lockstep_debug", default=False)


@app.callback()
def _root_options(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
) -> None:
    """Options of every command. ``--debug`` lives as long as the command does (the flag is
    kept in a context variable, never written to the process's environment). Output that is
    not a terminal (a pipe, a file) gets whole lines: a sentence is never folded at 80 columns."""
    for out in (console, err_console):
        out.soft_wrap = not out.is_terminal
    token = _DEBUG.set(debug)
    ctx.call_on_close(lambda: _DEBUG.reset(token))


def debugging() -> bool:
    """Show tracebacks? ``--debug`` on the running command line, else ``LOCKSTEP_DEBUG``."""
    if _DEBUG.get():
        return True
    from pipelines.spec.settings import settings

    return settings().debug


#: what ends a command on purpose: passed through untouched, never reported as an error
_PASS_THROUGH: tuple[type[BaseException], ...] = (
    KeyboardInterrupt, SystemExit, GeneratorExit, typer.Exit, typer.Abort, typer.TyperException,
)

#: a data file a reader could not decode (polars, deltalake, pyarrow say so in these words)
_CORRUPT_DATA = re.compile(r"out of specification|parquet:|invalid thrift|corrupt|unexpected end of file|"
                           r"not a parquet file|magic bytes|PAR1", re.IGNORECASE)


def handle_errors(fn: F, name: str | None = None) -> F:
    """Every error of a command as one line on stderr (a traceback only with ``--debug``):

    * a :class:`~pipelines.errors.LockstepError`: its message, exit 2;
    * an OS error a write hit (no space, quota, read-only, permission), wherever it was
      raised: what happened, the path and what to do, exit 2;
    * a reader's panic (a Rust ``PanicException``, a ``BaseException``) or a data file it
      cannot decode: the table or file is corrupt, how to find and mend it, exit 2;
    * anything else: ``internal error: <Type>: <message>``, exit 1.

    ``KeyboardInterrupt``, ``SystemExit`` and typer's own exits pass through. ``name``: the
    command's, for a "then re-run ..." hint."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _PASS_THROUGH:
            raise
        except BaseException as exc:
            if debugging():
                raise
            line, code = describe_error(exc, _command_text(name or fn.__name__), kwargs)
            report_error(line, code, as_json=bool(kwargs.get("json_")), kind=type(exc).__name__)
            raise typer.Exit(code) from None

    wrapper.__doc__ = reflow(fn.__doc__)
    return wrapper  # type: ignore[return-value]


def reflow(doc: str | None) -> str | None:
    """A command's docstring as its help: each paragraph one line (typer keeps a docstring's
    line breaks in ``lockstep --help``'s command list, which then breaks mid-sentence)."""
    if not doc:
        return doc
    return "\n\n".join(" ".join(p.split()) for p in re.split(r"\n\s*\n", inspect.cleandoc(doc)))


def report_error(line: str, code: int, *, as_json: bool, kind: str = "UsageError") -> None:
    """A command's error: one line on stderr, and with ``--json`` also one JSON document on
    stdout (``{"error": {"message", "exit_code", "type"}}``) so a machine never parses text."""
    if as_json:
        print_json({"error": {"message": line, "exit_code": code, "type": kind}})
    # the message is text, never markup: a region pattern like [a-z] must print intact
    err_console.print(Text.assemble(("error:", "bold red"), " ", line), highlight=False, soft_wrap=True)


def describe_error(exc: BaseException, command: str = "the command",
                   params: dict[str, Any] | None = None) -> tuple[str, int]:
    """The one line (without ``error:``) and the exit code a command ends with on ``exc``;
    ``command`` is named in a "then re-run" hint, ``params`` are the command's arguments."""
    from pipelines.errors import (
        WRITE_ERRNOS,
        FilesystemError,
        LockstepError,
        StorageError,
        os_error_code,
    )

    if isinstance(exc, FilesystemError):
        return _one_line(exc.with_rerun(command).message), 2
    if isinstance(exc, LockstepError):
        # the OS's refusal of a write (a Delta commit on a full disk) under a storage error,
        # however deep (a commit a read made first: an evidence read committing a step's rows)
        where: str | None = None
        link: BaseException | None = exc
        for _ in range(8):
            if link is None:
                break
            if isinstance(link, LockstepError):
                found = link.context.get("path") or link.context.get("uri")
                where = found if isinstance(found, str) else where
            cause = link.__cause__
            if isinstance(link, StorageError) and cause is not None and os_error_code(cause) in WRITE_ERRNOS:
                full = FilesystemError.from_os_error(cause, where, rerun=command)
                if full is not None:
                    return full.message, 2
            link = cause
        return _one_line(exc), 2
    full = FilesystemError.from_os_error(exc, rerun=command)
    if full is not None:
        return full.message, 2
    kind = type(exc).__name__
    if kind == "PanicException" or (_from_data_library(exc) and _CORRUPT_DATA.search(str(exc))):
        what = "panicked" if kind == "PanicException" else "failed"
        given = params or {}

        def param(key: str, default: str) -> str:
            value = given.get(key)
            return value if isinstance(value, str) and value else default

        pipeline, day = param("pipeline", "PIPELINE"), param("date_", "")
        root = f" --root {shlex.quote(param('root', ''))}" if param("root", "") else ""
        return (f"a Delta table or one of its data files is corrupt (the reader {what}: {_one_line(exc, 200)}): "
                f"find it with `lockstep verify {pipeline}{f' --date {day}' if day else ''}{root}`, then re-run the "
                f"interval that wrote it (`lockstep run {pipeline} --date {day or 'DATE'}{root} --force`)"), 2
    return f"internal error: {kind}: {_one_line(exc, 300)} (re-run with --debug for the traceback)", 1


def _from_data_library(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.split(".")[0] in ("polars", "deltalake", "pyarrow", "_internal", "pyo3_runtime")


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _one_line(exc: BaseException | str, limit: int = 0) -> str:
    """Every line of a message on one (a library's colour codes dropped)."""
    text = " ".join(line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip())
    return text if not limit or len(text) <= limit else text[: limit - 1] + "…"


def _command_text(name: str) -> str:
    """The running command, to name in a "then re-run ..." hint: the command line as typed
    (from the ``lockstep`` program), else ``lockstep <name>``."""
    if Path(sys.argv[0]).name == "lockstep" and len(sys.argv) > 1:
        return "`" + shlex.join(["lockstep", *sys.argv[1:]]) + "`"
    return f"`lockstep {name}`"


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    """``@app.command`` with the shared error handler."""

    def deco(fn: F) -> F:
        name = args[0] if args and isinstance(args[0], str) else kwargs.get("name") or fn.__name__
        app.command(*args, **kwargs)(handle_errors(fn, name))
        return fn

    return deco


def _register() -> None:
    # every module in COMMAND_MODULES exists: an import failure is a bug, and surfaces
    for name in COMMAND_MODULES:
        importlib.import_module(f"pipelines.cli.{name}")


def json_after_command(argv: list[str]) -> list[str]:
    """``lockstep --json status X`` read as ``lockstep status X --json``: every command takes
    ``--json``, so one given before the command's name is moved after it."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 1
    if "--json" not in argv[:i] or i == len(argv):
        return argv
    return [a for a in argv[:i] if a != "--json"] + argv[i:] + ["--json"]


def main() -> None:
    _register()
    argv = json_after_command(sys.argv[1:])
    if "--json" not in argv:
        app(args=argv)
        return
    # with --json a usage error (an unknown option, a bad value) is a JSON document too
    try:
        code = app(args=argv, standalone_mode=False)  # a command's typer.Exit comes back as its exit code
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        exit_code = int(getattr(exc, "exit_code", 2))
        report_error(_one_line(message), exit_code, as_json=True, kind=type(exc).__name__)
        sys.exit(exit_code)
    except typer.Abort:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
