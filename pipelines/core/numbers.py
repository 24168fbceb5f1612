"""Small numeric and text helpers shared by every stage: one definition each."""

from __future__ import annotations

import math

import numpy as np

# Spellings of yes and no accepted in boolean columns of data files (compared lower-cased, trimmed).
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "t"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "f"})


def logit(p, eps: float = 1e-6) -> np.ndarray:
    """Return log(p / (1 - p)) with p clipped to [eps, 1 - eps], so 0 and 1 stay finite."""
    p = np.clip(np.asarray(p, float), eps, 1 - eps)
    return np.log(p / (1 - p))


Z95 = 1.959964


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score interval (95 %) of a proportion k / n."""
    p = k / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return centre - half, centre + half


def difference_ci(churn_c: int, n_c: int, churn_t: int, n_t: int) -> tuple[float, float, float]:
    """Churn reduction (control rate - treated rate) with Newcombe's 95 % interval from Wilson intervals.

    Unlike the plain normal interval it stays sensible for small groups and rates near 0 or 1.
    """
    pc, pt = churn_c / n_c, churn_t / n_t
    lc, uc = wilson(churn_c, n_c)
    lt, ut = wilson(churn_t, n_t)
    diff = pc - pt
    return diff, diff - math.sqrt((pc - lc) ** 2 + (ut - pt) ** 2), diff + math.sqrt((uc - pc) ** 2 + (pt - lt) ** 2)
