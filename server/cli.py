"""The ``duet`` command. Every failure is one readable line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from server.accounts.models import Role
from server.accounts.services import NewStaff
from server.audit.log import Actor
from server.clock import SystemClock
from server.config import ConfigError, Settings, load_settings
from server.db.engine import make_engine, make_sessionmaker
from server.db.migrate import pending, upgrade
from server.errors import CommandError, DuetError
from server.keys import AppKeys, private_folder, write_private
from server.services import Services


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="duet", description="Duet: remote music tuition and therapy sessions.")
    parser.add_argument("--config", type=Path, help="TOML file with settings (DUET_* variables override it)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="start the web server and media relay")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")

    sub.add_parser("migrate", help="create or upgrade the database schema")

    user = sub.add_parser("user", help="manage staff accounts")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    create = user_sub.add_parser("create", help="add a member of staff (asks for a password, or reads stdin)")
    create.add_argument("--role", action="append", required=True, choices=[r.value for r in Role],
                        help="a role; repeat for several")
    create.add_argument("--email", required=True)
    create.add_argument("--name", help="full name (default: from the email address)")

    audit = sub.add_parser("audit", help="the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    audit_sub.add_parser("verify", help="check the keyed chain against its checkpoint files; name the first changed, "
                         "removed, inserted or forged event")
    audit_sub.add_parser("checkpoint", help="write a signed checkpoint of the chain's head to DUET_AUDIT_ANCHORS now "
                         "(the server does so every DUET_AUDIT_CHECKPOINT_EVERY events and daily)")

    recording = sub.add_parser("recording", help="recordings: list, and export (decrypted, audited)")
    recording_sub = recording.add_subparsers(dest="recording_command", required=True, metavar="ACTION")
    rec_list = recording_sub.add_parser("list", help="every recording with its erase date")
    rec_list.add_argument("--json", action="store_true", help="print one JSON list")
    rec_export = recording_sub.add_parser("export", help="decrypt one recording to a WebM file (audited)")
    rec_export.add_argument("recording_id")
    rec_export.add_argument("--out", type=Path, required=True, help="the file to write")
    rec_export.add_argument("--reason", required=True, help="why it is exported (kept in the audit log)")

    keys = sub.add_parser("keys", help="recording key-encryption keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    rotate = keys_sub.add_parser("rotate", help="new key pair; re-wrap every recording's data key")
    rotate.add_argument("--retire", action="store_true", help="then delete the old key pairs")

    retention = sub.add_parser("retention", help="erase recordings past their storage policy's date")
    retention_sub = retention.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
    run_parser = retention_sub.add_parser("run", help="recompute erase dates, then erase what is due")
    run_parser.add_argument("--dry-run", action="store_true", help="only print what is due")
    run_parser.add_argument("--json", action="store_true", help="print one JSON list")

    gdpr = sub.add_parser("gdpr", help="data protection: subject access, erasure, records of processing")
    gdpr_sub = gdpr.add_subparsers(dest="gdpr_command", required=True, metavar="ACTION")
    export = gdpr_sub.add_parser("export", help="write a client's subject access bundle, recordings decrypted "
                                 "(audited)")
    export.add_argument("--client", type=int, required=True, metavar="ID", help="the client's id")
    export.add_argument("--out", type=Path, required=True, metavar="FILE", help="the ZIP file to write (new)")
    erase = gdpr_sub.add_parser("erase", help="erase what may be erased about a client; say what is kept and "
                                "until when")
    erase.add_argument("--client", type=int, required=True, metavar="ID", help="the client's id")
    erase.add_argument("--dry-run", action="store_true", help="only say what would be erased and kept")
    record = gdpr_sub.add_parser("processing-record", help="print the Art. 30 record from storage_policies/")
    record.add_argument("--json", action="store_true", help="print one JSON object")

    mail = sub.add_parser("mail", help="the email outbox")
    mail_sub = mail.add_subparsers(dest="mail_command", required=True, metavar="ACTION")
    mail_sub.add_parser("send-pending", help="send every email that is due once, through DUET_MAIL_URL")

    demo = sub.add_parser("demo", help="create the demo organisation and print its logins and join links")
    demo.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


async def _with_services(settings: Settings, work: Callable[[Services, Any], Awaitable[int]]) -> int:
    engine = make_engine(settings.resolved_database_url)
    try:
        if await pending(engine):
            raise CommandError("the database schema is not up to date: run `duet migrate` first")
        services = Services.build(settings, SystemClock(), AppKeys.ensure(settings.keys_dir))
        try:
            async with make_sessionmaker(engine)() as session:
                return await work(services, session)
        finally:
            await services.close()
    finally:
        await engine.dispose()


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password (at least 12 characters): ")
        if first != getpass.getpass("Password again: "):
            raise CommandError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def _user_create(settings: Settings, args: argparse.Namespace) -> int:
    password = _read_password()
    name = args.name or args.email.split("@")[0].replace(".", " ").title()

    async def work(services: Services, session: Any) -> int:
        staff = await services.staff.create(session, Actor("cli", "cli"), NewStaff(
            name=name, email=args.email, roles=frozenset(Role(r) for r in args.role), password=password))
        await session.commit()
        print(f"created {staff.name} <{staff.email}> with role(s) {staff.roles} (id {staff.id})")
        if Role.SAFEGUARDING in staff.role_set:
            print("safeguarding staff must enrol an authenticator app at first sign-in before they can act")
        return 0

    return asyncio.run(_with_services(settings, work))


def _audit(settings: Settings, action: str) -> int:
    async def work(services: Services, session: Any) -> int:
        if action == "checkpoint":
            written = await services.audit.checkpoint(session)
            print(f"wrote {written}" if written else "the newest checkpoint already covers the last event")
            return 0
        result = await services.audit.verify(session)
        print("\n".join(result.lines()))
        return 0 if result.ok else 1

    return asyncio.run(_with_services(settings, work))


def _mail_send_pending(settings: Settings) -> int:
    async def work(services: Services, session: Any) -> int:
        report = await services.sender(make_sessionmaker(session.bind)).send_due()
        print(f"sent {report.sent}, will retry {report.retrying}, failed {report.failed}")
        return 1 if report.failed else 0

    return asyncio.run(_with_services(settings, work))


def _demo(settings: Settings, as_json: bool) -> int:
    from server.demo import describe, run_demo

    async def work(services: Services, session: Any) -> int:
        result = await run_demo(services, session)
        print(json.dumps(result, indent=2) if as_json else describe(result))
        return 0

    return asyncio.run(_with_services(settings, work))


def _recording(settings: Settings, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from server.recording.listing import list_recordings

    async def work(services: Services, session: Any) -> int:
        review = services.review
        if args.recording_command == "list":
            listed = await list_recordings(session, services.consent,
                                           services.clock.now().astimezone(settings.zone).date())
            if args.json:
                print(json.dumps([asdict(r) for r in listed], indent=2, default=str))
            for r in [] if args.json else listed:
                state = "erased" if r.erased_at else r.status
                length = f"{r.duration_seconds // 60}:{r.duration_seconds % 60:02d}" if r.duration_seconds else "-"
                erase = f"erase on {r.erase_at:%Y-%m-%d}" if r.erase_at else "no erase date"
                held = f"  HELD ({', '.join(h.kind for h in r.holds)})" if r.holds else ""
                print(f"{r.id}  {r.started_at:%Y-%m-%d %H:%M}  {length}  {r.client} with {r.practitioner}  {state}  "
                      f"uses: {', '.join(r.consent_scopes) or 'none'}  {erase}{held}")
            return 0
        if args.out.exists():
            raise CommandError(f"{args.out} already exists: give a new file name")
        row = await review.get(session, args.recording_id)
        await review.audit_access(session, Actor("cli", "cli"), row, "exported", args.reason)
        await session.commit()
        reader = await review.reader(row)
        data = await reader.read_all()
        write_private(args.out, data)  # decrypted media: 0600, for the operator only
        print(f"wrote {len(data)} bytes to {args.out} ({reader.state.completeness.value})")
        return 0

    return asyncio.run(_with_services(settings, work))


def _rotate_keys(settings: Settings, retire: bool) -> int:
    from server.recording.rotation import rotate_keys
    from server.services import key_files

    if settings.kms_key_id:
        raise CommandError("recording keys are wrapped by AWS KMS: rotate the KMS key in KMS instead")

    async def work(services: Services, session: Any) -> int:
        done = await rotate_keys(session, key_files(settings), services.audit, Actor("cli", "cli"), retire=retire)
        print(f"new key {done.new_key_id}; re-wrapped {done.rewrapped} recording key(s) from {done.old_key_id}"
              + (f"; retired {', '.join(done.retired)}" if done.retired else ""))
        return 0

    return asyncio.run(_with_services(settings, work))


def _retention_run(settings: Settings, dry_run: bool, as_json: bool) -> int:
    from dataclasses import asdict

    async def work(services: Services, session: Any) -> int:
        job = services.retention
        due = await job.run(make_sessionmaker(session.bind), dry_run=dry_run)
        for policy in job.policies.reviews_due(job.today()):
            print(f"storage policy {policy.id} ({policy.source_file}) was due for review on {policy.next_review}",
                  file=sys.stderr)
        if as_json:
            print(json.dumps([asdict(d) for d in due], indent=2))
        elif not due:
            print("nothing is due")
        for d in [] if as_json else due:
            verb = {"erase": "would erase" if dry_run else "erased", "review": "listed for review",
                    "held": "kept (on hold)", "finish_erasure": "finished erasing"}[d.action]
            print(f"recording {d.recording_id} (booking {d.booking_id}): {verb}; policy {d.policy}, due {d.erase_on}")
        return 0

    return asyncio.run(_with_services(settings, work))


def _gdpr(settings: Settings, args: argparse.Namespace) -> int:
    async def work(services: Services, session: Any) -> int:
        actor = Actor("cli", "cli")
        if args.gdpr_command == "export":
            bundle = await services.subject_access.export(session, actor, args.client, args.out)
            print(f"wrote {bundle.path}: {bundle.recordings} recording(s) decrypted; withheld for the "
                  f"safeguarding lead: {', '.join(bundle.withheld) or 'nothing'}")
            if bundle.unreadable:
                print(f"could not read recording(s) {', '.join(bundle.unreadable)}: see recordings.json")
            return 0
        report = await services.erasure.erase(make_sessionmaker(session.bind), actor, args.client, dry_run=args.dry_run)
        print("\n".join(report.lines()))
        return 0

    return asyncio.run(_with_services(settings, work))


def _processing_record(settings: Settings, as_json: bool) -> int:
    from server.storage_policies.loader import load_policies
    from server.storage_policies.processing_record import processing_record, processing_record_dict

    policies = load_policies(settings.storage_policies)
    if as_json:
        print(json.dumps(processing_record_dict(policies, settings.organisation), indent=2, default=str))
    else:
        print(processing_record(policies, settings.organisation))
    return 0


def _serve(settings: Settings) -> int:
    from server.serve import serve

    return serve(settings)


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings(args.config, **(
        {"host": args.host, "port": args.port} if args.command == "serve" else {}))
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    _private_home(settings)
    if args.command == "migrate":
        upgrade(settings.resolved_database_url)
        print(f"database is up to date ({_where(settings)})")
        return 0
    if args.command == "serve":
        return _serve(settings)
    if args.command == "user":
        return _user_create(settings, args)
    if args.command == "audit":
        return _audit(settings, args.audit_command)
    if args.command == "mail":
        return _mail_send_pending(settings)
    if args.command == "demo":
        return _demo(settings, args.json)
    if args.command == "recording":
        return _recording(settings, args)
    if args.command == "keys":
        return _rotate_keys(settings, args.retire)
    if args.command == "retention":
        return _retention_run(settings, args.dry_run, args.json)
    if args.command == "gdpr" and args.gdpr_command == "processing-record":
        return _processing_record(settings, args.json)
    if args.command == "gdpr":
        return _gdpr(settings, args)
    raise CommandError(f"unknown command {args.command}")


def _private_home(settings: Settings) -> None:
    """Everything Duet writes is for its own user: files 0600 and folders 0700 from creation (the umask covers
    the SQLite database and its -wal/-shm, the spool, the outbox, recordings and exports), and a home
    folder left readable by an older version is closed."""
    os.umask(0o077)
    home = private_folder(settings.home)
    mode = home.stat().st_mode & 0o777
    if mode & 0o077 and home.stat().st_uid == os.getuid():
        home.chmod(0o700)
        logging.getLogger("duet").warning("%s was readable by others (mode %o); it is now 0700", home, mode)


def _where(settings: Settings) -> str:
    url = settings.resolved_database_url
    return url.split("@")[-1] if "@" in url else url.split("///")[-1]


def main(argv: Sequence[str] | None = None) -> None:
    try:
        code = run(argv)
    except ConfigError as exc:
        print(f"duet: {exc}", file=sys.stderr)
        code = 2
    except (CommandError, DuetError) as exc:
        print(f"duet: {exc}", file=sys.stderr)
        code = 1
    except (OperationalError, DBAPIError, OSError) as exc:
        reason = str(getattr(exc, "orig", exc)).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"duet: cannot use the database or a file: {reason}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # the last line of defence: one line, the details in the debug log
        logging.getLogger("duet").debug("unexpected error", exc_info=True)
        print(f"duet: unexpected error ({type(exc).__name__}: {exc}); set DUET_LOG_LEVEL=DEBUG for details",
              file=sys.stderr)
        code = 1
    sys.exit(code)
