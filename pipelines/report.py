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

from pipelines.config import Config
from pipelines.publish import atomic_write
from pipelines.warehouse import read_frame

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
STATUS_CLASS = {"ok": "ok", "warn": "warn", "missing": "warn", "drift": "warn", "failed": "bad", "degraded": "bad"}


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


def _table(frame: pd.DataFrame, status_col: str | None = None, max_rows: int = 50) -> str:
    if frame.empty:
        return '<p class="note">nothing to show</p>'
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.head(max_rows).iterrows():
        cells = []
        for col, value in row.items():
            text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else value
            if isinstance(text, float):
                text = f"{text:,.3f}" if abs(text) < 10 else f"{text:,.0f}"
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
    q = lambda sql, **p: read_frame(engine, sql, {"d": as_of, **p})  # noqa: E731
    champion = q("SELECT model_version, card FROM model_registry WHERE status = 'champion'")
    card = json.loads(champion["card"].iloc[0]) if len(champion) and champion["card"].iloc[0] else {}
    return {
        "kpis": q(
            "SELECT as_of_date, churn_rate, lost_revenue, nps, customers_lost, customers_active_start "
            "FROM churn_kpis_daily WHERE segment_type = 'all' AND as_of_date <= :d AND as_of_date > :a "
            "ORDER BY as_of_date",
            a=as_of - timedelta(days=365),
        ),
        "segments": q(
            "SELECT segment_type, segment, customers_active_start, customers_lost, churn_rate, lost_revenue, nps "
            "FROM churn_kpis_daily WHERE as_of_date = :d AND segment_type <> 'all' ORDER BY segment_type, segment"
        ),
        "scores": q("SELECT churn_probability, risk_band FROM churn_scores WHERE as_of_date = :d"),
        "card": card,
        "dq": q(
            "SELECT dataset, SUM(rows_read) AS rows_read, SUM(rows_loaded) AS rows_loaded, "
            "SUM(rows_quarantined) AS rows_quarantined, MAX(status) AS status FROM dq_runs "
            "WHERE as_of_date = :d AND batch_date = :d GROUP BY dataset ORDER BY dataset"
        ),
        "monitoring": q(
            "SELECT metric, subject, value, threshold, status FROM model_monitoring WHERE as_of_date = :d "
            "AND (metric <> 'psi' OR status <> 'ok') ORDER BY metric, subject"
        ),
        "alerts": q(
            "SELECT team, status, COUNT(*) AS alerts FROM churn_alerts WHERE as_of_date = :d "
            "GROUP BY team, status ORDER BY team, status"
        ),
        "top": q(
            "SELECT team, customer_id, churn_probability, risk_band, value_at_risk, reasons, recommended_action "
            "FROM churn_alerts WHERE as_of_date = :d AND status = 'sent' ORDER BY value_at_risk DESC LIMIT 25"
        ),
        "outreach": q(
            "SELECT alert_date, n_treated, n_control, churn_rate_treated, churn_rate_control, churn_reduction, "
            "ci_low, ci_high, revenue_retained FROM outreach_results WHERE as_of_date <= :d "
            "ORDER BY alert_date DESC LIMIT 12"
        ),
    }


def render(as_of: date, data: dict, docs_link: str | None) -> str:
    """Return the HTML page."""
    kpis, scores, card = data["kpis"], data["scores"], data["card"]
    metrics = card.get("metrics", {})
    latest = kpis.iloc[-1] if len(kpis) else None
    status = data["monitoring"].query("metric == 'status'")["status"].tolist() if len(data["monitoring"]) else []
    dq_status = data["dq"]["status"].tolist() if len(data["dq"]) else []
    alerts = data["alerts"]
    sent = int(alerts.loc[alerts["status"] == "sent", "alerts"].sum()) if len(alerts) else 0
    tiles = [
        _tile("customers scored", f"{len(scores):,}"),
        _tile("alerts sent", f"{sent:,}"),
        _tile(
            "churn rate", "n/a" if latest is None or pd.isna(latest["churn_rate"]) else f"{latest['churn_rate']:.1%}"
        ),
        _tile("lost revenue", "n/a" if latest is None else f"{latest['lost_revenue']:,.0f}"),
        _tile("NPS", "n/a" if latest is None or pd.isna(latest["nps"]) else f"{latest['nps']:.0f}"),
        _tile("model", card.get("model_version", "none (rules only)")),
        _tile("model status", status[0] if status else "n/a"),
        _tile("data quality", "failed" if "failed" in dq_status else ("warn" if "warn" in dq_status else "ok")),
    ]
    model_line = (
        f"{card.get('model_kind', '')} trained {card.get('trained_on', '')}: held-out AUC "
        f"{metrics.get('auc', float('nan')):.3f} vs recency-only {metrics.get('recency_auc', float('nan')):.3f}, "
        f"Brier {metrics.get('brier', float('nan')):.3f}"
        if metrics
        else "no champion model: alerts come from rule triggers only"
    )
    docs = f' · <a href="{html.escape(docs_link)}">Great Expectations Data Docs</a>' if docs_link else ""
    sections = [
        f'<section><h2>Today</h2><div class="tiles">{"".join(tiles)}</div></section>',
        '<section><h2>KPI trends</h2><div class="grid">'
        f'<img alt="churn rate trend" src="{_trend_chart(kpis, "churn_rate", "Churn rate")}">'
        f'<img alt="lost revenue trend" src="{_trend_chart(kpis, "lost_revenue", "Lost revenue", "{:,.0f}")}">'
        f'<img alt="NPS trend" src="{_trend_chart(kpis, "nps", "NPS", "{:.0f}")}">'
        "</div>"
        f"<h2>By segment</h2>{_table(data['segments'])}</section>",
        '<section><h2>Scores and calibration</h2><div class="grid">'
        f'<img alt="score distribution" src="{_score_chart(scores)}">'
        f'<img alt="calibration plot" src="{_calibration_chart(metrics.get("calibration", []))}">'
        f'</div><p class="note">{html.escape(model_line)}</p></section>',
        f'<section><h2>Data quality</h2>{_table(data["dq"], "status")}<p class="note">rows of the day\'s batch; '
        f"rows read = loaded + quarantined{docs}</p></section>",
        f"<section><h2>Model monitoring</h2>{_table(data['monitoring'], 'status')}"
        '<p class="note">drift (PSI) rows are shown when not ok; realised quality of the cohort scored one '
        "horizon ago</p></section>",
        f"<section><h2>Alerts by team</h2>{_table(data['alerts'])}</section>",
        f"<section><h2>Top at-risk customers</h2>{_table(data['top'])}</section>",
        f"<section><h2>Measured outreach (treated vs control)</h2>{_table(data['outreach'])}"
        '<p class="note">churn_reduction = control churn rate − treated churn rate, with a 95 % interval; '
        "shown once an alert day's horizon has passed</p></section>",
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


def build_report(as_of: date, cfg: Config, engine: Engine) -> dict:
    """Write reports/<as_of>/index.html (replaced atomically on a re-run)."""
    folder = cfg.resolve(cfg.paths.report_dir) / as_of.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    docs = "data_docs/index.html" if (folder / "data_docs" / "index.html").exists() else None
    page = render(as_of, report_data(as_of, cfg, engine), docs)
    file_mode, dir_mode = cfg.paths.modes
    atomic_write(folder / "index.html", lambda tmp: Path(tmp).write_text(page, encoding="utf-8"), file_mode)
    os.chmod(folder, dir_mode)
    return {"as_of": as_of.isoformat(), "report": str(folder / "index.html"), "bytes": len(page)}
