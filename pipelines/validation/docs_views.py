"""GX's Data Docs page views, with the compiled templates kept for the process.

GX builds a fresh Jinja environment for every view of every build, so each build compiled the
same ~36 templates again: a third of a region's Data Docs build. These views are GX's own
(same templates, filters and output) with a Jinja bytecode cache shared by the process: a
template's source is still read and checksummed at each use, its compilation done once.
:mod:`pipelines.validation.docs` names them in the site it builds.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import BytecodeCache
from jinja2.bccache import Bucket

from pipelines.validation.gx import import_gx

__all__ = ["VIEWS"]  # and PageView, IndexPageView: made when GX first asks (__getattr__)


class _ProcessBytecodeCache(BytecodeCache):
    """Compiled templates in memory, keyed by Jinja's (name, file) key and checked against the
    template source's checksum at each load."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_TEMPLATES = _ProcessBytecodeCache()


@cache
def _views() -> dict[str, type]:
    """GX's two page views with the process's template cache, made the first time GX asks for
    one (GX is imported through :func:`import_gx`, never when this module loads)."""
    import_gx()
    from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView

    # GX hands a view only the arguments its __init__ names: the same names as GX's own views
    class PageView(DefaultJinjaPageView):  # type: ignore[misc]
        def __init__(self, custom_styles_directory: str | None = None,
                     custom_views_directory: str | None = None) -> None:
            super().__init__(custom_styles_directory=custom_styles_directory,
                             custom_views_directory=custom_views_directory)
            self.env.bytecode_cache = _TEMPLATES

    class IndexPageView(DefaultJinjaIndexPageView):  # type: ignore[misc]
        def __init__(self, custom_styles_directory: str | None = None,
                     custom_views_directory: str | None = None) -> None:
            super().__init__(custom_styles_directory=custom_styles_directory,
                             custom_views_directory=custom_views_directory)
            self.env.bytecode_cache = _TEMPLATES

    return {"PageView": PageView, "IndexPageView": IndexPageView}


def __getattr__(name: str) -> Any:
    """``PageView`` and ``IndexPageView``, as GX looks them up by module and class name."""
    if name in ("PageView", "IndexPageView"):
        return _views()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: the site's section and index builders' ``view`` configuration (GX instantiates them by name)
VIEWS = {
    "page": {"module_name": __name__, "class_name": "PageView"},
    "index": {"module_name": __name__, "class_name": "IndexPageView"},
}
