"""The one step list: the DAGs' tasks and their order, the CLI's --steps and run_step all come from here.

Every step is a plain function `step(as_of, cfg, engine) -> summary` in its stage's package; the steps
that compute features or scores also take the compute engine (`compute=`), chosen once per run here.
This module imports no stage at import time (each step's function is imported when it runs), so an
Airflow DAG file can read the list while parsing without loading pandas or scikit-learn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import import_module
from typing import Any


@dataclass(frozen=True)
class Step:
    """One step: its name (task id), its function as "module:function", the steps it waits for."""

    name: str
    target: str
    after: tuple[str, ...] = ()
    retries: int | None = None  # None: the DAG's default
    compute: bool = False  # takes the compute engine (warehouse SQL or Spark)
    doc: str = ""

    def function(self) -> Callable[..., Any]:
        """Return the function behind the step."""
        module, func = self.target.split(":")
        return getattr(import_module(module), func)


NIGHTLY_STEPS: tuple[Step, ...] = (
    Step("load_landing", "pipelines.ingest.extract:load_landing", doc="Copy the day's landing files into raw_*."),
    Step(
        "validate_data",
        "pipelines.ingest.validation:validate_data",
        after=("load_landing",),
        retries=0,  # a bad batch is not retried blindly
        doc="Validate each batch with its Great Expectations suite; publish valid rows to stg_*, quarantine the rest.",
    ),
    Step(
        "build_features",
        "pipelines.features.customer_features:build_features",
        after=("validate_data",),
        compute=True,
        doc="Compute customer_features as of the day.",
    ),
    Step("build_kpis", "pipelines.features.kpis:build_kpis", after=("build_features",), doc="Churn KPIs of the day."),
    Step(
        "score_customers",
        "models.scoring:score_customers",
        after=("build_features",),
        compute=True,
        doc="Score every active customer with the champion model.",
    ),
    Step(
        "monitor_model", "models.monitoring:monitor_model", after=("score_customers",), doc="Drift and matured cohorts."
    ),
    Step(
        "estimate_uplift",
        "models.uplift:estimate_uplift",
        after=("build_features",),
        doc="Effect of a call per profile from matured treated and control alerts.",
    ),
    Step(
        "build_alerts",
        "pipelines.deliver.alerts:build_alerts",
        after=("score_customers", "estimate_uplift"),
        doc="Per-team lists.",
    ),
    Step(
        "publish_outbox", "pipelines.deliver.outbox:publish_outbox", after=("build_alerts",), doc="CSV and XLSX files."
    ),
    Step(
        "email_outbox",
        "pipelines.deliver.email:email_outbox",
        after=("publish_outbox",),
        doc="Mail each team its files.",
    ),
    Step(
        "measure_outreach",
        "pipelines.deliver.outreach:measure_outreach",
        after=("build_features",),
        doc="Treated vs control churn of the matured alert day.",
    ),
    Step(
        "build_targeting_curve",
        "pipelines.deliver.targeting:build_targeting_curve",
        after=("build_alerts", "measure_outreach"),
        doc="Per team: churners reached, value at risk covered and value saved when calling the top N.",
    ),
    Step(
        "build_report",
        "pipelines.deliver.report:build_report",
        after=("build_kpis", "monitor_model", "publish_outbox", "measure_outreach", "build_targeting_curve"),
        doc="The run report.",
    ),
)
RETRAIN_STEPS: tuple[Step, ...] = (
    Step("train_model", "models.training:train_model", compute=True, doc="Train, validate and register a model."),
)
STEPS: dict[str, Step] = {s.name: s for s in (*NIGHTLY_STEPS, *RETRAIN_STEPS)}
NIGHTLY: list[str] = [s.name for s in NIGHTLY_STEPS]


def run_step(name: str, as_of: date, cfg=None, config_path: str | None = None, **kwargs: Any) -> dict:
    """Run one step for as_of and record it in pipeline_runs; return its summary as a dict."""
    from pipelines.core.config import load_config
    from pipelines.core.errors import ChurnwatchError
    from pipelines.core.runtime import record_run
    from pipelines.core.warehouse import get_engine, memory_advice, out_of_memory
    from pipelines.engines import choose_compute

    step = STEPS[name]
    cfg = cfg or load_config(config_path)

    @contextmanager
    def memory_errors_in_words() -> Iterator[None]:
        """Turn DuckDB running out of memory into one line that says what to change."""
        try:
            yield
        except ChurnwatchError:
            raise
        except Exception as exc:
            if out_of_memory(exc):
                raise ChurnwatchError(f"{name} for {as_of}: {memory_advice(cfg)}") from exc
            raise

    with memory_errors_in_words():  # also while connecting (the schema check)
        engine = get_engine(cfg)
        if step.compute:
            kwargs = {"compute": choose_compute(cfg, engine), **kwargs}
        started = datetime.now(UTC).replace(tzinfo=None)
        # Inside record_run, so that pipeline_runs records the line too.
        with record_run(engine, name, as_of, started) as record, memory_errors_in_words():
            record.summary = _as_dict(step.function()(as_of, cfg, engine, **kwargs))
    return record.summary


def upstream(name: str) -> set[str]:
    """Return every step a step waits for, directly or through others."""
    seen: set[str] = set()
    todo = list(STEPS[name].after)
    while todo:
        step = todo.pop()
        if step not in seen:
            seen.add(step)
            todo.extend(STEPS[step].after)
    return seen


def run_steps(
    names: Iterable[str],
    as_of: date,
    cfg,
    workers: int = 2,
    step_kwargs: Callable[[str], dict] | None = None,
    on_change: Callable[[list[str], str | None, bool], None] | None = None,
) -> dict[str, dict]:
    """Run steps for as_of as the DAG orders them, up to `workers` side by side; return summaries in order.

    A step starts once every chosen step it waits for (directly or through steps left out) has finished,
    as Airflow would start it: after build_features, the KPIs run beside scoring, monitoring beside the
    alerts. On a failure no further step starts; the steps already running finish, then the first error
    is raised. on_change(running, finished, ok) is called as steps start and finish (finished: the step
    that just did, else None; ok: it succeeded). workers=1 runs them one by one in the given order.
    """
    order = list(names)
    chosen = set(order)
    waits = {n: upstream(n) & chosen for n in order}
    pending, running, done = list(order), {}, {}
    error: BaseException | None = None
    warming: list[threading.Thread] = []

    def start_ready(pool: ThreadPoolExecutor) -> None:
        for thread in warming:  # no step starts while modules are imported beside the running one
            thread.join()
        for name in list(pending):
            if len(running) >= max(1, workers):
                return
            if waits[name] <= done.keys():
                pending.remove(name)
                kwargs = step_kwargs(name) if step_kwargs else {}
                running[pool.submit(run_step, name, as_of, cfg=cfg, **kwargs)] = name
                if on_change:
                    on_change(list(running.values()), None, True)
        if len(running) == 1 and STEPS[next(iter(running.values()))].compute and pending and not warming:
            # A compute step running alone spends its time in the warehouse's SQL (or Spark), the GIL
            # free: the later steps' modules (scikit-learn, scipy, matplotlib: seconds) are imported
            # meanwhile instead of on the way to the lists. Nothing else imports then.
            modules = [STEPS[n].target.split(":")[0] for n in pending]
            warming.append(threading.Thread(target=_import_quietly, args=(modules,), daemon=True))
            warming[0].start()

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="step") as pool:
        start_ready(pool)
        while running:
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                try:
                    done[name] = future.result()
                except BaseException as exc:  # noqa: BLE001 - re-raised below once the others finished
                    error = error or exc
                if on_change:
                    on_change(list(running.values()), name, name in done)
            if error is None:
                start_ready(pool)
    if error is not None:
        raise error
    return {n: done[n] for n in order}


def history_windows(start: date, end: date, days: int) -> list[tuple[date, date]]:
    """Return consecutive (first, last) batch days of at most `days` days covering start..end."""
    if days < 1:
        raise ValueError("a history window needs at least one day")
    windows, first = [], start
    while first <= end:
        last = min(first + timedelta(days=days - 1), end)
        windows.append((first, last))
        first = last + timedelta(days=1)
    return windows


def load_history(
    start: date, end: date, cfg, window_days: int = 60, on_window: Callable[[date, date, dict], None] | None = None
) -> list[dict]:
    """Load and validate the landing batches from start to end in windows; return each window's summaries.

    Each window is one `load_landing` + `validate_data` run for its last day with `since` its first day,
    exactly what `churnwatch run --since FIRST --date LAST --steps load_landing,validate_data` does, and the
    tables are those of loading the days one by one (tests/app/test_history.py). Windows keep memory
    bounded: a 60-day window of 1M customers peaks near 3.8 GB. A failed window raises; the windows before
    it stay loaded, and a re-run from its first day carries on. on_window(first, last, summaries) is
    called after each window.
    """
    out: list[dict] = []
    for first, last in history_windows(start, end, window_days):
        summaries = {
            "load_landing": run_step("load_landing", last, cfg=cfg, since=first),
            "validate_data": run_step("validate_data", last, cfg=cfg, since=first),
        }
        out.append({"first": first.isoformat(), "last": last.isoformat(), **summaries})
        if on_window:
            on_window(first, last, summaries)
    return out


def _import_quietly(modules: list[str]) -> None:
    """Import modules ahead of their steps; a module that fails is left for its step to report."""
    for module in modules:
        try:
            import_module(module)
        except Exception:  # noqa: BLE001, S112 - the step's own import raises it where it belongs
            continue


def _as_dict(result: Any) -> dict:
    return result.as_dict() if hasattr(result, "as_dict") else dict(result)
