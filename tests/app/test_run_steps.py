"""`churnwatch run` runs steps side by side as the DAG allows: order, overlap and failure."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest

import pipelines.steps as steps
from pipelines.core.errors import ChurnwatchError
from pipelines.steps import NIGHTLY, STEPS, run_steps, upstream

DAY = date(2025, 3, 31)


@pytest.fixture
def timeline(monkeypatch):
    """Replace each step's work by a short sleep and record when it started and finished."""
    events: list[tuple[float, str, str]] = []
    lock = threading.Lock()
    fail = set()

    def fake_run_step(name, as_of, cfg=None, **kwargs):
        with lock:
            events.append((time.monotonic(), "start", name))
        time.sleep(0.05)
        with lock:
            events.append((time.monotonic(), "end", name))
        if name in fail:
            raise ChurnwatchError(f"{name} failed")
        return {"step": name, **kwargs}

    monkeypatch.setattr(steps, "run_step", fake_run_step)
    return events, fail


def _spans(events):
    start = {n: t for t, kind, n in events if kind == "start"}
    end = {n: t for t, kind, n in events if kind == "end"}
    return start, end


def test_upstream_follows_the_dag_through_left_out_steps():
    assert upstream("build_features") == {"load_landing", "validate_data"}
    assert {"score_customers", "estimate_uplift", "build_features"} <= upstream("build_alerts")
    assert "build_kpis" not in upstream("build_alerts")


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_no_step_starts_before_the_steps_it_waits_for_finish(timeline, workers):
    events, _ = timeline
    out = run_steps(NIGHTLY, DAY, None, workers=workers, step_kwargs=lambda n: {"w": workers})
    assert list(out) == NIGHTLY and all(v == {"step": n, "w": workers} for n, v in out.items())
    start, end = _spans(events)
    for name in NIGHTLY:
        assert all(end[dep] <= start[name] for dep in upstream(name)), name
    running = max(sum(start[n] <= t < end[n] for n in NIGHTLY) for t, kind, _ in events if kind == "start")
    assert running == min(workers, 4)  # four steps wait for build_features only
    if workers == 1:
        assert [n for _, kind, n in events if kind == "start"] == NIGHTLY


def test_a_subset_keeps_the_order_through_the_steps_left_out(timeline):
    events, _ = timeline
    run_steps(["build_report", "build_features"], DAY, None, workers=2)
    start, end = _spans(events)
    assert end["build_features"] <= start["build_report"]


def test_a_failure_starts_nothing_after_it_and_raises_once_the_others_finish(timeline):
    events, fail = timeline
    fail.add("score_customers")
    with pytest.raises(ChurnwatchError, match="score_customers failed"):
        run_steps(NIGHTLY, DAY, None, workers=2)
    start, end = _spans(events)
    assert "build_alerts" not in start and "monitor_model" not in start
    assert set(start) == set(end)  # whatever ran beside it finished
    assert all(dep in start for dep in STEPS["build_kpis"].after)


def test_a_history_load_runs_window_after_window_and_stops_at_a_failure(timeline):
    from pipelines.core.config import Config

    events, fail = timeline
    out = steps.load_history(date(2025, 1, 1), date(2025, 1, 30), Config(), window_days=10)
    assert [(w["first"], w["last"]) for w in out] == [
        ("2025-01-01", "2025-01-10"),
        ("2025-01-11", "2025-01-20"),
        ("2025-01-21", "2025-01-30"),
    ]
    assert out[1]["load_landing"] == {"step": "load_landing", "since": date(2025, 1, 11)}
    assert [n for _, kind, n in events if kind == "start"] == ["load_landing", "validate_data"] * 3
    events.clear()
    fail.add("validate_data")
    with pytest.raises(ChurnwatchError, match="validate_data failed"):
        steps.load_history(date(2025, 1, 1), date(2025, 1, 30), Config(), window_days=10)
    assert [n for _, kind, n in events if kind == "start"] == ["load_landing", "validate_data"]
