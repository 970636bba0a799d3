"""Create the deployment's MLflow model registry (compose's ``airflow-init``, after Airflow's
own database): the PostgreSQL database the spec's ``models.registry_uri`` names when it is
missing, then MLflow's tables and the model's experiment in it, so that workers starting
together never race to create them::

    python /opt/lockstep/docker/create_registry.py SPEC

Idempotent: a database, tables or an experiment that exist are kept. A spec without a
``models:`` section, or whose registry is not PostgreSQL, gets only MLflow's own
initialisation (a SQLite file creates itself).
"""

from __future__ import annotations

import sys

from sqlalchemy.engine import make_url

from pipelines.airflow.client import AirflowError
from pipelines.airflow.postgres import ensure_database
from pipelines.errors import SpecError
from pipelines.models.registry import experiment_id, registry_uri
from pipelines.spec import load_spec


def main(spec_path: str) -> int:
    spec = load_spec(spec_path)
    if spec.models is None:
        print(f"create-registry: {spec.name} has no models: section: no registry to create")
        return 0
    uri = registry_uri(spec)
    url = make_url(uri)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "postgresql":
        print(f"create-registry: database {url.database} " + ("created" if ensure_database(uri) else "kept"))
    print(f"create-registry: {shown} ready (experiment {experiment_id(spec)})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(main(sys.argv[1]))
    except (SpecError, AirflowError) as exc:
        print(f"create-registry: {exc}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # refused, unreachable (psycopg2's), MLflow's own: the first line, no traceback
        print(f"create-registry: {type(exc).__name__}: {(str(exc) or '-').splitlines()[0]}", file=sys.stderr)
        sys.exit(1)
