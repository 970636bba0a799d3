"""The Lockstep view inside Airflow: the certification matrix, the drill-down and the JSON API
behind them, mounted by the plugin (:mod:`pipelines.airflow.plugin`, the package's ``airflow.plugins`` entry point) at ``/lockstep``.

- :mod:`~pipelines.airflow.ui.routes`: the FastAPI ``app``: Airflow's auth on every route,
  the specs of Airflow's DAGs folder, the data each page needs;
- :mod:`~pipelines.airflow.ui.pages`: the HTML, pure functions of that data;
- :mod:`~pipelines.airflow.ui.governed`: the write routes (requests, approvals, re-runs) as the
  user Airflow verified, and the region scope of every route (the spec's ``governance``).
"""

from __future__ import annotations

from pipelines.airflow.ui.governed import router, scoped
from pipelines.airflow.ui.pages import (
           render_drill_down,
           render_erasures,
           render_matrix,
           render_pipeline,
           render_releases,
)
from pipelines.airflow.ui.routes import app, drill_down, readable

app.include_router(router)

__all__ = ["app", "drill_down", "readable", "render_drill_down", "render_erasures", "render_matrix", "render_pipeline",
           "render_releases", "scoped"]
