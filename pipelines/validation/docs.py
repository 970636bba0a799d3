"""Data Docs: per region, a static site of its validation results, under the region's prefix
of the control root (what a region's key may write there).

``<root>/<pipeline>/_lockstep/regions/<region>/data_docs/index.html`` lists the region's
intervals; each page shows every expectation's GX-format result, and the raw results sit beside it
as JSON (``<interval>/<region>.json``), the contract between tools. The root is the control
root: a local folder or an object store (``s3://`` …), written through :class:`DocsWriter`
with the same deltalake storage options as the ``_lockstep`` tables.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.errors import StorageError
from pipelines.storage import join_uri, region_prefix
from pipelines.validation.gx import import_gx


def docs_dir(root: str, pipeline: str, region: str) -> Path:
    """A region's Data Docs folder under a local root."""
    return Path(docs_uri(root, pipeline, region))


def docs_uri(root: str, pipeline: str, region: str) -> str:
    """A region's Data Docs location under any root (a local path or an object-store URI)."""
    return join_uri(region_prefix(root, pipeline, region), "data_docs")


class DocsWriter:
    """Reads, writes and lists small text files under one base (local folder or object
    store), through deltalake's object store: the options are the tables' storage options.

    >>> w = DocsWriter("s3://lake/p/_lockstep/data_docs", {"AWS_REGION": "eu-west-1"})  # doctest: +SKIP
    >>> w.write_text("index.html", "<html>…</html>")                                     # doctest: +SKIP
    """

    def __init__(self, base: str, storage_options: dict[str, str] | None = None) -> None:
        from deltalake._internal import DeltaFileSystemHandler

        self.base = base
        if "://" not in base:
            try:
                Path(base).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _io_error(exc, base, "create the folder") from None
        self._fs = DeltaFileSystemHandler(base, options=storage_options or None)

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode())

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write one file; an IO error (a full disk, a read-only root) is one StorageError
        naming the file, never a half-reported OSError."""
        try:
            out = self._fs.open_output_stream(path)
            try:
                out.write(data)
            finally:
                out.close()  # type: ignore[attr-defined]  # not in deltalake's stub
        except OSError as exc:
            raise _io_error(exc, join_uri(self.base, path), "write") from None

    def read_text(self, path: str) -> str:
        try:
            f = self._fs.open_input_file(path)
            try:
                return f.read(f.size()).decode()
            finally:
                f.close()  # type: ignore[attr-defined]  # not in deltalake's stub
        except OSError as exc:
            raise _io_error(exc, join_uri(self.base, path), "read") from None

    def files(self) -> list[str]:
        """Every file under the base, as paths relative to it."""
        from pyarrow.fs import FileType

        infos = self._fs.get_file_info_selector("", allow_not_found=True, recursive=True)
        return sorted(i.path.lstrip("/") for i in infos if i.type == FileType.File)


def _io_error(exc: OSError, path: str, action: str) -> StorageError:
    """A Data Docs IO error as one line naming the file: a full disk, a quota, a read-only
    root or a permission says what to do (:class:`FilesystemError`), anything else what failed."""
    from pipelines.errors import FilesystemError

    full = FilesystemError.from_os_error(exc, path, rerun="the step")
    if full is not None:
        return full
    reason = exc.strerror or " ".join(str(exc).split())
    return StorageError(f"Data Docs: cannot {action} {path}: {reason}", path=path)


RESULTS = "_results"


def suite_result(table: dict[str, Any], interval: str, region: str, run_time: datetime) -> dict[str, Any]:
    """One table's results as a GX ``ExpectationSuiteValidationResult`` document (its JSON)."""
    import_gx()
    from great_expectations.util import convert_to_json_serializable

    results = [convert_to_json_serializable(r) for r in table["results"]]
    ok = sum(bool(r["success"]) for r in results)
    n = len(results)
    return {
        "success": ok == n,
        "results": results,
        "suite_name": table["suite"],
        "suite_parameters": {},
        "statistics": {"evaluated_expectations": n, "successful_expectations": ok, "unsuccessful_expectations": n - ok,
                       "success_percent": 100.0 * ok / n if n else None},
        "meta": {"great_expectations_version": _gx_version(), "run_id": {"run_name": _run_name(interval, region),
                                                                          "run_time": run_time.isoformat()},
                 "batch_spec": {"table": table["table"]}, "active_batch_definition": {"batch_identifier": _batch(table)},
                 "validation_time": run_time.isoformat(),
                 "lockstep": {"interval": interval, "region": region, "table": table["table"], "rows": table.get("rows"),
                              "quarantined": table.get("quarantined"), "suite_sha": table.get("suite_sha")}},
    }


def _gx_version() -> str:
    from importlib.metadata import version

    return version("great_expectations")


def _run_name(interval: str, region: str) -> str:
    return f"{interval.replace(':', '')}_{region}"


def _batch(table: dict[str, Any]) -> str:
    return str(table["table"]).replace("/", ".")


def _key_path(suite: str, run_name: str, run_time: str, batch: str) -> str:
    return f"{RESULTS}/{suite}/{run_name}/{run_time}/{batch}.json"


def _page_path(suite: str, run_name: str, run_time: str, batch: str) -> str:
    """Where GX's site holds a result's page (relative to the site)."""
    return f"validations/{suite.replace('.', '/')}/{run_name}/{run_time}/{batch}.html"


def write_region_docs(root: str, pipeline: str, interval: str, region: str, tables: list[dict[str, Any]],
                      storage_options: dict[str, str] | None = None) -> str:
    """Store one region's results of one interval as GX validation result documents, render
    their pages and the index with GX's Data Docs builder (the region's own site), and return
    the location (a local path or an object-store URI) of the first table's GX validation page."""
    out = DocsWriter(docs_uri(root, pipeline, region), storage_options)
    out.write_text(f"{interval}/{region}.json", json.dumps(tables, default=str, indent=1))
    run_time = datetime.now(UTC)
    stamp = run_time.strftime(STAMP)
    pages: list[str] = []
    written: list[tuple[str, str, str, str]] = []
    for table in tables:
        doc = suite_result(table, interval, region, run_time)
        key = (table["suite"], _run_name(interval, region), stamp, _batch(table))
        out.write_text(_key_path(*key), json.dumps(doc, indent=1))
        pages.append(_page_path(*key))
        written.append(key)
    _build_site(out, interval_prefix=f"{interval.replace(':', '')}_", render=written)
    return join_uri(out.base, pages[0] if pages else "index.html")


STAMP = "%Y%m%dT%H%M%S.%fZ"


def _build_site(out: DocsWriter, interval_prefix: str = "",
                render: list[tuple[str, str, str, str]] | None = None) -> None:
    """Build GX's Data Docs site and copy it to ``out``: the pages of the results in ``render``
    (every stored one when None) and the index over one interval's newest results (runs named
    ``interval_prefix``...; every interval when empty). A build costs the results it renders
    plus one read per region and table of the interval: pages of earlier writes stay where they
    were written, and re-running an interval does not make the next build slower."""
    import tempfile

    gx = import_gx()
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    def identifier(suite: str, run_name: str, stamp: str, batch: str) -> ValidationResultIdentifier:
        run_time = datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)
        return ValidationResultIdentifier(expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite),
                                          run_id=RunIdentifier(run_name=run_name, run_time=run_time),
                                          batch_identifier=batch)

    newest: dict[tuple[str, str, str], str] = {}  # (suite, run, batch) -> its newest stamp
    for path in out.files():
        parts = path.split("/")
        if parts[0] != RESULTS or len(parts) != 5 or not path.endswith(".json"):
            continue
        if interval_prefix and not parts[2].startswith(interval_prefix):
            continue
        slot = (parts[1], parts[2], parts[4][: -len(".json")])
        newest[slot] = max(newest.get(slot, ""), parts[3])  # stamps sort as they are ordered in time
    keys = {(suite, run, stamp, batch) for (suite, run, batch), stamp in newest.items()}
    keys |= set(render or ())
    with tempfile.TemporaryDirectory(prefix="lockstep-docs-") as tmp:
        # an in-memory context: a file context scaffolds a project and re-reads its YAML at
        # every lookup of a setting, which cost more than the rendering itself
        context = gx.get_context(mode="ephemeral")
        site = Path(tmp, "site")
        _use_cached_views(context, site)
        _scaffold_styles(context, Path(tmp, "plugins"))
        store = context.validation_results_store
        present = set(out.files())
        kept: set[str] = set()
        for key in sorted(keys):
            # the stored document is the store's own format (a result's JSON): the backend takes
            # it as it is, without a load-and-dump through GX's schema
            store.store_backend.set(store.key_to_tuple(identifier(*key)), out.read_text(_key_path(*key)))
            page = _page_path(*key)
            if render is not None and key not in render and page in present:
                # a page rendered by an earlier build: the index lists the pages the site holds
                (site / page).parent.mkdir(parents=True, exist_ok=True)
                (site / page).write_text(out.read_text(page), encoding="utf-8")
                kept.add(page)
        context.build_data_docs(resource_identifiers=None if render is None else [identifier(*k) for k in render])
        for f in sorted(site.rglob("*")):
            rel = f.relative_to(site).as_posix()
            # GX's stylesheets, scripts and images are the same in every build: written once
            if f.is_file() and rel not in kept and not (rel.startswith("static/") and rel in present):
                if rel.endswith((".html", ".css", ".js", ".json", ".svg", ".map", ".txt")):
                    out.write_text(rel, f.read_text(encoding="utf-8"))
                else:
                    out.write_bytes(rel, f.read_bytes())


def _scaffold_styles(context: Any, plugins: Path) -> None:
    """The custom-styles stylesheet a file context's project holds (GX's own scaffold, its
    template copied), so the pages are those of GX's default project, file for file."""
    import_gx()
    from great_expectations.data_context.data_context.serializable_data_context import (
        SerializableDataContext,
    )

    (plugins / "custom_data_docs" / "styles").mkdir(parents=True)
    SerializableDataContext._scaffold_custom_data_docs(plugins)
    context.variables.plugins_directory = str(plugins)


def _use_cached_views(context: Any, base_directory: Path) -> None:
    """GX's page views for every site of ``context``, their compiled Jinja templates kept for the
    process (:mod:`pipelines.validation.docs_views`): GX compiled ~36 templates per build; the
    site built in ``base_directory``."""
    from pipelines.validation.docs_views import VIEWS

    for name, site in (context.variables.data_docs_sites or {}).items():
        site["store_backend"] = {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(base_directory)}
        site["site_section_builders"] = {s: {"view": VIEWS["page"]} for s in ("expectations", "validations", "profiling")}
        site["site_index_builder"] = {**(site.get("site_index_builder") or {"class_name": "DefaultSiteIndexBuilder"}),
                                      "view": VIEWS["index"]}
        context.update_data_docs_site(name, site)  # the variables hand out a copy
