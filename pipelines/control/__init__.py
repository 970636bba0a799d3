"""The control plane's append-only tables: ``<control_root>/<pipeline>/_lockstep/``.

One schema registry and one append/scan helper (:mod:`~pipelines.control.tables`) behind
every writer and reader:

- :mod:`~pipelines.control.decisions`: the decision log (``certifications``): gate,
  override and rollback decisions, read in commit order;
- :mod:`~pipelines.control.results`: every check's result (``check_results``, and each
  region's own ``regions/<region>/checks``);
- :mod:`~pipelines.control.evidence`: the profiles regions publish (``regions/<region>/evidence``);
- :mod:`~pipelines.control.maintenance`: the versions maintenance removed (``maintenance``);
- :mod:`~pipelines.control.policies`: the S3 policies per role that enforce who writes where.

Only the control plane writes decisions; a region writes only under its own prefix,
``regions/<region>/`` (its evidence, its check results, its Data Docs) (DESIGN rule 10). Every row is written before what it records takes effect (rule 4).
"""
