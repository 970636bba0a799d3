"""What a spec's values refer to: ``${VAR}`` references, local paths, the shipped templates.

A spec never holds a credential or a machine's path: it writes ``${VAR}`` (or
``${VAR:-default}``) and :func:`expand_env` reads the variable from the process's
environment when the value is used. That is the one read of the environment outside
:mod:`pipelines.spec.settings`, and deliberately so: the variables are the spec's own
references, named by its author, not Lockstep's settings. Relative local paths resolve
against the spec file's folder (:func:`resolve_relative`); ``TEMPLATES_DIR`` is where the
installed package keeps the pipelines it ships.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipelines.errors import SpecError

#: Pipeline templates shipped inside the package; each folder holds a loadable spec, so
#: ``load_spec("fraud_features")`` works from an installed wheel.
TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"
#: The flagship's folder (its spec and, one level up, its suites): kept for callers that
#: located the shipped ``dags/`` and ``expectations/`` folders through it.
DAGS_DIR = TEMPLATES_DIR / "fraud_features" / "dags"

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: str, field: str) -> str:
    """Replace every ``${VAR}`` and ``${VAR:-default}`` in ``value`` from the environment.

    An unset (or empty) variable without a default is a :class:`SpecError` naming ``field``
    and the variable: a spec never runs with an empty credential or a half-built path. An
    unset ``VAR`` with ``VAR_FILE`` set reads that file (Docker's convention for secrets:
    ``LOCKSTEP_EU_SECRET_FILE=/run/lockstep/s3/secret``), its trailing newline dropped.

    >>> os.environ["BUCKET"] = "lake"
    >>> expand_env("s3://${BUCKET}/eu-${REGION:-west}", "storage.root")
    's3://lake/eu-west'
    """

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        got = os.environ.get(name) or _from_file(name, field)
        if got:
            return got
        if default is not None:
            return default
        raise SpecError(
            f"{field}: environment variable {name} is not set (write ${{{name}:-default}} for a default)",
            field=field, variable=name,
        )

    return _ENV_RE.sub(sub, value)


def _from_file(name: str, field: str) -> str | None:
    """The contents of the file ``$<name>_FILE`` names (None when that is unset)."""
    path = os.environ.get(f"{name}_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text().rstrip("\r\n") or None
    except OSError as exc:
        raise SpecError(f"{field}: {name}_FILE={path}: cannot read it ({exc.strerror})",
                        field=field, variable=name) from None


def is_local_path(value: str) -> bool:
    """True for a filesystem path, False for a URI with a scheme (``s3://``, ``file://`` …)."""
    return "://" not in value


def resolve_relative(value: str, base: Path | None) -> str:
    """A relative local path joined to ``base`` (the spec's folder); URIs, absolute paths and
    ``~`` paths unchanged, and everything unchanged when there is no base."""
    if base is None or not is_local_path(value) or value.startswith("{"):
        return value  # a URI, or a path that starts with a placeholder ({root}, {region})
    p = Path(value).expanduser()
    return str(p) if p.is_absolute() else os.path.normpath(base / p)
