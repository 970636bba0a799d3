"""One exception hierarchy for Lockstep.

Every error Lockstep raises on purpose is a :class:`LockstepError`; each area of the
data path has its own subclass, so a caller catches one type per stage and the CLI
turns any of them into one clear line (no traceback unless ``--debug``).

Errors cross process boundaries (Airflow's task supervisor, Celery workers), so the
root defines ``__reduce__``: an error with keyword arguments survives pickling.

``retryable`` says whether running the same step again can help (a flaky store, a
lock) or not (a malformed spec, a corrupt file): Airflow tasks use it to fail fast.
"""

from __future__ import annotations

import errno
import os
import re
from typing import Any


class LockstepError(Exception):
    """Root of every error Lockstep raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context
        if "retryable" in context:
            self.retryable = bool(context["retryable"])

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.context))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[LockstepError], message: str, context: dict[str, Any]) -> LockstepError:
    return cls(message, **context)


class SpecError(LockstepError):
    """A pipeline spec is malformed: names the file, the field path and what was expected."""


class IntervalError(SpecError):
    """An interval a run may not process: before the pipeline's ``start_date``, a date no
    interval can represent (its end would pass the year 9999), or one that has not closed
    plus the late allowance yet (``retryable``: waiting mends that one)."""


class StorageError(LockstepError):
    """Reading or writing a Delta table failed."""

    retryable = True


#: errno -> (what the system said, what the user does about it)
OS_ERROR_HINTS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on device", "free space"),
    errno.EDQUOT: ("disk quota exceeded", "free space or raise the quota"),
    errno.EROFS: ("read-only file system", "make it writable or choose another root (--root)"),
    errno.EACCES: ("permission denied", "grant access or choose another root (--root)"),
}
#: the errnos only a write meets (a permission may be a read's too)
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})

_OS_ERROR_RE = re.compile(r"\(os error (\d+)\)")


def os_error_code(exc: BaseException) -> int | None:
    """The errno of an OS-level failure: ``OSError.errno``, or the ``(os error 28)`` a Rust
    library (deltalake's object store, polars) writes into its message instead."""
    code = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
    if isinstance(code, int):
        return code
    m = _OS_ERROR_RE.search(str(exc))
    return int(m.group(1)) if m else None


class FilesystemError(StorageError):
    """The machine refused a write: no space, a quota, a read-only file system, no permission.
    Retrying the same step cannot help until someone frees space or fixes the folder; the CLI
    names the command to re-run (``rerun``)."""

    retryable = False

    @classmethod
    def from_os_error(cls, exc: BaseException, path: str | None = None,
                      rerun: str = "the command") -> FilesystemError | None:
        """The one-line error for ``exc`` when its errno is one of :data:`OS_ERROR_HINTS`
        (None otherwise); ``path`` defaults to the exception's own file name."""
        code = os_error_code(exc)
        if code not in OS_ERROR_HINTS:
            return None
        if path is None:
            name = getattr(exc, "filename", None)
            path = None if name is None else os.fsdecode(name)
        return cls(_os_message(code, path, exc, rerun), errno=code, path=path, cause=_first_line(exc))

    def with_rerun(self, rerun: str) -> FilesystemError:
        """The same error naming ``rerun`` as the command to run again."""
        code = self.context.get("errno")
        if code not in OS_ERROR_HINTS:
            return self
        return type(self)(_os_message(code, self.context.get("path"), self.context.get("cause", ""), rerun),
                          **self.context)


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _os_message(code: int, path: str | None, cause: BaseException | str, rerun: str) -> str:
    what, fix = OS_ERROR_HINTS[code]
    verb = "writing" if code in WRITE_ERRNOS else "on"
    where = f"{verb} {path}" if path else f"({_first_line(cause)})"
    return f"{what} {where}: {fix}, then re-run {rerun}"


class SourceError(LockstepError):
    """An input could not be read (missing or corrupt file, unreachable table)."""


class FeatureError(LockstepError):
    """A feature transform failed or returned a frame that breaks its contract."""


class ValidationStepError(LockstepError):
    """A validation suite is malformed, or validation itself could not run."""


class ReconciliationError(LockstepError):
    """A cross-region check could not run (not: a check that ran and failed)."""


class EvidenceError(LockstepError):
    """A profile could not be computed, published or read."""


class CertificationError(LockstepError):
    """No certified generation can serve a read, or a gate decision could not be recorded."""


class GovernanceError(LockstepError):
    """A decision the spec's ``governance`` section does not allow, or an approval that cannot
    count: who may not decide it, where, or why not (``status``: the HTTP status an API answers
    with: 403 not allowed, 409 a conflict with the log, 404 an unknown request)."""

    @property
    def status(self) -> int:
        return int(self.context.get("status", 403))


class QueryError(LockstepError):
    """A view's query names a region, state, date or page the pipeline does not have: names
    the parameter (``field``) and the value."""


class MissingDependencyError(LockstepError):
    """An optional dependency is missing: the message names the extra to install."""


def require(module: str, extra: str) -> Any:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{module} is not installed: pip install 'lockstep[{extra}]'", extra=extra
        ) from exc
