"""Python ``re`` patterns, translated exactly into polars' (Rust ``regex``) dialect.

GX's pandas engine matches with Python's ``re`` (``Series.str.contains``); polars runs the
Rust ``regex`` crate. The two dialects disagree: Rust has no look-around, back-references
or ``\\Z``; Python's ``$`` also matches before a trailing newline; ``\\w``, ``\\s`` and
``\\d`` cover different characters; ``[[:alpha:]]`` is a POSIX class in Rust but a plain
set of characters in Python. So a pattern is never handed to polars as written: it is
parsed by Python's own parser and re-emitted node by node, every literal as a code point
escape and every class (``\\w``, ``\\s``, ``\\d``) as the exact ranges Python matches. A
construct with no exact Rust equivalent returns ``None``, and the expectation runs on GX
(Python semantics) instead.

    >>> to_rust(r"^[A-Z]{3}$")
    '\\\\A(?:[A-Z]){3,3}\\\\n?\\\\z'
    >>> to_rust(r"(?!x)a") is None
    True
    >>> to_rust(r"a{,2}") is None  # RE2 (which GX's pandas may use) reads it as text
    True
"""

from __future__ import annotations

import functools
import re
import sys

# re's parser is private but stable across 3.11-3.13, and it is the only way to read a
# pattern exactly as Python reads it.
from re import _constants as C  # type: ignore[attr-defined]
from re import _parser as P  # type: ignore[attr-defined]
from typing import Any

_ALLOWED_FLAGS = re.UNICODE

# Spellings that pandas 3 (so GX) hands to pyarrow's RE2, which reads them otherwise than
# Python does or rejects them: any "(?" but "(?:" (inline flags such as (?x) (?u) (?i),
# comments, named groups), "{,n}" / "{,}" (RE2: literal text; Python: {0,n}), a count with
# a leading zero ("{02}": literal to RE2), "[\b]" (Python: backspace; RE2: an error) and
# "[:" (a POSIX class to RE2). Found in the source text, escaped or not: a false alarm only
# runs the expectation on GX.
_RE2_READS_OTHERWISE = re.compile(r"\\[bB]|\(\?(?!:)|\{\s*,|\{(?:\d+,)?0\d|\[:")


class _NoEquivalent(Exception):
    pass


def _cp(c: int) -> str:
    ch = chr(c)
    return ch if ch.isascii() and ch.isalnum() else f"\\x{{{c:x}}}"


@functools.cache
def _category_ranges(pattern: str) -> str:
    """The exact code point ranges Python's ``pattern`` (one class escape) matches."""
    rx = re.compile(pattern)
    out: list[str] = []
    start = prev = -2
    for c in range(sys.maxunicode + 1):
        if 0xD800 <= c <= 0xDFFF:  # surrogates never occur in polars (UTF-8) strings
            continue
        if rx.match(chr(c)):
            if c != prev + 1:
                if start >= 0:
                    out.append(_range(start, prev))
                start = c
            prev = c
    if start >= 0:
        out.append(_range(start, prev))
    return "".join(out)


def _range(lo: int, hi: int) -> str:
    return _cp(lo) if lo == hi else f"{_cp(lo)}-{_cp(hi)}"


_CATEGORIES = {
    C.CATEGORY_DIGIT: (r"\d", False), C.CATEGORY_NOT_DIGIT: (r"\d", True),
    C.CATEGORY_SPACE: (r"\s", False), C.CATEGORY_NOT_SPACE: (r"\s", True),
    C.CATEGORY_WORD: (r"\w", False), C.CATEGORY_NOT_WORD: (r"\w", True),
}


def _category(cat: Any) -> str:
    if cat not in _CATEGORIES:
        raise _NoEquivalent(str(cat))
    pattern, negated = _CATEGORIES[cat]
    return f"[{'^' if negated else ''}{_category_ranges(pattern)}]"


def _class(items: list[tuple[Any, Any]]) -> str:
    negate = False
    parts: list[str] = []
    for op, av in items:
        if op is C.NEGATE:
            negate = True
        elif op is C.LITERAL:
            parts.append(_cp(av))
        elif op is C.RANGE:
            parts.append(_range(av[0], av[1]))
        elif op is C.CATEGORY:
            parts.append(_category(av))
        else:
            raise _NoEquivalent(str(op))
    if not parts:
        raise _NoEquivalent("empty class")
    return f"[{'^' if negate else ''}{''.join(parts)}]"


def _seq(nodes: Any, at_tail: bool) -> str:
    items = list(nodes)
    return "".join(_node(op, av, at_tail and i == len(items) - 1) for i, (op, av) in enumerate(items))


def _node(op: Any, av: Any, at_tail: bool) -> str:
    if op is C.LITERAL:
        return _cp(av)
    if op is C.NOT_LITERAL:
        return f"[^{_cp(av)}]"
    if op is C.ANY:
        return "."  # neither dialect's "." matches "\n" without the s flag
    if op is C.IN:
        return _class(av)
    if op is C.BRANCH:
        return "(?:" + "|".join(_seq(branch, at_tail) for branch in av[1]) + ")"
    if op is C.SUBPATTERN:
        _group, add, delete, sub = av
        if add or delete:
            raise _NoEquivalent("inline flags")
        return "(?:" + _seq(sub, at_tail) + ")"
    if op in (C.MAX_REPEAT, C.MIN_REPEAT):
        lo, hi, sub = av
        if hi != C.MAXREPEAT and hi > 1000 or lo > 1000:
            raise _NoEquivalent("large repetition")
        bounds = f"{{{lo},}}" if hi == C.MAXREPEAT else f"{{{lo},{hi}}}"
        return f"(?:{_seq(sub, False)}){bounds}{'?' if op is C.MIN_REPEAT else ''}"
    if op is C.AT:
        if av is C.AT_BEGINNING or av is C.AT_BEGINNING_STRING:
            return r"\A"
        if av is C.AT_END_STRING:
            return r"\z"
        if av is C.AT_END and at_tail:
            # Python's "$": the end, or just before a final "\n". Nothing follows it, so
            # consuming that newline changes no match.
            return r"\n?\z"
        raise _NoEquivalent(str(av))
    raise _NoEquivalent(str(op))


@functools.lru_cache(maxsize=256)
def to_rust(pattern: str) -> str | None:
    """``pattern`` (Python ``re``) as an equivalent Rust ``regex`` pattern for
    ``str.contains``, or None when no exact translation exists (run it with Python)."""
    if _RE2_READS_OTHERWISE.search(pattern):
        # GX's pandas hands patterns it deems RE2-safe to pyarrow: one RE2 may read
        # otherwise than Python is left to GX
        return None
    try:
        parsed = P.parse(pattern, 0)
    except re.error:
        return None
    if parsed.state.flags & ~_ALLOWED_FLAGS:
        return None
    try:
        return _seq(parsed, True)
    except _NoEquivalent:
        return None
