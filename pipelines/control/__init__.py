"""The control plane's append-only tables: ``<control_root>/<pipeline>/_lockstep/``.

One schema registry and one append/scan helper (:mod:`~pipelines.control.tables`) behind
every writer and reader:

- :mod:`~pipelines.control.decisions`: the decision log (``certifications``): gate,
  override and rollback decisions, read in commit order;
- :mod:`~pipelines.control.results`: every check's result (``check_results``);
- :mod:`~pipelines.control.evidence`: the profiles regions publish (``evidence``);
- :mod:`~pipelines.control.maintenance`: the versions maintenance removed (``maintenance``).

Only the control plane writes decisions; regions write their evidence and check results
(DESIGN rule 10). Every row is written before what it records takes effect (rule 4).
"""
