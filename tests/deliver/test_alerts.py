"""Alert lists: priority, capacity, routing, rules, cold start, cooldown, control group, suppression,
dormant accounts, XLSX, outcomes and measured outreach."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from pipelines.core.config import Config
from pipelines.core.errors import ChurnwatchError
from pipelines.core.warehouse import get_engine, insert_frame, read_frame, replace_partition
from pipelines.deliver.alerts import build_alerts, in_control, route, rule_triggers
from pipelines.deliver.outbox import publish_outbox
from pipelines.deliver.outreach import difference_ci, import_outcomes, measure_outreach

DAY = date(2025, 6, 30)
AS_OF = DAY  # the alert-selection tests below


def _night(engine, day: date, rows: list[dict]) -> None:
    """Write one night's features and scores for hand-made customers."""
    feats, scores = [], []
    for r in rows:
        feats.append(
            {
                "as_of_date": day,
                "customer_id": r["id"],
                "region": r.get("region", "north"),
                "do_not_contact": r.get("dnc", False),
                "in_campaign": r.get("campaign", 0),
                "repeat_contacts_90d": 0,
                "last_nps": 8,
                "complaints_90d": 0,
                "spend_90d": 100.0,
                "spend_prev_90d": 100.0,
                "spend_365d": r.get("value", 100.0),
                "purchases_365d": r.get("purchases", 3),
                "overdue_ratio": r.get("overdue", 1.0),
                "mean_gap_days": r.get("gap", 20.0),
                "days_since_last_purchase": r.get("days", 10),
                "dormant_short": int(r.get("days", 10) >= 90),
                "dormant_long": int(r.get("days", 10) >= 180),
                "loyalty_type": r.get("loyalty", "occasional"),
                "cancelled": 0,
            }
        )
        if r.get("p") is not None:
            scores.append(
                {
                    "as_of_date": day,
                    "customer_id": r["id"],
                    "churn_probability": r["p"],
                    "risk_band": "high" if r["p"] >= 0.6 else ("medium" if r["p"] >= 0.3 else "low"),
                    "percentile": 50.0,
                    "value_12m": r.get("value", 100.0),
                    "expected_value": r.get("value", 100.0),
                    "value_at_risk": r["p"] * r.get("value", 100.0),
                    "reason_1": "no purchase for 80 days",
                    "reason_codes": r.get("codes", "inactivity"),
                    "model_version": "m-test",
                }
            )
    replace_partition(engine, "customer_features", pd.DataFrame(feats), day)
    replace_partition(engine, "churn_scores", pd.DataFrame(scores), day)


@pytest.fixture
def world(tmp_path):
    cfg = Config(
        base_dir=tmp_path,
        alerts={
            "teams": [{"name": "north", "capacity": 50, "regions": ["north"]}],
            "control_fraction": 0,
            "cooldown_days": 7,
        },
    )
    engine = get_engine(cfg)
    yield cfg, engine
    engine.dispose()


def _alerts(engine, day=DAY) -> pd.DataFrame:
    return read_frame(engine, "SELECT * FROM churn_alerts WHERE as_of_date = :d", {"d": day}).set_index("customer_id")


def test_cooldown_unless_the_risk_band_worsened(world):
    cfg, engine = world
    _night(engine, DAY, [{"id": "A", "p": 0.7}, {"id": "B", "p": 0.55}, {"id": "C", "p": 0.9}])
    build_alerts(DAY, cfg, engine)
    assert set(_alerts(engine)["status"]) == {"sent"}
    later = DAY + timedelta(days=3)
    # A stays high: cooled down. B went from medium to high: alerted again. C is new after the window? no.
    _night(engine, later, [{"id": "A", "p": 0.72}, {"id": "B", "p": 0.8}, {"id": "D", "p": 0.9}])
    summary = build_alerts(later, cfg, engine)
    status = _alerts(engine, later)["status"].to_dict()
    assert status == {"A": "cooldown", "B": "sent", "D": "sent"}
    assert summary.cooldown == {"north": 1}
    after_window = DAY + timedelta(days=8)
    _night(engine, after_window, [{"id": "A", "p": 0.72}])
    build_alerts(after_window, cfg, engine)
    assert _alerts(engine, after_window).loc["A", "status"] == "sent"  # the cooldown is over


def test_control_group_fraction_and_determinism(world):
    cfg, engine = world
    cfg = cfg.model_copy(update={"alerts": cfg.alerts.model_copy(update={"control_fraction": 0.2})})
    ids = pd.Series([f"C{i:05d}" for i in range(5000)])
    held = in_control(ids, DAY, 0.2)
    assert abs(held.mean() - 0.2) < 0.02  # close to the configured fraction
    assert held.equals(in_control(ids, DAY, 0.2))  # same customers and date: same split
    assert not held.equals(in_control(ids, DAY + timedelta(days=1), 0.2))  # a new draw each day
    rows = [{"id": c, "p": 0.9, "value": 100.0 + i} for i, c in enumerate(ids[:400])]
    _night(engine, DAY, rows)
    summary = build_alerts(DAY, cfg, engine)
    alerts = _alerts(engine)
    control = alerts["status"] == "control"
    assert control.sum() == held[:400].sum() and summary.control == {"north": int(control.sum())}
    assert (alerts.loc[~control, "status"].isin(["sent", "overflow"])).all()
    assert (alerts["status"] == "sent").sum() == 50  # capacity counts treated alerts only
    out = publish_outbox(DAY, cfg, engine)
    sent_ids = set(pd.read_csv(cfg.resolve(cfg.paths.outbox_dir) / DAY.isoformat() / "north.csv")["customer_id"])
    assert out["files"] == {"north": 50} and not sent_ids & set(alerts.index[control])  # never sent to teams
    build_alerts(DAY, cfg, engine)
    assert _alerts(engine)["status"].equals(alerts["status"])  # re-run: the same split


def _estimates(engine, day, cells: dict[str, tuple[int, int, float, str]]) -> None:
    """Store uplift estimates of a night: profile -> (n_treated, n_control, effect, source)."""
    rows = [
        {"as_of_date": day, "profile": p, "n_treated": t, "n_control": c, "effect": e, "ci_low": e - 0.1}
        | {"ci_high": e + 0.1, "source": src}
        for p, (t, c, e, src) in cells.items()
    ]
    replace_partition(engine, "uplift_estimates", pd.DataFrame(rows), day)


def test_ranking_by_expected_value_saved_when_the_evidence_suffices(world):
    cfg, engine = world
    a = cfg.alerts.model_copy(update={"ranking": "expected_value_saved"})
    a.teams[0].capacity = 2
    cfg = cfg.model_copy(update={"alerts": a})
    # By value at risk: I1 (0.9 x 1000), I2 (0.8 x 1000), then S1, S2; a call only helps the service cases.
    rows = [
        {"id": "I1", "p": 0.9, "value": 1000.0},
        {"id": "I2", "p": 0.8, "value": 1000.0},
        {"id": "S1", "p": 0.7, "value": 800.0, "codes": "repeat_contacts"},
        {"id": "S2", "p": 0.6, "value": 800.0, "codes": "complaints;inactivity"},
    ]
    _night(engine, DAY, rows)
    _estimates(engine, DAY, {"all": (400, 120, 0.1, "measured"), "inactivity/high": (300, 90, 0.0, "measured")})
    summary = build_alerts(DAY, cfg, engine)
    alerts = _alerts(engine)
    assert summary.ranking == {"prevention": "expected_value_saved"}
    assert summary.ranking_note.startswith("expected value saved (uplift measured on 400 treated / 120 control")
    assert alerts["uplift_profile"].to_dict() == {
        "I1": "inactivity/high",
        "I2": "inactivity/high",
        "S1": "service/high",
        "S2": "service/high",
    }
    # service/high has too few alerts of its own: the pooled 0.1 stands in; inactivity/high measured 0.
    assert alerts["uplift"].to_dict() == pytest.approx({"I1": 0.0, "I2": 0.0, "S1": 0.1, "S2": 0.1})
    assert set(alerts.index[alerts["status"] == "sent"]) == {"S1", "S2"}
    assert alerts.loc["S1", "priority_value"] == pytest.approx(0.7 * 0.1 * 800.0)
    # The same night with thin evidence falls back to value at risk and says why.
    _estimates(engine, DAY, {"all": (400, 12, 0.1, "thin")})
    summary = build_alerts(DAY, cfg, engine)
    assert summary.ranking == {"prevention": "value_at_risk"}
    assert summary.ranking_note == "value at risk: uplift evidence too thin (n_control 12 < 30)"
    assert set(_alerts(engine).index[_alerts(engine)["status"] == "sent"]) == {"I1", "I2"}
    assert summary.as_dict()["ranking_note"] == summary.ranking_note


def test_held_out_customers_stay_held_out_for_the_horizon(world):
    cfg, engine = world
    cfg = cfg.model_copy(update={"alerts": cfg.alerts.model_copy(update={"control_fraction": 0.2})})
    ids = [f"C{i:04d}" for i in range(200)]
    _night(engine, DAY, [{"id": c, "p": 0.9} for c in ids])
    build_alerts(DAY, cfg, engine)
    first = set(_alerts(engine).query("status == 'control'").index)
    later = DAY + timedelta(days=30)
    _night(engine, later, [{"id": c, "p": 0.9} for c in ids])
    build_alerts(later, cfg, engine)
    control = set(_alerts(engine, later).query("status == 'control'").index)
    drawn = set(pd.Series(ids)[in_control(pd.Series(ids), later, 0.2).to_numpy()])
    assert control == first | (drawn - set(_alerts(engine, later).query("status == 'cooldown'").index))
    # One horizon after the first night, only those drawn at `later` (or tonight) are still held out.
    after = DAY + timedelta(days=cfg.churn.horizon_days + 1)
    _night(engine, after, [{"id": c, "p": 0.9} for c in ids])
    build_alerts(after, cfg, engine)
    tonight = set(pd.Series(ids)[in_control(pd.Series(ids), after, 0.2).to_numpy()])
    eligible = set(_alerts(engine, after).query("status != 'cooldown'").index)
    assert set(_alerts(engine, after).query("status == 'control'").index) == (drawn | tonight) & eligible
    assert first - drawn - tonight and not (first - drawn - tonight) & set(
        _alerts(engine, after).query("status == 'control'").index
    )


def test_suppression_and_dormant_regulars(world):
    cfg, engine = world
    _night(
        engine,
        DAY,
        [
            {"id": "dnc", "p": 0.9, "dnc": True},
            {"id": "camp", "p": 0.9, "campaign": 1},
            {"id": "sleeper", "p": None, "days": 120, "gap": 15.0, "loyalty": "regular", "value": 900.0},
            {"id": "gone", "p": None, "days": 400, "loyalty": "regular"},
            {"id": "occasional", "p": None, "days": 120, "loyalty": "occasional"},
            # Not scored by the model that scored the others, not dormant: no rule may pick it (overdue would).
            {"id": "unscored", "p": None, "days": 60, "purchases": 8, "overdue": 5.0, "loyalty": "regular"},
        ],
    )
    summary = build_alerts(DAY, cfg, engine)
    alerts = _alerts(engine)
    assert list(alerts.index) == ["sleeper"] and summary.suppressed == 2
    row = alerts.loc["sleeper"]
    assert row["triggers"] == "dormant_regular" and row["risk_band"] == "dormant"
    assert (
        row["reasons"]
        == "regular customer, no purchase for 120 days (usually every 15 days): worth a reactivation attempt"
    )
    assert row["recommended_action"] == "reactivation offer" and pd.isna(row["churn_probability"])
    # A dormant account is on its own list, ranked by its 12-month value; it has no value at risk.
    assert row["list_name"] == "reactivation" and pd.isna(row["value_at_risk"]) and row["priority_value"] == 900.0


def test_dormant_accounts_do_not_crowd_out_active_customers(world):
    """Sleepers with large 12-month values get their own list and capacity; active at-risk customers are sent."""
    cfg, engine = world
    alerts_cfg = cfg.alerts.model_copy(
        update={"teams": [cfg.alerts.teams[0].model_copy(update={"capacity": 3, "reactivation_capacity": 2})]}
    )
    cfg = cfg.model_copy(update={"alerts": alerts_cfg})
    sleepers = [
        {"id": f"S{i}", "p": None, "days": 100 + i, "gap": 10.0, "loyalty": "regular", "value": 5000.0 + i}
        for i in range(5)
    ]
    active = [{"id": f"A{i}", "p": 0.7 + i / 100, "value": 300.0 + i} for i in range(4)]
    _night(engine, DAY, sleepers + active)
    build_alerts(DAY, cfg, engine)
    alerts = _alerts(engine)
    sent = alerts[alerts["status"] == "sent"]
    assert sorted(sent.index[sent["list_name"] == "prevention"]) == ["A1", "A2", "A3"]  # highest value at risk
    assert sorted(sent.index[sent["list_name"] == "reactivation"]) == ["S3", "S4"]  # highest 12-month value
    assert (alerts.loc[alerts["list_name"] == "reactivation", "team_rank"].sort_values() == [1, 2, 3, 4, 5]).all()
    publish_outbox(DAY, cfg, engine)
    folder = cfg.resolve(cfg.paths.outbox_dir) / DAY.isoformat()
    assert sorted(p.name for p in folder.iterdir()) == ["north.csv", "north.reactivation.csv", "north.xlsx"]
    react = pd.read_csv(folder / "north.reactivation.csv")
    assert react["customer_id"].tolist() == ["S4", "S3"]
    assert react["note"].str.startswith("dormant: no probability").all()  # says in words why no probability
    assert pd.read_csv(folder / "north.csv")["note"].isna().all()
    assert pd.ExcelFile(folder / "north.xlsx").sheet_names == ["prevention", "reactivation"]


def test_the_action_follows_the_triggers_and_the_strongest_reason(world):
    cfg, engine = world
    _night(engine, DAY, [{"id": "svc", "p": 0.8}, {"id": "spend", "p": 0.8}, {"id": "plain", "p": 0.8}])
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE customer_features SET repeat_contacts_90d = 3 WHERE customer_id = 'svc'")
        conn.exec_driver_sql("UPDATE customer_features SET spend_90d = 20 WHERE customer_id = 'spend'")
    build_alerts(DAY, cfg, engine)
    alerts = _alerts(engine)
    # The model named inactivity first, but a repeat-contacts trigger asks for a service call.
    assert alerts.loc["svc", "triggers"] == "model;repeat_contacts"
    assert alerts.loc["svc", "recommended_action"] == "service recovery call"
    assert "contacted us again about the same problem 3 times in 90 days" in alerts.loc["svc", "reasons"]
    # A spend_halved trigger always comes with its spend reason, with the currency.
    assert alerts.loc["spend", "reasons"] == (
        "no purchase for 80 days; spent EUR 20 in the last 90 days, down from EUR 100 in the 90 days before"
    )
    assert alerts.loc["plain", "recommended_action"] == "win-back offer"


def test_xlsx_matches_csv(world):
    cfg, engine = world
    _night(engine, DAY, [{"id": f"X{i}", "p": 0.6 + i / 100, "value": 50.0 * (i + 1)} for i in range(5)])
    build_alerts(DAY, cfg, engine)
    publish_outbox(DAY, cfg, engine)
    folder = cfg.resolve(cfg.paths.outbox_dir) / DAY.isoformat()
    csv = pd.read_csv(folder / "north.csv")
    xlsx = pd.read_excel(folder / "north.xlsx", sheet_name="prevention")
    assert list(xlsx.columns[:3]) == ["Rank", "Customer", "Churn probability"]  # headers people read
    pd.testing.assert_frame_equal(csv, xlsx.set_axis(csv.columns, axis=1), check_dtype=False)
    from openpyxl import load_workbook

    sheet = load_workbook(folder / "north.xlsx")["prevention"]
    assert sheet["A1"].font.bold and sheet.auto_filter.ref and sheet.freeze_panes == "A2"
    assert sheet["C2"].number_format == "0.0%" and sheet["F2"].number_format == '"EUR "#,##0.00'
    assert csv["team_rank"].tolist() == [1, 2, 3, 4, 5] and csv["value_at_risk"].is_monotonic_decreasing


def _sent_alerts(world, n: int = 30):
    cfg, engine = world
    cfg = cfg.model_copy(update={"alerts": cfg.alerts.model_copy(update={"control_fraction": 0.3})})
    _night(engine, DAY, [{"id": f"K{i:03d}", "p": 0.8, "value": 100.0} for i in range(n)])
    build_alerts(DAY, cfg, engine)
    return cfg, engine, _alerts(engine)


def test_outcomes_import_is_all_or_nothing(world, tmp_path):
    cfg, engine, alerts = _sent_alerts(world)
    sent = list(alerts.index[alerts["status"] == "sent"])
    control = list(alerts.index[alerts["status"] == "control"])
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "customer_id,alert_date,contacted,result\n"
        f"{sent[0]},{DAY},yes,retained\n"
        f"{sent[1]},31/06/2025,yes,retained\n"  # not a date
        f"{sent[2]},{DAY},perhaps,retained\n"  # not yes/no
        f"{sent[3]},{DAY},yes,delighted\n"  # unknown result
        f"NOBODY,{DAY},yes,retained\n"  # no such alert
        f"{control[0]},{DAY},yes,retained\n"  # control customers must not be called
    )
    with pytest.raises(ChurnwatchError) as info:
        import_outcomes(bad, cfg, engine)
    msg = str(info.value)
    assert msg.startswith(f"{bad}: nothing imported; row 3 column alert_date") and "\n" not in msg
    for part in ("row 4 column contacted", "row 5 column result", "row 6 column customer_id", "row 7 column contacted"):
        assert part in msg
    assert read_frame(engine, "SELECT COUNT(*) AS n FROM alert_outcomes")["n"][0] == 0  # nothing half-imported
    with pytest.raises(ChurnwatchError, match="missing column.*alert_date"):
        (tmp_path / "cols.csv").write_text("customer_id,date\nX,2025-06-30\n")
        import_outcomes(tmp_path / "cols.csv", cfg, engine)
    good = tmp_path / "good.xlsx"
    pd.DataFrame(
        {
            "customer_id": sent[:4],
            "alert_date": [DAY.isoformat()] * 4,
            "contacted": ["yes", "yes", "no", "yes"],
            "offer": ["10% off", "", "", "free month"],
            "result": ["retained", "declined", "no_answer", "retained"],
        }
    ).to_excel(good, index=False)
    summary = import_outcomes(good, cfg, engine)
    assert summary["rows"] == 4 and summary["contacted"] == 3
    import_outcomes(good, cfg, engine)  # re-import replaces, never duplicates
    stored = read_frame(engine, "SELECT * FROM alert_outcomes")
    assert len(stored) == 4 and set(stored["team"]) == {"north"}


def test_outreach_compares_treated_and_control_once_matured(world, monkeypatch):
    import pipelines.deliver.outreach

    monkeypatch.setattr(pipelines.deliver.outreach, "MIN_CONTROL", 5)  # this hand-made cohort has 18 control customers
    cfg, engine, alerts = _sent_alerts(world, n=60)
    as_of = DAY + timedelta(days=cfg.churn.horizon_days)
    # Treated customers buy again after the alert; control customers mostly do not.
    status = alerts["status"]
    buyers = [c for c in alerts.index if status[c] == "sent"] + [c for c in alerts.index if status[c] == "control"][:1]
    txns = [
        {"txn_id": f"t{c}", "customer_id": c, "ts": datetime(2025, 7, 15), "amount": 10.0, "type": "purchase"}
        for c in buyers
    ] + [
        {"txn_id": f"h{c}", "customer_id": c, "ts": datetime(2025, 6, 1), "amount": 10.0, "type": "purchase"}
        for c in alerts.index
    ]
    frame = pd.DataFrame(txns).assign(_source_file="t.csv", _source_row=1, _batch_date=date(2025, 7, 15))
    with engine.begin() as conn:
        insert_frame(conn, "stg_transactions", frame)
    summary = measure_outreach(as_of, cfg, engine)
    row = read_frame(engine, "SELECT * FROM outreach_results").iloc[0]
    n_t, n_c = int((status == "sent").sum()), int((status == "control").sum())
    assert (row["n_treated"], row["n_control"]) == (n_t, n_c)
    assert row["churn_rate_treated"] == 0.0 and row["churn_rate_control"] == pytest.approx((n_c - 1) / n_c)
    diff, low, high = difference_ci(n_c - 1, n_c, 0, n_t)
    assert row["churn_reduction"] == pytest.approx(diff) and row["ci_low"] == pytest.approx(low)
    assert row["revenue_retained"] == pytest.approx(diff * n_t * 100.0)
    assert summary.cohorts and measure_outreach(as_of, cfg, engine).cohorts == summary.cohorts  # re-run: same
    assert len(read_frame(engine, "SELECT * FROM outreach_results")) == 1


def test_no_money_figure_from_an_unclear_effect():
    from pipelines.deliver.outreach import MIN_CONTROL, effect_is_clear

    assert not effect_is_clear(-0.27, 0.16, 500)  # the interval spans zero
    assert not effect_is_clear(0.05, 0.3, MIN_CONTROL - 1)  # too few control customers
    assert effect_is_clear(0.05, 0.3, MIN_CONTROL) and effect_is_clear(-0.3, -0.05, 100)


def test_difference_ci_by_hand():
    # Newcombe (1998), method 10, example: 56/70 vs 48/80 -> 0.2, 95 % CI (0.0524, 0.3339).
    diff, low, high = difference_ci(56, 70, 48, 80)
    assert diff == pytest.approx(0.2)
    assert low == pytest.approx(0.0524, abs=1e-4) and high == pytest.approx(0.3339, abs=1e-4)
    # All of a small control group churned: the interval stays wide instead of collapsing.
    diff, low, high = difference_ci(7, 7, 96, 105)
    assert low < 0 < high


def test_outcomes_file_missing_or_unreadable_is_one_line(world, tmp_path):
    cfg, engine = world
    with pytest.raises(ChurnwatchError, match="outcomes file not found"):
        import_outcomes(tmp_path / "nope.csv", cfg, engine)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(ChurnwatchError) as info:
        import_outcomes(broken, cfg, engine)
    assert str(info.value).startswith(f"{broken}: cannot read the outcomes file") and "\n" not in str(info.value)
    empty = tmp_path / "empty.csv"
    empty.write_text("customer_id,alert_date\n")
    with pytest.raises(ChurnwatchError, match="no outcome rows"):
        import_outcomes(empty, cfg, engine)


def _alert_inputs(engine, rows):
    feats = pd.DataFrame(
        [
            {
                "as_of_date": AS_OF,
                "customer_id": r["id"],
                "region": r.get("region", "north"),
                "segment": "consumer",
                "do_not_contact": r.get("dnc", False),
                "repeat_contacts_90d": r.get("repeat", 0),
                "last_nps": 8,
                "complaints_90d": 0,
                "spend_90d": 100.0,
                "spend_prev_90d": 100.0,
                "purchases_365d": 3,
                "overdue_ratio": 1.0,
            }
            for r in rows
        ]
    )
    scores = pd.DataFrame(
        [
            {
                "as_of_date": AS_OF,
                "customer_id": r["id"],
                "churn_probability": r["p"],
                "risk_band": "high" if r["p"] >= 0.6 else "low",
                "percentile": 50.0,
                "value_12m": r["value"],
                "value_at_risk": r["p"] * r["value"],
                "reason_1": "no purchase for 80 days",
                "reason_codes": "inactivity",
                "model_version": "test",
            }
            for r in rows
        ]
    )
    with engine.begin() as conn:
        insert_frame(conn, "customer_features", feats)
        insert_frame(conn, "churn_scores", scores)


def test_alerts_priority_capacity_suppression_and_outbox(tmp_path):
    from pipelines.core.warehouse import get_engine

    cfg = Config(
        base_dir=tmp_path,
        alerts={
            "teams": [{"name": "north", "capacity": 2, "regions": ["north"]}],
            "default_team": "rest",
            "probability_threshold": 0.5,
            "control_fraction": 0,
        },
    )
    engine = get_engine(cfg)
    _alert_inputs(
        engine,
        [
            {"id": "A", "p": 0.9, "value": 100.0},
            {"id": "B", "p": 0.6, "value": 1000.0},  # lower probability, higher value at risk: ranks first
            {"id": "C", "p": 0.7, "value": 50.0},  # over capacity -> overflow
            {"id": "D", "p": 0.95, "value": 500.0, "dnc": True},  # do-not-contact: never listed
            {"id": "E", "p": 0.1, "value": 10.0},  # not at risk, no rule
            {"id": "F", "p": 0.2, "value": 10.0, "repeat": 3, "region": "south"},  # rule trigger only
        ],
    )
    summary = build_alerts(AS_OF, cfg, engine)
    assert summary.suppressed == 1
    alerts = read_frame(engine, "SELECT * FROM churn_alerts ORDER BY team, team_rank")
    north = alerts[alerts["team"] == "north"]
    assert north["customer_id"].tolist() == ["B", "A", "C"]
    assert north["status"].tolist() == ["sent", "sent", "overflow"]
    rest = alerts[alerts["team"] == "rest"].iloc[0]
    assert rest["customer_id"] == "F" and rest["triggers"] == "repeat_contacts"
    assert alerts.set_index("customer_id").loc["B", "recommended_action"] == "win-back offer"
    assert "D" not in set(alerts["customer_id"]) and "E" not in set(alerts["customer_id"])
    out = publish_outbox(AS_OF, cfg, engine)
    assert out["files"] == {"north": 2, "rest": 1}
    csv = pd.read_csv(tmp_path / "outbox" / AS_OF.isoformat() / "north.csv")
    assert csv["customer_id"].tolist() == ["B", "A"]
    assert list(csv.columns)[:3] == ["team_rank", "customer_id", "churn_probability"]
    build_alerts(AS_OF, cfg, engine)  # re-run: same partition, no duplicates
    assert len(read_frame(engine, "SELECT * FROM churn_alerts")) == len(alerts)
    engine.dispose()


def test_routing_and_rules_on_frames():
    cfg = Config(
        alerts={
            "teams": [{"name": "vip", "min_value": 1000}, {"name": "s", "regions": ["south"]}],
            "default_team": "other",
        }
    )
    frame = pd.DataFrame(
        {
            "region": ["south", "south", "north", "north"],
            "segment": ["x"] * 4,
            "value_12m": [5000.0, 10.0, 10.0, 10.0],
            "team": [None, None, "own", None],
        }
    )
    assert route(frame, cfg).tolist() == ["vip", "s", "own", "other"]
    rules = rule_triggers(
        pd.DataFrame(
            {
                "repeat_contacts_90d": [2, 0],
                "last_nps": [3, 9],
                "complaints_90d": [1, 0],
                "spend_prev_90d": [100.0, 0.0],
                "spend_90d": [40.0, 0.0],
                "purchases_365d": [10, 1],
                "overdue_ratio": [4.0, None],
            }
        ),
        cfg,
    )
    assert rules.tolist() == ["repeat_contacts;detractor_after_complaint;spend_halved;overdue_regular", ""]


def test_cold_start_scores_nothing_and_alerts_from_rules_saying_so(tmp_path):
    from models.monitoring import monitor_model
    from models.scoring import score_customers
    from pipelines.core.warehouse import get_engine

    cfg = Config(base_dir=tmp_path, alerts={"control_fraction": 0})
    engine = get_engine(cfg)
    base = {"as_of_date": AS_OF, "last_nps": 8, "complaints_90d": 0, "purchases_365d": 3, "overdue_ratio": 1.0}
    feats = pd.DataFrame(
        [
            {
                **base,
                "customer_id": "A",
                "repeat_contacts_90d": 3,
                "spend_90d": 50.0,
                "spend_prev_90d": 50.0,
                "spend_365d": 500.0,
                "days_since_last_purchase": 10,
            },
            {
                **base,
                "customer_id": "B",
                "repeat_contacts_90d": 0,
                "spend_90d": 50.0,
                "spend_prev_90d": 50.0,
                "spend_365d": 5000.0,
                "days_since_last_purchase": 5,
            },  # no rule fires
            {
                **base,
                "customer_id": "C",
                "repeat_contacts_90d": 0,
                "spend_90d": 10.0,
                "spend_prev_90d": 100.0,
                "spend_365d": 900.0,
                "days_since_last_purchase": 20,
            },  # spend halved
            {
                **base,
                "customer_id": "D",
                "repeat_contacts_90d": 4,
                "spend_90d": 0.0,
                "spend_prev_90d": 0.0,
                "spend_365d": 100.0,
                "days_since_last_purchase": 200,
            },  # already lost: not listed
        ]
    )
    with engine.begin() as conn:
        insert_frame(conn, "customer_features", feats)
    scored = score_customers(AS_OF, cfg, engine)
    assert scored.scored == 0 and "cold start" in scored.message and "churnwatch train" in scored.message
    summary = build_alerts(AS_OF, cfg, engine)
    assert summary.mode == "rules-only" and summary.alerts == 2
    alerts = read_frame(engine, "SELECT * FROM churn_alerts ORDER BY team_rank")
    assert alerts["customer_id"].tolist() == ["C", "A"]  # ranked by value when there is no probability
    assert alerts["churn_probability"].isna().all() and set(alerts["model_version"]) == {"rules-only"}
    assert alerts["reasons"].tolist() == [
        "spent EUR 10 in the last 90 days, down from EUR 100 in the 90 days before",
        "contacted us again about the same problem 3 times in 90 days",
    ]
    assert alerts["recommended_action"].tolist() == ["re-engagement message", "service recovery call"]
    assert monitor_model(AS_OF, cfg, engine).status == "cold_start"
    engine.dispose()


def test_money_columns_carry_their_unit_and_period():
    from pipelines.deliver.alerts import describe_ranking
    from pipelines.deliver.email import team_message
    from pipelines.deliver.outbox import value_legend, xlsx_headers

    cfg = Config(alerts={"currency": "USD"}, value={"period_days": 180})
    headers = xlsx_headers(cfg)
    assert headers["value_at_risk"] == "Value at risk, next 180 days (USD)"
    assert headers["expected_value"] == "Expected spend, next 180 days (USD)"
    assert headers["value_12m"] == "Spend, last 12 months (USD)"
    message = team_message("north", "a@example.com", [], AS_OF, "cw@example.com", value_legend(cfg))
    body = message.get_content()
    assert "value_at_risk = churn probability × expected_value (USD, next 180 days)" in body
    assert describe_ranking("value_at_risk", cfg) == (
        "value at risk = P(churn) × expected spend over the next 180 days if kept"
    )
    assert describe_ranking("expected_value_saved", cfg).endswith("× expected spend over the next 180 days if kept")
    assert describe_ranking("no_such_ranking", cfg) == "no_such_ranking"  # unknown: its own name


def _rule_reasons_row_by_row(frame: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """The plain reading of the rule reasons, one row at a time: the oracle of the column-wise code."""
    from models.reasons import rule_text
    from pipelines.deliver.alerts import RULE_DRIVER

    out = frame.copy()
    order = list(RULE_DRIVER).index
    for i, row in frame.iterrows():
        fired = sorted((t for t in row["triggers"].split(";") if t and t != "model"), key=order)
        if pd.isna(row["reason_1"]):
            by_driver = list({RULE_DRIVER[t]: t for t in reversed(fired)}.items())[::-1]
            out.loc[i, "reason_codes"] = ";".join(d for d, _ in by_driver)
            for k in range(3):
                text = rule_text(by_driver[k][1], row, cfg.alerts.currency) if k < len(by_driver) else None
                out.loc[i, f"reason_{k + 1}"] = text
            out.loc[i, "_rule_reasons"] = None
        else:
            have = set(str(row["reason_codes"] or "").split(";"))
            missing = [t for t in fired if RULE_DRIVER[t] not in have]
            texts = dict.fromkeys(rule_text(t, row, cfg.alerts.currency) for t in missing)
            out.loc[i, "_rule_reasons"] = "; ".join(texts) or None
        parts = [out.loc[i, c] for c in ("reason_1", "reason_2", "reason_3", "_rule_reasons")]
        out.loc[i, "reasons"] = "; ".join(dict.fromkeys(x for x in parts if isinstance(x, str) and x))
    return out


def test_rule_reasons_column_wise_equal_the_row_by_row_reading():
    """The column-wise rule reasons (texts worded once per distinct rounded numbers) give, on hostile
    numbers (halves, NaN, negatives, huge values, every mix of rules and model reasons), exactly the texts,
    codes and joined reasons of reading each row on its own."""
    import numpy as np

    from pipelines.deliver.alerts import _add_rule_reasons, joined, rule_masks

    rng = np.random.default_rng(7)
    n = 3000

    def numbers(scale: float, nan: float = 0.1) -> np.ndarray:
        x = np.round(rng.normal(scale, scale, n) * 2) / 2  # many exact halves
        x[rng.random(n) < 0.05] = rng.choice([-0.5, 0.5, 1.5, 2.5, 1e12, -3.0], int((rng.random(n) < 0.05).sum()))[:1]
        x[rng.random(n) < nan] = np.nan
        return x

    frame = pd.DataFrame(
        {
            "loyalty_type": rng.choice(["regular", "long-term", "new", None], n),
            "dormant_short": rng.integers(0, 2, n),
            "dormant_long": rng.integers(0, 2, n),
            "repeat_contacts_90d": numbers(2),
            "last_nps": numbers(5),
            "complaints_90d": numbers(1),
            "spend_90d": numbers(50),
            "spend_prev_90d": numbers(120),
            "purchases_365d": numbers(6),
            "overdue_ratio": numbers(3),
            "days_since_last_purchase": numbers(100),
            "mean_gap_days": numbers(20),
            "contacts_90d": numbers(3),
        }
    )
    codes = ["", "inactivity", "lower_spend;complaints", "repeat_contacts;inactivity;low_nps", None]
    frame["reason_codes"] = rng.choice(np.array(codes, dtype=object), n)
    has_model = frame["reason_codes"].notna() & (frame["reason_codes"] != "") & (rng.random(n) < 0.9)
    for k in (1, 2, 3):
        frame[f"reason_{k}"] = np.where(has_model & (rng.random(n) < 0.9 / k), f"model reason {k}", None)
    frame.loc[has_model, "reason_1"] = "model reason 1"
    frame.loc[frame.index % 17 == 0, "reason_2"] = "model reason 1"  # a repeated text is said once
    cfg = Config(alerts={"currency": "EUR"})
    fired = rule_masks(frame, cfg)
    model = pd.Series(rng.random(n) < 0.5, index=frame.index, name="model")
    frame["triggers"] = joined(pd.concat([model, fired], axis=1), ";")
    assert (frame["triggers"].str.count(";") >= 2).sum() > 100  # many rows fire several rules

    expected = _rule_reasons_row_by_row(frame, cfg)
    got = frame.copy()
    _add_rule_reasons(got, fired, cfg)
    got["reasons"] = joined(got[["reason_1", "reason_2", "reason_3", "_rule_reasons"]], "; ", dedupe=True)
    for col in ("reason_codes", "reason_1", "reason_2", "reason_3", "_rule_reasons", "reasons"):
        pd.testing.assert_series_equal(
            got[col].astype(object).where(got[col].notna(), None),
            expected[col].astype(object).where(expected[col].notna(), None),
            check_names=False,
            obj=col,
        )
