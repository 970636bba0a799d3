"""Where a pipeline's tasks run: Celery queues per region group, and storage a distributed
executor can use.

A spec's ``airflow.queues`` puts each region's tasks on a queue (``regions``; unmapped
regions take ``default``) and ``reconcile`` and ``gate`` on ``control``. Airflow fixes a
task's queue for every map index of a mapped task, so the DAG factory maps one task group
per queue: regions that share a queue share a group (``region`` when there is one group,
``region_<queue>`` otherwise), and each group's tasks carry the group's queue::

    airflow:
      queues: {default: regional, control: control, regions: {eu-west: eu, eu-central: eu}}
    # -> region_eu (eu-west, eu-central) on "eu", region_regional (the rest) on "regional",
    #    reconcile and gate on "control"

A worker serves its queues with ``airflow celery worker --queues eu``; it then needs the
credentials of its regions' storage only, and the control worker those of the control root.
Nothing here imports Airflow's scheduler or executors.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from pipelines.spec import PipelineSpec, is_local_path

__all__ = ["LOCAL_EXECUTORS", "RegionGroup", "check_storage_for_executor", "control_queue",
           "executor_names", "region_groups"]

#: executors whose tasks all run on the machine (and in the folder) of the scheduler
LOCAL_EXECUTORS = frozenset({"LocalExecutor", "SequentialExecutor", "DebugExecutor"})


@dataclass(frozen=True)
class RegionGroup:
    """Regions whose tasks run on one queue (``None``: Airflow's default queue)."""

    group_id: str
    queue: str | None
    regions: tuple[str, ...]


def _slug(queue: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", queue).strip("_") or "q"


def region_groups(spec: PipelineSpec) -> list[RegionGroup]:
    """The spec's regions grouped by queue, in the spec's region order.

    >>> from pipelines.spec import parse_spec
    >>> spec = parse_spec({"name": "p", "start_date": "2026-01-01", "regions": ["eu-west", "us-east"],
    ...     "tables": [{"name": "t", "layer": "raw", "source": "s"}],
    ...     "sources": {"s": {"kind": "synthetic", "dataset": "transactions"}},
    ...     "airflow": {"queues": {"default": "us", "regions": {"eu-west": "eu"}}}})
    >>> [(g.group_id, g.queue, g.regions) for g in region_groups(spec)]
    [('region_eu', 'eu', ('eu-west',)), ('region_us', 'us', ('us-east',))]
    """
    queues = spec.airflow.queues
    if queues is None:
        return [RegionGroup("region", None, tuple(spec.regions))]
    unknown = sorted(set(queues.regions) - set(spec.regions))
    if unknown:
        from pipelines.errors import SpecError

        raise SpecError(f"{spec.name}: airflow.queues.regions names regions the pipeline does not have: "
                        f"{', '.join(unknown)}", field="airflow.queues.regions")
    by_queue: dict[str, list[str]] = {}
    for region in spec.regions:
        by_queue.setdefault(queues.regions.get(region, queues.default), []).append(region)
    if len(by_queue) == 1:
        queue, regions = next(iter(by_queue.items()))
        return [RegionGroup("region", queue, tuple(regions))]
    ids: dict[str, str] = {}
    for queue in by_queue:
        gid = f"region_{_slug(queue)}"
        while gid in ids.values():  # two queues with the same slug ("a.b", "a_b")
            gid += "_"
        ids[queue] = gid
    return [RegionGroup(ids[q], q, tuple(rs)) for q, rs in by_queue.items()]


def control_queue(spec: PipelineSpec) -> str | None:
    """The queue of ``reconcile`` and ``gate`` (``None``: Airflow's default queue)."""
    queues = spec.airflow.queues
    if queues is None:
        return None
    return queues.control or queues.default


def executor_names(configured: str | None = None) -> list[str]:
    """The executors Airflow is configured with (``[core] executor`` of Airflow's configuration,
    which ``AIRFLOW__CORE__EXECUTOR`` overrides: a comma-separated list, each optionally
    ``alias:module.path.ClassName``), as class names."""
    if configured is None:
        try:
            from airflow.sdk.configuration import conf

            configured = str(conf.get("core", "executor", fallback="LocalExecutor"))
        except Exception:  # no Airflow configuration at all: nothing runs distributed
            configured = "LocalExecutor"
    names = []
    for item in configured.split(","):
        item = item.strip().rsplit(":", 1)[-1].rsplit(".", 1)[-1]
        if item:
            names.append(item)
    return names or ["LocalExecutor"]


def check_storage_for_executor(spec: PipelineSpec, executors: list[str] | None = None) -> None:
    """Refuse a relative local root when tasks may run on other machines or in other folders.

    Under a distributed executor (Celery, Kubernetes, …) a relative root would mean a
    different folder on every worker (and a different one again for the scheduler's and the
    api-server's reads): a generation could never be reconciled. Raises :class:`SpecError`
    naming the field; an absolute local path (a shared mount) or an object-store URI passes.
    """
    from pipelines.errors import SpecError
    from pipelines.spec.settings import settings

    executors = executors if executors is not None else executor_names()
    distributed = [e for e in executors if e not in LOCAL_EXECUTORS]
    if not distributed:
        return
    root = settings().root
    candidates = [("LOCKSTEP_ROOT", root)] if root else [
        ("storage.root", spec.storage.root)]
    if spec.storage.control_root is not None:
        candidates.append(("storage.control_root", spec.storage.control_root))
    for field, value in candidates:
        if value is None or not is_local_path(value) or value.startswith("{"):
            continue
        if os.path.isabs(os.path.expanduser(value)):
            continue
        raise SpecError(
            f"{spec.name}: {field} {value!r} is a relative local path, but Airflow runs tasks with "
            f"{', '.join(distributed)}: every worker would write to a folder of its own. Use an "
            "object-store URI (s3://…) or an absolute path on storage every worker mounts",
            field=field,
        )
