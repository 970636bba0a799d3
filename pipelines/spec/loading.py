"""Loading specs: YAML into a :class:`~pipelines.spec.pipeline.PipelineSpec`, with one
:class:`~pipelines.errors.SpecError` for any problem, and the discovery of shipped pipelines.

Example::

    spec = load_spec("fraud_features")            # a shipped pipeline, by name
    spec = load_spec("dags/payments.yaml")         # or a file
    spec = parse_spec({"name": "p", ...}, "inline")  # or a mapping already parsed
    users = load_users_file("airflow-users.yaml")  # the FAB users file of `lockstep airflow up --auth fab`
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pipelines.errors import SpecError
from pipelines.spec.pipeline import PipelineSpec
from pipelines.spec.resolve import TEMPLATES_DIR
from pipelines.spec.users import FabUsersFile

#: PyYAML's safe loader built on libyaml, where PyYAML has it (its wheels do): the same
#: documents as the pure-Python one, about 9x faster (a 170-line spec: 2.4 ms against 22 ms).
#: The view reads the DAGs folder's specs per request, every task its spec
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load(text)``, through :data:`SAFE_LOADER`. A document it refuses is parsed
    again by the pure-Python loader, whose error is raised: the same position, worded as users
    of PyYAML know it ("expected ',' or ']', but got '<stream end>'", where libyaml says "did
    not find expected ',' or ']'")."""
    try:
        return yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError:
        if SAFE_LOADER is yaml.SafeLoader:
            raise
    return yaml.safe_load(text)


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("synthetic", "parquet", "csv", "jsonl", "delta", "function-after"):
            continue  # discriminator tags are noise in a field path
        else:
            out += f".{part}" if out else str(part)
    return out  # empty for a check of the whole spec: its message names its own fields


def resolve_spec_path(name_or_path: str | Path) -> Path:
    """A shipped pipeline's name (``fraud_features``) or a path to a spec file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    folders = [Path.cwd() / "dags", *shipped_pipeline_dirs()]
    for d in folders:
        for ext in (".yaml", ".yml"):
            if (d / f"{name_or_path}{ext}").exists():
                return d / f"{name_or_path}{ext}"
    shipped = ", ".join(sorted(shipped_pipelines())) or "none"
    raise SpecError(
        f"{name_or_path}: no such pipeline (looked for {name_or_path}.yaml in ./dags and in the "
        f"installed package, which ships: {shipped}) and no such file",
        file=str(name_or_path),
    )


def shipped_pipeline_dirs() -> list[Path]:
    """Folders of the installed package that hold shipped pipeline specs (one per template)."""
    if not TEMPLATES_DIR.is_dir():
        return []
    out = []
    for t in sorted(TEMPLATES_DIR.iterdir()):
        out += [d for d in (t, t / "dags") if d.is_dir()]
    return out


def shipped_pipelines() -> dict[str, Path]:
    """Every shipped pipeline by name: ``load_spec(name)`` loads it from the installed package."""
    found: dict[str, Path] = {}
    for d in shipped_pipeline_dirs():
        for f in sorted(d.glob("*.y*ml")):
            found.setdefault(f.stem, f)
    return found


def parse_spec(data: Any, source: str = "<spec>") -> PipelineSpec:
    """Validate a parsed mapping; errors name ``source``, the field path and what was expected."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping at the top level, got {type(data).__name__}", file=source)
    return _validated(PipelineSpec, data, source)


M = TypeVar("M", bound=BaseModel)


def _validated(model: type[M], data: Any, source: str) -> M:
    """``model`` from ``data``; one :class:`SpecError` naming ``source`` and every field path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = _format_loc(tuple(err["loc"]))
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) or err["type"] == "missing" else f" (got {got!r})"
            lines.append(f"{loc}: {msg}{shown}" if loc else f"{msg}{shown}")
        raise SpecError(f"{source}: " + "; ".join(lines), file=source, errors=lines) from None


def load_spec(name_or_path: str | Path) -> PipelineSpec:
    """Load a pipeline spec from YAML, by shipped name or path.

    >>> spec = load_spec("fraud_features")
    >>> len(spec.regions)
    12
    """
    path = resolve_spec_path(name_or_path)
    spec = parse_spec(_read_yaml(path, "spec"), str(path)).with_path(path.resolve())
    spec._ref = str(name_or_path)  # what a suggested command names it by
    root = spec.storage.root
    if "://" not in root and ("#" in root or "?" in root):
        raise SpecError(f"{path}: storage.root: a local storage root may not contain '#' or '?' (got {root!r}); "
                        "Delta reads them as URL syntax", file=str(path), field="storage.root")
    return spec


def _read_yaml(path: Path, what: str) -> Any:
    """The parsed YAML of ``path``; one :class:`SpecError` when it cannot be read or parsed."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read {what} ({exc.strerror})", file=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}); "
                        f"save the {what} as UTF-8", file=str(path)) from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{path}: YAML syntax error{where}: {problem}", file=str(path)) from None


def load_users_file(path: str | Path) -> FabUsersFile:
    """The FAB users file (:class:`~pipelines.spec.users.FabUsersFile`) at ``path``; one
    :class:`SpecError` naming the file and the field when it is malformed."""
    path = Path(path)
    data = _read_yaml(path, "users file")
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping with users: at the top level, got {type(data).__name__}",
                        file=str(path))
    return _validated(FabUsersFile, data, str(path))
