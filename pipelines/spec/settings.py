"""What Lockstep reads from the environment, defined once.

Everything else in Lockstep receives typed spec objects; the few values that come from the
process's environment (who is acting, where the storage root is overridden, the Airflow
credentials the CLI uses) are fields of :class:`Settings`, read through :func:`settings`.
No other module reads ``os.environ`` except the Airflow glue that must hand an environment
to the processes it starts (``pipelines/airflow/embedded/``), GX's analytics switch
(``pipelines/validation/gx.py``) and ``${VAR}`` references a spec makes itself
(``pipelines/spec/resolve.py``).

``settings()`` reads the environment when it is called: a process that changes its
environment (a test's ``monkeypatch.setenv``) sees the change, and nothing is cached across
``dag.test()`` calls in one process. An empty variable counts as unset (``LOCKSTEP_ROOT=``
does not override a spec's root). Lockstep never writes these variables itself: the CLI
keeps ``--debug`` in its own context, and processes it starts get their variables handed
to them (``lockstep airflow up --root``).
"""

from __future__ import annotations

import getpass
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.errors import SpecError


def _flag(value: Any) -> Any:
    """Any value but an empty one, 0, false, no or off turns a flag on (``LOCKSTEP_DEBUG=1``)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return value


class Settings(BaseSettings):
    """``LOCKSTEP_*`` environment variables (unset ones are ``None``)."""

    model_config = SettingsConfigDict(env_prefix="LOCKSTEP_", extra="ignore", frozen=True, env_ignore_empty=True)

    #: overrides every spec's ``storage.root`` (``--root`` overrides this)
    root: str | None = None
    #: the user recorded (as ``local:<user>``) on decisions made directly on storage (default: the OS user)
    actor: str | None = None
    #: the run id recorded on decisions made outside Airflow (default: generated)
    run_id: str | None = None
    #: tracebacks instead of one-line errors
    debug: Annotated[bool, BeforeValidator(_flag)] = False
    #: the gate reads every region's evidence and check-results tables, never the regions'
    #: interval indexes (which it verifies and falls back from anyway): for comparison
    no_index: Annotated[bool, BeforeValidator(_flag)] = False
    #: the Airflow user the CLI signs in as (``--via airflow``)
    airflow_username: str | None = None
    airflow_password: SecretStr | None = None
    #: the deployment's secret that keys the hashes of personal values (HMAC-SHA256) wherever
    #: Lockstep's own outputs would show one; every region's workers need the same one
    hash_key: SecretStr | None = None
    #: a file holding the hash key (Docker's ``_FILE`` convention for secrets), read when
    #: ``LOCKSTEP_HASH_KEY`` is unset
    hash_key_file: str | None = None

    @model_validator(mode="after")
    def _hash_key_from_file(self) -> Settings:
        if self.hash_key is None and self.hash_key_file:
            try:
                text = Path(self.hash_key_file).read_text().strip()
            except OSError as exc:
                raise ValueError(f"LOCKSTEP_HASH_KEY_FILE={self.hash_key_file}: cannot read it ({exc.strerror})") from None
            if text:
                object.__setattr__(self, "hash_key", SecretStr(text))
        return self

    def user(self) -> str:
        """The user acting from this process: ``LOCKSTEP_ACTOR``, else the operating-system user
        (self-asserted: nothing verified it)."""
        return self.actor or getpass.getuser()

    def who(self) -> str:
        """The identity recorded on a decision made directly on storage from this process:
        ``local:<user>`` (a verified identity is ``airflow:<user>``, given by Airflow's auth
        manager, never by the environment: ``LOCKSTEP_ACTOR=airflow:x`` records ``local:airflow:x``)."""
        return f"local:{self.user()}"


def settings() -> Settings:
    """The environment's settings, read now; a value Lockstep cannot read is a
    :class:`~pipelines.errors.SpecError` naming the variable.

    Example::

        settings().root      # $LOCKSTEP_ROOT, or None when it is unset or empty
    """
    prefix = Settings.model_config.get("env_prefix", "").upper()
    return _read(tuple(sorted((k, v) for k, v in os.environ.items() if k.upper().startswith(prefix))))


@lru_cache(maxsize=16)
def _read(variables: tuple[tuple[str, str], ...]) -> Settings:
    """Settings for one set of ``LOCKSTEP_*`` values (``variables``, the cache's key: building
    a Settings costs far more than looking at the environment, and a spec asks for its root
    once per table URI)."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = [f"LOCKSTEP_{str(err['loc'][0]).upper()}: {err['msg']}" if err["loc"]
                 else str(err["msg"]).removeprefix("Value error, ") for err in exc.errors()]
        raise SpecError("environment: " + "; ".join(lines), errors=lines) from None
