"""Pipeline templates that ship in the package, and ``lockstep init``, which renders them.

Each folder here is a complete, working pipeline project (its spec is loadable as it is, so
``load_spec("fraud_features")`` works from an installed wheel) plus a ``template.json``::

    {"description": "...", "pipeline": "card_spend",
     "sample": {"folder": "landing", "days": 7, "rows": 400, "format": "parquet"}}

Rendering copies the folder, replaces the template's pipeline name with the new one in file
names and contents, sets the spec's ``regions:`` line, writes ``pipeline.schema.json`` (for
the spec's ``yaml-language-server`` line) and, for a file-source template, sample files.

Example::

    from pipelines.templates import init_project
    made = init_project("payments", template="card_spend", name="payments", regions=["eu-west", "us-east"])
    made.spec        # Path('payments/payments.yaml')
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pipelines.errors import LockstepError
from pipelines.spec import NAME_PATTERN, REGION_PATTERN, TEMPLATES_DIR

DEFAULT_TEMPLATE = "card_spend"
TEXT_SUFFIXES = {".py", ".yaml", ".yml", ".json", ".md", ".txt", ".cfg", ".toml", ".csv"}
SKIP = {"template.json", "__pycache__", "lockstep-data", ".pytest_cache"}


class TemplateError(LockstepError):
    """A template cannot be rendered: unknown template, bad name or regions, a folder in the way."""


@dataclass(frozen=True)
class Template:
    """A shipped template: its folder, description and the pipeline name it is written with."""

    name: str
    path: Path
    description: str
    pipeline: str
    sample: dict[str, Any] | None = None

    @property
    def spec_path(self) -> Path:
        return self.path / f"{self.pipeline}.yaml"


@dataclass
class InitResult:
    """What ``init_project`` wrote."""

    directory: Path
    template: str
    pipeline: str
    regions: list[str]
    spec: Path
    files: list[Path] = field(default_factory=list)
    sample_files: list[Path] = field(default_factory=list)
    sample_dates: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory), "template": self.template, "pipeline": self.pipeline,
            "regions": self.regions, "spec": str(self.spec), "files": [str(f) for f in self.files],
            "sample_files": len(self.sample_files), "sample_dates": self.sample_dates,
        }


def list_templates() -> list[Template]:
    """Every template shipped in the installed package, by name."""
    out = []
    for meta in sorted(TEMPLATES_DIR.glob("*/template.json")):
        data = json.loads(meta.read_text())
        out.append(Template(name=meta.parent.name, path=meta.parent, description=data["description"],
                            pipeline=data["pipeline"], sample=data.get("sample")))
    return out


def get_template(name: str) -> Template:
    for t in list_templates():
        if t.name == name:
            return t
    known = ", ".join(t.name for t in list_templates())
    raise TemplateError(f"no template named {name!r}; templates: {known}", template=name)


def _check(name: str, regions: list[str]) -> None:
    if not re.fullmatch(NAME_PATTERN, name):
        raise TemplateError(f"--name {name!r}: a pipeline name matches {NAME_PATTERN}", field="name")
    bad = [r for r in regions if not re.fullmatch(REGION_PATTERN, r)]
    if bad or not regions:
        raise TemplateError(f"--regions {bad or regions}: region ids match {REGION_PATTERN}", field="regions")
    dupes = sorted({r for r in regions if regions.count(r) > 1})
    if dupes:
        raise TemplateError(f"--regions: duplicate region(s) {dupes}", field="regions")


def _spec_regions(text: str) -> list[str]:
    m = re.search(r"^regions:\s*\[([^\]]*)\]\s*$", text, flags=re.M)
    if m is None:
        raise TemplateError("template spec has no one-line 'regions: [...]'")
    return [r.strip() for r in m.group(1).split(",") if r.strip()]


def init_project(
    directory: str | Path, *, template: str = DEFAULT_TEMPLATE, name: str | None = None,
    regions: list[str] | None = None,
) -> InitResult:
    """Render ``template`` into ``directory`` (new or empty): a working pipeline project.

    ``name`` (default: the folder's name, made a valid pipeline name) replaces the
    template's pipeline name everywhere; ``regions`` replaces its regions. Never overwrites:
    a non-empty ``directory`` is an error.
    """
    t = get_template(template)
    dest = Path(directory).expanduser()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise TemplateError(f"{dest}: exists and is not an empty folder; init writes a new project", path=str(dest))
    pipeline = name or _default_name(dest, t.pipeline)
    spec_text = t.spec_path.read_text()
    chosen = list(regions) if regions else _spec_regions(spec_text)
    _check(pipeline, chosen)
    written: list[Path] = []
    dest.mkdir(parents=True, exist_ok=True)
    for src in sorted(t.path.rglob("*")):
        rel = src.relative_to(t.path)
        if any(part in SKIP for part in rel.parts) or src.is_dir() or src.suffix == ".pyc":
            continue
        target = dest / str(rel).replace(t.pipeline, pipeline)
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix in TEXT_SUFFIXES:
            text = src.read_text().replace(t.pipeline, pipeline)
            if src == t.spec_path:
                text = re.sub(r"^regions:.*$", f"regions: [{', '.join(chosen)}]", text, count=1, flags=re.M)
            target.write_text(text)
        else:
            shutil.copyfile(src, target)
        written.append(target)
    written.append(_write_schema(dest / "pipeline.schema.json"))
    result = InitResult(directory=dest, template=t.name, pipeline=pipeline, regions=chosen,
                        spec=dest / f"{pipeline}.yaml", files=written)
    from pipelines.spec import load_spec

    spec = load_spec(result.spec)  # the rendered spec must load, or init fails now, not at run time
    if t.sample:
        _write_sample(result, t.sample, spec.start_date)
    return result


def _default_name(dest: Path, fallback: str) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", dest.resolve().name.lower()).strip("_")
    if not name or not name[0].isalpha():
        return fallback
    return name[:63]


def _write_schema(path: Path) -> Path:
    from pipelines.spec import PipelineSpec

    path.write_text(json.dumps(PipelineSpec.model_json_schema(), indent=2) + "\n")
    return path


def _write_sample(result: InitResult, sample: dict[str, Any], start: date) -> None:
    """Sample deliveries for every region: ``lockstep generate``'s synthetic transactions."""
    from pipelines.sources.synthetic import export_files

    dates = [start + timedelta(days=i) for i in range(int(sample.get("days", 7)))]
    result.sample_files = export_files(
        result.directory / sample.get("folder", "landing"), regions=result.regions, dates=dates,
        rows=int(sample.get("rows", 400)), fmt=sample.get("format", "parquet"),
    )
    result.sample_dates = [d.isoformat() for d in dates]
