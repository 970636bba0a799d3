"""Load-time checks of an expectation's kwargs, by GX's own expectation models.

Every expectation of a suite is instantiated as GX's pydantic class
(``ExpectationConfiguration(...).to_domain_obj()``), so an unknown kwarg (``min_val``), a
``mostly`` outside [0, 1], a missing ``column`` or both bounds missing where GX needs one
are refused by GX's rules, not re-typed ones. On top of the models, the arguments GX only
rejects once it runs (a ``min_value`` above ``max_value``, an empty ``value_set``, a regex
Python cannot compile, a quantile range upside down) are refused here too, so a suite that
cannot run never gets as far as reading or writing a table.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from pipelines.errors import ValidationStepError
from pipelines.validation.gx import import_gx


class SuiteArgumentError(ValidationStepError):
    """An expectation's kwargs are invalid: names the suite file, the expectation and the kwarg."""


def _is_param(v: Any) -> bool:
    return isinstance(v, dict) and "$PARAMETER" in v


def _comparable(lo: Any, hi: Any) -> bool:
    if lo is None or hi is None or _is_param(lo) or _is_param(hi):
        return False
    if isinstance(lo, bool) or isinstance(hi, bool):
        return False
    return (isinstance(lo, (int, float)) and isinstance(hi, (int, float))) or (isinstance(lo, str) and isinstance(hi, str))


def _gx_model_error(etype: str, kwargs: dict[str, Any]) -> tuple[str, str] | None:
    """(kwarg, message) of the first error GX's model of ``etype`` finds, or None."""
    import_gx()
    from great_expectations.compatibility.pydantic import ValidationError
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ExpectationConfiguration(type=etype, kwargs=dict(kwargs)).to_domain_obj()
    except ValidationError as exc:
        errors = exc.errors()
        # pydantic reports a smart union's every branch; the first error names the kwarg
        first = errors[0]
        loc = str(first["loc"][0]) if first.get("loc") else "__root__"
        msg = str(first.get("msg", ""))
        if loc == "__root__":
            loc = next((k for k in ("min_value", "max_value", "value_set", "column_list") if k in msg), "kwargs")
        elif first.get("type") == "value_error.extra":
            msg = "unknown argument (GX does not accept it)"
        return loc, msg
    except Exception as exc:  # GX's own configuration errors
        return "kwargs", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def _lockstep_error(etype: str, kw: dict[str, Any]) -> tuple[str, str] | None:
    """Arguments GX accepts at construction but fails on when it runs."""
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if _comparable(lo, hi) and lo > hi:  # type: ignore[operator]
        return "min_value", f"min_value ({lo!r}) is greater than max_value ({hi!r})"
    if "value_set" in kw and isinstance(kw["value_set"], list) and not kw["value_set"]:
        return "value_set", "value_set is empty"
    for key in ("regex",):
        if isinstance(kw.get(key), str):
            try:
                re.compile(kw[key])
            except re.error as exc:
                return key, f"regex does not compile: {exc}"
    if isinstance(kw.get("regex_list"), list):
        for rx in kw["regex_list"]:
            try:
                re.compile(rx)
            except (re.error, TypeError) as exc:
                return "regex_list", f"regex {rx!r} does not compile: {exc}"
    qr = kw.get("quantile_ranges")
    if isinstance(qr, dict):
        qs, ranges = qr.get("quantiles"), qr.get("value_ranges")
        if not isinstance(qs, list) or not isinstance(ranges, list) or len(qs) != len(ranges):
            return "quantile_ranges", "needs lists 'quantiles' and 'value_ranges' of the same length"
        for q in qs:
            if _is_param(q):
                continue
            if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1:
                return "quantile_ranges", f"quantile {q!r} is not in [0, 1]"
        for r in ranges:
            if not isinstance(r, list) or len(r) != 2:
                return "quantile_ranges", f"value range {r!r} is not a [min, max] pair"
            if _comparable(r[0], r[1]) and r[0] > r[1]:
                return "quantile_ranges", f"value range {r!r} has min above max"
    return None


def check_arguments(path: object, index: int, etype: str, kwargs: dict[str, Any]) -> None:
    """Raise :class:`SuiteArgumentError` naming ``path``, ``expectations[index] (etype)``
    and the kwarg, when GX's model or a run-time rule of GX refuses the kwargs."""
    found = _gx_model_error(etype, kwargs) or _lockstep_error(etype, kwargs)
    if found:
        kwarg, msg = found
        raise SuiteArgumentError(f"{path}: expectations[{index}] ({etype}): {kwarg}: {msg}",
                                 path=str(path), index=index, kwarg=kwarg)
