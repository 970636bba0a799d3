"""How values read in what people see (messages, explain, the view): plain Python, never an
internal repr such as ``np.float64(2392.1662)``, floats to six significant digits.

>>> import numpy as np
>>> shown(np.float64(2392.16620001))
'2392.17'
>>> shown({"values": [np.float64(0.5), 1638.4850000000001]})
"{'values': [0.5, 1638.49]}"
"""

from __future__ import annotations

from typing import Any


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays made Python (lists, dicts and tuples walked)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__ == "numpy":
        return plain(value.tolist() if getattr(value, "ndim", 0) else item())
    return value


def shown(value: Any) -> str:
    """``value`` as a person reads it: floats to six significant digits, containers walked."""
    value = plain(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {shown(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)
