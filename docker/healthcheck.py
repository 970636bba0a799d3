"""Container health probe: ``python healthcheck.py URL [component]``; exit 0 when healthy.

``/api/v2/monitor/health`` for the api-server (with a component: that component's status
too), any 2xx answer for other URLs (the S3 stand-in)."""

import json
import sys
import urllib.request

url = sys.argv[1]
component = sys.argv[2] if len(sys.argv) > 2 else None
try:
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read()
except Exception as exc:  # noqa: BLE001 - any failure is "not healthy"
    print(f"unhealthy: {exc}")
    sys.exit(1)
if component:
    status = (json.loads(body).get(component) or {}).get("status")
    if status != "healthy":
        print(f"{component}: {status}")
        sys.exit(1)
