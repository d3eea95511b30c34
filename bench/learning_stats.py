"""The learning benchmark's statistics, pure: Student's t interval over seeds, the trapezoid area under a
learning curve, paired differences and ratios. No scipy: the t quantile comes from the closed form of
the t distribution for integer degrees of freedom (Abramowitz & Stegun 26.7.3-4), inverted by bisection.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_CONFIDENCE = 0.95


def t_central_probability(t: float, df: int) -> float:
    """P(|T| <= t) for Student's T with `df` (a positive integer) degrees of freedom."""
    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    if t <= 0:
        return 0.0
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2:  # odd: (2/pi) [theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)], df - 2 terms in cos
        total, term = 0.0, 1.0
        for k in range(1, (df - 1) // 2 + 1):
            total += term
            term *= cos2 * (2 * k) / (2 * k + 1)
        return (2 / math.pi) * (theta + math.sin(theta) * math.cos(theta) * total)
    total, term = 0.0, 1.0  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...), up to cos^(df - 2)
    for k in range(1, df // 2 + 1):
        total += term
        term *= cos2 * (2 * k - 1) / (2 * k)
    return math.sin(theta) * total


def t_quantile(confidence: float, df: int) -> float:
    """The t with P(|T| <= t) = `confidence`: the multiplier of a two-sided `confidence` interval."""
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    low, high = 0.0, 1.0
    while t_central_probability(high, df) < confidence:
        high *= 2
    for _ in range(200):  # far past double precision; the loop ends when the bracket stops shrinking
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if t_central_probability(middle, df) < confidence:
            low = middle
        else:
            high = middle
    return (low + high) / 2


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its two-sided t interval (None bounds with fewer than two values)."""

    mean: float
    low: float | None
    high: float | None
    n: int
    sd: float | None  # sample standard deviation (n - 1)


def t_interval(values: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """mean ± t(confidence, n - 1) · sd / √n over `values` (one value per seed)."""
    if not values:
        raise ValueError("no values")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Estimate(mean, None, None, len(values), None)
    sd = statistics.stdev(values)
    half = t_quantile(confidence, len(values) - 1) * sd / math.sqrt(len(values))
    return Estimate(mean, mean - half, mean + half, len(values), sd)


def trapezoid_area(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The area under the polyline through (xs, ys), xs ascending (the trapezoid rule)."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    if any(b < a for a, b in itertools.pairwise(xs)):
        raise ValueError("xs must be ascending")
    return sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:], strict=False))


def curve_area(shares: Sequence[float], f1s: Sequence[float]) -> float:
    """Area under a learning curve: x the budget as a share of the pool, starting at the seed-only
    model's budget 0, y the test F1; trapezoids between consecutive budgets, nothing past the last."""
    if not shares or shares[0] != 0:
        raise ValueError("a learning curve starts at budget 0")
    return trapezoid_area(shares, f1s)


def paired_differences(first: Sequence[float], second: Sequence[float]) -> list[float]:
    """first[i] - second[i] for each seed i."""
    if len(first) != len(second):
        raise ValueError("paired values differ in length")
    return [a - b for a, b in zip(first, second, strict=True)]


def ratios(values: Sequence[float], references: Sequence[float]) -> list[float]:
    """values[i] / references[i] for each seed i (a zero reference has no ratio and is left out)."""
    if len(values) != len(references):
        raise ValueError("paired values differ in length")
    return [v / r for v, r in zip(values, references, strict=True) if r]


__all__ = [
    "DEFAULT_CONFIDENCE",
    "Estimate",
    "curve_area",
    "paired_differences",
    "ratios",
    "t_central_probability",
    "t_interval",
    "t_quantile",
    "trapezoid_area",
]
