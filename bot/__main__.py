"""The project's command-line tool: `python -m bot --help`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

from bot import clock
from bot.cluster.cli import add_commands as add_cluster_commands
from bot.config import load_settings
from bot.training.cli import add_commands as add_training_commands


def cmd_db_init(args: argparse.Namespace) -> int:
    from bot.db import session_factory
    from bot.demo_data import ensure_demo_data
    from bot.schema import ensure_database, upgrade

    url = args.database_url or load_settings().database_url
    if os.environ.get("CREATE_DATABASES", "1").strip() != "0":  # 0: the DBA makes PostgreSQL's
        ensure_database(url)
    upgrade(url)
    print("schema up to date")
    if args.demo:
        made = ensure_demo_data(session_factory(url), clock.now())
        print("demo data loaded" if made else "demo data already up to date")
    return 0


def cmd_company_api(args: argparse.Namespace) -> int:
    from bot.utility.reference_api import make_server

    server = make_server(args.database_url or load_settings().database_url, args.host, args.port)
    print(f"company API (reference) on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_outbox_run(args: argparse.Namespace) -> int:
    """Forward filed tickets to the helpdesk (HELPDESK_URL) until stopped, or once."""
    import logging

    from bot.db import session_factory
    from bot.masking import install_log_masking
    from bot.tickets.errors import TicketStoreUnavailable
    from bot.tickets.outbox import deliver_due

    settings = load_settings()
    if not settings.helpdesk_url:
        print("HELPDESK_URL is not set: forwarding tickets to a helpdesk is off", file=sys.stderr)
        return 2
    install_log_masking()
    log = logging.getLogger("bot.tickets.outbox")
    sessions = session_factory(args.database_url or settings.database_url)
    log.info("forwarding tickets to %s", settings.helpdesk_url)
    try:
        while True:
            try:
                report = deliver_due(
                    sessions, settings.helpdesk_url, clock.now(), timeout=settings.helpdesk_timeout_seconds
                )
                if report.sent or report.failed:
                    log.info("outbox: %d forwarded, %d failed (to be tried again)", report.sent, report.failed)
            except TicketStoreUnavailable as error:
                log.warning("outbox: %s", error)
                if args.once:
                    return 1
            if args.once:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


def cmd_analytics_consume(args: argparse.Namespace) -> int:
    """Count Rasa's events from RabbitMQ into the dashboard's figures until stopped, or once."""
    import asyncio

    from bot.analytics.consumer import Consumer, Unavailable
    from bot.db import session_factory
    from bot.masking import install_log_masking

    settings = load_settings()
    install_log_masking()
    sessions = session_factory(args.database_url or settings.database_url)
    queue = args.queue or settings.rasa_events_queue
    consumer = Consumer(sessions, settings.rabbitmq_url, queue, settings.rasa_events_exchange)
    try:
        if args.once:
            tally = asyncio.run(consumer.drain())
            print(f"{tally.counted} events counted, {tally.repeated} seen before, {tally.rejected} rejected")
        else:
            asyncio.run(consumer.run())
    except Unavailable as error:
        print(f"analytics consumer: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def cmd_recovery_run(args: argparse.Namespace) -> int:
    """Hand conversations cut off by a dead action server to a person, until stopped, or once."""
    import contextlib

    from bot.cluster.recovery import RasaApi, Recovery, actions_url
    from bot.db import session_factory
    from bot.masking import install_log_masking
    from bot.tickets.errors import TicketStoreUnavailable

    settings = load_settings()
    install_log_masking()
    sessions = session_factory(args.database_url or settings.database_url)
    worker = Recovery(sessions, RasaApi(settings.rasa_url, settings.rasa_token), f"{actions_url()}/health")
    if args.once:
        try:
            report = worker.round()
        except TicketStoreUnavailable as error:
            print(f"recovery: {error}", file=sys.stderr)
            return 1
        print(f"{report.handed_over} handed over, {report.asked} asked for a phone first, {report.failed} to try "
              f"again, {report.waiting} waiting for the action servers")  # fmt: skip
        return 0
    with contextlib.suppress(KeyboardInterrupt):
        worker.run(args.interval)
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    pending = list(args.urls)
    while pending and time.monotonic() < deadline:
        for url in list(pending):
            try:
                with urllib.request.urlopen(url, timeout=2):
                    pending.remove(url)
            except (urllib.error.URLError, OSError):
                pass
        if pending:
            time.sleep(0.5)
    for url in pending:
        print(f"not answering after {args.timeout:.0f}s: {url}", file=sys.stderr)
    return 1 if pending else 0


def cmd_chat(args: argparse.Namespace) -> int:
    """A terminal chat with the running bot through the REST channel."""
    sender = args.sender or f"terminal-{uuid.uuid4().hex[:8]}"
    url = args.url.rstrip("/") + "/webhooks/rest/webhook"
    print("和95598智能客服聊天（输入 /exit 退出）")
    while True:
        try:
            text = input("您：")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if text.strip() == "/exit":
            return 0
        body = json.dumps({"sender": sender, "message": text}).encode()
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                replies = json.load(response)
        except (urllib.error.URLError, OSError) as error:
            print(f"（连不上机器人：{error}）")
            continue
        for reply in replies:
            if "text" in reply:
                print(f"客服：{reply['text']}")
            for button in reply.get("buttons", []):
                print(f"      [{button.get('title')}]")


def _console_database(args: argparse.Namespace) -> str | None:
    """The database URL, if it has the console's tables (else say how to make them)."""
    from sqlalchemy import inspect

    from bot.db import engine_for

    url = args.database_url or load_settings().database_url
    if not inspect(engine_for(url)).has_table("staff_users"):
        print("the database has no console tables yet: run `python -m bot db init` first", file=sys.stderr)
        return None
    return url


def _new_password(from_stdin: bool) -> str | None:
    """The new password from one line of stdin, or typed twice at a hidden prompt."""
    import getpass

    from bot.console.staff import MIN_PASSWORD, WeakPassword, check_password

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != password:
            print("the two passwords differ", file=sys.stderr)
            return None
    try:
        check_password(password)
    except WeakPassword:
        print(f"refused: a password needs at least {MIN_PASSWORD} characters", file=sys.stderr)
        return None
    return password


def cmd_console_create_user(args: argparse.Namespace) -> int:
    """Create a staff account of the agents' console (create-admin: an admin)."""
    from bot.console import staff
    from bot.db import session_factory

    url = _console_database(args)
    if url is None:
        return 2
    role = "admin" if args.console_command == "create-admin" else args.role
    password = _new_password(args.password_stdin)
    if password is None:
        return 2
    try:
        user = staff.create_user(
            session_factory(url), args.username, args.display_name or args.username, role, password, clock.now()
        )
    except staff.UsernameTaken:
        print(f"refused: a staff user named {args.username!r} exists already", file=sys.stderr)
        return 1
    except (staff.InvalidUsername, staff.InvalidRole) as error:
        print(f"refused: {error}", file=sys.stderr)
        return 2
    print(f"created {user.role} {user.username} ({user.display_name})")
    return 0


def cmd_console_ensure_admin(args: argparse.Namespace) -> int:
    """First run: create the named admin with a random password, printed once; later: nothing."""
    import secrets

    from bot.console import staff
    from bot.db import session_factory

    url = _console_database(args)
    if url is None:
        return 2
    sessions = session_factory(url)
    name = staff.normalize_username(args.username)
    if any(user.username == name for user in staff.users(sessions)):
        return 0
    password = secrets.token_urlsafe(12)
    try:
        staff.create_user(sessions, name, args.display_name or "管理员", "admin", password, clock.now())
    except staff.UsernameTaken:  # created by a concurrent first run
        return 0
    print(f"Created the console's admin {name!r}; password (shown only now): {password}")
    return 0


def cmd_console_serve(args: argparse.Namespace) -> int:
    """Serve the agents' console until stopped (Ctrl+C)."""
    from bot.console.app import create_app
    from bot.masking import install_log_masking

    url = _console_database(args)
    if url is None:
        return 2
    os.environ["DATABASE_URL"] = url  # the company data (UTILITY_BACKEND=sql) and the tickets agree
    install_log_masking()
    port = args.port or load_settings().console_port
    app = create_app(url)
    print(f"agents' console on http://{args.host}:{port}", flush=True)
    app.run(host=args.host, port=port, access_log=False, motd=False)
    return 0


def cmd_website_serve(args: argparse.Namespace) -> int:
    """Serve the public website with the chat widget until stopped (Ctrl+C)."""
    from bot.masking import install_log_masking
    from bot.website.app import create_app

    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url  # the sign-in's company data and identity checks
    settings = load_settings()
    if not settings.customer_token_secret:
        print("CUSTOMER_TOKEN_SECRET is not set: the website's sign-in is off", file=sys.stderr)
    install_log_masking()
    port = args.port or settings.website_port
    app = create_app(settings)
    print(f"website with the chat widget on http://{args.host}:{port} (Rasa at {settings.rasa_public_url})", flush=True)
    app.run(host=args.host, port=port, access_log=False, motd=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="95598 assistant tools")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database schema and demo data")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    init = db_sub.add_parser("init", help="apply migrations; with --demo, load the demo data if missing or stale")
    init.add_argument("--database-url")
    init.add_argument("--demo", action="store_true", help="load (or refresh) the demo accounts, bills and outages")
    init.set_defaults(func=cmd_db_init)

    api = sub.add_parser("company-api", help="serve the reference company API from the database")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8081)
    api.add_argument("--database-url")
    api.set_defaults(func=cmd_company_api)

    outbox = sub.add_parser("outbox", help="forward filed tickets to the company's helpdesk (HELPDESK_URL)")
    outbox_sub = outbox.add_subparsers(dest="outbox_command", required=True)
    run = outbox_sub.add_parser("run", help="deliver due outbox messages, every --interval seconds")
    run.add_argument("--once", action="store_true", help="deliver what is due now and exit")
    run.add_argument("--interval", type=float, default=2.0, help="seconds between rounds (default 2)")
    run.add_argument("--database-url")
    run.set_defaults(func=cmd_outbox_run)

    analytics = sub.add_parser("analytics", help="the dashboard's figures from Rasa's event stream (RabbitMQ)")
    analytics_sub = analytics.add_subparsers(dest="analytics_command", required=True)
    consume = analytics_sub.add_parser(
        "consume", help="count Rasa's events from RABBITMQ_URL into the database, until stopped"
    )
    consume.add_argument("--queue", help="default: RASA_EVENTS_QUEUE (rasa_events)")
    consume.add_argument("--once", action="store_true", help="count what the queue holds now and exit")
    consume.add_argument("--database-url")
    consume.set_defaults(func=cmd_analytics_consume)

    recovery = sub.add_parser("recovery", help="conversations cut off by a dead action server, to a person")
    recovery_sub = recovery.add_subparsers(dest="recovery_command", required=True)
    recover = recovery_sub.add_parser(
        "run", help="hand them over once the action servers (ACTIONS_URL) answer, every --interval seconds"
    )
    recover.add_argument("--once", action="store_true", help="one round now and exit")
    recover.add_argument("--interval", type=float, default=3.0, help="seconds between rounds (default 3)")
    recover.add_argument("--database-url")
    recover.set_defaults(func=cmd_recovery_run)

    wait = sub.add_parser("wait", help="wait until every URL answers")
    wait.add_argument("urls", nargs="+")
    wait.add_argument("--timeout", type=float, default=180)
    wait.set_defaults(func=cmd_wait)

    chat = sub.add_parser("chat", help="chat with the running bot in the terminal")
    chat.add_argument("--url", default="http://127.0.0.1:5005")
    chat.add_argument("--sender")
    chat.set_defaults(func=cmd_chat)

    console = sub.add_parser("console", help="the agents' console (web): staff accounts and the server")
    console_sub = console.add_subparsers(dest="console_command", required=True)
    password_help = "read the password from one line of stdin instead of prompting twice"
    admin = console_sub.add_parser("create-admin", help="create an admin account (the first one, or another)")
    admin.add_argument("username")
    admin.add_argument("--display-name", help="the name shown in the console (default: the username)")
    admin.add_argument("--password-stdin", action="store_true", help=password_help)
    admin.add_argument("--database-url")
    admin.set_defaults(func=cmd_console_create_user)
    ensure = console_sub.add_parser(
        "ensure-admin", help="create this admin with a random password (printed once) unless it exists"
    )
    ensure.add_argument("username")
    ensure.add_argument("--display-name", help="the name shown in the console (default: 管理员)")
    ensure.add_argument("--database-url")
    ensure.set_defaults(func=cmd_console_ensure_admin)
    user = console_sub.add_parser("create-user", help="create a staff account with a role")
    user.add_argument("username")
    user.add_argument("--role", required=True, choices=["agent", "supervisor", "trainer", "admin"])
    user.add_argument("--display-name", help="the name shown in the console (default: the username)")
    user.add_argument("--password-stdin", action="store_true", help=password_help)
    user.add_argument("--database-url")
    user.set_defaults(func=cmd_console_create_user)
    serve = console_sub.add_parser("serve", help="serve the console (default http://127.0.0.1:CONSOLE_PORT, 5080)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, help="default: CONSOLE_PORT (5080)")
    serve.add_argument("--database-url")
    serve.set_defaults(func=cmd_console_serve)

    website = sub.add_parser("website", help="the public website with the chat widget")
    website_sub = website.add_subparsers(dest="website_command", required=True)
    site = website_sub.add_parser("serve", help="serve the website (default http://127.0.0.1:WEBSITE_PORT, 5090)")
    site.add_argument("--host", default="127.0.0.1")
    site.add_argument("--port", type=int, help="default: WEBSITE_PORT (5090)")
    site.add_argument("--database-url")
    site.set_defaults(func=cmd_website_serve)

    add_training_commands(sub)
    add_cluster_commands(sub)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
