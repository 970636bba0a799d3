"""Create the buckets a Lockstep spec's storage names (every region's and the control
root's), on the S3 endpoint of ``$LOCKSTEP_S3_ENDPOINT``. Idempotent: existing buckets are
kept. Run by compose's ``s3-init`` service::

    python /opt/lockstep/docker/create_buckets.py /opt/airflow/dags/fraud_features.yaml
"""

import os
import sys
from urllib.parse import urlparse

import boto3
from botocore.exceptions import ClientError

from pipelines.spec import load_spec

spec = load_spec(sys.argv[1])
roots = [spec.region_root(r) for r in spec.regions] + [spec.control_root()]
buckets = sorted({urlparse(root).netloc for root in roots if root.startswith("s3://")})
s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["LOCKSTEP_S3_ENDPOINT"],
    region_name=os.environ.get("LOCKSTEP_S3_REGION", "us-east-1"),
    aws_access_key_id=os.environ["S3_ADMIN_KEY_ID"],
    aws_secret_access_key=os.environ["S3_ADMIN_SECRET"],
)
for bucket in buckets:
    try:
        s3.create_bucket(Bucket=bucket)
        print(f"created {bucket}")
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
        print(f"exists  {bucket}")
