"""Great Expectations is imported one way: pipelines.validation.gx.import_gx sets its usage
statistics off (the one place GX_ANALYTICS_ENABLED is set), and every function of Lockstep
that imports GX calls it first."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from tests.conftest import REPO

PIPELINES = REPO / "pipelines"
HOME = PIPELINES / "validation" / "gx.py"


def _imports_gx(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] == "great_expectations" for a in node.names)
    return isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "great_expectations"


def _own_nodes(fn: ast.AST) -> list[ast.AST]:
    """The nodes of a function's body, not of the functions nested in it."""
    out, todo = [], list(ast.iter_child_nodes(fn))
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        out.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return out


def test_analytics_switch_is_set_in_one_place() -> None:
    where = sorted(str(p.relative_to(REPO)) for p in PIPELINES.rglob("*.py") if "GX_ANALYTICS_ENABLED" in p.read_text())
    assert where == ["pipelines/validation/gx.py"]


def test_every_gx_import_follows_import_gx() -> None:
    bad = []
    for path in PIPELINES.rglob("*.py"):
        if path == HOME:
            continue
        tree = ast.parse(path.read_text())
        assert not any(_imports_gx(n) for n in tree.body), f"{path}: GX imported at module level"
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            nodes = _own_nodes(fn)
            first_import = min((n.lineno for n in nodes if _imports_gx(n)), default=None)
            if first_import is None:
                continue
            calls = [n.lineno for n in nodes if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                     and n.func.id == "import_gx"]
            if not calls or min(calls) > first_import:
                bad.append(f"{path.relative_to(REPO)}:{fn.lineno} {fn.name}")
    assert not bad, f"call import_gx() before importing GX in: {bad}"


def test_import_gx_turns_analytics_off_before_gx_loads() -> None:
    code = (
        "import os, sys; os.environ['GX_ANALYTICS_ENABLED'] = 'true';"
        "from pipelines.validation.gx import import_gx;"
        "assert 'great_expectations' not in sys.modules;"
        "gx = import_gx(); assert gx is sys.modules['great_expectations'];"
        "print(os.environ['GX_ANALYTICS_ENABLED'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "GX_ANALYTICS_ENABLED"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "false"
