"""One self-contained HTML page per run: KPIs, scores, calibration, data quality, monitoring, outreach, top risks.

Charts are drawn with matplotlib and embedded as PNG data, so the page needs no network and no script.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from models.uplift import read_estimates
from pipelines.core.config import Config
from pipelines.core.publish import atomic_write
from pipelines.core.warehouse import read_frame, sql_text
from pipelines.deliver.alerts import RANKINGS, describe_ranking

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2530;background:#f6f7f9}
header{background:#1d3557;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85}main{padding:18px 28px;max-width:1200px}
section{background:#fff;border-radius:8px;padding:14px 18px;margin:0 0 16px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{font-size:17px;margin:0 0 10px}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:12px}
.tiles{display:flex;flex-wrap:wrap;gap:10px}.tile{background:#eef2f7;border-radius:6px;padding:8px 12px;min-width:140px}
.tile b{display:block;font-size:20px}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e3e6ea;padding:4px 6px;text-align:left;vertical-align:top}th{background:#f0f2f5}
img{max-width:100%;height:auto}.ok{color:#2a7d2e}.warn{color:#b26a00}.bad{color:#b3261e;font-weight:600}
.note{color:#5a6472;font-size:12px}
"""
STATUS_CLASS = {
    "ok": "ok",
    "warn": "warn",
    "not provided": "",
    "drift": "warn",
    "failed": "bad",
    "degraded": "bad",
    "not significant": "warn",
    "too few customers": "warn",
    "significant": "ok",
}
# Column headers in the words of the people who read the report.
HEADERS = {
    "segment_type": "by",
    "segment": "group",
    "customers_active_start": "customers at start",
    "customers_lost": "customers lost",
    "churn_rate": "churn rate",
    "lost_revenue": "lost revenue",
    "nps": "NPS",
    "dataset": "dataset",
    "rows_read": "rows read",
    "rows_loaded": "rows loaded",
    "rows_quarantined": "rows quarantined",
    "metric": "metric",
    "subject": "of",
    "value": "value",
    "threshold": "threshold",
    "status": "status",
    "team": "team",
    "list_name": "list",
    "customer_id": "customer",
    "churn_probability": "churn probability",
    "risk_band": "risk band",
    "value_at_risk": "value at risk",
    "reasons": "reasons",
    "recommended_action": "recommended action",
}
MIN_CONTROL_TEXT = "too few customers"
METRIC_NAMES = {
    "psi": "drift (PSI)",
    "mean_score": "mean score",
    "mean_predicted": "mean predicted churn",
    "observed_churn_rate": "observed churn",
    "promised_auc": "promised AUC (validation)",
    "realised_auc": "realised AUC",
    "realised_auc_ci_low": "realised AUC, 95 % interval low",
    "realised_auc_ci_high": "realised AUC, 95 % interval high",
    "realised_precision_top10": "realised precision, top 10 %",
    "status": "status",
}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure(width: float = 5.2, height: float = 2.8):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    ax.grid(alpha=0.3)
    return fig, ax


def _trend_chart(kpis: pd.DataFrame, column: str, title: str, fmt: str = "{:.1%}") -> str:
    fig, ax = _figure()
    if len(kpis) and kpis[column].notna().any():
        ax.plot(pd.to_datetime(kpis["as_of_date"]), kpis[column].astype(float), marker="o", ms=3, color="#1d3557")
        last = kpis[column].dropna().iloc[-1]
        ax.set_title(f"{title}: {fmt.format(float(last))}", fontsize=10)
        fig.autofmt_xdate()
    else:
        ax.set_title(f"{title}: no data yet", fontsize=10)
    return _png(fig)


def _score_chart(scores: pd.DataFrame) -> str:
    fig, ax = _figure()
    if len(scores):
        ax.hist(scores["churn_probability"].astype(float), bins=30, color="#457b9d")
        ax.set_xlabel("churn probability")
        ax.set_ylabel("customers")
        ax.set_title(f"Score distribution ({len(scores):,} customers)", fontsize=10)
    else:
        ax.set_title("Score distribution: no scores (cold start)", fontsize=10)
    return _png(fig)


def _calibration_chart(calibration: list[dict]) -> str:
    fig, ax = _figure(4.2, 3.2)
    ax.plot([0, 1], [0, 1], ls="--", color="#999", lw=1)
    if calibration:
        pred = [c["mean_predicted"] for c in calibration]
        obs = [c["observed_rate"] for c in calibration]
        ax.plot(pred, obs, marker="o", color="#e63946")
        ax.set_title("Calibration on held-out data (deciles)", fontsize=10)
    else:
        ax.set_title("Calibration: no model yet", fontsize=10)
    ax.set_xlabel("predicted churn")
    ax.set_ylabel("observed churn")
    return _png(fig)


def _table(
    frame: pd.DataFrame, status_col: str | None = None, max_rows: int = 50, empty: str = "nothing to show"
) -> str:
    if frame.empty:
        return f'<p class="note">{html.escape(empty)}</p>'
    head = "".join(f"<th>{html.escape(HEADERS.get(str(c), str(c)))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.head(max_rows).iterrows():
        cells = []
        for col, value in row.items():
            text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else value
            if isinstance(text, float):
                text = f"{text:,.3f}" if abs(text) < 10 else f"{text:,.0f}"
            elif isinstance(text, int) and not isinstance(text, bool):
                text = f"{text:,}"
            cls = STATUS_CLASS.get(str(text), "") if col == status_col else ""
            cells.append(
                f'<td class="{cls}">{html.escape(str(text))}</td>' if cls else f"<td>{html.escape(str(text))}</td>"
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _tile(label: str, value: str) -> str:
    return f'<div class="tile">{html.escape(label)}<b>{html.escape(value)}</b></div>'


def report_data(as_of: date, cfg: Config, engine: Engine) -> dict:
    """Return everything the page shows, read from the warehouse (only rows dated up to as_of)."""
    return {
        **_report_settings(cfg),
        "monitor_message": _monitor_message(as_of, engine),
        "card": _champion_card(as_of, engine),
        **_report_tables(as_of, engine),
        "ranking_note": _ranking_note(as_of, engine),
        "uplift": read_estimates(as_of, engine),
    }


def _query(engine: Engine, as_of: date, name: str, **params) -> pd.DataFrame:
    """Return the rows of sql/deliver/<name>.sql, bound to :d = as_of and any further parameters."""
    return read_frame(engine, sql_text(f"deliver/{name}.sql"), {"d": as_of, **params})


def _report_settings(cfg: Config) -> dict:
    """Return the configuration the page explains: currency, periods, capacities, control group, datasets."""
    return {
        "currency": cfg.alerts.currency,
        "period_days": cfg.features.kpi_period_days,
        "horizon_days": cfg.churn.horizon_days,
        "capacity": {
            t.name: (t.capacity, t.reactivation_capacity or cfg.alerts.reactivation_capacity) for t in cfg.alerts.teams
        },
        "control_fraction": cfg.alerts.control_fraction,
        "cooldown_days": cfg.alerts.cooldown_days,
        "datasets": list(cfg.sources.datasets),
        "value_period_days": cfg.value.period_days,
        "ranking_names": {name: describe_ranking(name, cfg) for name in RANKINGS},
    }


def _champion_card(as_of: date, engine: Engine) -> dict:
    """Return the champion model's card, or {} without a champion."""
    champion = _query(engine, as_of, "report_champion_card")
    return json.loads(champion["card"].iloc[0]) if len(champion) and champion["card"].iloc[0] else {}


def _run_field(as_of: date, engine: Engine, query: str, key: str) -> str:
    """Return one field of the JSON summary of the day's latest successful run of a step ('' if none or unreadable)."""
    runs = _query(engine, as_of, query)
    try:
        return json.loads(runs["message"].iloc[0]).get(key, "") if len(runs) else ""
    except (ValueError, AttributeError):
        return ""


def _monitor_message(as_of: date, engine: Engine) -> str:
    """Return the message of the day's monitor_model run."""
    return _run_field(as_of, engine, "report_monitor_message", "message")


def _ranking_note(as_of: date, engine: Engine) -> str:
    """Return the sentence of the day's build_alerts run saying which ranking produced the lists."""
    return _run_field(as_of, engine, "report_alert_ranking", "ranking_note")


def _report_tables(as_of: date, engine: Engine) -> dict[str, pd.DataFrame]:
    """Return the warehouse tables of the page, one query file each under sql/deliver/."""
    return {
        "kpis": _query(engine, as_of, "report_kpi_trend", a=as_of - timedelta(days=365)),
        "segments": _query(engine, as_of, "report_kpi_segments"),
        "scores": _query(engine, as_of, "report_scores"),
        "dq": _query(engine, as_of, "report_dq_datasets"),
        "checks": _query(engine, as_of, "report_dq_checks"),
        "monitoring": _query(engine, as_of, "report_monitoring"),
        "alerts": _query(engine, as_of, "report_alert_counts"),
        # The first customers of every team's prevention list, in the order the team calls them.
        "top": _query(engine, as_of, "report_top_customers", k=TOP_PER_TEAM),
        "outreach": _query(engine, as_of, "report_outreach"),
        # Targeting: the curves, the ranking of each list and the spend model behind value at risk.
        "curve": _query(engine, as_of, "report_targeting_curve"),
        "rankings": _query(engine, as_of, "report_rankings"),
        "spend_fit": _query(engine, as_of, "report_spend_fit"),
    }


TOP_PER_TEAM = 8


def _money(v, currency: str) -> str:
    return "n/a" if v is None or pd.isna(v) else f"{currency} {float(v):,.0f}".strip()


def _quality(data: dict) -> tuple[str, pd.DataFrame]:
    """Return the data-quality card text and table; datasets not configured or not delivered say so."""
    dq = data["dq"].copy()
    provided = set(dq.loc[dq["status"] != "missing", "dataset"]) if len(dq) else set()
    absent = sorted(set(data["datasets"]) - provided)
    if len(dq):
        dq["status"] = dq["status"].replace({"missing": "not provided"})
    statuses = set(dq.loc[dq["dataset"].isin(provided), "status"]) if len(dq) else set()
    card = "failed" if "failed" in statuses else ("warnings" if "warn" in statuses else "ok")
    if absent:
        card += f" (not provided: {', '.join(absent)})"
    return card, dq


def _failed_checks(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the night's failing checks per dataset, named as a reader would name them."""
    from pipelines.ingest.validation import check_name

    rows = []
    for r in frame.itertuples(index=False):
        try:
            counts = json.loads(r.checks) if r.checks else {}
        except ValueError:
            continue
        rows += [{"dataset": r.dataset, "check": check_name(k), "rows": int(v)} for k, v in counts.items() if v]
    return pd.DataFrame(rows)


def _outreach(frame: pd.DataFrame, currency: str) -> pd.DataFrame:
    """Return the outreach table as a reader needs it: effect, interval, group sizes and a verdict."""
    if frame.empty:
        return frame
    from pipelines.deliver.outreach import MIN_CONTROL, effect_is_clear

    rows = []
    for r in frame.itertuples(index=False):
        if r.n_control < MIN_CONTROL:
            verdict = MIN_CONTROL_TEXT
        else:
            verdict = "significant" if effect_is_clear(r.ci_low, r.ci_high, r.n_control) else "not significant"
        clear = verdict == "significant"
        rows.append(
            {
                "alert day": str(r.alert_date),
                "customers sent": f"{int(r.n_treated):,}",
                "control customers": f"{int(r.n_control):,}",
                "churn, sent": f"{r.churn_rate_treated:.0%}",
                "churn, control": f"{r.churn_rate_control:.0%}",
                "reduction (95 % interval)": f"{r.churn_reduction:+.0%} ({r.ci_low:+.0%} to {r.ci_high:+.0%})",
                "verdict": verdict,
                "revenue kept (12 months)": _money(r.revenue_retained, currency) if clear else "—",
            }
        )
    return pd.DataFrame(rows)


def _alert_counts(alerts: pd.DataFrame) -> pd.DataFrame:
    """Return one row per team and list with its sent, overflow, control and cooldown counts."""
    if alerts.empty:
        return alerts
    wide = alerts.pivot_table(index=["team", "list_name"], columns="status", values="alerts", aggfunc="sum")
    wide = wide.reindex(columns=["sent", "overflow", "control", "cooldown"]).fillna(0).astype(int)
    return wide.reset_index()


def _monitoring(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame.assign(metric=frame["metric"].map(lambda m: METRIC_NAMES.get(m, m.replace("_", " "))))


def _segments(frame: pd.DataFrame, currency: str) -> pd.DataFrame:
    if frame.empty:
        return frame
    out = frame.copy()
    out["churn_rate"] = [("n/a" if pd.isna(v) else f"{v:.1%}") for v in out["churn_rate"]]
    out["lost_revenue"] = [_money(v, currency) for v in out["lost_revenue"]]
    out["nps"] = [("n/a" if pd.isna(v) else f"{v:.0f}") for v in out["nps"]]
    return out


def _top(frame: pd.DataFrame, currency: str) -> pd.DataFrame:
    if frame.empty:
        return frame
    out = frame.drop(columns=["team_rank"]).copy()
    out["churn_probability"] = [f"{v:.0%}" for v in pd.to_numeric(out["churn_probability"])]
    out["value_at_risk"] = [_money(v, currency) for v in out["value_at_risk"]]
    return out


def render(as_of: date, data: dict, docs_link: str | None) -> str:
    """Return the HTML page."""
    quality_card, dq = _quality(data)
    sections = [
        _today_section(data, quality_card),
        _kpi_section(data),
        _scores_section(data),
        _quality_section(data, dq, docs_link),
        _monitoring_section(data),
        _alerts_section(data),
        _targeting_section(data),
        _top_section(data),
        _outreach_section(data),
        _uplift_section(data),
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>churnwatch {as_of.isoformat()}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>churnwatch run report — {as_of.isoformat()}</h1>"
        "<p>customers likely to leave, why, and what the business is losing</p></header>"
        f"<main>{''.join(sections)}</main></body></html>"
    )


def _model_status(data: dict) -> list[str]:
    """Return the statuses of the day's model monitoring (usually one, or none)."""
    return data["monitoring"].query("metric == 'status'")["status"].tolist() if len(data["monitoring"]) else []


def _today_tiles(data: dict, quality_card: str) -> list[str]:
    """Return the tiles of the "Today" card: customers scored and sent, the latest KPIs, model, data quality."""
    kpis, card, alerts = data["kpis"], data["card"], data["alerts"]
    latest = kpis.iloc[-1] if len(kpis) else None
    status = _model_status(data)
    currency, period = data["currency"], data["period_days"]
    sent = int(alerts.loc[alerts["status"] == "sent", "alerts"].sum()) if len(alerts) else 0
    return [
        _tile("customers scored", f"{len(data['scores']):,}"),
        _tile("customers sent to teams", f"{sent:,}"),
        _tile(
            f"churn rate, last {period} days",
            "n/a" if latest is None or pd.isna(latest["churn_rate"]) else f"{latest['churn_rate']:.1%}",
        ),
        _tile(
            f"lost revenue, last {period} days", "n/a" if latest is None else _money(latest["lost_revenue"], currency)
        ),
        _tile("NPS", "n/a" if latest is None or pd.isna(latest["nps"]) else f"{latest['nps']:.0f}"),
        _tile(
            "model",
            f"{card.get('model_kind', '')}, trained {card.get('trained_on', '')}" if card else "none (rules only)",
        ),
        _tile("model status", status[0] if status else "n/a"),
        _tile("data quality", quality_card),
    ]


def _today_section(data: dict, quality_card: str) -> str:
    status_line = data["monitor_message"] or (
        "model quality as promised on the latest matured cohort" if _model_status(data) == ["ok"] else ""
    )
    return (
        f'<section><h2>Today</h2><div class="tiles">{"".join(_today_tiles(data, quality_card))}</div>'
        f'<p class="note">{html.escape(status_line)}</p></section>'
    )


def _kpi_section(data: dict) -> str:
    kpis, currency, period = data["kpis"], data["currency"], data["period_days"]
    return (
        '<section><h2>KPI trends</h2><div class="grid">'
        f'<img alt="churn rate trend" src="{_trend_chart(kpis, "churn_rate", f"Churn rate ({period} days)")}">'
        f'<img alt="lost revenue trend" src="{_trend_chart(kpis, "lost_revenue", f"Lost revenue ({currency}, {period} days)", "{:,.0f}")}">'
        f'<img alt="NPS trend" src="{_trend_chart(kpis, "nps", "NPS", "{:.0f}")}">'
        "</div>"
        f"<h2>By segment</h2>{_table(_segments(data['segments'], currency))}"
        f'<p class="note">churn rate = customers lost in the last {period} days / customers active at its start; '
        f"lost revenue = what those customers would have spent in the period ({currency})</p></section>"
    )


def _scores_section(data: dict) -> str:
    card = data["card"]
    metrics = card.get("metrics", {})
    model_line = (
        f"{card.get('model_kind', '')} trained {card.get('trained_on', '')}: held-out AUC "
        f"{metrics.get('auc', float('nan')):.3f} vs recency-only {metrics.get('recency_auc', float('nan')):.3f}, "
        f"Brier {metrics.get('brier', float('nan')):.3f}"
        if metrics
        else "no champion model: alerts come from rule triggers only"
    )
    return (
        '<section><h2>Scores and calibration</h2><div class="grid">'
        f'<img alt="score distribution" src="{_score_chart(data["scores"])}">'
        f'<img alt="calibration plot" src="{_calibration_chart(metrics.get("calibration", []))}">'
        f'</div><p class="note">{html.escape(model_line)}</p></section>'
    )


def _quality_section(data: dict, dq: pd.DataFrame, docs_link: str | None) -> str:
    docs = (
        f' · every expectation: <a href="{html.escape(docs_link)}">Great Expectations Data Docs</a> '
        "(its styles load from the internet)"
        if docs_link
        else ""
    )
    return (
        f"<section><h2>Data quality</h2>{_table(dq, 'status')}"
        f"<h3>What failed today</h3>{_table(_failed_checks(data['checks']), empty='no check failed')}"
        '<p class="note">rows of the day\'s batch; '
        f"rows read = loaded + quarantined{docs}</p></section>"
    )


def _monitoring_section(data: dict) -> str:
    return (
        f"<section><h2>Model monitoring</h2>{_table(_monitoring(data['monitoring']), 'status')}"
        '<p class="note">drift (PSI) rows are shown when not ok; realised quality of the cohort scored one '
        "horizon ago</p></section>"
    )


def _alerts_section(data: dict) -> str:
    capacity = "; ".join(f"{team} {a} + {b}" for team, (a, b) in data["capacity"].items())
    alerts_note = (
        "sent: in the team's file today; overflow: above the list's capacity (per team, prevention + reactivation: "
        f"{capacity}); control: held out at random ({data['control_fraction']:.0%}) to measure what calls achieve, "
        f"never sent; cooldown: alerted within the last {data['cooldown_days']} days and risk not worse. "
        "Prevention lists customers still active, in the ranking named above; reactivation lists dormant "
        "accounts (3-6 months quiet), ranked by their 12-month value."
    )
    ranking = data.get("ranking_note") or "value at risk"
    return (
        f"<section><h2>Alerts by team</h2>{_table(_alert_counts(data['alerts']))}"
        f"<p><b>Prevention lists ranked by:</b> {html.escape(ranking)}</p>"
        f'<p class="note">{html.escape(alerts_note)}</p></section>'
    )


def _top_section(data: dict) -> str:
    currency = data["currency"]
    return (
        f"<section><h2>Top at-risk customers</h2>{_table(_top(data['top'], currency), max_rows=200)}"
        f'<p class="note">the first {TOP_PER_TEAM} customers of each team\'s prevention list; value at risk = churn '
        f"probability × expected spend over the next {data['value_period_days']} days if kept ({currency})</p></section>"
    )


def ranking_lines(data: dict) -> list[str]:
    """Return one sentence per list naming the ranking that ordered it tonight."""
    names = data["ranking_names"]
    return [
        f"{r.list_name} lists ranked by {names.get(r.ranking, r.ranking)} ({int(r.alerts):,} alerts)"
        for r in data["rankings"].itertuples(index=False)
    ]


def value_line(data: dict) -> str:
    """Return how tonight's expected spend was made: the Gamma-Gamma fit, or the fallback and its reason."""
    fit, currency = data["spend_fit"], data["currency"]
    if fit.empty:
        return "no spend model recorded tonight (no scores)"
    f = fit.iloc[0]
    period = int(f["period_days"])
    if f["method"] != "gamma_gamma":
        return f"expected spend = trailing 12-month spend scaled to {period} days, because {f['reason']}"
    return (
        f"expected spend = BG/NBD expected purchase days in the next {period} days × Gamma-Gamma spend per purchase "
        f"day (p = {f['p']:.2f}, q = {f['q']:.2f}, γ = {f['gamma']:,.2f}; population mean "
        f"{_money(f['population_mean'], currency)} per purchase day; fitted on {int(f['n_customers']):,} repeat customers)"
    )


def _curve_chart(rows: pd.DataFrame, team: str, currency: str) -> str:
    """Return one team's targeting curve: value at risk covered and value saved by customers called, capacity marked."""
    fig, ax = _figure(5.6, 3.2)
    n = rows["n_called"].astype(float)
    first = rows.iloc[0]
    measured = first["effect_source"] == "measured"
    ax.plot(n, rows["value_at_risk_covered"].astype(float), color="#1d3557", label="value at risk covered")
    saved_label = (
        "value saved (measured effect, 95 % interval)"
        if measured
        else f"value saved (ASSUMED {float(first['effect']):.0%} effect)"
    )
    ax.plot(
        n, rows["expected_value_saved"].astype(float), color="#2a7d2e", ls="-" if measured else "--", label=saved_label
    )
    if measured:
        ax.fill_between(
            n, rows["value_saved_low"].astype(float), rows["value_saved_high"].astype(float), color="#2a7d2e", alpha=0.2
        )
    cap = rows.loc[rows["at_capacity"].astype(bool), "n_called"]
    if len(cap):
        ax.axvline(float(cap.iloc[0]), color="#b3261e", ls=":", lw=1.5, label=f"capacity ({int(first['capacity'])})")
    ax.set_xlabel("customers called, top of the list first")
    ax.set_ylabel(f"{currency}, next {int(first['value_period_days'])} days")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:,.0f}")
    right = ax.twinx()
    right.plot(n, rows["expected_churners"].astype(float), color="#999", lw=1, label="expected churners reached")
    right.set_ylabel("expected churners")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    ax.set_title(f"{team}: targeting curve ({first['list_name']} list)", fontsize=10)
    return _png(fig)


def _curve_at_capacity(curve: pd.DataFrame, currency: str) -> pd.DataFrame:
    """Return one row per team and list: what calling up to capacity is expected to reach and save."""
    rows = []
    for r in curve[curve["at_capacity"].astype(bool)].itertuples(index=False):
        if r.effect_source == "measured":
            saved = (
                f"{_money(r.expected_value_saved, currency)} "
                f"({_money(r.value_saved_low, currency)} to {_money(r.value_saved_high, currency)})"
            )
        else:
            saved = f"{_money(r.expected_value_saved, currency)} (assumed {r.effect:.0%} effect, not measured)"
        rows.append(
            {
                "team": r.team,
                "list": r.list_name,
                "called (capacity / list)": f"{int(r.n_called):,} ({int(r.capacity):,} / {int(r.list_length):,})",
                "expected churners reached": f"{r.expected_churners:,.1f}",
                "value at risk covered": _money(r.value_at_risk_covered, currency),
                "expected value saved": saved,
            }
        )
    return pd.DataFrame(rows)


def _targeting_section(data: dict) -> str:
    curve, currency = data["curve"], data["currency"]
    lines = ranking_lines(data) or ["no alerts tonight"]
    head = (
        "<section><h2>Targeting: what the calls can achieve</h2>"
        f"<p><b>Ranking:</b> {html.escape('; '.join(lines))}.</p>"
        f'<p class="note">{html.escape(value_line(data))}</p>'
    )
    if curve.empty:
        return head + '<p class="note">no targeting curve tonight: no prevention list with model scores</p></section>'
    first = curve.iloc[0]
    if first["effect_source"] == "measured":
        effect = (
            f"Effect of a call, measured: it removes {first['effect']:.0%} of a called customer's churn risk "
            f"(95 % interval {first['effect_low']:.0%} to {first['effect_high']:.0%}); {first['effect_note']}."
        )
    else:
        effect = (
            f"ASSUMPTION: a call removes {first['effect']:.0%} of a called customer's churn risk "
            f"(alerts.assumed_effect), because the effect is not measured yet: {first['effect_note']}. Value saved is "
            "that assumption × value at risk covered, not a measurement."
        )
    charts = "".join(
        f'<img alt="targeting curve {html.escape(str(team))}" src="{_curve_chart(rows, str(team), currency)}">'
        for (team, _), rows in curve.groupby(["team", "list_name"], sort=True)
    )
    return (
        head + f'<p class="{"note" if first["effect_source"] == "measured" else "warn"}">{html.escape(effect)}</p>'
        f'<div class="grid">{charts}</div>{_table(_curve_at_capacity(curve, currency))}'
        '<p class="note">calling the top N of each prevention list (sent, then overflow; control and cooldown '
        "customers are never called): expected churners reached = sum of churn probabilities; value at risk "
        "covered = sum of value at risk; expected value saved = effect × value at risk covered. The dotted line "
        "is the team's capacity. Every point is in table targeting_curve.</p></section>"
    )


def _outreach_section(data: dict) -> str:
    return (
        f"<section><h2>Measured outreach (sent vs control)</h2>"
        f"{_table(_outreach(data['outreach'], data['currency']), 'verdict')}"
        '<p class="note">reduction = churn of the control group − churn of the customers sent to teams, with a 95 % '
        f"interval; shown once an alert day's {data['horizon_days']}-day horizon has passed. A money figure is "
        "given only when the interval excludes zero and the control group has at least 30 customers.</p></section>"
    )


UPLIFT_SOURCES = {
    "measured": "own evidence",
    "category": "too few: its reason category's effect used",
    "pooled": "too few: pooled effect used",
    "thin": "too few: not used",
}


def _uplift(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the uplift table as a reader needs it: profile, group sizes, effect with its interval, source."""
    if frame.empty:
        return frame
    rows = []
    for r in frame.itertuples(index=False):
        effect = "n/a" if pd.isna(r.effect) else f"{r.effect:+.0%} ({r.ci_low:+.0%} to {r.ci_high:+.0%})"
        rows.append(
            {
                "profile": "all (pooled)"
                if r.profile == "all"
                else r.profile.replace("/any", ", all bands").replace("/", ", "),
                "customers sent": f"{int(r.n_treated):,}",
                "control customers": f"{int(r.n_control):,}",
                "churn reduction (95 % interval)": effect,
                "evidence": UPLIFT_SOURCES.get(r.source, r.source),
            }
        )
    return pd.DataFrame(rows)


def _uplift_section(data: dict) -> str:
    return (
        "<section><h2>Who responds (uplift by reason and risk band)</h2>"
        f"{_table(_uplift(data.get('uplift', pd.DataFrame())), empty='no matured alerts yet')}"
        '<p class="note">churn of comparable control customers − churn of customers sent to teams, per reason '
        "category and risk band, from alert days whose horizon has passed (each customer's first alert in a "
        "horizon); a profile with too few sent or control customers uses its reason category's effect, or the pooled "
        "one. With alerts.ranking "
        "expected_value_saved, prevention lists are ranked by churn probability × this effect × value.</p></section>"
    )


def build_report(as_of: date, cfg: Config, engine: Engine) -> dict:
    """Write reports/<as_of>/index.html (replaced atomically on a re-run).

    Step build_report. SQL: sql/deliver/report_*.sql (one file per table of the page, read by report_data).
    Tests: tests/deliver/test_report.py, tests/app/test_end_to_end.py (the page in headless Chromium).
    Doc: docs/deliver.md ("The run report"), README.md.
    """
    folder = cfg.resolve(cfg.paths.report_dir) / as_of.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    docs = "data_docs/index.html" if (folder / "data_docs" / "index.html").exists() else None
    page = render(as_of, report_data(as_of, cfg, engine), docs)
    file_mode, dir_mode = cfg.paths.modes
    atomic_write(folder / "index.html", lambda tmp: Path(tmp).write_text(page, encoding="utf-8"), file_mode)
    os.chmod(folder, dir_mode)
    return {"as_of": as_of.isoformat(), "report": str(folder / "index.html"), "bytes": len(page)}
