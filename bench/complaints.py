"""Complaints under concurrency: N simulated customers file a staff-conduct complaint
through the REST webhook at the same time; afterwards the ticket database is checked.

    .venv/bin/python bench/complaints.py [--customers 200] [--database sqlite|postgresql]

Each customer (own sender id, own phone) complains, confirms the category and gives the
phone (tests/load.py, shared with the cluster benchmark and tests). All customers start
at once (asyncio + aiohttp, no connection limit). Recorded: latency
of every message, HTTP errors and timeouts, replies that leave the expected flow, and
whether the last reply carries a ticket number. Then the database must hold exactly N
tickets with N distinct numbers, one per conversation, each the number the customer was
told, with the phone the customer gave. Exit status 1 when any check fails.

The database is fresh for each run: a SQLite file in bench/out (removed afterwards unless
--keep), or a new PostgreSQL database on --postgres-server (dropped afterwards unless
--keep). Server logs stay in bench/out/complaints-*.log.

Also reported: CPU time of each server during the load, and how long a GET / on the Rasa
server takes meanwhile (its event loop runs the NLU, so the loop stalls under load).
--actions-env NAME=VALUE passes an extra variable to the action server only, to test a
diagnosis without changing the project (e.g. SANIC_KEEP_ALIVE_TIMEOUT=120).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
from sqlalchemy import create_engine, text

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from tests.e2e.servers import ACTION_SERVER_ENV, Process, free_port, start, wait_until_up  # noqa: E402
from tests.load import (  # noqa: E402
    NUMBER,
    Customer,
    Turn,
    check_database,
    complain_all,
    make_customers,
    send,
    told_number,
)

OUT = PROJECT / "bench" / "out"
RASA = str(PROJECT / ".venv" / "bin" / "rasa")
PYTHON = str(PROJECT / ".venv" / "bin" / "python")
MODEL = PROJECT / "models" / "current.tar.gz"

# --- the database ------------------------------------------------------------------


def create_database(kind: str, server: str, bench: str = "complaints") -> tuple[str, str | None]:
    """A fresh, empty database for the benchmark `bench`: its URL, and the PostgreSQL
    database name to drop later."""
    OUT.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    if kind == "sqlite":
        return f"sqlite:///{OUT / f'{bench}-{tag}.db'}", None
    name = f"bench_{bench}_{tag}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{server}/{name}", name


def drop_database(url: str, pg_name: str | None, server: str) -> None:
    if pg_name is None:
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
    admin.dispose()


def migrate_and_load_demo(url: str) -> None:
    subprocess.run(
        [PYTHON, "-m", "bot", "db", "init", "--demo", "--database-url", url],
        cwd=PROJECT, check=True, stdout=subprocess.DEVNULL,
        env={**os.environ, "DATABASE_URL": url},
    )  # fmt: skip


# --- the servers -------------------------------------------------------------------


def start_stack(database_url: str, tag: str, actions_env: dict[str, str]) -> tuple[Process, Process, str]:
    env = {
        "DATABASE_URL": database_url,
        "UTILITY_BACKEND": "sql",
        "RASA_TELEMETRY_ENABLED": "false",
    }
    actions_port, rasa_port = free_port(), free_port()
    endpoints = OUT / f"complaints-endpoints-{tag}.yml"
    endpoints.write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n  enable_selective_domain: true\n'
        "nlg:\n  type: bot.nlg.FreshResponses\n"
    )
    actions = start(
        f"complaints-{tag}-actions",
        [RASA, "run", "actions", "--port", str(actions_port)],
        env | ACTION_SERVER_ENV | actions_env,
        OUT,
    )
    rasa = start(
        f"complaints-{tag}-rasa",
        [RASA, "run", "--port", str(rasa_port), "--interface", "127.0.0.1", "--model", str(MODEL),
         "--endpoints", str(endpoints), "--credentials", "credentials.yml"],
        env, OUT,
    )  # fmt: skip
    try:
        wait_until_up(actions, f"http://127.0.0.1:{actions_port}/health")
        wait_until_up(rasa, f"http://127.0.0.1:{rasa_port}/", ready="Hello from Rasa")
    except BaseException:
        codes = {p.name: p.popen.poll() for p in (actions, rasa)}
        rasa.stop()
        actions.stop()
        print(f"servers failed to start; exit codes so far: {codes}", file=sys.stderr)
        raise
    finally:
        endpoints.unlink(missing_ok=True)
    return actions, rasa, f"http://127.0.0.1:{rasa_port}"


# --- the customers -----------------------------------------------------------------


async def run_customers(url: str, customers: list[Customer], timeout: float, stalls: list[float]) -> float:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        warm = Turn("你好")  # the first message loads lazily built parts; not measured, files nothing
        await send(session, url, f"warmup-{uuid.uuid4().hex[:8]}", warm)
        if warm.error:
            raise RuntimeError(f"warm-up message failed: {warm.error}")
        probe = asyncio.create_task(probe_stalls(session, url, stalls))
        try:
            return await complain_all(url, customers, timeout)
        finally:
            probe.cancel()


async def probe_stalls(session: aiohttp.ClientSession, url: str, stalls: list[float]) -> None:
    """GET / on the Rasa server every half second during the load: how long its event loop
    is unavailable (Rasa runs the NLU and policies on the loop, so messages block it)."""
    while True:
        began = time.perf_counter()
        try:
            async with session.get(f"{url}/") as r:
                await r.read()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        stalls.append(time.perf_counter() - began)
        await asyncio.sleep(0.5)


# --- the checks --------------------------------------------------------------------


def log_signals(process: Process) -> dict[str, int]:
    """Warning signs in a server's log: errors, tracebacks, a busy ticket store."""
    log = process.log()
    return {
        "ERROR lines": sum(" ERROR " in line or line.startswith("ERROR") for line in log.splitlines()),
        "tracebacks": log.count("Traceback (most recent call last)"),
        "custom action calls failed": log.count("Failed to run custom action"),
        "ticket store busy": log.count("ticket store busy"),
        "ticket store down": log.count("could not file a"),
    }


def cpu_seconds(process: Process) -> float:
    """User plus system CPU time the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{process.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def report(
    args: argparse.Namespace, customers: list[Customer], wall: float, figures: dict[str, int],
    problems: list[str], signals: dict,
) -> None:  # fmt: skip
    turns = [t for c in customers for t in c.turns]
    answered = [t.seconds for t in turns if t.error is None]
    errors = Counter(t.error for t in turns if t.error)
    whole = [c.seconds for c in customers if c.seconds is not None]
    told = [c for c in customers if c.told]
    told_last = [c for c in customers if c.turns and NUMBER.search("\n".join(c.turns[-1].replies))]
    deviated = [c for c in customers if c.deviations]
    extra = f", action server with {' '.join(args.actions_env)}" if args.actions_env else ""
    print(f"\nComplaints under concurrency: {len(customers)} customers at once, {args.database}{extra}")
    print(f"customers                         {len(customers)}")
    print(f"  told a ticket number            {len(told)} (in the last reply: {len(told_last)})")
    print(f"  left the expected flow          {len(deviated)}")
    print(f"tickets in the database           {figures.get('tickets', '?')}")
    print(f"distinct ticket numbers           {figures.get('distinct numbers', '?')}")
    print(f"sequence high-water mark          {figures.get('sequence high-water mark', '?')}")
    for name, count in figures.items():
        if name.startswith("customers with"):
            print(f"  {name:<32} {count}")
    print(f"messages sent / answered          {len(turns)} / {len(answered)}")
    print(f"HTTP errors and timeouts          {sum(errors.values())} {dict(errors) if errors else ''}")
    print(f"wall time                         {wall:.1f} s")
    print(f"messages/s                        {len(answered) / wall:.1f}")
    if answered:
        print(
            f"latency per message p50/p95/max   {statistics.median(answered) * 1000:.0f} / "
            f"{percentile(answered, 0.95) * 1000:.0f} / {max(answered) * 1000:.0f} ms"
        )
        for i, name in enumerate(("complaint", "confirmation", "phone (files)")):
            times = [c.turns[i].seconds for c in customers if len(c.turns) > i and c.turns[i].error is None]
            if times:
                print(
                    f"  turn {i + 1} {name:<16}        {statistics.median(times) * 1000:.0f} / "
                    f"{percentile(times, 0.95) * 1000:.0f} / {max(times) * 1000:.0f} ms"
                )
    if whole:
        print(f"whole complaint p50/p95/max       {statistics.median(whole):.1f} / {percentile(whole, 0.95):.1f} / "
              f"{max(whole):.1f} s")  # fmt: skip
    cpu, load, stalls = signals.pop("CPU"), signals.pop("load"), signals.pop("stalls")
    print(
        "CPU used during the load          "
        + ", ".join(f"{name.split('-')[-1]} server {seconds:.0f} s" for name, seconds in cpu.items())
        + f" (of {wall * (os.cpu_count() or 1):.0f} s on {os.cpu_count()} cores); 1-min load average {load:.2f}"
    )
    if stalls:
        print(
            f"GET / on the Rasa server         p50 {statistics.median(stalls) * 1000:.0f} ms, max "
            f"{max(stalls):.1f} s ({len(stalls)} probes during the load)"
        )
    for server, found in signals.items():
        print(f"{server} log: " + ", ".join(f"{k} {v}" for k, v in found.items()))
    kinds = Counter(d.split(":")[0] for c in customers for d in c.deviations)
    if kinds:
        print("flow deviations by kind: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    for customer in deviated[:10]:
        print(f"  customer {customer.index} ({customer.complaint}): {'; '.join(customer.deviations)}")
    if problems:
        print(f"\nFAILED: {len(problems)} problems")
        for problem in problems[:30]:
            print(f"  - {problem}")
        if len(problems) > 30:
            print(f"  ... and {len(problems) - 30} more")
    else:
        print("\nall checks passed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a customer waits for one reply")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--actions-env", action="append", default=[], metavar="NAME=VALUE",
        help="an extra environment variable for the action server (diagnosis, e.g. SANIC_KEEP_ALIVE_TIMEOUT=75)",
    )  # fmt: skip
    args = parser.parse_args()
    if not MODEL.exists():
        print(f"no trained model at {MODEL}", file=sys.stderr)
        return 2

    run_tag = uuid.uuid4().hex[:6]
    database_url, pg_name = create_database(args.database, args.postgres_server)
    print(f"database: {database_url}", flush=True)
    servers: tuple[Process, ...] = ()
    try:
        migrate_and_load_demo(database_url)
        began = time.monotonic()
        actions_env = dict(item.split("=", 1) for item in args.actions_env)
        actions, rasa, url = start_stack(database_url, run_tag, actions_env)
        servers = (rasa, actions)
        print(f"servers up in {time.monotonic() - began:.1f} s; {args.customers} customers go", flush=True)
        customers = make_customers(args.customers, run_tag)
        cpu_before = {p.name: cpu_seconds(p) for p in servers}
        stalls: list[float] = []
        wall = asyncio.run(run_customers(url, customers, args.timeout, stalls))
        cpu = {p.name: cpu_seconds(p) - cpu_before[p.name] for p in servers}
        load = os.getloadavg()[0]
        for customer in customers:
            customer.told = told_number(customer)  # also when the conversation broke off
        signals = {"rasa server": log_signals(rasa), "action server": log_signals(actions)}
        time.sleep(1)  # let a filing whose reply timed out finish before counting
        figures, problems = check_database(database_url, customers)
        for customer in customers:
            for turn in customer.turns:
                if turn.error:
                    problems.append(f"customer {customer.index}: {turn.error} on {turn.text!r}")
            if customer.turns and not customer.errors and customer.told is None:
                problems.append(f"customer {customer.index}: never told a ticket number")
            problems += [f"customer {customer.index}: {d}" for d in customer.deviations]
        report(args, customers, wall, figures, problems, signals | {"CPU": cpu, "load": load, "stalls": stalls})
        return 1 if problems else 0
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            print(f"kept the database {database_url}")
        else:
            drop_database(database_url, pg_name, args.postgres_server)


if __name__ == "__main__":
    sys.exit(main())
