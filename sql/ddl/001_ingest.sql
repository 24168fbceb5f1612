-- Landing rows as read (text), one batch per file date; validation moves them on.
CREATE TABLE IF NOT EXISTS raw_transactions (
    txn_id VARCHAR, customer_id VARCHAR, ts VARCHAR, amount VARCHAR, type VARCHAR, channel VARCHAR,
    _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL, _batch_date DATE NOT NULL, _load_issue VARCHAR
);
CREATE TABLE IF NOT EXISTS raw_service_events (
    event_id VARCHAR, customer_id VARCHAR, ts VARCHAR, event_type VARCHAR, channel VARCHAR,
    wait_seconds VARCHAR, handle_seconds VARCHAR, resolved VARCHAR, transferred VARCHAR, note VARCHAR,
    _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL, _batch_date DATE NOT NULL, _load_issue VARCHAR
);
CREATE TABLE IF NOT EXISTS raw_surveys (
    response_id VARCHAR, customer_id VARCHAR, ts VARCHAR, nps_score VARCHAR, comment VARCHAR,
    _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL, _batch_date DATE NOT NULL, _load_issue VARCHAR
);
CREATE TABLE IF NOT EXISTS raw_customers (
    customer_id VARCHAR, signup_date VARCHAR, region VARCHAR, segment VARCHAR, contract_end VARCHAR,
    do_not_contact VARCHAR, team VARCHAR, campaign_until VARCHAR,
    _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL, _batch_date DATE NOT NULL, _load_issue VARCHAR
);

CREATE TABLE IF NOT EXISTS raw_cancellations (
    cancel_id VARCHAR, customer_id VARCHAR, ts VARCHAR, reason VARCHAR,
    _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL, _batch_date DATE NOT NULL, _load_issue VARCHAR
);

-- Which landing file went into which batch; undated file names take the day their content was first seen.
CREATE TABLE IF NOT EXISTS landing_files (
    dataset VARCHAR NOT NULL, file_name VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, batch_date DATE NOT NULL,
    rows BIGINT NOT NULL, loaded_at TIMESTAMP NOT NULL
);

-- Valid, typed rows.
CREATE TABLE IF NOT EXISTS stg_transactions (
    txn_id VARCHAR, customer_id VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, amount DOUBLE PRECISION NOT NULL,
    type VARCHAR NOT NULL, channel VARCHAR,
    _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL, _batch_date DATE NOT NULL
);
CREATE TABLE IF NOT EXISTS stg_service_events (
    event_id VARCHAR, customer_id VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, event_type VARCHAR NOT NULL,
    channel VARCHAR, wait_seconds DOUBLE PRECISION, handle_seconds DOUBLE PRECISION, resolved BOOLEAN,
    transferred BOOLEAN, note VARCHAR,
    _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL, _batch_date DATE NOT NULL
);
CREATE TABLE IF NOT EXISTS stg_surveys (
    response_id VARCHAR, customer_id VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, nps_score INTEGER NOT NULL,
    comment VARCHAR,
    _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL, _batch_date DATE NOT NULL
);
CREATE TABLE IF NOT EXISTS stg_customers (
    customer_id VARCHAR NOT NULL, signup_date DATE, region VARCHAR, segment VARCHAR, contract_end DATE,
    do_not_contact BOOLEAN, team VARCHAR, campaign_until DATE,
    _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL, _batch_date DATE NOT NULL
);

CREATE TABLE IF NOT EXISTS stg_cancellations (
    cancel_id VARCHAR, customer_id VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, reason VARCHAR,
    _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL, _batch_date DATE NOT NULL
);

-- Rows that failed a row-level check, with the reason codes (';'-separated).
CREATE TABLE IF NOT EXISTS quarantine_transactions (
    txn_id VARCHAR, customer_id VARCHAR, ts VARCHAR, amount VARCHAR, type VARCHAR, channel VARCHAR,
    reasons VARCHAR NOT NULL, _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL, _batch_date DATE NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine_service_events (
    event_id VARCHAR, customer_id VARCHAR, ts VARCHAR, event_type VARCHAR, channel VARCHAR,
    wait_seconds VARCHAR, handle_seconds VARCHAR, resolved VARCHAR, transferred VARCHAR, note VARCHAR,
    reasons VARCHAR NOT NULL, _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL, _batch_date DATE NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine_surveys (
    response_id VARCHAR, customer_id VARCHAR, ts VARCHAR, nps_score VARCHAR, comment VARCHAR,
    reasons VARCHAR NOT NULL, _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL, _batch_date DATE NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine_customers (
    customer_id VARCHAR, signup_date VARCHAR, region VARCHAR, segment VARCHAR, contract_end VARCHAR,
    do_not_contact VARCHAR, team VARCHAR, campaign_until VARCHAR,
    reasons VARCHAR NOT NULL, _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL, _batch_date DATE NOT NULL
);

CREATE TABLE IF NOT EXISTS quarantine_cancellations (
    cancel_id VARCHAR, customer_id VARCHAR, ts VARCHAR, reason VARCHAR,
    reasons VARCHAR NOT NULL, _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL, _batch_date DATE NOT NULL
);

-- One row per run, dataset and batch day: rows_read = rows_loaded + rows_quarantined.
-- checks: JSON {check: failing rows}; status ok | warn | failed | missing; message: the failure, in one line.
CREATE TABLE IF NOT EXISTS dq_runs (
    run_id VARCHAR NOT NULL, as_of_date DATE NOT NULL, dataset VARCHAR NOT NULL, batch_date DATE,
    source VARCHAR, rows_read BIGINT NOT NULL, rows_loaded BIGINT NOT NULL, rows_quarantined BIGINT NOT NULL,
    checks VARCHAR, status VARCHAR NOT NULL, message VARCHAR, created_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS pipeline_runs (
    run_id VARCHAR NOT NULL, as_of_date DATE NOT NULL, step VARCHAR NOT NULL, status VARCHAR NOT NULL,
    rows_out BIGINT, message VARCHAR, started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP NOT NULL
);
