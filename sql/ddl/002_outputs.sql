CREATE TABLE IF NOT EXISTS customer_features (
    as_of_date DATE NOT NULL, customer_id VARCHAR NOT NULL,
    tenure_days INTEGER, days_since_last_purchase INTEGER, days_since_last_activity INTEGER,
    purchases_30d INTEGER, purchases_90d INTEGER, purchases_prev_90d INTEGER, purchases_365d INTEGER,
    purchases_total INTEGER,
    spend_30d DOUBLE PRECISION, spend_90d DOUBLE PRECISION, spend_prev_90d DOUBLE PRECISION,
    spend_365d DOUBLE PRECISION, avg_order_value DOUBLE PRECISION,
    mean_gap_days DOUBLE PRECISION, std_gap_days DOUBLE PRECISION, overdue_ratio DOUBLE PRECISION,
    spend_trend_ratio DOUBLE PRECISION, purchase_trend_ratio DOUBLE PRECISION,
    refunds_90d INTEGER, dormant_short INTEGER, dormant_long INTEGER,
    contacts_30d INTEGER, contacts_90d INTEGER, repeat_contacts_90d INTEGER, complaints_90d INTEGER,
    mean_wait_90d DOUBLE PRECISION, max_wait_90d DOUBLE PRECISION, transfers_90d INTEGER,
    open_tickets INTEGER, days_since_last_complaint INTEGER, negative_notes_90d INTEGER,
    last_nps INTEGER, nps_change INTEGER, days_since_last_nps INTEGER,
    locked_in INTEGER, do_not_contact BOOLEAN, region VARCHAR, segment VARCHAR, team VARCHAR,
    net_flow_90d DOUBLE PRECISION, last_gap_days INTEGER, purchase_span_days INTEGER, nps_group VARCHAR,
    r_score INTEGER, f_score INTEGER, m_score INTEGER, rfm_segment VARCHAR, lifecycle_stage VARCHAR,
    loyalty_type VARCHAR, cancelled INTEGER, in_campaign INTEGER,
    purchase_days_total INTEGER, first_purchase_age_days INTEGER,
    purchase_days_decay_30 DOUBLE PRECISION, purchase_days_decay_90 DOUBLE PRECISION
);

-- Internal, not for BI: the per-customer feature state that nightly features roll forward
-- (sql/features/feature_state_roll.sql); one partition per state_date, the last few kept. The validate
-- step deletes every state over batches it replaces; feature_state_log holds the row counts each state
-- summed, checked before a state is used, so rows written to stg_* by anything else also void it.
CREATE TABLE IF NOT EXISTS feature_state (
    state_date DATE NOT NULL, customer_id VARCHAR NOT NULL,
    first_purchase DATE, last_purchase DATE, prev_purchase DATE, purchases_total BIGINT,
    amount_total DECIMAL(38, 2), gap_n BIGINT, gap_sum BIGINT, gap_sumsq BIGINT,
    decay_30 DOUBLE PRECISION, decay_90 DOUBLE PRECISION,
    p30 BIGINT, p90 BIGINT, p180 BIGINT, p365 BIGINT,
    s30 DECIMAL(38, 6), s90 DECIMAL(38, 6), s180 DECIMAL(38, 6), s365 DECIMAL(38, 6),
    first_txn DATE, last_txn DATE, last_contact DATE, last_complaint DATE
);
CREATE TABLE IF NOT EXISTS feature_state_log (
    state_date DATE NOT NULL, transactions_rows BIGINT NOT NULL, service_events_rows BIGINT NOT NULL,
    customers BIGINT NOT NULL, rolled_from DATE, built_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS churn_kpis_daily (
    as_of_date DATE NOT NULL, period_days INTEGER NOT NULL, segment_type VARCHAR NOT NULL, segment VARCHAR NOT NULL,
    customers_active_start BIGINT NOT NULL, customers_lost BIGINT NOT NULL, churn_rate DOUBLE PRECISION,
    lost_revenue DOUBLE PRECISION NOT NULL, customers_active_end BIGINT NOT NULL, revenue DOUBLE PRECISION NOT NULL,
    nps_responses BIGINT NOT NULL, promoters BIGINT NOT NULL, detractors BIGINT NOT NULL, nps DOUBLE PRECISION
);

CREATE TABLE IF NOT EXISTS churn_scores (
    as_of_date DATE NOT NULL, customer_id VARCHAR NOT NULL,
    churn_probability DOUBLE PRECISION NOT NULL, risk_band VARCHAR NOT NULL, percentile DOUBLE PRECISION NOT NULL,
    value_12m DOUBLE PRECISION, value_at_risk DOUBLE PRECISION,
    reason_1 VARCHAR, reason_2 VARCHAR, reason_3 VARCHAR, reason_codes VARCHAR,
    model_version VARCHAR NOT NULL, expected_value DOUBLE PRECISION
);

CREATE TABLE IF NOT EXISTS churn_alerts (
    as_of_date DATE NOT NULL, customer_id VARCHAR NOT NULL, team VARCHAR NOT NULL, team_rank INTEGER,
    status VARCHAR NOT NULL, churn_probability DOUBLE PRECISION, risk_band VARCHAR NOT NULL,
    value_12m DOUBLE PRECISION, value_at_risk DOUBLE PRECISION, triggers VARCHAR NOT NULL,
    reasons VARCHAR, recommended_action VARCHAR NOT NULL, model_version VARCHAR NOT NULL,
    list_name VARCHAR, priority_value DOUBLE PRECISION,
    uplift_profile VARCHAR, uplift DOUBLE PRECISION, expected_value DOUBLE PRECISION, ranking VARCHAR
);

CREATE TABLE IF NOT EXISTS model_registry (
    model_version VARCHAR NOT NULL, trained_on DATE NOT NULL, created_at TIMESTAMP NOT NULL,
    horizon_days INTEGER NOT NULL, n_train_rows BIGINT, n_validation_rows BIGINT,
    validation_auc DOUBLE PRECISION, recency_auc DOUBLE PRECISION, validation_pr_auc DOUBLE PRECISION,
    validation_brier DOUBLE PRECISION, status VARCHAR NOT NULL, artifact_path VARCHAR NOT NULL, card VARCHAR,
    model_kind VARCHAR, champion_auc_same_validation DOUBLE PRECISION, promoted_at TIMESTAMP
);

-- What retention teams did with their alerts (churnwatch outcomes import FILE); one row per alert.
CREATE TABLE IF NOT EXISTS alert_outcomes (
    customer_id VARCHAR NOT NULL, alert_date DATE NOT NULL, team VARCHAR, contacted BOOLEAN, contact_date DATE,
    offer VARCHAR, result VARCHAR, source_file VARCHAR NOT NULL, imported_at TIMESTAMP NOT NULL
);

-- Churn of treated (sent) vs control alerts once an alert day's horizon has matured.
CREATE TABLE IF NOT EXISTS outreach_results (
    alert_date DATE NOT NULL, as_of_date DATE NOT NULL, n_treated BIGINT NOT NULL, n_control BIGINT NOT NULL,
    churn_rate_treated DOUBLE PRECISION, churn_rate_control DOUBLE PRECISION, churn_reduction DOUBLE PRECISION,
    ci_low DOUBLE PRECISION, ci_high DOUBLE PRECISION, contacted BIGINT, reported_retained BIGINT,
    revenue_retained DOUBLE PRECISION
);

-- Who responds: the effect of a call (control churn - treated churn) per profile, from matured alerts
-- (estimate_uplift); profile 'all' is the pooled effect. source: measured, pooled (thin profile) or thin.
CREATE TABLE IF NOT EXISTS uplift_estimates (
    as_of_date DATE NOT NULL, profile VARCHAR NOT NULL, n_treated BIGINT NOT NULL, n_control BIGINT NOT NULL,
    churn_rate_treated DOUBLE PRECISION, churn_rate_control DOUBLE PRECISION, effect DOUBLE PRECISION,
    ci_low DOUBLE PRECISION, ci_high DOUBLE PRECISION, source VARCHAR NOT NULL
);

-- One row per run, model and metric: PSI per feature and of the score, realised quality of matured cohorts.
CREATE TABLE IF NOT EXISTS model_monitoring (
    as_of_date DATE NOT NULL, model_version VARCHAR NOT NULL, metric VARCHAR NOT NULL, subject VARCHAR NOT NULL,
    value DOUBLE PRECISION, threshold DOUBLE PRECISION, status VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL
);

-- The BG/NBD fit of each night's scores (alpha in days), read again by monitor_model instead of refitting.
CREATE TABLE IF NOT EXISTS btyd_fits (
    as_of_date DATE NOT NULL, r DOUBLE PRECISION NOT NULL, alpha DOUBLE PRECISION NOT NULL,
    a DOUBLE PRECISION NOT NULL, b DOUBLE PRECISION NOT NULL, n_customers BIGINT, log_likelihood DOUBLE PRECISION
);

-- The spend model behind each night's expected values (models/spend.py): Gamma-Gamma parameters, or the
-- trailing-spend fallback with its reason.
CREATE TABLE IF NOT EXISTS spend_fits (
    as_of_date DATE NOT NULL, method VARCHAR NOT NULL, period_days INTEGER NOT NULL, p DOUBLE PRECISION,
    q DOUBLE PRECISION, gamma DOUBLE PRECISION, population_mean DOUBLE PRECISION, n_customers BIGINT,
    log_likelihood DOUBLE PRECISION, reason VARCHAR
);

-- Targeting curve per team and prevention list: what calling the top n_called of the list is expected to
-- reach and save (pipelines/deliver/targeting.py); capacity and the effect's source on every row.
CREATE TABLE IF NOT EXISTS targeting_curve (
    as_of_date DATE NOT NULL, team VARCHAR NOT NULL, list_name VARCHAR NOT NULL, ranking VARCHAR NOT NULL,
    n_called INTEGER NOT NULL, list_length INTEGER NOT NULL, capacity INTEGER NOT NULL, at_capacity BOOLEAN NOT NULL,
    expected_churners DOUBLE PRECISION NOT NULL, value_at_risk_covered DOUBLE PRECISION NOT NULL,
    value_period_days INTEGER NOT NULL, effect DOUBLE PRECISION NOT NULL, effect_low DOUBLE PRECISION,
    effect_high DOUBLE PRECISION, effect_source VARCHAR NOT NULL, effect_note VARCHAR,
    expected_value_saved DOUBLE PRECISION NOT NULL, value_saved_low DOUBLE PRECISION,
    value_saved_high DOUBLE PRECISION
);

-- churnwatch backtest: one row per replayed date (realised_* once the horizon has passed; truth_* on generated data).
CREATE TABLE IF NOT EXISTS backtest_results (
    run_id VARCHAR NOT NULL, as_of_date DATE NOT NULL, model_kind VARCHAR, n_scored BIGINT,
    validation_auc DOUBLE PRECISION, validation_recency_auc DOUBLE PRECISION,
    realised_n BIGINT, realised_churn_rate DOUBLE PRECISION, realised_auc DOUBLE PRECISION,
    realised_brier DOUBLE PRECISION, realised_precision_top10 DOUBLE PRECISION, realised_recency_auc DOUBLE PRECISION,
    truth_model_auc DOUBLE PRECISION, truth_recency_auc DOUBLE PRECISION, truth_oracle_auc DOUBLE PRECISION,
    truth_model_brier DOUBLE PRECISION, truth_oracle_brier DOUBLE PRECISION,
    alive_model_auc DOUBLE PRECISION, alive_oracle_auc DOUBLE PRECISION, created_at TIMESTAMP NOT NULL,
    truth_ceiling_auc DOUBLE PRECISION, truth_ceiling_brier DOUBLE PRECISION,
    truth_reference_auc DOUBLE PRECISION, truth_reference_brier DOUBLE PRECISION, alive_reference_auc DOUBLE PRECISION
);

-- churnwatch backtest: one row per replayed date, target (observed outcome, or true churn on generated data)
-- and method (churnwatch, and the baselines scored on the same customers); means are over dates.
CREATE TABLE IF NOT EXISTS backtest_metrics (
    run_id VARCHAR NOT NULL, as_of_date DATE NOT NULL, target VARCHAR NOT NULL, method VARCHAR NOT NULL,
    n BIGINT NOT NULL, base_rate DOUBLE PRECISION, auc DOUBLE PRECISION, pr_auc DOUBLE PRECISION,
    brier DOUBLE PRECISION, log_loss DOUBLE PRECISION, precision_top10 DOUBLE PRECISION,
    lift_top10 DOUBLE PRECISION, calibration VARCHAR, created_at TIMESTAMP NOT NULL
);

-- BI views.
CREATE OR REPLACE VIEW v_latest_scores AS
SELECT * FROM churn_scores WHERE as_of_date = (SELECT MAX(as_of_date) FROM churn_scores);

CREATE OR REPLACE VIEW v_current_alerts AS
SELECT * FROM churn_alerts WHERE as_of_date = (SELECT MAX(as_of_date) FROM churn_alerts);

CREATE OR REPLACE VIEW v_kpi_trend AS
SELECT as_of_date, period_days, customers_active_start, customers_lost, churn_rate, lost_revenue,
       customers_active_end, revenue, nps_responses, nps
FROM churn_kpis_daily WHERE segment_type = 'all';

CREATE OR REPLACE VIEW v_outreach_results AS
SELECT * FROM outreach_results;

CREATE OR REPLACE VIEW v_uplift_estimates AS
SELECT * FROM uplift_estimates;

CREATE OR REPLACE VIEW v_targeting_curve AS
SELECT * FROM targeting_curve WHERE as_of_date = (SELECT MAX(as_of_date) FROM targeting_curve);
