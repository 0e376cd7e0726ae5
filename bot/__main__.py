"""The project's command-line tool: `python -m bot --help`."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
import uuid

from bot import clock
from bot.config import load_settings


def cmd_db_init(args: argparse.Namespace) -> int:
    from bot.db import session_factory
    from bot.demo_data import ensure_demo_data
    from bot.schema import upgrade

    url = args.database_url or load_settings().database_url
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

    wait = sub.add_parser("wait", help="wait until every URL answers")
    wait.add_argument("urls", nargs="+")
    wait.add_argument("--timeout", type=float, default=180)
    wait.set_defaults(func=cmd_wait)

    chat = sub.add_parser("chat", help="chat with the running bot in the terminal")
    chat.add_argument("--url", default="http://127.0.0.1:5005")
    chat.add_argument("--sender")
    chat.set_defaults(func=cmd_chat)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
