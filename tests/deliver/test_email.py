"""email_outbox against a real SMTP server on loopback (aiosmtpd)."""

import email
import socket
from datetime import date

import pytest
from aiosmtpd.controller import Controller

from pipelines.core.config import Config
from pipelines.core.errors import ChurnwatchError, ConfigError
from pipelines.deliver.email import SmtpServer, email_outbox

DAY = date(2026, 3, 1)


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch):
    inbox = _Inbox()
    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        f"smtp://127.0.0.1:{controller.port}?disable_ssl=true&disable_tls=true&from_email=retention%40example.com",
    )
    yield inbox
    controller.stop()


def _outbox(tmp_path):
    day = tmp_path / "outbox" / DAY.isoformat()
    day.mkdir(parents=True)
    (day / "north.csv").write_text("team_rank,customer_id\n1,C1\n")
    (day / "north.reactivation.csv").write_text("team_rank,customer_id\n1,C9\n")
    (day / "north.xlsx").write_bytes(b"PK\x03\x04 not a real workbook")
    (day / "northwest.csv").write_text("team_rank,customer_id\n1,C2\n")
    return tmp_path


def test_each_team_gets_its_own_files_and_nothing_else(smtp, tmp_path):
    cfg = Config(base_dir=_outbox(tmp_path), alerts={"email": {"north": "north@example.com", "south": "s@example.com"}})
    summary = email_outbox(DAY, cfg, None).as_dict()
    assert summary["sent"] == 1 and summary["teams"] == {"north": 3}
    assert summary["without_files"] == ["south"]
    ((to, message),) = smtp.messages
    assert to == ["north@example.com"] and message["From"] == "retention@example.com"
    assert message["Subject"] == "churnwatch north list for 2026-03-01"
    names = sorted(part.get_filename() for part in message.walk() if part.get_filename())
    assert names == ["north.csv", "north.reactivation.csv", "north.xlsx"]  # not northwest.csv


def test_nothing_is_sent_without_addresses(smtp, tmp_path):
    summary = email_outbox(DAY, Config(base_dir=_outbox(tmp_path)), None).as_dict()
    assert summary == {"as_of": "2026-03-01", "sent": 0, "teams": {}, "note": "alerts.email is empty"}
    assert smtp.messages == []


def test_a_missing_connection_and_an_unreachable_server_are_one_line(tmp_path, monkeypatch):
    cfg = Config(base_dir=_outbox(tmp_path), alerts={"email": {"north": "n@example.com"}})
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", "")
    with pytest.raises(ConfigError, match="SMTP connection 'smtp_default' is not defined .*AIRFLOW_CONN_SMTP_DEFAULT"):
        email_outbox(DAY, cfg, None)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", "smtp://127.0.0.1:1?disable_ssl=true&disable_tls=true&timeout=5")
    with pytest.raises(ChurnwatchError, match=r"e-mail through 'smtp_default' \(127.0.0.1:1\) failed") as err:
        email_outbox(DAY, cfg, None)
    assert "\n" not in str(err.value)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", "postgresql://db/x")
    with pytest.raises(ConfigError, match="not an smtp://host URI"):
        email_outbox(DAY, cfg, None)


def test_connection_extras_follow_the_airflow_smtp_provider():
    assert SmtpServer.from_uri("smtp://u%40x.org:p%2Fw@mail:2525", "c") == SmtpServer(
        "mail", 2525, "u@x.org", "p/w", "u@x.org", ssl=True, starttls=False, timeout=30.0
    )
    plain = SmtpServer.from_uri("smtp://mail?disable_ssl=true", "c")
    assert (plain.port, plain.ssl, plain.starttls, plain.sender) == (587, False, True, "churnwatch@localhost")


def test_the_cli_runs_the_step_and_a_missing_connection_is_one_line(tmp_path):
    import subprocess
    import sys

    outbox = _outbox(tmp_path) / "outbox"
    config = tmp_path / "churnwatch.yaml"
    config.write_text(
        f"warehouse: {{url: 'duckdb:///{tmp_path}/wh.duckdb'}}\n"
        f"paths: {{outbox_dir: '{outbox}'}}\n"
        "alerts: {email: {north: north@example.com}}\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("AIRFLOW_CONN_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run",
            "-c",
            str(config),
            "--date",
            DAY.isoformat(),
            "--steps",
            "email_outbox",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: alerts.email is set but the SMTP connection 'smtp_default' is not defined "
        "(define it in Airflow or set AIRFLOW_CONN_SMTP_DEFAULT)"
    ], done.stderr


@pytest.mark.parametrize("uri", ["smtp://mail:http", "smtp://mail?timeout=soon", "smtp://:25", "mail.example.com"])
def test_a_broken_connection_uri_names_the_connection(uri):
    with pytest.raises(ConfigError, match="SMTP connection 'smtp_default'"):
        SmtpServer.from_uri(uri, "smtp_default")
