#!/bin/sh
# Build the images docker/compose.yaml runs, from the repository's root (`make images` runs this):
#
#   lockstep:$TAG        Lockstep on Airflow 3 (api-server, scheduler, dag-processor, triggerer, workers)
#   lockstep-s3:$TAG     the S3 stand-in (moto's server, IAM enforced)
#   lockstep-postgres:$TAG, lockstep-redis:$TAG   PostgreSQL and Redis
#
# Where a container registry answers, the bases are the official images (apache/airflow,
# postgres, redis: pulled, and PostgreSQL and Redis tagged under the names above). Where none
# does (`docker pull` of the official Airflow image fails, or LOCKSTEP_OFFLINE_IMAGES=1), they
# are built from Debian's packages instead: a debootstrap root file system imported with
# `docker import`, then docker/test/*.Dockerfile on top, which keep the official images'
# contracts. Either way compose runs the same names; LOCKSTEP_OFFLINE_IMAGES=0 insists on the
# official images.
#
# pip inside the build trusts the host's CA bundle (a TLS-intercepting proxy's): it is copied
# to docker/pip-ca.pem (git-ignored) from $PIP_CERT, else /etc/ssl/certs/ca-certificates.crt.
#
# Environment: LOCKSTEP_IMAGE_TAG (default latest), LOCKSTEP_OFFLINE_IMAGES (unset: probe),
# LOCKSTEP_DEBIAN_MIRROR, LOCKSTEP_ROOTFS_CACHE (the debootstrap tree, kept between builds).
set -eu
cd "$(dirname "$0")/.."

TAG=${LOCKSTEP_IMAGE_TAG:-latest}
AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
POSTGRES_OFFICIAL=postgres:16
REDIS_OFFICIAL=redis:7
ROOTFS_IMAGE=lockstep-debian/rootfs:bookworm
ROOTFS_CACHE=${LOCKSTEP_ROOTFS_CACHE:-/var/tmp/lockstep-rootfs/bookworm}
DEBIAN_MIRROR=${LOCKSTEP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOTFS_PACKAGES=python3,python3-venv,ca-certificates,postgresql,redis-server,procps

say() { printf '%s\n' "build-images: $*" >&2; }
fail() { say "$*"; exit 1; }

command -v docker >/dev/null || fail "docker is not installed (apt-get install -y docker.io docker-compose)"
docker info >/dev/null 2>&1 || fail "the Docker Engine does not answer (is dockerd running, may you use it?)"

# one build at a time on this host: a second one waits for the first, then finds its layers
# cached (CI starts a build while the project installs; the docker test's own then waits)
if command -v flock >/dev/null; then
  exec 9>"${TMPDIR:-/tmp}/lockstep-build-images.lock"
  flock 9
fi

# --- the host's CA bundle for pip in the build (never committed: .gitignore)
ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
if [ -f "$ca" ]; then
  cp "$ca" docker/pip-ca.pem
else
  rm -f docker/pip-ca.pem
fi

# --- official images, or Debian's packages
offline=${LOCKSTEP_OFFLINE_IMAGES:-}
if [ -z "$offline" ]; then
  if docker pull -q "$AIRFLOW_IMAGE" >/dev/null 2>&1; then offline=0; else offline=1; fi
  say "registry $( [ "$offline" = 1 ] && echo 'not reachable: building the bases from Debian packages' || echo reachable)"
fi

if [ "$offline" = 1 ]; then
  if ! docker image inspect "$ROOTFS_IMAGE" >/dev/null 2>&1; then
    if [ ! -d "$ROOTFS_CACHE" ]; then
      command -v debootstrap >/dev/null || fail "no registry and no debootstrap: apt-get install -y debootstrap"
      tmp="$ROOTFS_CACHE.tmp$$"
      rm -rf "$tmp"
      mkdir -p "$(dirname "$ROOTFS_CACHE")"
      say "debootstrap bookworm into $ROOTFS_CACHE"
      debootstrap --variant=minbase --include="$ROOTFS_PACKAGES" bookworm "$tmp" "$DEBIAN_MIRROR" >&2
      mv "$tmp" "$ROOTFS_CACHE"
    fi
    tar -C "$ROOTFS_CACHE" -c . | docker import - "$ROOTFS_IMAGE" >/dev/null
  fi
  base=lockstep-base:$TAG
  docker build -f docker/test/base.Dockerfile --build-arg ROOTFS_IMAGE="$ROOTFS_IMAGE" -t "$base" . >&2
  docker build -f docker/test/postgres.Dockerfile --build-arg ROOTFS_IMAGE="$ROOTFS_IMAGE" \
    -t "lockstep-postgres:$TAG" . >&2
  docker build -f docker/test/redis.Dockerfile --build-arg ROOTFS_IMAGE="$ROOTFS_IMAGE" \
    -t "lockstep-redis:$TAG" . >&2
else
  [ "$offline" = 0 ] || fail "LOCKSTEP_OFFLINE_IMAGES=$offline: 1 (Debian's packages) or 0 (official images)"
  base=$AIRFLOW_IMAGE
  docker pull -q "$AIRFLOW_IMAGE" >/dev/null
  docker pull -q "$POSTGRES_OFFICIAL" >/dev/null && docker tag "$POSTGRES_OFFICIAL" "lockstep-postgres:$TAG"
  docker pull -q "$REDIS_OFFICIAL" >/dev/null && docker tag "$REDIS_OFFICIAL" "lockstep-redis:$TAG"
fi

for target in s3 lockstep; do
  name=$( [ "$target" = s3 ] && echo lockstep-s3 || echo lockstep )
  say "building $name:$TAG on $base"
  docker build --network host -f docker/Dockerfile --target "$target" --build-arg BASE_IMAGE="$base" \
    -t "$name:$TAG" . >&2
done
say "built lockstep:$TAG lockstep-s3:$TAG lockstep-postgres:$TAG lockstep-redis:$TAG"
