"""The public surface: every name in ``pipelines.__all__`` imports and is what ``_EXPORTS`` says.

Each check runs in a fresh interpreter, so what an earlier import bound (a submodule import
binds the package's attribute) cannot hide a name that resolves to the wrong object.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

#: in a fresh interpreter: import the public names (before or after importing every module
#: the exports come from), and report for each what it is and whether it is the object
#: ``_EXPORTS`` names (the module itself for ``pipelines.<name>``, else the module's attribute)
PROBE = r"""
import importlib, inspect, json, sys
import pipelines

exports = dict(pipelines._EXPORTS)
if sys.argv[1] == "after":
    for module in sorted(set(exports.values())):
        importlib.import_module(module)
got = {}
for name in pipelines.__all__:
    namespace = {}
    exec(f"from pipelines import {name}", namespace)
    obj = namespace[name]
    module = importlib.import_module(exports[name])
    expected = module if exports[name] == f"pipelines.{name}" else getattr(module, name)
    kind = "module" if inspect.ismodule(obj) else "class" if inspect.isclass(obj) else (
        "function" if inspect.isfunction(obj) else type(obj).__name__)
    got[name] = {"kind": kind, "same": obj is expected and getattr(pipelines, name) is obj}
print(json.dumps({"all": pipelines.__all__, "exports": sorted(exports), "names": got}))
"""

PACKAGES = {"certify", "templates"}


def _probe(when: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", PROBE, when], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("when", ["before", "after"])
def test_every_public_name_is_the_object_its_export_names(when: str) -> None:
    report = _probe(when)
    assert report["all"] == report["exports"], "__all__ must be sorted(_EXPORTS)"
    names = report["names"]
    assert isinstance(names, dict)
    for name, got in names.items():
        assert got["same"], f"from pipelines import {name}: not the object _EXPORTS names ({got})"
        if name in PACKAGES:
            assert got["kind"] == "module", f"pipelines.{name} is the package"
        else:  # a function, a class or a type alias (Transform): never a module
            assert got["kind"] != "module", f"pipelines.{name} is a module, not the name __all__ promises"
    assert {"certify_interval", "list_templates"} <= set(names)


def test_the_certify_package_example_runs_as_written(root: str) -> None:
    """The example in ``pipelines.certify``'s docstring, run on a small pipeline."""
    import pipelines.certify
    from pipelines.runner import run_interval
    from pipelines.spec import Interval
    from tests.conftest import make_spec

    doc = pipelines.certify.__doc__ or ""
    example = doc.split("Example::", 1)[1]
    code = "\n".join(line[4:] for line in example.splitlines())
    spec = make_spec(regions=2)
    run_interval(spec, Interval.for_date("2026-01-01"), root=root, certify=False)
    namespace = {"spec": spec, "root": root}
    exec(compile(code, "pipelines.certify example", "exec"), namespace)
    assert namespace["decision"].certified  # type: ignore[attr-defined]
    assert namespace["lf"].collect().height > 0  # type: ignore[attr-defined]
