"""The `duet` command, run as a user runs it: a real process, real files, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyotp
import pytest

from tests.support.databases import Templates, drop_database, fresh_database


def duet(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture
async def env(templates: Templates, backend: str, tmp_path: Path) -> object:
    url, pg_name = await fresh_database(templates, backend, tmp_path)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DUET_")}
    environ.update(DUET_HOME=str(tmp_path / "home"), DUET_DATABASE_URL=url, DUET_LOG_LEVEL="WARNING")
    yield environ
    if pg_name:
        await drop_database(pg_name)


def test_help_lists_every_command(env: dict[str, str]) -> None:
    out = duet("--help", env=env).stdout
    for command in ("serve", "migrate", "user", "audit", "demo"):
        assert command in out


def test_demo_is_idempotent_and_prints_working_logins_and_links(env: dict[str, str]) -> None:
    first = duet("demo", "--json", env=env)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    for key in ("base_url", "practitioner_join_url", "guardian_join_url", "guardian_check_url",
                "guardian_consent_url", "unconsented_practitioner_join_url", "unconsented_guardian_join_url",
                "staff"):
        assert key in data
    assert data["guardian_join_url"].startswith(data["base_url"] + "/l/")
    lead = data["staff"]["safeguarding"]
    assert len(pyotp.TOTP(lead["totp_secret"]).now()) == 6
    assert all(login["email"].endswith("@demo.example.org") for login in data["staff"].values())
    second = json.loads(duet("demo", "--json", env=env).stdout)
    assert second["staff"] == data["staff"] and second["booking_id"] == data["booking_id"]
    assert second["guardian_join_url"] != data["guardian_join_url"]  # a fresh link, the old one still works
    keys = Path(env["DUET_HOME"]) / "keys"
    assert oct((keys / "demo.json").stat().st_mode & 0o777) == "0o600"
    assert oct((keys / "app_secret").stat().st_mode & 0o777) == "0o600"
    verified = duet("audit", "verify", env=env)
    assert verified.returncode == 0 and "OK" in verified.stdout


def test_user_create_reads_the_password_from_stdin(env: dict[str, str]) -> None:
    made = duet("user", "create", "--role", "admin", "--email", "office@music.example.org", env=env,
                stdin="a long enough password\n")
    assert made.returncode == 0, made.stderr
    assert "office@music.example.org" in made.stdout
    again = duet("user", "create", "--role", "admin", "--email", "office@music.example.org", env=env,
                 stdin="a long enough password\n")
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "already exists" in again.stderr
    short = duet("user", "create", "--role", "admin", "--email", "x@music.example.org", env=env, stdin="short\n")
    assert short.returncode == 1 and "at least 12 characters" in short.stderr


def test_user_create_gives_the_head_of_service_role(env: dict[str, str]) -> None:
    assert "head_of_service" in duet("user", "create", "--help", env=env).stdout
    made = duet("user", "create", "--role", "head_of_service", "--role", "manager", "--email",
                "head@music.example.org", env=env, stdin="a long enough password\n")
    assert made.returncode == 0, made.stderr
    assert "with role(s) head_of_service manager" in made.stdout


def test_audit_verify_names_a_changed_event(env: dict[str, str], backend: str) -> None:
    duet("demo", env=env)
    url = env["DUET_DATABASE_URL"]
    if backend == "sqlite":
        import sqlite3

        conn = sqlite3.connect(url.split("///", 1)[1])
        conn.execute("UPDATE audit_events SET target = 'staff:99' WHERE seq = 3")
        conn.commit()
        conn.close()
    else:
        subprocess.run(["psql", url.replace("postgresql+asyncpg", "postgresql"), "-qc",
                        "UPDATE audit_events SET target = 'staff:99' WHERE seq = 3"], check=True)
    broken = duet("audit", "verify", env=env)
    assert broken.returncode == 1 and "event 3 was changed" in broken.stdout


def _sql(env: dict[str, str], backend: str, *statements: str) -> None:
    url = env["DUET_DATABASE_URL"]
    if backend == "sqlite":
        import sqlite3

        conn = sqlite3.connect(url.split("///", 1)[1])
        for statement in statements:
            conn.execute(statement)
        conn.commit()
        conn.close()
    else:
        for statement in statements:
            subprocess.run(["psql", url.replace("postgresql+asyncpg", "postgresql"), "-qc", statement], check=True)


@pytest.mark.parametrize("rewrite", ["cut tail", "wipe"])
def test_audit_verify_catches_a_cut_tail_and_a_wiped_log_by_their_checkpoint(
    env: dict[str, str], backend: str, rewrite: str
) -> None:
    """A valid chain can be shortened or emptied in the database alone; the checkpoint outside it remembers."""
    duet("demo", env=env)
    checkpoint = duet("audit", "checkpoint", env=env)
    assert checkpoint.returncode == 0 and "checkpoint-" in checkpoint.stdout, checkpoint.stderr
    assert "checked against 1 checkpoint" in duet("audit", "verify", env=env).stdout
    if rewrite == "cut tail":
        _sql(env, backend, "DELETE FROM audit_events WHERE seq > (SELECT seq - 2 FROM audit_head)",
             "UPDATE audit_head SET seq = seq - 2, last_hash = (SELECT hash FROM audit_events "
             "WHERE seq = (SELECT max(seq) FROM audit_events))")
    else:
        _sql(env, backend, "DELETE FROM audit_events", "DELETE FROM audit_head")
    broken = duet("audit", "verify", env=env)
    assert broken.returncode == 1, broken.stdout
    assert broken.stdout.startswith("audit log BROKEN at event ")
    assert ("removed" if rewrite == "cut tail" else "wiped") in broken.stdout


@pytest.mark.parametrize(("variable", "value"), [("DUET_PORT", "http"), ("DUET_DATABASE_URL", "mysql://x/y"),
                                                  ("DUET_WHATEVER", "1")])
def test_a_wrong_setting_stops_with_one_line(env: dict[str, str], variable: str, value: str) -> None:
    result = duet("migrate", env={**env, variable: value})
    assert result.returncode == 2
    assert result.stderr.startswith(f"duet: setting {variable}:") and result.stderr.count("\n") == 1


def test_an_unreachable_database_is_one_line(env: dict[str, str]) -> None:
    result = duet("audit", "verify", env={**env, "DUET_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert result.returncode == 1 and result.stderr.startswith("duet: ") and "Traceback" not in result.stderr


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DUET_")}
    environ.update(DUET_HOME=str(tmp_path / "fresh"), DUET_PORT="18099")
    result = duet("serve", env=environ)
    assert result.returncode == 1 and "duet migrate" in result.stderr


def test_processing_record_lists_every_purpose(env: dict[str, str]) -> None:
    result = duet("gdpr", "processing-record", "--json", env=env)
    assert result.returncode == 0, result.stderr
    ids = {p["id"] for p in json.loads(result.stdout)["purposes"]}
    assert ids == {"tuition-monitoring", "therapy-children", "therapy-adults", "safeguarding-concern"}


def test_a_bad_policy_file_stops_serve_naming_file_and_field(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    source = Path(__file__).resolve().parents[2] / "storage_policies" / "therapy_adults.toml"
    (folder / "therapy_adults.toml").write_text(source.read_text().replace("years = 8", "years = -8", 1))
    result = duet("serve", env={**env, "DUET_STORAGE_POLICIES": str(folder), "DUET_PORT": "18098"})
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("duet: therapy_adults.toml: retention.") and "-8" in result.stderr


def test_retention_run_reports_what_is_due(env: dict[str, str]) -> None:
    duet("demo", env=env)
    result = duet("retention", "run", "--dry-run", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []  # the demo has no recordings yet
    assert duet("retention", "run", env=env).stdout.strip() == "nothing is due"


def test_recording_list_and_a_clear_error_for_an_unknown_export(env: dict[str, str], tmp_path: Path) -> None:
    duet("demo", env=env)
    listed = duet("recording", "list", "--json", env=env)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    missing = duet("recording", "export", "0b7c6b8e-0000-4000-8000-000000000000", "--out", str(tmp_path / "x.webm"),
                   "--reason", "subject access request 7", env=env)
    assert missing.returncode == 1 and "There is no recording" in missing.stderr
    assert not (tmp_path / "x.webm").exists()


def test_gdpr_export_and_erase_explain_themselves(env: dict[str, str], tmp_path: Path) -> None:
    demo = json.loads(duet("demo", "--json", env=env).stdout)
    client = str(demo["client_id"])
    out = tmp_path / "sar.zip"
    exported = duet("gdpr", "export", "--client", client, "--out", str(out), env=env)
    assert exported.returncode == 0, exported.stderr
    assert "0 recording(s) decrypted" in exported.stdout and out.exists()
    again = duet("gdpr", "export", "--client", client, "--out", str(out), env=env)
    assert again.returncode == 1 and "already exists" in again.stderr and again.stderr.count("\n") == 1
    unknown = duet("gdpr", "erase", "--client", "999", env=env)
    assert unknown.returncode == 1 and unknown.stderr.strip() == "duet: There is no client with id 999."
    booked = duet("gdpr", "erase", "--client", client, "--dry-run", env=env)
    assert booked.returncode == 1 and "Cancel them first; nothing was erased" in booked.stderr
