"""GX's Data Docs page views, with the compiled templates kept for the process.

GX builds a fresh Jinja environment for every view of every build, so each build compiled the
same ~36 templates again: a third of a region's Data Docs build. These views are GX's own
(same templates, filters and output) with a Jinja bytecode cache shared by the process: a
template's source is still read and checksummed at each use, its compilation done once.
:mod:`pipelines.validation.docs` names them in the site it builds.
"""

from __future__ import annotations

from pipelines.validation.gx import import_gx

import_gx()

from great_expectations.render.view import (  # noqa: E402  (GX through its one import path)
    DefaultJinjaIndexPageView,
    DefaultJinjaPageView,
)
from jinja2 import BytecodeCache  # noqa: E402
from jinja2.bccache import Bucket  # noqa: E402

__all__ = ["PageView", "IndexPageView", "VIEWS"]


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


# GX hands a view only the arguments its __init__ names: the same names as GX's own views
class PageView(DefaultJinjaPageView):  # type: ignore[misc]
    def __init__(self, custom_styles_directory: str | None = None, custom_views_directory: str | None = None) -> None:
        super().__init__(custom_styles_directory=custom_styles_directory, custom_views_directory=custom_views_directory)
        self.env.bytecode_cache = _TEMPLATES


class IndexPageView(DefaultJinjaIndexPageView):  # type: ignore[misc]
    def __init__(self, custom_styles_directory: str | None = None, custom_views_directory: str | None = None) -> None:
        super().__init__(custom_styles_directory=custom_styles_directory, custom_views_directory=custom_views_directory)
        self.env.bytecode_cache = _TEMPLATES


#: the site's section and index builders' ``view`` configuration (GX instantiates them by name)
VIEWS = {
    "page": {"module_name": __name__, "class_name": "PageView"},
    "index": {"module_name": __name__, "class_name": "IndexPageView"},
}
