"""The secrets of an embedded Airflow's home: generated on first use, kept in the home.

One JWT secret for every component (the scheduler signs task tokens the api-server
verifies), the api-server's secret key, the Fernet key, and the admin's password, which is
seeded into the simple auth manager's passwords file so the login is known before the
api-server starts. Nothing secret is committed: a new home gets new values.
"""

from __future__ import annotations

import json
import os
import secrets
from base64 import urlsafe_b64encode
from pathlib import Path

__all__ = ["ADMIN_USER", "PASSWORDS_FILE", "home_secrets", "write_passwords_file"]

#: the embedded Airflow's one administrator (the simple auth manager's user)
ADMIN_USER = "admin"
#: the simple auth manager's passwords file, in the home
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"

_SECRETS_FILE = "lockstep-secrets.json"


def home_secrets(home: Path) -> dict[str, str]:
    """The secrets of one Airflow home, generated on first use and kept in the home (mode 0600).

    Every component must share the JWT secret (the scheduler signs task tokens that the
    api-server verifies), so it cannot be left for each process to generate. Nothing
    secret is committed: a new home gets new values.
    """
    path = Path(home) / _SECRETS_FILE
    if path.exists():
        return dict(json.loads(path.read_text()))
    values = {
        "jwt_secret": secrets.token_urlsafe(32),
        "api_secret_key": secrets.token_urlsafe(32),
        # the format cryptography.fernet.Fernet.generate_key() produces
        "fernet_key": urlsafe_b64encode(os.urandom(32)).decode(),
        "admin_password": secrets.token_urlsafe(12),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh)
    return values


def write_passwords_file(home: Path, password: str) -> None:
    """Seed the simple auth manager's passwords file, so the admin password is known.

    The manager only generates passwords for users missing from this file
    (``SimpleAuthManager.init`` in Airflow 3.3).
    """
    path = Path(home) / PASSWORDS_FILE
    current: dict[str, str] = {}
    if path.exists() and path.read_text().strip():
        current = json.loads(path.read_text())
    if current.get(ADMIN_USER) != password:
        current[ADMIN_USER] = password
        path.write_text(json.dumps(current) + "\n")
        path.chmod(0o600)
