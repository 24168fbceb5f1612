"""E-mail each team its morning files (outbox/<as-of>/<team>.*) through an SMTP connection.

Step email_outbox: runs after publish_outbox, is recorded in pipeline_runs like every step and can be run
from the CLI (`churnwatch run --date D --steps email_outbox`). Nothing is sent while `alerts.email` is
empty. The server comes from the Airflow connection `alerts.email_conn_id` [smtp_default] (or
AIRFLOW_CONN_<ID>, e.g. `smtp://user:password@mail.example.com:587?from_email=retention@example.com`);
its extras follow Airflow's SMTP provider: SSL unless `disable_ssl=true`, else STARTTLS unless
`disable_tls=true`. Tests: tests/deliver/test_email.py. Doc: docs/deliver.md.
"""

from __future__ import annotations

import mimetypes
import smtplib
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy.engine import Engine

from pipelines.core.config import Config
from pipelines.core.connections import airflow_uri
from pipelines.core.errors import ChurnwatchError, ConfigError, first_line
from pipelines.deliver.outbox import value_legend

_TRUE = {"true", "1", "yes"}


@dataclass
class EmailSummary:
    as_of: date
    sent: dict[str, int] = field(default_factory=dict)  # team -> files attached
    without_files: list[str] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict:
        out = {"as_of": self.as_of.isoformat(), "sent": len(self.sent), "teams": self.sent}
        if self.without_files:
            out["without_files"] = self.without_files
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    login: str | None
    password: str | None
    sender: str
    ssl: bool
    starttls: bool
    timeout: float

    @classmethod
    def from_uri(cls, uri: str, conn_id: str) -> SmtpServer:
        """Return the server of an smtp:// connection URI; ConfigError naming the connection if it is not one."""
        parts = urlsplit(uri)
        if parts.scheme not in ("smtp", "smtps", "email") or not parts.hostname:
            raise ConfigError(f"SMTP connection {conn_id!r} is not an smtp://host URI")
        extra = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        ssl = parts.scheme == "smtps" or extra.get("disable_ssl", "false").lower() not in _TRUE
        login = unquote(parts.username) if parts.username else None
        try:
            port, timeout = parts.port or (465 if ssl else 587), float(extra.get("timeout", 30))
        except ValueError as exc:
            raise ConfigError(f"SMTP connection {conn_id!r}: {first_line(exc)}") from None
        return cls(
            host=parts.hostname,
            port=port,
            login=login,
            password=unquote(parts.password) if parts.password else None,
            sender=extra.get("from_email") or (login if login and "@" in login else "churnwatch@localhost"),
            ssl=ssl,
            starttls=not ssl and extra.get("disable_tls", "false").lower() not in _TRUE,
            timeout=timeout,
        )

    def send(self, messages: list[EmailMessage]) -> None:
        """Send the messages over one connection."""
        smtp_class = smtplib.SMTP_SSL if self.ssl else smtplib.SMTP
        with smtp_class(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.login:
                smtp.login(self.login, self.password or "")
            for message in messages:
                smtp.send_message(message)


def team_message(
    team: str, address: str, files: list[Path], as_of: date, sender: str, legend: str = ""
) -> EmailMessage:
    """Return the e-mail of one team's lists with the files attached."""
    message = EmailMessage()
    message["Subject"] = f"churnwatch {team} list for {as_of.isoformat()}"
    message["From"] = sender
    message["To"] = address
    names = "\n".join(f"- {p.name}" for p in files)
    legend = f"\nColumns: {legend}.\n" if legend else ""
    message.set_content(f"The {team} retention lists for {as_of.isoformat()} are attached:\n{names}\n{legend}")
    for path in files:
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        maintype, subtype = kind.split("/", 1)
        message.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name)
    return message


def email_outbox(as_of: date, cfg: Config, engine: Engine) -> EmailSummary:
    """Mail each team in alerts.email its files of the day; nothing to do while alerts.email is empty."""
    if not cfg.alerts.email:
        return EmailSummary(as_of, note="alerts.email is empty")
    conn_id = cfg.alerts.email_conn_id
    uri = airflow_uri(conn_id)
    if not uri:
        raise ConfigError(
            f"alerts.email is set but the SMTP connection {conn_id!r} is not defined "
            f"(define it in Airflow or set AIRFLOW_CONN_{conn_id.upper()})"
        )
    server = SmtpServer.from_uri(uri, conn_id)
    folder = cfg.resolve(cfg.paths.outbox_dir) / as_of.isoformat()
    summary, messages = EmailSummary(as_of), []
    for team, address in sorted(cfg.alerts.email.items()):
        files = (
            sorted(p for p in folder.iterdir() if p.is_file() and p.name.split(".", 1)[0] == team)
            if folder.is_dir()
            else []
        )
        if not files:
            summary.without_files.append(team)
            continue
        messages.append(team_message(team, address, files, as_of, server.sender, value_legend(cfg)))
        summary.sent[team] = len(files)
    if messages:
        try:
            server.send(messages)
        except (OSError, smtplib.SMTPException) as exc:
            raise ChurnwatchError(
                f"e-mail through {conn_id!r} ({server.host}:{server.port}) failed: {first_line(exc)}"
            ) from None
    return summary
