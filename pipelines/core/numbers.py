"""Small numeric and text helpers shared by every stage: one definition each."""

from __future__ import annotations

import numpy as np

# Spellings of yes and no accepted in boolean columns of data files (compared lower-cased, trimmed).
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "t"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "f"})


def logit(p, eps: float = 1e-6) -> np.ndarray:
    """Return log(p / (1 - p)) with p clipped to [eps, 1 - eps], so 0 and 1 stay finite."""
    p = np.clip(np.asarray(p, float), eps, 1 - eps)
    return np.log(p / (1 - p))
