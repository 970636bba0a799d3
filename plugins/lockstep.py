"""Airflow 3 plugin: the Lockstep page (a nav entry in the UI) and its JSON API at /lockstep."""

from airflow.plugins_manager import AirflowPlugin

from pipelines.airflow.ui import app


class LockstepPlugin(AirflowPlugin):
    name = "lockstep"
    fastapi_apps = [{"app": app, "url_prefix": "/lockstep", "name": "Lockstep"}]
    external_views = [
        {"name": "Lockstep", "href": "/lockstep/", "url_route": "lockstep", "destination": "nav",
         "category": "browse"},
    ]
