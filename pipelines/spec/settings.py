"""What Lockstep reads from the environment, defined once.

Everything else in Lockstep receives typed spec objects; the few values that come from the
process's environment (who is acting, where the storage root is overridden, the Airflow
credentials the CLI uses) are fields of :class:`Settings`, read through :func:`settings`.
No other module reads ``os.environ`` except the Airflow glue that must hand an environment
to the processes it starts (``pipelines/airflow/embedded/``), GX's analytics switch
(``pipelines/validation/gx.py``) and ``${VAR}`` references a spec makes itself
(``pipelines/spec/loading.py``).

``settings()`` reads the environment when it is called: a process that changes its
environment (a test's ``monkeypatch.setenv``) sees the change, and nothing is cached across
``dag.test()`` calls in one process.
"""

from __future__ import annotations

import getpass

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """``LOCKSTEP_*`` environment variables (unset ones are ``None``)."""

    model_config = SettingsConfigDict(env_prefix="LOCKSTEP_", extra="ignore", frozen=True)

    #: overrides every spec's ``storage.root`` (``--root`` overrides this)
    root: str | None = None
    #: the identity recorded on decisions made from this process (default: the OS user)
    actor: str | None = None
    #: the run id recorded on decisions made outside Airflow (default: generated)
    run_id: str | None = None
    #: tracebacks instead of one-line errors
    debug: bool = False
    #: the Airflow user the CLI signs in as (``--via airflow``)
    airflow_username: str | None = None
    airflow_password: SecretStr | None = None

    def who(self) -> str:
        """The acting identity: ``LOCKSTEP_ACTOR``, else the operating-system user."""
        return self.actor or getpass.getuser()


def settings() -> Settings:
    """The environment's settings, read now."""
    return Settings()
