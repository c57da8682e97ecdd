"""The one progress bar of taxbench: ``progress(iterable, desc)`` or ``progress(total=n, desc=...)``.

Bars (tqdm, on stderr) are shown only when stderr is a terminal and ``TAXBENCH_PROGRESS`` is not
``0``, so CI logs and redirected output stay clean.  The variable is read once, at import.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable

from tqdm import tqdm

ENABLED = os.environ.get("TAXBENCH_PROGRESS", "1") != "0"  # TAXBENCH_PROGRESS=0 turns every bar off


def progress(iterable: Iterable | None = None, desc: str = "", total: int | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar over ``iterable`` (or a manual one of ``total`` steps: ``bar.update(k)``), disabled
    when stderr is not a terminal or TAXBENCH_PROGRESS=0; it disappears when done (``leave=False``)
    and redraws at most every 0.5 s.  Extra keyword arguments go to tqdm (e.g. ``unit``)."""
    stream = sys.stderr
    disable = not ENABLED or not (hasattr(stream, "isatty") and stream.isatty())
    return tqdm(iterable, desc=desc, total=total, file=stream, disable=disable,
                **{"leave": False, "mininterval": 0.5, "dynamic_ncols": True, **kwargs})
