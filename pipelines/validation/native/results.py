"""Results shaping: GX ``ExpectationValidationResult`` dicts, for a result computed natively
and for an expectation that could not run (``not_native`` marks one for GX to take over).
"""

from __future__ import annotations

import traceback
from typing import Any

from pipelines.validation.gx import import_gx
from pipelines.validation.native.plan import NotNative, _Plan
from pipelines.validation.suites import Expectation


def _json(x: Any) -> Any:
    import_gx()
    from great_expectations.util import convert_to_json_serializable

    return convert_to_json_serializable(x)


def _result(e: Expectation, out: dict[str, Any]) -> dict[str, Any]:
    return {
        "success": bool(out["success"]),
        "expectation_config": {"type": e.type, "kwargs": e.kwargs, "meta": e.meta},
        "result": _json(out.get("result") or {}),
        "meta": {"engine": "polars"},
        "exception_info": {"raised_exception": False, "exception_traceback": None, "exception_message": None},
    }


def error_result(e: Expectation, message: str, *, native: bool, tb: str | None = None) -> dict[str, Any]:
    """GX's shape for an expectation that could not run (``exception_info`` set, no success).
    ``meta.not_native`` marks one the native executor does not run, for GX to take over."""
    return {
        "success": False,
        "expectation_config": {"type": e.type, "kwargs": e.kwargs, "meta": e.meta},
        "result": {},
        "meta": {"engine": "polars", **({} if native else {"not_native": message})},
        "exception_info": {"raised_exception": True, "exception_traceback": tb, "exception_message": message},
    }


def is_not_native(result: dict[str, Any]) -> bool:
    return bool((result.get("meta") or {}).get("not_native"))


def _finish(e: Expectation, plan: _Plan, row: dict[str, Any]) -> dict[str, Any]:
    try:
        return _result(e, plan.finish(row))
    except NotNative as exc:
        return error_result(e, str(exc), native=False)
    except Exception as exc:
        return error_result(e, f"{type(exc).__name__}: {exc}", native=False, tb=traceback.format_exc())
