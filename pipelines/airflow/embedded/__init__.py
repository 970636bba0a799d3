"""The embedded Airflow: a real Airflow 3 on this machine, for ``lockstep airflow up``
(``make up``) and the integration tests.

- :mod:`~pipelines.airflow.embedded.harness`: :class:`EmbeddedAirflow`, which supervises the
  components (configuration and home, start and stop, health, logs, timings) and hands out
  the REST client (:class:`~pipelines.airflow.client.AirflowClient`) for everything else;
- :mod:`~pipelines.airflow.embedded.environment`: the ``AIRFLOW__*`` environment, ports and
  the data root shared with the CLI;
- :mod:`~pipelines.airflow.embedded.processes`: process groups, the pid file, log tails;
- :mod:`~pipelines.airflow.embedded.up`: ``lockstep airflow up`` in the foreground.

The metadata DB is SQLite in ``<home>/airflow.db`` unless a SQLAlchemy URL is given; for
PostgreSQL see :mod:`pipelines.airflow.postgres`. Secrets live in the home
(:mod:`pipelines.airflow.secrets`). Nothing here imports Airflow.
"""

from __future__ import annotations

from pipelines.airflow.client import AirflowError
from pipelines.airflow.embedded.environment import (
    COMPONENTS,
    DEFAULT_PORT,
    absolute_root,
    airflow_env,
    free_port,
)
from pipelines.airflow.embedded.harness import EmbeddedAirflow
from pipelines.airflow.embedded.up import data_roots, up
from pipelines.airflow.secrets import ADMIN_USER, home_secrets

__all__ = [
    "ADMIN_USER",
    "COMPONENTS",
    "DEFAULT_PORT",
    "AirflowError",
    "EmbeddedAirflow",
    "absolute_root",
    "airflow_env",
    "data_roots",
    "free_port",
    "home_secrets",
    "up",
]
