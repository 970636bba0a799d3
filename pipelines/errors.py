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


class StorageError(LockstepError):
    """Reading or writing a Delta table failed."""

    retryable = True


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


class BlockedError(CertificationError):
    """The gate refused a generation: the reasons are in ``context['reasons']``."""


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
