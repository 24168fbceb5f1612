"""churnwatch configuration: one YAML file, validated by pydantic with messages naming the bad key."""

from __future__ import annotations

import codecs
import math
import os
import re
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.core.errors import ConfigError

CONFIG_ENV = "CHURNWATCH_CONFIG"
WAREHOUSE_URL_ENV = "CHURNWATCH_WAREHOUSE_URL"
DEFAULT_CONFIG_NAME = "churnwatch.yaml"
# Column names in files may hold spaces ("Customer ID"); names put into SQL may not.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_ ]{0,62}$")
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

# Canonical columns per dataset: (required, optional). Mapped from the user's own names in config.
DATASET_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "transactions": (("customer_id", "ts", "amount"), ("txn_id", "type", "channel")),
    "service_events": (
        ("customer_id", "ts", "event_type"),
        ("event_id", "channel", "wait_seconds", "handle_seconds", "resolved", "transferred", "note"),
    ),
    "surveys": (("customer_id", "ts", "nps_score"), ("response_id", "comment")),
    "customers": (
        ("customer_id",),
        ("signup_date", "region", "segment", "contract_end", "do_not_contact", "team", "campaign_until"),
    ),
    "cancellations": (("customer_id", "ts"), ("cancel_id", "reason")),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WarehouseConfig(_Strict):
    url: str = "duckdb:///var/churnwatch.duckdb"
    conn_id: str | None = Field(None, description="Airflow connection holding the warehouse URL (with its password)")
    duckdb_memory_limit: str | None = Field(
        # 1.2 GB keeps a 1M-customer night, steps side by side, under 2 GB in all (docs/scaling.md).
        "1.2GB",
        description="DuckDB's memory limit (it spills beyond it); None = DuckDB's default, 80 % of RAM",
    )

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str) -> str:
        if re.match(r"^[a-z0-9+]+://[^/@:]*:[^/@]+@", value):
            raise ValueError("holds a password; put the URL in CHURNWATCH_WAREHOUSE_URL or an Airflow connection")
        return value


class SqlSourceConfig(_Strict):
    """A table (or query) in a source database, read incrementally by a watermark column.

    The URL is a secret, so it never sits in this file: it comes from the environment variable
    named by url_env, or from the Airflow connection conn_id (env AIRFLOW_CONN_<ID> or Airflow's store).
    """

    conn_id: str | None = None
    url_env: str | None = None
    table: str | None = None
    query: str | None = None
    watermark: str

    @model_validator(mode="after")
    def _one_of(self) -> SqlSourceConfig:
        if bool(self.conn_id) == bool(self.url_env):
            raise ValueError("set exactly one of conn_id or url_env")
        if bool(self.table) == bool(self.query):
            raise ValueError("set exactly one of table or query")
        if self.table and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$", self.table):
            raise ValueError(f"table {self.table!r} is not a plain [schema.]table name")
        if not _PLAIN_NAME.match(self.watermark):
            raise ValueError(f"watermark {self.watermark!r} is not a plain column name (letters, digits, '_')")
        return self


class DatasetConfig(_Strict):
    folder: str | None = None
    sql: SqlSourceConfig | None = None
    required: bool = False
    columns: dict[str, str] = Field(default_factory=dict)
    timestamp_format: str | None = None
    encoding: str = "utf-8"
    max_staleness_days: int | None = Field(
        None, ge=0, description="fail the batch if its newest timestamp is older than as_of minus this many days"
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r} (e.g. utf-8, latin-1, cp1252)") from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> DatasetConfig:
        if self.folder and self.sql:
            raise ValueError("set either folder (landing files) or sql (source database), not both")
        return self

    @field_validator("columns")
    @classmethod
    def _safe_names(cls, value: dict[str, str]) -> dict[str, str]:
        for canonical, source in value.items():
            if not _IDENTIFIER.match(source):
                raise ValueError(f"column name {source!r} for {canonical!r} is not a plain identifier")
        return value


def _default_datasets() -> dict[str, DatasetConfig]:
    return {
        "transactions": DatasetConfig(folder="transactions", required=True),
        "service_events": DatasetConfig(folder="service_events"),
        "surveys": DatasetConfig(folder="surveys"),
        "customers": DatasetConfig(folder="customers"),
    }


# Numeric columns whose accepted range is configurable (sources.value_bounds); NPS is always 0-10.
BOUNDED_COLUMNS = ("amount", "wait_seconds", "handle_seconds")


class Bounds(_Strict):
    """Accepted range of a numeric column; a finite value outside it is quarantined as out_of_range_<column>."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        for v in (self.min, self.max):
            if v is not None and not math.isfinite(v):
                raise ValueError("bounds must be finite numbers")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


def _default_bounds() -> dict[str, Bounds]:
    week = 7 * 24 * 3600.0
    return {
        "amount": Bounds(min=-1e9, max=1e9),
        "wait_seconds": Bounds(min=0, max=week),
        "handle_seconds": Bounds(min=0, max=week),
    }


class SourcesConfig(_Strict):
    landing_dir: Path = Path("data/landing")
    timezone: str = Field("UTC", description="zone of timestamps without an offset; all are stored in this zone")
    lookback_days: int = Field(3, ge=0, le=60, description="each run re-reads this many earlier days (late rows)")
    max_quarantine_share: float = Field(0.5, gt=0, le=1)
    min_volume_ratio: float = Field(0.2, ge=0, le=1, description="fail if a day's rows < ratio x trailing median")
    volume_trailing_days: int = Field(14, ge=3, le=90)
    unknown_customers: Literal["quarantine", "allow"] = "quarantine"
    earliest_timestamp: date = Field(
        date(1990, 1, 1), description="rows dated before this day are quarantined (timestamp_too_early)"
    )
    value_bounds: dict[str, Bounds] = Field(
        default_factory=_default_bounds, description="accepted range per numeric column (amount, wait/handle seconds)"
    )
    datasets: dict[str, DatasetConfig] = Field(default_factory=_default_datasets)

    @field_validator("value_bounds")
    @classmethod
    def _known_bounds(cls, value: dict[str, Bounds]) -> dict[str, Bounds]:
        unknown = sorted(set(value) - set(BOUNDED_COLUMNS))
        if unknown:
            raise ValueError(
                f"unknown column(s) {', '.join(unknown)}; bounded columns are: {', '.join(BOUNDED_COLUMNS)}"
            )
        return {**_default_bounds(), **value}

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Amsterdam)") from None
        return value

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, value: dict[str, DatasetConfig]) -> dict[str, DatasetConfig]:
        for name, ds in value.items():
            if name not in DATASET_COLUMNS:
                raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASET_COLUMNS)}")
            required, optional = DATASET_COLUMNS[name]
            for canonical in ds.columns:
                if canonical not in required + optional:
                    raise ValueError(
                        f"datasets.{name}.columns: unknown column {canonical!r}; "
                        f"known: {', '.join(required + optional)}"
                    )
            if not ds.folder and not ds.sql:
                ds.folder = name
        if "transactions" not in value:
            raise ValueError("the transactions dataset is mandatory")
        # Customers first: later datasets are checked against the customers known after it.
        return dict(sorted(value.items(), key=lambda kv: kv[0] != "customers"))


class ChurnConfig(_Strict):
    kind: Literal["non_contractual", "contractual"] = Field(
        "non_contractual",
        description="non_contractual: no activity within the horizon; contractual: a cancellation within it",
    )
    horizon_days: int = Field(90, ge=7, le=730)
    activity_types: list[str] = Field(default_factory=lambda: ["purchase"])


class TrainingConfig(_Strict):
    cutoff_every_days: int = Field(21, ge=1)
    n_cutoffs: int = Field(12, ge=3, le=60)
    min_history_days: int | None = Field(
        None,
        ge=0,
        description="days of data a cutoff needs after the first transaction (default: churn.horizon_days)",
    )
    selection_folds: int = Field(
        3, ge=1, le=12, description="cutoffs before the newest on which candidates are compared (rolling origin)"
    )
    selection_margin: float = Field(
        0.005, ge=0.0, le=0.1, description="mean fold AUC a more complex candidate must gain over a simpler one"
    )
    min_auc: float = Field(0.6, ge=0.5, le=1.0)
    min_improvement: float = Field(
        0.0, ge=0.0, le=0.2, description="AUC a new model must gain over the champion, on the same validation rows"
    )
    max_train_rows: int = Field(400_000, ge=1000)
    max_selection_rows: int = Field(
        100_000, ge=1000, description="training rows per candidate in each selection fold and the held-out check"
    )
    random_state: int = 0


class SegmentRules(_Strict):
    """Thresholds of the lifecycle stage and loyalty type rules (docs/features.md)."""

    new_days: int = Field(90, ge=1, description="tenure below this is a new customer")
    reactivated_days: int = Field(30, ge=1, description="bought within this many days after a dormant gap")
    at_risk_overdue: float = Field(2.0, gt=0, description="overdue ratio from which an active customer is at risk")
    regular_min_purchases: int = Field(6, ge=2)
    regular_max_cv: float = Field(0.5, gt=0, description="max spread/mean of the purchase gap for 'regular'")
    long_term_span: int = Field(365, ge=1, description="first-to-last purchase span of a long-term customer")
    short_term_span: int = Field(90, ge=1, description="span below which a repeat buyer is short-term")


class MonitoringConfig(_Strict):
    psi_warn: float = Field(0.1, gt=0, description="population stability index from which drift is a warning")
    psi_alert: float = Field(0.25, gt=0, description="PSI from which drift is flagged in the run summary")
    max_auc_drop: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="tolerance: degraded when the realised AUC's 95 % interval lies wholly below validation AUC minus this",
    )


class FeatureConfig(_Strict):
    dormant_days: list[int] = Field(default_factory=lambda: [90, 180])
    kpi_period_days: int = Field(30, ge=1, le=365, description="period of churn_kpis_daily: churn, lost revenue, NPS")
    segments: SegmentRules = Field(default_factory=SegmentRules)
    incremental: bool = Field(
        True,
        description="nightly features on the warehouse roll a stored per-customer state forward instead of"
        " re-reading all history (same rows; false: every night reads all history; docs/features.md)",
    )

    @field_validator("dormant_days")
    @classmethod
    def _two_thresholds(cls, value: list[int]) -> list[int]:
        if not 1 <= len(value) <= 2 or any(v < 1 for v in value):
            raise ValueError("give one or two positive day counts, e.g. [90, 180]")
        return sorted(value)

    repeat_contact_days: int = Field(7, ge=1)
    long_wait_seconds: int = Field(600, ge=1)
    negative_words: list[str] = Field(
        default_factory=lambda: [
            "frustrat",
            "angry",
            "cancel",
            "not fixed",
            "disappoint",
            "unhappy",
            "terrible",
            "switch provider",
        ]
    )


class TeamRule(_Strict):
    name: str
    capacity: int = Field(50, ge=0)
    regions: list[str] = Field(default_factory=list)
    segments: list[str] = Field(default_factory=list)
    min_value: float | None = None
    reactivation_capacity: int | None = Field(
        None,
        ge=0,
        description="dormant accounts on the team's reactivation list (default: alerts.reactivation_capacity)",
    )


class RuleConfig(_Strict):
    """Rule triggers; each fires on its own and is named on the alert."""

    enabled: list[str] = Field(
        default_factory=lambda: [
            "dormant_regular",
            "repeat_contacts",
            "detractor_after_complaint",
            "spend_halved",
            "overdue_regular",
        ]
    )
    repeat_contacts_min: int = Field(2, ge=1, description="repeat contacts (within repeat_contact_days) in 90 days")
    spend_drop: float = Field(0.5, gt=0, lt=1, description="spend_90d at most this share of spend_prev_90d")
    overdue_ratio: float = Field(3.0, gt=1, description="regular buyer this many usual gaps late")

    @field_validator("enabled")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        known = {"dormant_regular", "repeat_contacts", "detractor_after_complaint", "spend_halved", "overdue_regular"}
        unknown = [v for v in value if v not in known]
        if unknown:
            raise ValueError(f"unknown rule(s) {', '.join(unknown)}; rules are: {', '.join(sorted(known))}")
        return value


class UpliftConfig(_Strict):
    """Who responds to a call: the uplift estimate behind alerts.ranking expected_value_saved (docs/deliver.md)."""

    min_control: int = Field(
        30, ge=1, description="treated and control alerts a profile (and the pool) needs before its effect is used"
    )
    window_days: int = Field(
        182, ge=7, le=730, description="alert days whose horizon has matured within this many days are counted"
    )


class AlertConfig(_Strict):
    probability_threshold: float = Field(0.5, gt=0, lt=1)
    top_share: float | None = Field(
        None, gt=0, lt=1, description="also alert the highest-scored share of customers, whatever their probability"
    )
    rules: RuleConfig = Field(default_factory=RuleConfig)
    cooldown_days: int = Field(14, ge=0, description="no new alert for a customer within this many days of the last")
    control_fraction: float = Field(0.1, ge=0, le=0.5, description="share of eligible alerts held out as control")
    ranking: Literal["value_at_risk", "expected_value_saved"] = Field(
        "value_at_risk",
        description="order of the prevention lists: value at risk, or P(churn) x uplift of the profile x value "
        "once the uplift evidence suffices (else value at risk, and the summary says why)",
    )
    uplift: UpliftConfig = Field(default_factory=UpliftConfig)
    outbox_formats: list[Literal["csv", "xlsx"]] = Field(default_factory=lambda: ["csv", "xlsx"])
    email: dict[str, str] = Field(
        default_factory=dict,
        description="team -> address; step email_outbox mails each team its files (SMTP connection)",
    )
    email_conn_id: str = "smtp_default"
    risk_bands: dict[str, float] = Field(
        default_factory=lambda: {"high": 0.6, "medium": 0.3, "low": 0.0},
        description="band name -> lower probability bound, checked from the highest bound down",
    )
    teams: list[TeamRule] = Field(default_factory=lambda: [TeamRule(name="retention")])
    default_team: str = "retention"
    default_capacity: int = Field(50, ge=0)
    reactivation_capacity: int = Field(
        20, ge=0, description="dormant accounts per team and night on the reactivation list (its own capacity)"
    )
    currency: str = Field("EUR", max_length=8, description="currency of amounts in reasons, lists and the report")
    playbook: dict[str, str] = Field(
        default_factory=lambda: {
            "inactivity": "win-back offer",
            "reactivation": "reactivation offer",
            "declining_spend": "re-engagement message",
            "service": "service recovery call",
            "satisfaction": "service recovery call",
            "high_value": "account review",
            "default": "check-in call",
        }
    )
    high_value_threshold: float = Field(2000.0, ge=0)
    # Targeting curve (pipelines/deliver/targeting.py): what calling the top N of a list is expected to save.
    assumed_effect: float = Field(
        0.10,
        gt=0,
        lt=1,
        description="share of a called customer's churn risk a call removes, assumed until outreach is measured",
    )
    effect_lookback_days: int = Field(
        180, ge=1, le=730, description="matured outreach measurements of this many days are pooled into the effect"
    )

    @model_validator(mode="after")
    def _bands_sorted(self) -> AlertConfig:
        if not self.risk_bands:
            raise ValueError("risk_bands must name at least one band")
        if "default" not in self.playbook:
            raise ValueError("playbook must have a 'default' action")
        names = [t.name for t in self.teams]
        if len(set(names)) != len(names):
            raise ValueError("team names must be unique")
        for name in names + [self.default_team]:
            if not re.match(r"^[A-Za-z0-9_-]+$", name):
                raise ValueError(f"team name {name!r} may only use letters, digits, '-' and '_'")
        return self


class PathsConfig(_Strict):
    outbox_dir: Path = Path("outbox")
    model_dir: Path = Path("var/models")
    report_dir: Path = Path("reports")
    file_mode: str = Field("0640", description="permissions of published lists and reports (octal): group-readable")
    dir_mode: str = Field("0750", description="permissions of their folders (octal)")

    @field_validator("file_mode", "dir_mode")
    @classmethod
    def _octal(cls, value: str) -> str:
        if not re.match(r"^0?[0-7]{3}$", str(value)):
            raise ValueError(f"{value!r} is not an octal mode such as 0640")
        return str(value)

    @property
    def modes(self) -> tuple[int, int]:
        """Return (file mode, folder mode) as integers."""
        return int(self.file_mode, 8), int(self.dir_mode, 8)


class ScoringConfig(_Strict):
    chunk_rows: int = Field(100_000, ge=100, description="customers scored per chunk (bounds the run's memory)")
    explain: Literal["at_risk", "all"] = Field(
        "at_risk",
        description="which scores get reasons: at_risk = every band above the lowest and any score at or above "
        "alerts.probability_threshold (everyone when alerts.top_share is set); all = every scored customer",
    )


class ValueConfig(_Strict):
    """What keeping a customer is worth: expected spend over a period (models/spend.py, docs/model.md)."""

    period_days: int = Field(
        365, ge=30, le=1825, description="days of expected spend (BG/NBD x Gamma-Gamma) that value at risk counts"
    )
    min_repeat_customers: int = Field(
        50, ge=2, description="repeat customers a Gamma-Gamma fit needs; fewer: trailing 12-month spend is the value"
    )


class SparkConfig(_Strict):
    """Apache Spark for features and scoring (engine: spark); docs/scaling.md."""

    master: str = Field("local[*]", description="spark master URL, e.g. local[2], yarn, spark://host:7077, k8s://...")
    lake_dir: str = Field(
        "var/lake", description="Parquet folder or URI (s3a://, abfss://, hdfs://) of the tables Spark reads and writes"
    )
    conf: dict[str, str] = Field(default_factory=dict, description="extra Spark settings (spark.executor.memory, ...)")
    conn_id: str | None = Field(None, description="Airflow Spark connection whose host is the master URL")


class Config(_Strict):
    engine: Literal["duckdb", "postgres", "spark"] | None = Field(
        None, description="compute engine of features and scoring; default: the warehouse's own (duckdb or postgres)"
    )
    spark: SparkConfig = Field(default_factory=SparkConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    value: ValueConfig = Field(default_factory=ValueConfig)
    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    churn: ChurnConfig = Field(default_factory=ChurnConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    alerts: AlertConfig = Field(default_factory=AlertConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _contract_needs_cancellations(self) -> Config:
        if self.churn.kind == "contractual" and "cancellations" not in self.sources.datasets:
            raise ValueError("churn.kind contractual needs a sources.datasets.cancellations dataset")
        return self

    @property
    def compute_engine(self) -> str:
        """Return where features and scores are computed: 'spark', else the warehouse's backend."""
        backend = "postgres" if self.warehouse_url.startswith("postgres") else "duckdb"
        if self.engine in (None, backend, "spark"):
            return self.engine or backend
        raise ConfigError(
            f"engine: {self.engine} does not match the warehouse URL (a {backend} database); "
            "set engine to spark, or leave it out to compute in the warehouse"
        )

    def resolve(self, path: Path) -> Path:
        """Return a config path made absolute against the config file's folder."""
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def warehouse_url(self) -> str:
        """Return the warehouse URL, from the environment if set, with relative DuckDB paths resolved."""
        url = os.environ.get(WAREHOUSE_URL_ENV)
        if not url and self.warehouse.conn_id:
            from pipelines.core.connections import resolve_url

            url = resolve_url(conn_id=self.warehouse.conn_id, what="warehouse.conn_id")
        url = url or self.warehouse.url
        prefix = "duckdb:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            url = prefix + str(self.resolve(Path(url[len(prefix) :])))
        return url


def _format_error(exc: ValidationError, source: str) -> str:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{source}: {key}: {msg}{suffix}"


def find_config_path(path: str | Path | None = None) -> Path | None:
    """Return the config file to use: explicit path, $CHURNWATCH_CONFIG, or ./churnwatch.yaml."""
    if path:
        return Path(path)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    default = Path.cwd() / DEFAULT_CONFIG_NAME
    return default if default.exists() else None


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate the config; raise ConfigError with one line naming the bad key."""
    cfg_path = find_config_path(path)
    if cfg_path is None:
        return Config(base_dir=Path.cwd())
    if not cfg_path.exists():
        raise ConfigError(f"config file not found: {cfg_path}")
    try:
        raw = yaml.safe_load(cfg_path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{cfg_path}:{where} is not valid YAML") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{cfg_path}: top level must be a mapping of sections")
    try:
        return Config(**raw, base_dir=cfg_path.resolve().parent)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, str(cfg_path))) from None
