"""`python -m bot cluster up | files`: the production profile on this machine."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

from bot.cluster.files import write_all
from bot.cluster.launcher import Cluster, ClusterError
from bot.cluster.layout import Layout

SECRETS = ("RASA_TOKEN", "CUSTOMER_TOKEN_SECRET")


def cmd_up(args: argparse.Namespace) -> int:
    missing = [name for name in SECRETS if not os.environ.get(name, "").strip()]
    if missing:
        print(f"Set {' and '.join(missing)} in the environment (secrets are never defaults).", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    layout = Layout.from_env()
    secrets = {name: os.environ[name].strip() for name in SECRETS}
    cluster = Cluster(layout, secrets, staff_apps=not args.no_staff_apps)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        print(f"Starting {len(layout.rasa_ports)} Rasa and {len(layout.action_ports)} action servers behind nginx "
              f"(logs in {cluster.log_dir})...", flush=True)  # fmt: skip
        cluster.start()
        print(
            f"The cluster is ready.\n  customers: {layout.public_url}/webhooks/rest/webhook, socket.io on "
            f"{layout.public_url}\n  Rasa HTTP API (token): {layout.api_url}\n  Ctrl-C stops it.",
            flush=True,
        )
        while not (down := cluster.stopped()):
            time.sleep(1)
        print(f"stopped unexpectedly: {', '.join(down)}; see {cluster.log_dir}", file=sys.stderr)
        return 1
    except ClusterError as error:
        print(error, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()


def cmd_files(args: argparse.Namespace) -> int:
    for name, path in write_all(Layout.from_env()).items():
        print(f"{name}: {path}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    cluster = sub.add_parser("cluster", help="the production profile behind nginx (docs/production.md)")
    cluster_sub = cluster.add_subparsers(dest="cluster_command", required=True)
    up = cluster_sub.add_parser("up", help="start it and stay until Ctrl-C (settings from the environment)")
    up.add_argument("--no-staff-apps", action="store_true", help="without the console and the website")
    up.set_defaults(func=cmd_up)
    files = cluster_sub.add_parser("files", help="write nginx.conf, endpoints.yml, credentials.yml and say where")
    files.set_defaults(func=cmd_files)
