"""The Airflow 3 plugin: the Lockstep view (Airflow's nav, each DAG's and DAG run's pages) and
its JSON API, a FastAPI app the api-server mounts at ``/lockstep`` behind Airflow's auth.

Registered through the ``airflow.plugins`` entry point of the package (pyproject), so any
Airflow that has Lockstep installed (a team's own, the image in ``docker/``, ``lockstep airflow
up``) serves the view with nothing copied into its plugins folder.
"""

from airflow.plugins_manager import AirflowPlugin

from pipelines.airflow.ui import app


class LockstepPlugin(AirflowPlugin):
    name = "lockstep"
    fastapi_apps = [{"app": app, "url_prefix": "/lockstep", "name": "Lockstep"}]
    external_views = [
        {"name": "Lockstep", "href": "/lockstep/", "url_route": "lockstep", "destination": "nav",
         "category": "browse"},
        {"name": "Lockstep", "href": "/lockstep/pipelines/{DAG_ID}", "url_route": "lockstep-dag",
         "destination": "dag"},
        {"name": "Lockstep", "href": "/lockstep/pipelines/{DAG_ID}?run_id={RUN_ID}",
         "url_route": "lockstep-dag-run", "destination": "dag_run"},
    ]
