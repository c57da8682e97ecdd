"""What the benchmark tasks share: config checks, row checks and seeded stratified sampling."""
from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any, Callable, Hashable, Iterable, Sequence, TypeVar

from bench.errors import ConfigError, DataError
from bench.validate import check_fields

T = TypeVar("T")


# ------------------------------------------------------------------ config checks
def check_config(bench: Any) -> None:
    """Types of every field, and ``n`` > 0 or None; errors name ``benchmarks.<name>.<field>``."""
    check_fields(bench, f"benchmarks.{bench.name}")
    if bench.n is not None and bench.n <= 0:
        raise ConfigError(f"benchmarks.{bench.name}.n must be > 0 or null (all examples), got {bench.n}")


def check_choice(value: Any, allowed: Iterable[Any], option: str) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{option}={value!r} is not one of {allowed}")


def keep_only(items: Sequence[T], key: Callable[[T], str], wanted: Sequence[str] | None, option: str) -> list[T]:
    """Items whose ``key`` is in ``wanted`` (None: all); unknown names and empty results are errors."""
    if wanted is None:
        return list(items)
    present = sorted({key(x) for x in items})
    unknown = sorted(set(wanted) - set(present))
    if unknown:
        raise ConfigError(f"{option} has unknown value(s) {unknown}; valid: {present}")
    kept = [x for x in items if key(x) in set(wanted)]
    if not kept:
        raise ConfigError(f"{option}={list(wanted)} selects no examples")
    return kept


# ------------------------------------------------------------------- data checks
def require_text(row: dict[str, Any], fields: Sequence[str], where: str) -> None:
    """Each field must be a non-empty string; ``where`` is "<file>, line <n>" for the message."""
    for name in fields:
        value = row.get(name)
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{where}: field {name!r} is missing or not a non-empty string (got {value!r})")


# ----------------------------------------------------------------------- sampling
def stratified_sample(items: Sequence[T], n: int | None, seed: int,
                      key: Callable[[T], Hashable] | None = None) -> list[T]:
    """``n`` items (None or >= len: all), in input order, seeded.  With ``key``, each
    stratum gets its proportional share by largest remainder, and at least one item
    when ``n`` >= the number of strata; within a stratum the draw depends only on
    (seed, stratum), so a stratum's items do not change when other strata do."""
    if n is None or n >= len(items):
        return list(items)
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[key(item) if key else None].append(i)
    quota = _allocate({g: len(ix) for g, ix in groups.items()}, n)
    chosen: list[int] = []
    for g, ix in groups.items():
        chosen.extend(random.Random(f"{seed}:{g}").sample(ix, quota[g]))
    return [items[i] for i in sorted(chosen)]


def per_stratum_sample(items: Sequence[T], n: int | None, seed: int, key: Callable[[T], Hashable]) -> list[T]:
    """Up to ``n`` items of every stratum (None: all), in input order; a stratum's draw depends
    only on (seed, stratum), as in ``stratified_sample``.  For metrics that compare strata
    (group gaps), where a proportional share would leave small strata with one item."""
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[key(item)].append(i)
    chosen = [i for g, ix in groups.items()
              for i in (ix if n is None or n >= len(ix) else random.Random(f"{seed}:{g}").sample(ix, n))]
    return [items[i] for i in sorted(chosen)]


def _allocate(sizes: dict[Hashable, int], n: int) -> dict[Hashable, int]:
    total = sum(sizes.values())
    exact = {g: s * n / total for g, s in sizes.items()}
    floor = 1 if n >= len(sizes) else 0
    quota = {g: min(sizes[g], max(floor, math.floor(q))) for g, q in exact.items()}
    order = sorted(sizes, key=lambda g: (exact[g] - quota[g], sizes[g]), reverse=True)  # stable: by first appearance
    while sum(quota.values()) < n:  # hand out the remainder, largest shortfall first
        g = next(g for g in order if quota[g] < sizes[g])
        quota[g] += 1
        order.remove(g)
        order.append(g)
    while sum(quota.values()) > n:  # the at-least-one rule overshot: take back from the largest surplus
        g = max((g for g in sizes if quota[g] > floor), key=lambda g: quota[g] - exact[g])
        quota[g] -= 1
    return quota
