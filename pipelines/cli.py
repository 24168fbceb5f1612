"""The churnwatch command line: generate, run, train, models, demo."""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import warnings
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines.core.errors import ChurnwatchError
from pipelines.steps import NIGHTLY

app = typer.Typer(add_completion=False, no_args_is_help=True, help="churnwatch: nightly churn early warning.")
models_app = typer.Typer(help="The model registry.")
app.add_typer(models_app, name="models")
outcomes_app = typer.Typer(help="What retention teams did with their alerts.")
app.add_typer(outcomes_app, name="outcomes")


def _needs_command(ctx: typer.Context) -> None:
    """A command group called bare is a usage mistake: one line naming its commands."""
    if ctx.invoked_subcommand is None:
        names = ", ".join(sorted(ctx.command.commands))
        raise ChurnwatchError(f"{ctx.command_path} needs a command: {names} (see {ctx.command_path} --help)")


models_app.callback(invoke_without_command=True)(_needs_command)
outcomes_app.callback(invoke_without_command=True)(_needs_command)
# Piped output (logs, CI) gets room for the side-by-side tables instead of rich's 80-column default.
_COLUMNS = os.environ.get("COLUMNS", "")
console = Console(width=int(_COLUMNS) if _COLUMNS.isdigit() else (None if sys.stdout.isatty() else 140))
err = Console(stderr=True)

ConfigOpt = Annotated[
    Optional[str],
    typer.Option("--config", "-c", help="Config file (default: $CHURNWATCH_CONFIG or ./churnwatch.yaml)."),
]
STEPS_HELP = "Comma-separated subset of the steps: " + ", ".join(NIGHTLY) + "."
DEMO_CUSTOMERS = 3000
DEMO_DAYS = 450
DEMO_SEED = 7


def _date(value: str, flag: str = "--date") -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ChurnwatchError(f"{flag} {value!r} is not a date like 2026-06-30") from None


def _date_range(start: str, end: str) -> tuple[date, date]:
    """Return --start and --end as dates; --end before --start is a usage error."""
    first, last = _date(start, "--start"), _date(end, "--end")
    if last < first:
        raise ChurnwatchError(f"--end {last} is before --start {first}")
    return first, last


JsonOpt = Annotated[bool, typer.Option("--json", help="Print the full summary as JSON instead of a short one.")]
WorkersOpt = Annotated[
    int,
    typer.Option(
        min=1,
        help="Steps run side by side where the DAG allows (the KPIs beside scoring, ...); 1: one at a time.",
    ),
]


def _print(summary: dict, as_json: bool = False) -> None:
    """Print a summary: one short line per top-level entry, numbers rounded; the full JSON with --json."""
    if as_json:
        console.print_json(json.dumps(summary, default=str))
        return
    for key, value in summary.items():
        console.print(f"[bold]{escape(str(key))}[/]: {escape(_compact(value))}", highlight=False, soft_wrap=True)


def _compact(value, depth: int = 0) -> str:
    """Return a value as short text: floats to 3 decimals, dicts as 'key value' pairs, long texts cut."""
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value == value else "n/a"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        if not value:
            return "none"
        if depth >= 3:
            return f"{len(value)} entries"
        parts = [f"{k} {_compact(v, depth + 1)}" for k, v in value.items()]
        text = "; ".join(parts) if depth == 0 else (", ".join(parts) if depth == 1 else f"({', '.join(parts)})")
        return text if len(text) <= 400 else text[:397] + "..."
    if isinstance(value, list | tuple):
        if not value:
            return "none"
        text = ", ".join(_compact(v, depth + 1) for v in value[:5])
        return text + (f" (+{len(value) - 5} more)" if len(value) > 5 else "")
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Output folder: landing/<dataset>/<date>.csv and truth/.")],
    customers: Annotated[int, typer.Option(min=1, help="Number of customers.")] = 5000,
    days: Annotated[int, typer.Option(min=30, help="Days of history.")] = 540,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 7,
    start: Annotated[str, typer.Option(help="First day.")] = "2025-01-01",
    horizon: Annotated[int, typer.Option(help="Churn horizon for the oracle probabilities.")] = 90,
    format: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    world: Annotated[
        str, typer.Option(help="The churn process: default, or observable (drivers show in behaviour before churn).")
    ] = "default",
    as_json: JsonOpt = False,
) -> None:
    """Generate a synthetic customer base with a known churn process."""
    from pipelines.synth.generate import WORLDS, GeneratorSpec
    from pipelines.synth.generate import generate as run_generate

    if format not in ("csv", "parquet"):
        raise ChurnwatchError(f"--format must be csv or parquet, not {format!r}")
    if world not in WORLDS:
        raise ChurnwatchError(f"--world must be one of {', '.join(WORLDS)}, not {world!r}")
    spec = GeneratorSpec(
        customers=customers,
        days=days,
        seed=seed,
        start=_date(start, "--start"),
        horizon_days=horizon,
        world=WORLDS[world],
    )
    with console.status(f"generating {customers} customers over {days} days"):
        counts = run_generate(spec, out, format)
    _print(
        {
            "out": str(out),
            "world": world,
            "rows": counts,
            "last_day": (spec.start + timedelta(days=days - 1)).isoformat(),
        },
        as_json,
    )


def _steps(steps: str | None) -> list[str]:
    from pipelines.steps import NIGHTLY

    chosen = [s.strip() for s in steps.split(",")] if steps else NIGHTLY
    unknown = [s for s in chosen if s not in NIGHTLY]
    if unknown:
        raise ChurnwatchError(f"unknown step(s) {', '.join(unknown)}; steps are: {', '.join(NIGHTLY)}")
    return chosen


@app.command()
def run(
    date_: Annotated[str, typer.Option("--date", help="As-of date (the last complete day).")],
    since: Annotated[
        Optional[str], typer.Option(help="Also load landing files from this date (backfill/history).")
    ] = None,
    steps: Annotated[Optional[str], typer.Option(help=STEPS_HELP)] = None,
    workers: WorkersOpt = 2,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the nightly steps for one date (load, validate, features, score, alerts, outbox)."""
    from pipelines.core.config import load_config

    as_of = _date(date_)
    start = _date(since, "--since") if since else None
    cfg = load_config(config)
    chosen = _steps(steps)

    def step_kwargs(step: str) -> dict:
        return {"since": start} if step in ("load_landing", "validate_data") and start else {}

    _print(_run_night(chosen, as_of, cfg, workers, step_kwargs), as_json)


def _run_night(chosen: list[str], as_of: date, cfg, workers: int, step_kwargs=None) -> dict:
    """Run the chosen steps for one date as the DAG orders them, showing which run; return their summaries."""
    from pipelines.steps import run_steps

    with console.status(f"{chosen[0]} for {as_of}") as status:

        def show(running: list[str], finished: str | None, ok: bool) -> None:
            if finished and ok:
                console.print(f"[green]✓[/] {finished}")
            if running:
                status.update(f"{', '.join(running)} for {as_of}")

        return run_steps(chosen, as_of, cfg, workers=workers, step_kwargs=step_kwargs, on_change=show)


@app.command()
def backfill(
    start: Annotated[str, typer.Option("--start", help="First as-of date.")],
    end: Annotated[str, typer.Option("--end", help="Last as-of date.")],
    steps: Annotated[Optional[str], typer.Option(help=STEPS_HELP)] = None,
    workers: WorkersOpt = 2,
    config: ConfigOpt = None,
) -> None:
    """Run the nightly steps for every date from --start to --end in order, as the nightly runs would."""
    from pipelines.core.config import load_config
    from pipelines.steps import run_steps

    first, last = _date_range(start, end)
    cfg = load_config(config)
    chosen = _steps(steps)
    day = first
    while day <= last:
        with console.status(f"{day}"):
            run_steps(chosen, day, cfg, workers=workers)
        console.print(f"[green]✓[/] {day}")
        day += timedelta(days=1)


@app.command("load-history")
def load_history_command(
    start: Annotated[str, typer.Option("--start", help="First batch day to load.")],
    end: Annotated[str, typer.Option("--end", help="Last batch day to load (usually the day before the first night).")],
    window_days: Annotated[int, typer.Option("--window-days", min=1, help="Days loaded and validated at once.")] = 60,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Load and validate a history once, window by window (the same tables as loading it night after night)."""
    from pipelines.core.config import load_config
    from pipelines.steps import load_history as load

    first, last = _date_range(start, end)
    cfg = load_config(config)
    totals = {"read": 0, "loaded": 0, "quarantined": 0}

    def show(s: date, e: date, summaries: dict) -> None:
        datasets = summaries["validate_data"].get("datasets", {})
        counts = {k: sum(d.get(f"rows_{k}", 0) for d in datasets.values()) for k in totals}
        for k, v in counts.items():
            totals[k] += v
        if not as_json:
            console.print(
                f"[green]✓[/] {s} to {e}: {counts['read']:,} rows read, {counts['loaded']:,} loaded, "
                f"{counts['quarantined']:,} quarantined",
                highlight=False,
            )

    with console.status(f"loading {first} to {last}"):
        windows = load(first, last, cfg, window_days=window_days, on_window=show)
    summary = {"windows": len(windows), "rows": totals}
    _print({**summary, "detail": windows} if as_json else summary, as_json)


@app.command()
def train(
    date_: Annotated[str, typer.Option("--date", help="Training date: no row after it is read.")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train, validate (time-ordered) and register a model as of a date."""
    from pipelines.core.config import load_config
    from pipelines.steps import run_step

    as_of = _date(date_)
    with console.status(f"training as of {as_of}"):
        summary = run_step("train_model", as_of, cfg=load_config(config))
    _print(summary, as_json)


@models_app.command("list")
def models_list(config: ConfigOpt = None) -> None:
    """List registered model versions, newest first."""
    from models.registry import list_models
    from pipelines.core.config import load_config
    from pipelines.core.warehouse import get_engine

    frame = list_models(get_engine(load_config(config)))
    if frame.empty:
        console.print("no models yet: train one with churnwatch train --date D")
        return
    # Fits 100 columns: the columns an owner compares; everything else is in the model card.
    table = Table("version", "trained on", "status", "kind", "AUC", "champion AUC", "promoted", title="models")
    for r in frame.itertuples(index=False):
        table.add_row(
            str(r.model_version),
            _day(r.trained_on),
            str(r.status),
            str(r.model_kind or "-"),
            _num(r.validation_auc),
            _num(r.champion_auc_same_validation),
            _day(r.promoted_at),
        )
    console.print(table)


def _num(v) -> str:
    return "-" if v is None or v != v else f"{float(v):.3f}"


def _day(v) -> str:
    import pandas as pd

    return "-" if v is None or pd.isna(v) else str(pd.Timestamp(v).date())


@app.command()
def backtest(
    start: Annotated[str, typer.Option("--start", help="First as-of date to replay.")],
    end: Annotated[str, typer.Option("--end", help="Last as-of date to replay.")],
    every: Annotated[int, typer.Option(help="Days between replayed dates.", min=1)] = 28,
    truth: Annotated[
        Optional[str],
        typer.Option(
            help="Generator output folder: also measure against true churn (oracle, ceiling, Bayes reference)."
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Replay training and scoring over past dates; store the metrics in backtest_results and print them."""
    from models.backtest import backtest as run_backtest
    from pipelines.core.config import load_config
    from pipelines.core.warehouse import get_engine
    from pipelines.synth.truth import TruthJudge

    cfg = load_config(config)
    engine = get_engine(cfg)
    truth_dir = Path(truth) if truth else None
    if truth_dir is not None and not (truth_dir / "truth").is_dir():
        raise ChurnwatchError(f"--truth {truth_dir} has no truth/ folder (use the folder churnwatch generate wrote)")
    with console.status("replaying training and scoring"):
        judges = [TruthJudge(truth_dir)] if truth_dir is not None else []
        summary = run_backtest(_date(start, "--start"), _date(end, "--end"), cfg, engine, every, judges)
    engine.dispose()
    # One column per replayed date, one row per metric: readable however many metrics there are.
    metrics = list(dict.fromkeys(k for row in summary.rows for k in row if k != "as_of_date"))
    table = Table("metric", *[str(row["as_of_date"]) for row in summary.rows], title=f"backtest {summary.run_id}")
    for key in metrics:
        values = [row.get(key) for row in summary.rows]
        table.add_row(key, *["" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v) for v in values])
    console.print(table)
    for target, title in (("observed", "against the observed outcome"), ("truth", "against the true churn")):
        _print_methods(summary, target, title)
    console.print(f"stored in backtest_results and backtest_metrics (run_id {summary.run_id})")


METHOD_LABELS = {
    "churnwatch": "churnwatch",
    "bgnbd_p_no_purchase": "BG/NBD P(none)",
    "bgnbd_expected_purchases": "BG/NBD E[buys]",
    "bgnbd_p_alive": "BG/NBD P(alive)",
    "log_rfm": "log-RFM LR",
    "recency": "recency",
    "truth_reference": "Bayes ref.",
    "truth_oracle": "oracle",
}


def _print_methods(summary, target: str, title: str) -> None:
    """Print churnwatch and the baselines side by side: one column per method, AUC per date, then means."""
    rows = [m for m in summary.metrics if m["target"] == target]
    if not rows:
        return
    dates = list(dict.fromkeys(m["as_of_date"] for m in rows))
    means = {m["method"]: m for m in summary.as_dict()["mean"] if m["target"] == target}
    methods = list(means)
    table = Table("", *[METHOD_LABELS.get(m, m) for m in methods], title=f"backtest {title}")
    for d in dates:
        per = {m["method"]: m["auc"] for m in rows if m["as_of_date"] == d}
        table.add_row(f"AUC {d}", *[f"{per[m]:.3f}" if m in per else "" for m in methods])
    labels = {
        "auc": "mean AUC",
        "worst_auc": "worst AUC",
        "pr_auc": "mean PR-AUC",
        "brier": "mean Brier",
        "log_loss": "mean log loss",
        "precision_top10": "mean precision, top 10 %",
        "lift_top10": "mean lift, top 10 %",
    }
    for key, label in labels.items():
        table.add_row(label, *["" if means[m].get(key) is None else f"{means[m][key]:.3f}" for m in methods])
    console.print(table)


@app.command()
def bench(
    customers: Annotated[int, typer.Option(min=1000, help="Customers to generate (two years of history).")],
    name: Annotated[Optional[str], typer.Option(help="Result name (bench/results/<name>.json).")] = None,
    workdir: Annotated[Optional[str], typer.Option(help="Scratch folder (default var/bench/<name>).")] = None,
    history_window: Annotated[int, typer.Option(min=7, help="Days per history load window.")] = 60,
    repeat: Annotated[int, typer.Option(min=1, help="Nightly and retrain runs (medians are reported).")] = 3,
    reuse: Annotated[bool, typer.Option(help="Keep the data and history of an earlier run of this name.")] = False,
    peers: Annotated[
        bool, typer.Option(help="Also time lifetimes and PyMC-Marketing against the feature build (side by side).")
    ] = True,
    peers_python: Annotated[
        str, typer.Option(help="Python of the peers venv (make peers-venv).")
    ] = "var/peers-venv/bin/python",
    peers_rows: Annotated[int, typer.Option(min=1, help="Transactions in the side-by-side file (at least).")] = (
        10_000_000
    ),
) -> None:
    """Time one nightly increment and one retrain on N generated customers; write bench/results/<name>.json."""
    from pipelines.synth.bench import run_bench

    name = name or f"{customers // 1000}k"
    folder = Path(workdir) if workdir else Path("var/bench") / name
    with console.status(f"benchmark {name}: {customers:,} customers"):
        results = run_bench(
            customers,
            name,
            folder.resolve(),
            Path("bench/results").resolve(),
            history_window,
            repeat,
            reuse,
            Path(peers_python).absolute() if peers else None,
            peers_rows,
        )
    title = f"benchmark {name} ({customers:,} customers; nightly and retrain: median of {repeat})"
    table = Table("phase", "seconds", "peak RSS (MiB)", title=title)
    for phase, m in results["phases"].items():
        table.add_row(phase, f"{m['seconds']:.1f}", f"{m['peak_rss_mb']:.0f}")
    for step, seconds in results["phases"]["nightly"]["steps"].items():
        table.add_row(f"  nightly: {step}", f"{seconds:.1f}", "")
    console.print(table)
    console.print(
        f"nightly increment: {sum(results['increment_rows'].values()):,} rows, "
        f"{results['nightly_customers_per_second']:,.0f} customers/s"
    )
    if "peers" in results:
        _print_peers(results["peers"])


def _print_peers(peers: dict) -> None:
    """Print the side by side: seconds per part of each tool, the ratios and whether the summaries agree."""
    table = Table(
        "tool",
        "read / load (s)",
        "summary / features (s)",
        "process (s)",
        "peak RSS (MiB)",
        "agree",
        title=f"side by side on {peers['rows']:,} transactions, {peers['customers']:,} customers",
    )
    for tool, m in peers["tools"].items():
        if "error" in m:
            table.add_row(tool, "failed", escape(m["error"]), "", "", "")
            continue
        read = m.get("read_seconds", m.get("load_seconds"))
        work = m.get("summary_seconds", m.get("features_seconds"))
        agreement = peers["agreement"].get(tool)
        agree = (
            "-"
            if agreement is None
            else ("yes" if agreement["agree"] else f"NO ({agreement['mismatched_customers']:,})")
        )
        table.add_row(
            tool,
            f"{read:.1f}",
            f"{work:.1f}",
            f"{m['process']['seconds']:.1f}",
            f"{m['process']['peak_rss_mb']:.0f}",
            agree,
        )
    console.print(table)
    for tool, r in peers["ratios"].items():
        if tool not in ("basis", "goal"):
            console.print(
                f"{tool} / churnwatch: {r['read_plus_summary']}x (read + summary), {r['summary_only']}x (summary only),"
                f" {r['summary_vs_equivalent_query']}x (summary vs the same columns in SQL)"
            )


@outcomes_app.command("import")
def outcomes_import(file: str, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Import FILE (CSV or XLSX: customer_id, alert_date, contacted, contact_date, offer, result); all or nothing."""
    from pipelines.core.config import load_config
    from pipelines.core.warehouse import get_engine
    from pipelines.deliver.outreach import import_outcomes

    cfg = load_config(config)
    engine = get_engine(cfg)
    summary = import_outcomes(Path(file), cfg, engine)
    engine.dispose()
    _print(summary, as_json)


@models_app.command("promote")
def models_promote(version: str, config: ConfigOpt = None) -> None:
    """Make VERSION the champion; the current champion is archived (and can be restored by rollback)."""
    from models.registry import promote
    from pipelines.core.config import load_config
    from pipelines.core.warehouse import get_engine

    previous = promote(get_engine(load_config(config)), version)
    console.print(f"[green]✓[/] {version} is the champion" + (f" (was {previous})" if previous else ""))


@models_app.command("rollback")
def models_rollback(config: ConfigOpt = None) -> None:
    """Put back the previous champion; the current one is marked rolled_back."""
    from models.registry import rollback
    from pipelines.core.config import load_config
    from pipelines.core.warehouse import get_engine

    retired, restored = rollback(get_engine(load_config(config)))
    console.print(f"[green]✓[/] {restored} is the champion again ({retired} rolled back)")


def _airflow(*args: str) -> None:
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(Path.cwd()))
    airflow = shutil.which("airflow") or str(Path(sys.executable).with_name("airflow"))
    proc = subprocess.run([airflow, *args], env=env, capture_output=True, text=True)
    log = Path(env["AIRFLOW_HOME"]) / "var" / "airflow" / "demo.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh:
        fh.write(proc.stdout + proc.stderr)
    if proc.returncode != 0 or "state=failed" in proc.stdout + proc.stderr:
        raise ChurnwatchError(f"airflow {' '.join(args)} failed; see {log}")


@app.command()
def demo(
    customers: Annotated[int, typer.Option(min=200)] = DEMO_CUSTOMERS,
    days: Annotated[int, typer.Option(min=200)] = DEMO_DAYS,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate data, load its history, then train and score through the Airflow DAGs."""
    from pipelines.core.config import load_config
    from pipelines.steps import run_step
    from pipelines.synth.demo import demo_report
    from pipelines.synth.generate import GeneratorSpec
    from pipelines.synth.generate import generate as run_generate

    cfg = load_config(config)
    landing = cfg.resolve(cfg.sources.landing_dir)
    out = landing.parent
    spec = GeneratorSpec(customers=customers, days=days, seed=DEMO_SEED)
    as_of = spec.start + timedelta(days=days - 1)
    with console.status(f"generating {customers} customers over {days} days into {out}"):
        shutil.rmtree(out, ignore_errors=True)
        run_generate(spec, out, "csv")
    console.print(f"[green]✓[/] generated {out}")
    with console.status("loading and validating the history"):
        first = first_replay_night(cfg, as_of)
        run_step("load_landing", first, cfg=cfg, since=spec.start)
        run_step("validate_data", first, cfg=cfg, since=spec.start)
    console.print(f"[green]✓[/] history loaded up to {first}")
    with console.status("replaying earlier nights with simulated calls, and the KPI history"):
        nights = replay_history(cfg, as_of, out)
    console.print(
        f"[green]✓[/] replayed {len(nights)} alert nights from {nights[0]} to {nights[-1]} with simulated calls "
        f"and outcomes, loaded up to {as_of - timedelta(days=1)}, and 26 weeks of KPIs"
    )
    history_end = as_of - timedelta(days=1)
    # Runs for a chosen as-of date (the DAGs' as_of parameter) with today's logical date, so the Airflow
    # UI shows their real durations (a past logical date would count from that day).
    with console.status("airflow dags test churn_retrain"):
        _airflow("dags", "test", "churn_retrain", "-c", json.dumps({"as_of": history_end.isoformat()}))
    console.print(f"[green]✓[/] churn_retrain DAG trained a model as of {history_end}")
    with console.status("airflow dags test churn_nightly"):
        _airflow("dags", "test", "churn_nightly", "-c", json.dumps({"as_of": as_of.isoformat()}))
    console.print(f"[green]✓[/] churn_nightly DAG scored and alerted as of {as_of}")
    _print(demo_report(cfg, as_of, out), as_json)


def first_replay_night(cfg, as_of: date) -> date:
    """Return the first of the demo's replayed alert nights."""
    from pipelines.synth.demo import REPLAY_EVERY, REPLAY_NIGHTS

    return as_of - timedelta(days=cfg.churn.horizon_days + REPLAY_EVERY * (REPLAY_NIGHTS - 1))


def replay_history(cfg, as_of: date, generated: Path) -> list[date]:
    """Give the demo a past: alert nights with simulated calls whose outcomes have matured, and KPI trends.

    The nights use a model trained only on data before the first of them; the generator decides which
    called customers a call keeps (the true effect of their churn cause) and the teams' reports say so.
    """
    from pipelines.steps import run_step
    from pipelines.synth.demo import replay_nights

    nights = replay_nights(cfg, as_of, generated, DEMO_SEED)
    for weeks in range(26, 0, -1):
        run_step("build_kpis", as_of - timedelta(days=7 * weeks), cfg=cfg)
    return nights


def main() -> None:
    """Entry point: user mistakes print one line and exit 2; no traceback."""
    # Great Expectations imports pyspark when it is installed; its pandas-version notice is not for users.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    # The CLI prints its own summaries; step bookkeeping at INFO is for Airflow's task logs. (A connection
    # looked up in Airflow's store loads Airflow's logging set-up, which would print it.)
    for name in ("churnwatch", "pipelines", "models"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        app(standalone_mode=False, prog_name="churnwatch")
    except ChurnwatchError as exc:
        _fail(str(exc))
    except typer.Abort:
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # click's usage errors, vendored by typer
        _fail(usage_message(exc), getattr(exc, "exit_code", 2) or 2)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def usage_message(exc: Exception) -> str:
    """Return one line for a command-line usage error: what is wrong, a suggestion, and where help is."""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "churnwatch"
    group = getattr(ctx, "command", None) if ctx is not None else None
    commands = sorted(getattr(group, "commands", {}) or {})
    name = type(exc).__name__
    if name == "NoArgsIsHelpError":
        return f"{path} needs a command: {', '.join(commands)} (see {path} --help)"
    if name == "MissingParameter":
        param = getattr(exc, "param", None)
        flag = (param.opts[0] if param is not None and param.opts else None) or "an argument"
        return f"{path}: missing {flag} (see {path} --help)"
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    word = re.search(r"No such command '([^']+)'", message)
    if word:
        close = difflib.get_close_matches(word.group(1), commands, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; commands are: {', '.join(commands)}"
        return f"{path}: no such command '{word.group(1)}'{hint}"
    return f"{path}: {message.strip().splitlines()[0]} (see {path} --help)"


if __name__ == "__main__":
    main()
