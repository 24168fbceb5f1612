"""The words a retention agent reads: reason sentences for model drivers and rule triggers.

One place for the wording so that model reasons and rule reasons read alike: plain sentences, correct
plurals, rounded numbers, money with the configured currency. A driver is only given as a reason when
the customer's own numbers point to risk (`risk_flags`): a promoter's NPS answer or a long tenure is
never a churn reason, whatever the model's arithmetic says.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

# A tenure below this is "a new customer" (a reason); above it, tenure is never a churn reason.
NEW_CUSTOMER_DAYS = 90
DETRACTOR_MAX = 6


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def count(n: Any, word: str, plural: str | None = None) -> str:
    """Return '1 purchase', '3 purchases', '0 purchases' (whole numbers, thousands separated)."""
    value = round(_num(n) or 0)
    return f"{value:,} {word if value == 1 else (plural or word + 's')}"


def whole(v: float) -> str:
    """Return a number rounded to a whole one, thousands separated, never '-0'."""
    return f"{round(v):,}" if math.isfinite(v) else f"{v:.0f}"


def money(v: Any, currency: str) -> str:
    """Return an amount rounded to whole units with its currency, e.g. 'EUR 1,234'."""
    return f"{currency} {whole(_num(v) or 0.0)}".strip()


def risk_flags(frame: pd.DataFrame, codes, long_wait_seconds: float = 600) -> np.ndarray:
    """Return a customers x codes boolean matrix: whether each customer's own numbers for a driver point to
    churn risk (missing numbers never do, except that no known rhythm falls back to 30 days of silence)."""

    def col(name: str) -> np.ndarray:
        values = frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
        return pd.to_numeric(values, errors="coerce").to_numpy(float)

    def known(*values: np.ndarray) -> np.ndarray:
        return np.logical_and.reduce([~np.isnan(v) for v in values])

    def at_least_one(*names: str) -> np.ndarray:
        return np.logical_or.reduce([np.nan_to_num(col(n)) >= 1 for n in names])

    days, gap = col("days_since_last_purchase"), col("mean_gap_days")
    nps, change = col("last_nps"), col("nps_change")
    now_p, before_p = col("purchases_90d"), col("purchases_prev_90d")
    now_s, before_s = col("spend_90d"), col("spend_prev_90d")
    tenure = col("tenure_days")
    with np.errstate(invalid="ignore"):
        rules = {
            "inactivity": known(days) & np.where(known(gap) & (gap != 0), days > gap, days >= 30),
            "fewer_purchases": known(now_p, before_p) & (now_p < before_p),
            "lower_spend": known(now_s, before_s) & (before_s > 0) & (now_s < before_s),
            "repeat_contacts": at_least_one("repeat_contacts_90d"),
            "long_waits": np.nan_to_num(col("max_wait_90d")) >= long_wait_seconds,
            "open_tickets": at_least_one("open_tickets"),
            "complaints": at_least_one("complaints_90d", "negative_notes_90d"),
            "low_nps": known(nps) & ((nps <= DETRACTOR_MAX) | (known(change) & (change <= -2) & (nps <= 8))),
            "tenure": known(tenure) & (tenure < NEW_CUSTOMER_DAYS),
        }
    none = np.zeros(len(frame), bool)
    return np.column_stack([rules.get(code, none) for code in codes]) if len(codes) else np.zeros((len(frame), 0), bool)


# The columns each driver's reason quotes (describe_reason); a reason is worded once per distinct values.
REASON_INPUTS = {
    "inactivity": ("days_since_last_purchase", "mean_gap_days"),
    "fewer_purchases": ("purchases_90d", "purchases_prev_90d"),
    "lower_spend": ("spend_90d", "spend_prev_90d"),
    "repeat_contacts": ("repeat_contacts_90d", "contacts_90d"),
    "long_waits": ("max_wait_90d",),
    "open_tickets": ("open_tickets",),
    "complaints": ("complaints_90d", "negative_notes_90d"),
    "low_nps": ("last_nps", "nps_change"),
    "tenure": ("tenure_days",),
}


def worded_once(word: Callable[[dict], str], values: pd.DataFrame) -> np.ndarray:
    """Return word(row) for every row of values, calling it once per distinct row (missing values included):
    at 200k alerts or 60k explained customers a sentence per row cost seconds, the distinct ones far less."""
    if len(values) == 0:
        return np.array([], dtype=object)
    cols = list(values.columns)
    group = values.groupby(cols, dropna=False, sort=False).ngroup().to_numpy() if cols else np.zeros(len(values), int)
    _, first = np.unique(group, return_index=True)  # group ids are 0..g-1; first: a row of each
    records = values.iloc[first].to_dict("records") if cols else [{}]
    return np.array([word(row) for row in records], dtype=object)[group]


def describe_reason(code: str, row: dict, currency: str = "") -> str:
    """Return a plain-language reason with the customer's own numbers."""
    g = lambda c: _num(row.get(c))  # noqa: E731
    if code == "inactivity":
        gap = g("mean_gap_days")
        usual = f", usually every {count(gap, 'day')}" if gap else ""
        return f"no purchase for {count(g('days_since_last_purchase'), 'day')}{usual}"
    if code == "fewer_purchases":
        return (
            f"{count(g('purchases_90d'), 'purchase')} in the last 90 days, "
            f"down from {round(g('purchases_prev_90d') or 0):,} in the 90 days before"
        )
    if code == "lower_spend":
        return (
            f"spent {money(g('spend_90d'), currency)} in the last 90 days, "
            f"down from {money(g('spend_prev_90d'), currency)} in the 90 days before"
        )
    if code == "repeat_contacts":
        return (
            f"contacted us again within a week {count(g('repeat_contacts_90d'), 'time')} "
            f"({count(g('contacts_90d'), 'contact')} in 90 days)"
        )
    if code == "long_waits":
        return f"waited up to {count((g('max_wait_90d') or 0) / 60, 'minute')} for service"
    if code == "open_tickets":
        return f"{count(g('open_tickets'), 'unresolved ticket')}"
    if code == "complaints":
        parts = []
        if (g("complaints_90d") or 0) >= 1:
            parts.append(count(g("complaints_90d"), "complaint"))
        if (g("negative_notes_90d") or 0) >= 1:
            parts.append(count(g("negative_notes_90d"), "negative agent note"))
        return " and ".join(parts) + " in 90 days" if parts else "complained recently"
    if code == "low_nps":
        nps, change = g("last_nps"), g("nps_change")
        drop = f", down {round(-change)} points" if change is not None and change < 0 else ""
        kind = "a detractor's score" if nps is not None and nps <= DETRACTOR_MAX else "a passive score"
        return f"rated us {round(nps or 0)} out of 10 ({kind}){drop}"
    if code == "tenure":
        return f"new customer: first purchase {count(g('tenure_days'), 'day')} ago"
    return code


# What each driver measures, for a customer whose risk no single fact explains.
DRIVER_LABELS = {
    "inactivity": "time since the last purchase",
    "fewer_purchases": "how often they buy",
    "lower_spend": "how much they spend",
    "repeat_contacts": "repeat contacts",
    "long_waits": "waiting times",
    "open_tickets": "open tickets",
    "complaints": "complaints",
    "low_nps": "survey answers",
    "tenure": "how long they have been a customer",
}


def pattern_reason(code: str) -> str:
    """Return the reason of a score that no single risk-raising fact explains, naming the strongest signal."""
    return f"no single clear reason: the overall pattern (strongest signal: {DRIVER_LABELS.get(code, code)})"


def rule_text(rule: str, row: dict, currency: str = "") -> str:
    """Return the plain-language text of a rule trigger, with the customer's numbers."""
    g = lambda c: _num(row.get(c))  # noqa: E731
    if rule == "dormant_regular":
        return (
            f"regular customer, no purchase for {count(g('days_since_last_purchase'), 'day')} "
            f"(usually every {count(g('mean_gap_days'), 'day')}): worth a reactivation attempt"
        )
    if rule == "repeat_contacts":
        return f"contacted us again about the same problem {count(g('repeat_contacts_90d'), 'time')} in 90 days"
    if rule == "detractor_after_complaint":
        return (
            f"rated us {round(g('last_nps') or 0)} out of 10 after {count(g('complaints_90d'), 'complaint')} in 90 days"
        )
    if rule == "spend_halved":
        return describe_reason("lower_spend", row, currency)
    if rule == "overdue_regular":
        ratio = g("overdue_ratio") or 0
        return (
            f"regular customer, no purchase for {count(g('days_since_last_purchase'), 'day')}: "
            f"{whole(ratio)} times the usual gap of {count(g('mean_gap_days'), 'day')}"
        )
    return rule


def reasons_frame_ok(texts: pd.Series) -> bool:
    """Return whether no reason text shows a missing number (the tests hold every list to it)."""
    bad = texts.dropna().str.contains(r"\b(?:nan|None|n/a|NaT)\b", regex=True)
    return not bool(bad.any())
