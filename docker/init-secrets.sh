#!/bin/sh
# Generate the deployment's secrets, one file each, in docker/secrets/ (or $LOCKSTEP_SECRETS):
# compose hands each container only the files it needs (docker/compose.yaml's `secrets:`;
# README's Deploy section has the matrix). A file that exists is kept, so this is safe to run
# again; delete one to rotate it. The folder is git-ignored and only its owner may open it;
# the files are world-readable inside it (0700) because the containers' users (airflow, postgres)
# read them through bind mounts.
set -eu
dir=${LOCKSTEP_SECRETS:-$(dirname "$0")/secrets}
mkdir -p "$dir"
chmod 0700 "$dir"
token() { head -c 32 /dev/urandom | base64 | tr -d '\n/+='; }
for name in postgres_password jwt_secret api_secret_key admin_password hash_key fernet_key; do
  file="$dir/$name"
  [ -s "$file" ] && continue
  case "$name" in
    fernet_key) head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '\n' > "$file" ;;  # Fernet: urlsafe base64 of 32 bytes
    hash_key) head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$file" ;;
    *) token > "$file" ;;
  esac
  chmod 0644 "$file"
  echo "init-secrets: wrote $file"
done
