"""Secret URLs for source databases and the warehouse: from environment variables or Airflow connections.

Nothing secret is ever read from the YAML config or airflow.cfg, and URLs are redacted in every message.
"""

from __future__ import annotations

import os

import sqlalchemy as sa

from pipelines.core.errors import ConfigError

# Airflow connection types whose URI scheme SQLAlchemy spells differently.
_SCHEMES = {"postgres": "postgresql", "postgresql": "postgresql"}


def redact(url: str) -> str:
    """Return url with its password hidden (or a placeholder if it cannot be parsed)."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"


def airflow_uri(conn_id: str) -> str | None:
    """Return the URI of an Airflow connection: AIRFLOW_CONN_<ID> first, then Airflow's own store."""
    env = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if env:
        return env
    try:  # only inside an Airflow deployment; pipelines never need Airflow otherwise
        from airflow.sdk import BaseHook
    except ImportError:
        return None
    try:
        return BaseHook.get_connection(conn_id).get_uri()
    except Exception:
        return None


def resolve_url(*, conn_id: str | None = None, url_env: str | None = None, what: str) -> str:
    """Return a SQLAlchemy URL from an environment variable or an Airflow connection; ConfigError if unset."""
    if url_env:
        url = os.environ.get(url_env)
        if not url:
            raise ConfigError(f"{what}: environment variable {url_env} is not set")
    elif conn_id:
        url = airflow_uri(conn_id)
        if not url:
            raise ConfigError(
                f"{what}: Airflow connection {conn_id!r} not found "
                f"(define it in Airflow or set AIRFLOW_CONN_{conn_id.upper()})"
            )
    else:
        raise ConfigError(f"{what}: no conn_id or url_env given")
    scheme, sep, rest = url.partition("://")
    if sep and scheme in _SCHEMES:
        url = f"{_SCHEMES[scheme]}://{rest}"
    return url
