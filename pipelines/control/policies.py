"""Least privilege by prefix: the S3 bucket policies (IAM policy documents) of each role a
deployment runs, derived from the spec's storage, so the policies and the layout are one.

* ``control`` (the control worker: reconcile, gate, operators' decisions, releases): the
  control root, read and write; no region's storage.
* ``viewer`` (the api-server's view, ``lockstep status`` / ``explain`` anywhere): the control
  root, read only.
* ``region:<region>`` (a region's workers): its own tables (its bucket, when the root names
  ``{region}`` in the bucket, else its prefix of the root), read and write; under the control
  root, its own prefix ``<pipeline>/_lockstep/regions/<region>/`` read and write (where it
  publishes evidence, its check results and Data Docs), and the decision log, the release
  log, the maintenance log and the model registry read only (consumers read certified data
  through them), and so the model artifacts (``models.artifact_location``, when it is an
  ``s3://`` prefix: a region's worker loads the model it scores with). Never
  ``certifications``, ``check_results``, ``releases``, ``release_evaluations``, artifacts or
  approvals for writing: a region cannot forge a decision, a release or a model.

Example::

    docs = s3_policies(spec)                # {"control": {...}, "viewer": {...}, "region:eu-west": {...}}
    json.dumps(docs["region:eu-west"])      # an IAM policy document
"""

from __future__ import annotations

from typing import Any

from pipelines.errors import SpecError
from pipelines.paths import LOCKSTEP_DIR, REGIONS_DIR
from pipelines.spec import PipelineSpec

#: control tables a region's workers read (never write): what consumers read certified data through
REGION_READS = ("certifications", "releases", "maintenance", "models")


def _split(uri: str, field: str) -> tuple[str, str]:
    """(bucket, key prefix without slashes at the ends) of an ``s3://`` root."""
    if not uri.startswith("s3://"):
        raise SpecError(f"{field}: {uri!r} is not an s3:// root: bucket policies are for S3 storage", field=field)
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    return bucket, prefix.strip("/")


def _key(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def _statement(sid: str, actions: list[str] | str, resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": sorted(set(resources))}


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def s3_policies(spec: PipelineSpec) -> dict[str, dict[str, Any]]:
    """Role -> IAM policy document for ``spec``'s S3 storage (see the module docstring); the
    roots' ``${VAR}`` values are read from the environment."""
    ctl_bucket, ctl_prefix = _split(spec.control_root(), "storage.control_root")
    lockstep = _key(ctl_prefix, spec.name, LOCKSTEP_DIR)
    ctl = f"arn:aws:s3:::{ctl_bucket}"
    artifacts = _artifacts(spec)
    docs: dict[str, dict[str, Any]] = {
        "control": _doc(_statement("ControlPlane", "s3:*", [ctl, f"{ctl}/*", *artifacts])),
        "viewer": _doc(_statement("ReadControlPlane", ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"],
                                  [ctl, f"{ctl}/*"])),
    }
    for region in spec.regions:
        bucket, prefix = _split(spec.region_root(region), "storage.root")
        own_bucket = "{region}" in spec.storage.root.split("://", 1)[-1].split("/", 1)[0]
        data = f"arn:aws:s3:::{bucket}/" + ("*" if own_bucket else _key(prefix, spec.name, region) + "/*")
        # statement ids name the region: a worker serving several regions holds their policies merged
        # into one document, and IAM wants a policy's ids unique
        tag = "".join(part.capitalize() for part in region.split("-"))
        docs[f"region:{region}"] = _doc(
            _statement(f"RegionTables{tag}", "s3:*", [data]),
            _statement(f"PublishToOwnPrefix{tag}", "s3:*", [f"{ctl}/{_key(lockstep, REGIONS_DIR, region)}/*"]),
            _statement(f"ReadDecisions{tag}", "s3:GetObject",
                       [f"{ctl}/{lockstep}/{name}/*" for name in REGION_READS]),
            _statement(f"List{tag}", ["s3:ListBucket", "s3:GetBucketLocation"], [f"arn:aws:s3:::{bucket}", ctl]),
        )
        if artifacts:
            docs[f"region:{region}"]["Statement"] += [
                _statement(f"ReadModelArtifacts{tag}", "s3:GetObject", artifacts[1:]),
                _statement(f"ListModelArtifacts{tag}", ["s3:ListBucket", "s3:GetBucketLocation"], artifacts[:1])]
    return docs


def _artifacts(spec: PipelineSpec) -> list[str]:
    """[the bucket, its objects under the prefix] of an ``s3://`` ``models.artifact_location``
    (its ``${VAR}`` values read); [] for none or another store."""
    if spec.models is None or not spec.models.artifact_location:
        return []
    uri = spec.resolve_path(spec.models.artifact_location, "models.artifact_location")
    if not uri.startswith("s3://"):
        return []
    bucket, prefix = _split(uri, "models.artifact_location")
    return [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{_key(prefix, '*')}"]
