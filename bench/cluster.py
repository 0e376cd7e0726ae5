"""The production profile under load, one Rasa and one action server against two of each.

Simulated customers talk to a real cluster (bot/cluster) through its public door (nginx).

    .venv/bin/python bench/cluster.py [--instances 1 2] [--concurrency 10 50 200]
        [--seconds 120] [--complaints 200] [--soak-minutes 0] [--soak-concurrency 20]
        [--skip-scaling] [--retries 4] [--timeout 120] [--redis-url URL] [--think-seconds 0]

    # bench/RESULTS.md: about 50 minutes (two cluster starts, 6 levels, the check, the soak)
    .venv/bin/python bench/cluster.py --soak-minutes 30
    # a smoke run, a few minutes
    .venv/bin/python bench/cluster.py --instances 1 --concurrency 5 --seconds 30 --complaints 20 --soak-minutes 1

Every customer files a staff-conduct complaint in three messages through the REST webhook,
with message ids and retries, from a loopback address of its own, so that nginx's rate per
customer address applies per customer (tests/load.py, shared with tests/cluster).

1. Scaling: for each `--instances` n, a cluster of n Rasa and n action servers
   (`Layout.scaled(n, n)`) is started, warmed up with a few complaints (not counted), and
   loaded at each `--concurrency` c for `--seconds`: c customers at once, each starting a
   new complaint as soon as the last one ended (with `--think-seconds S`, each message
   after a pause of 0 to 2S s, as people read and type: the latency of a cluster that is
   not saturated). Counted: messages answered within the
   window (msg/s), latency per message (first send to the answer, retries included; the
   conversations running at the window's end are finished and their messages counted in
   the latencies), errors and timeouts, retried sends, the CPU time of the servers, and
   whether every complaint that met no error left exactly one ticket with the number the
   customer was told. Then the 2-instance to 1-instance throughput ratio per concurrency.
2. On the cluster of the largest n: `--complaints` customers complain at once; the
   database must hold exactly one ticket per customer with the number they were told, and
   each customer's tracker (Rasa HTTP API) each message id sent exactly once: no message
   lost, none processed twice.
3. `--soak-minutes N` (0: skipped; 30 for bench/RESULTS.md, not in CI): `--soak-concurrency`
   customers in a loop on the same cluster for N minutes; the resident memory of every
   process (the pid and its children, /proc) at the start and the end, messages answered,
   errors, p95 latency.

Exit status 1 when a check of 2. fails, or a complaint that met no error in 1. or 3. did not
leave its one ticket. Errors and timeouts under load are measurements, not failures.

Each cluster gets scratch PostgreSQL databases on `--postgres-server` (bench/complaints.py's
helpers; dropped afterwards unless --keep), a RabbitMQ queue and exchange of its own
(deleted afterwards), the company systems' embedded SQL backend, and random secrets. Redis
is a private redis-server (tests/private_redis.py) unless `--redis-url` names one: the lock
store's ticket counter never expires and socket.io's channel is shared by every database
number, so a run leaves nothing on the machine's Redis that way. The report (markdown
tables) goes to stdout, progress to stderr; the cluster logs stay in bench/out/cluster-*/.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import secrets
import socket
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import aio_pika
import aiohttp

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench.complaints import OUT, create_database, drop_database, percentile  # noqa: E402
from bot import clock  # noqa: E402
from bot.cluster.launcher import Cluster  # noqa: E402
from bot.cluster.layout import Layout  # noqa: E402
from bot.db import engine_for, session_factory  # noqa: E402
from bot.demo_data import ensure_demo_data  # noqa: E402
from tests.e2e.servers import free_port  # noqa: E402
from tests.load import (  # noqa: E402
    COMPLAINTS,
    Customer,
    check_database,
    complain,
    complain_all,
    customer_address,
    make_customers,
    session_for,
    told_number,
)
from tests.private_redis import PrivateRedis  # noqa: E402

MODEL = PROJECT / "models" / "current.tar.gz"


def note(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# --- processes (Linux /proc) -------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children[int(_stat(entry / "stat")[1])].append(int(entry.name))
            except OSError:
                continue  # gone meanwhile
    tree = [pid]
    for member in tree:
        tree.extend(children.get(member, []))
    return tree


def _stat(path: Path) -> list[str]:
    return path.read_text().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces


def rss_mib(pid: int) -> float:
    total = 0
    for member in process_tree(pid):
        try:
            line = next(x for x in Path(f"/proc/{member}/status").read_text().splitlines() if x.startswith("VmRSS:"))
            total += int(line.split()[1])
        except (OSError, StopIteration):
            continue
    return total / 1024


def cpu_seconds(pid: int) -> float:
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = _stat(Path(f"/proc/{member}/stat"))
            ticks += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((x.split(":", 1)[1].strip() for x in cpuinfo if x.startswith("model name")), "?")
    memory = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal:"))
    gib = int(memory.split()[1]) / 1024**2
    return f"{os.cpu_count()} cores ({model}), {gib:.1f} GiB memory, load average {os.getloadavg()[0]:.2f} at the start"


# --- one cluster ---------------------------------------------------------------------


@dataclass
class Bench:
    """What one cluster of the run is, and what must be removed after it."""

    name: str  # "1+1", "2+2"
    cluster: Cluster
    databases: list[tuple[str, str]]  # (url, PostgreSQL name)
    started_in: float = 0.0

    @property
    def url(self) -> str:
        return self.cluster.layout.public_url

    def pids(self) -> dict[str, int]:
        return {name: part.popen.pid for name, part in self.cluster.parts.items() if part.running()}


def consecutive_free_ports(count: int, taken: set[int]) -> int:
    """The first of `count` free loopback ports in a row, none in `taken` (added to it)."""
    for _ in range(200):
        first = free_port()
        block = set(range(first, first + count))
        if not block & taken and all(_bindable(port) for port in block):
            taken |= block
            return first
    raise RuntimeError(f"no {count} free ports in a row")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def start_cluster(args: argparse.Namespace, n: int, run_dir: Path, redis_url: str, tag: str) -> Bench:
    name = f"{n}+{n}"
    bot_db, rasa_db = (create_database("postgresql", args.postgres_server, f"cluster_{tag}_{n}_{what}")
                       for what in ("bot", "rasa"))  # fmt: skip
    taken: set[int] = set()
    settings = {
        "CLUSTER_DIR": str(run_dir / f"{n}x{n}"),
        "RASA_MODEL": str(MODEL),
        "RASA_FIRST_PORT": str(consecutive_free_ports(n, taken)),
        "ACTIONS_FIRST_PORT": str(consecutive_free_ports(n, taken)),
        "PUBLIC_PORT": str(consecutive_free_ports(1, taken)),
        "RASA_API_PORT": str(consecutive_free_ports(1, taken)),
        "ACTIONS_GATEWAY_PORT": str(consecutive_free_ports(1, taken)),
        "DATABASE_URL": bot_db[0],
        "TRACKER_STORE_URL": rasa_db[0],
        "REDIS_URL": redis_url,
        "RABBITMQ_URL": args.rabbitmq_url,
        "RASA_EVENTS_QUEUE": f"bench_cluster_{tag}_{n}_events",
        "RASA_EVENTS_EXCHANGE": f"bench_cluster_{tag}_{n}_exchange",
    }
    layout = replace(Layout.from_env(settings).scaled(n, n), extra_env={"UTILITY_BACKEND": "sql"})
    # hex: a token starting with "-" would read as an option on Rasa's command line
    token = {"RASA_TOKEN": secrets.token_hex(16), "CUSTOMER_TOKEN_SECRET": secrets.token_hex(32)}
    bench = Bench(name, Cluster(layout, token), [bot_db, rasa_db])
    note(f"starting the {name} cluster (logs in {bench.cluster.log_dir})")
    began = time.monotonic()
    try:
        bench.cluster.start()
        bench.started_in = time.monotonic() - began
        ensure_demo_data(session_factory(layout.database_url), clock.now())
    except BaseException:
        remove(bench, args)
        raise
    note(f"the {name} cluster is up in {bench.started_in:.0f} s")
    return bench


def remove(bench: Bench, args: argparse.Namespace) -> None:
    """Stop the cluster; delete its queue and exchange and (unless `keep`) its databases."""
    bench.cluster.stop()
    layout = bench.cluster.layout

    async def delete_queue() -> None:
        async with await aio_pika.connect(layout.rabbitmq_url) as connection:
            channel = await connection.channel()
            await channel.queue_delete(layout.events_queue)
            await channel.exchange_delete(layout.events_exchange)

    try:
        asyncio.run(delete_queue())
    except Exception as error:  # a leftover queue is reported, not fatal
        note(f"could not delete the queue {layout.events_queue}: {error!r}")
    for url, name in bench.databases:
        engine_for(url).dispose()
        if args.keep:
            note(f"kept the database {url}")
        else:
            drop_database(url, name, args.postgres_server)


def log_warnings(bench: Bench) -> dict[str, int]:
    """Warning signs in the cluster's logs."""
    found: Counter[str] = Counter()
    for path in bench.cluster.log_dir.glob("*.log"):
        text = path.read_text(errors="replace")
        found["failed custom action calls"] += text.count("Failed to run custom action")
        found["tracebacks"] += text.count("Traceback (most recent call last)")
    return dict(found)


# --- the load ------------------------------------------------------------------------


@dataclass
class Load:
    cluster: str
    concurrency: int
    window: float  # seconds counted for the throughput
    customers: list[Customer] = field(default_factory=list)
    began: float = 0.0
    wall: float = 0.0  # the window plus finishing the conversations under way
    cpu: dict[str, float] = field(default_factory=dict)  # seconds by kind of process: rasa, actions, nginx, ...
    problems: list[str] = field(default_factory=list)  # tickets of complaints that met no error

    def answered(self) -> list[tuple[float, float]]:
        """(answered at, seconds) of every answered message."""
        return [(t.answered_at, t.seconds) for c in self.customers for t in c.turns if t.error is None]

    def in_window(self) -> int:
        return sum(at <= self.began + self.window for at, _ in self.answered())

    def errors(self) -> Counter[str]:
        return Counter(turn.error for customer in self.customers for turn in customer.turns if turn.error)

    def retries(self) -> int:
        return sum(turn.attempts - 1 for customer in self.customers for turn in customer.turns)


async def steady(url: str, concurrency: int, seconds: float, tag: str, retries: int, timeout: float,
                 load: Load, think: float = 0.0) -> None:  # fmt: skip
    """`concurrency` customers, each complaining again as soon as the last complaint ended,
    until `seconds` have passed; the complaints under way then are finished. `think`: a
    pause before each message, 0 to 2 × `think` seconds (0: none, the server saturated)."""
    rng, counter, start_line = random.Random(tag), itertools.count(), asyncio.Event()
    pause = (lambda: rng.uniform(0, 2 * think)) if think else None
    start_line.set()
    load.began = time.perf_counter()
    deadline = load.began + seconds

    async def customer_slot(slot: int) -> None:
        session = None
        try:
            while time.perf_counter() < deadline:
                i = next(counter)
                phone = f"139{rng.randrange(10**8):08d}"
                customer = Customer(i, f"bench-{tag}-{i:05d}", phone, COMPLAINTS[i % len(COMPLAINTS)],
                                    customer_address(slot))  # fmt: skip
                if session is None:
                    session = session_for(customer, timeout)
                load.customers.append(customer)
                await complain(session, url, customer, start_line, retries, pause)
                if customer.errors:
                    await asyncio.sleep(1)  # a dead door is not hammered
        finally:
            if session is not None:
                await session.close()

    async def progress() -> None:
        while True:
            await asyncio.sleep(60)
            minutes, errors = (time.perf_counter() - load.began) / 60, sum(load.errors().values())
            note(f"  {minutes:.0f} min: {len(load.answered())} messages answered, {errors} errors")

    ticker = asyncio.create_task(progress())
    try:
        await asyncio.gather(*(customer_slot(slot) for slot in range(concurrency)))
    finally:
        ticker.cancel()
    load.wall = time.perf_counter() - load.began


def run_load(bench: Bench, args: argparse.Namespace, concurrency: int, seconds: float, tag: str) -> Load:
    load = Load(bench.name, concurrency, seconds)
    pids = bench.pids()
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    asyncio.run(steady(bench.url, concurrency, seconds, tag, args.retries, args.timeout, load, args.think_seconds))
    for name, pid in pids.items():
        kind = name.split("-")[0]  # rasa-2 -> rasa
        load.cpu[kind] = load.cpu.get(kind, 0.0) + cpu_seconds(pid) - before[name]
    for customer in load.customers:
        customer.told = told_number(customer)
    clean = [c for c in load.customers if not c.errors]
    if clean:
        _, load.problems = check_database(bench.cluster.layout.database_url, clean)
    return load


def warm_up(bench: Bench, args: argparse.Namespace, tag: str) -> None:
    """A few complaints per server, not counted: models and connections are loaded lazily."""
    customers = make_customers(2 * len(bench.cluster.layout.rasa_ports), f"{tag}-warm", own_addresses=True)
    asyncio.run(complain_all(bench.url, customers, args.timeout, args.retries))
    failed = [c for c in customers if c.errors or c.deviations]
    if failed:
        note(f"warm-up: {len(failed)} of {len(customers)} complaints went wrong (not counted)")


# --- the complaints check -------------------------------------------------------------


async def tracker_ids(api_url: str, token: str, senders: list[str]) -> list[list[str]]:
    """The message ids of each sender's messages in the tracker store (Rasa HTTP API)."""
    limit = asyncio.Semaphore(8)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def ids(sender: str) -> list[str]:
            async with limit, session.get(f"{api_url}/conversations/{sender}/tracker", params={"token": token}) as r:
                r.raise_for_status()
                events = (await r.json())["events"]
            return [event.get("message_id") for event in events if event["event"] == "user"]

        return await asyncio.gather(*(ids(sender) for sender in senders))


def complaints_check(bench: Bench, args: argparse.Namespace, tag: str) -> tuple[dict, list[str]]:
    customers = make_customers(args.complaints, f"{tag}-check", own_addresses=True)
    wall = asyncio.run(complain_all(bench.url, customers, args.timeout, args.retries))
    time.sleep(1)  # a filing whose answer timed out finishes before counting
    for customer in customers:
        customer.told = told_number(customer)
    figures, problems = check_database(bench.cluster.layout.database_url, customers)
    layout, token = bench.cluster.layout, bench.cluster.secrets["RASA_TOKEN"]
    found = asyncio.run(tracker_ids(layout.api_url, token, [c.sender for c in customers]))
    lost = duplicated = 0
    for customer, ids in zip(customers, found, strict=True):
        sent, kept = [t.message_id for t in customer.turns], Counter(ids)
        missing = [m for m in sent if kept[m] == 0]
        twice = [m for m, times in kept.items() if times > 1]
        strange = [m for m in kept if m not in sent]
        lost, duplicated = lost + len(missing), duplicated + sum(kept[m] - 1 for m in twice)
        if missing or twice or strange:
            problems.append(f"{customer.sender}: lost {missing}, twice {twice}, never sent {strange}")
        problems += [f"{customer.sender}: {turn.error} on {turn.text!r}" for turn in customer.turns if turn.error]
        problems += [f"{customer.sender}: {deviation}" for deviation in customer.deviations]
    answered = [t.seconds for c in customers for t in c.turns if t.error is None]
    errors = sum(1 for c in customers for t in c.turns if t.error)
    figures |= {
        "customers": len(customers), "told a number": sum(bool(c.told) for c in customers),
        "messages sent": sum(len(c.turns) for c in customers), "lost messages": lost, "duplicates": duplicated,
        "errors": errors, "retries": sum(t.attempts - 1 for c in customers for t in c.turns),
        "wall s": round(wall, 1), "p50 / p95 ms": _p50_p95(answered),
    }  # fmt: skip
    return figures, problems


def _p50_p95(seconds: list[float]) -> str:
    if not seconds:
        return "-"
    return f"{statistics.median(seconds) * 1000:.0f} / {percentile(seconds, 0.95) * 1000:.0f}"


# --- the report -----------------------------------------------------------------------


def scaling_table(loads: list[Load]) -> None:
    print("\n### Throughput and latency per message (public door, complaint conversations)\n")
    print("| cluster (Rasa + actions) | customers at once | messages answered in the window | msg/s | p50 / p95 ms "
          "| errors, timeouts | retried sends | complaints: finished / ticket problems "
          "| CPU seconds |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for load in loads:
        errors = load.errors()
        kinds = ", ".join(f"{k} {v}" for k, v in errors.most_common())
        finished = sum(bool(c.told) for c in load.customers)
        cpu = ", ".join(f"{kind} {seconds:.0f}" for kind, seconds in load.cpu.items())
        print(f"| {load.cluster} | {load.concurrency} | {load.in_window()} in {load.window:.0f} s "
              f"| {load.in_window() / load.window:.1f} | {_p50_p95([s for _, s in load.answered()])} "
              f"| {sum(errors.values())}{f' ({kinds})' if kinds else ''} | {load.retries()} "
              f"| {finished} of {len(load.customers)} / {len(load.problems)} | {cpu} |")  # fmt: skip
    names = sorted({load.cluster for load in loads}, key=lambda name: int(name.split("+")[0]))
    if len(names) < 2:
        return
    print(f"\n### {names[-1]} against {names[0]}\n")
    print(f"| customers at once | {names[0]} msg/s | {names[-1]} msg/s | ratio |")
    print("| --- | --- | --- | --- |")
    rate = {(load.cluster, load.concurrency): load.in_window() / load.window for load in loads}
    for concurrency in sorted({load.concurrency for load in loads}):
        low, high = rate.get((names[0], concurrency)), rate.get((names[-1], concurrency))
        if low and high:
            print(f"| {concurrency} | {low:.1f} | {high:.1f} | {high / low:.2f} |")


def check_table(name: str, figures: dict, problems: list[str]) -> None:
    print(f"\n### {figures['customers']} complaints at once on the {name} cluster\n")
    print("| " + " | ".join(figures) + " | check |")
    print("| " + " | ".join("---" for _ in range(len(figures) + 1)) + " |")
    print("| " + " | ".join(str(v) for v in figures.values()) + f" | {'**fail**' if problems else 'pass'} |")


def soak_table(name: str, load: Load, memory: dict[str, tuple[float, float]]) -> None:
    answered, errors = [s for _, s in load.answered()], load.errors()
    kinds = f" ({', '.join(f'{k} {v}' for k, v in errors.most_common())})" if errors else ""
    print(f"\n### Soak: {load.concurrency} customers in a loop for {load.window / 60:.0f} min on the {name} cluster\n")
    print(f"messages answered {len(answered)} ({load.in_window() / load.window:.1f} msg/s in the window), "
          f"errors {sum(errors.values())}{kinds}, retried sends {load.retries()}, "
          f"p50 / p95 {_p50_p95(answered)} ms, complaints {len(load.customers)}, "
          f"ticket problems {len(load.problems)}\n")  # fmt: skip
    print("| process (with its children) | RSS MiB at the start | at the end | change |")
    print("| --- | --- | --- | --- |")
    for process, (start, end) in memory.items():
        print(f"| {process} | {start:.0f} | {end:.0f} | {end - start:+.0f} |")


def settings(args: argparse.Namespace, machine_line: str, rate: str) -> str:
    model_time = datetime.fromtimestamp(MODEL.stat().st_mtime)
    return (
        f"{datetime.now():%Y-%m-%d %H:%M}, {machine_line}. Model {MODEL.relative_to(PROJECT)} of "
        f"{model_time:%Y-%m-%d %H:%M}. `.venv/bin/python bench/cluster.py {' '.join(sys.argv[1:])}`: "
        f"window {args.seconds:.0f} s per level, "
        f"{f'a pause of 0-{2 * args.think_seconds:g} s before each message, ' if args.think_seconds else ''}"
        f"{args.retries} retries and {args.timeout:.0f} s timeout per "
        f"message; nginx {rate} per customer address, one address per customer; PostgreSQL "
        f"{args.postgres_server} (scratch databases), Redis {args.redis_url or 'a private redis-server'}, "
        f"RabbitMQ (a queue of the run's own), the company systems' SQL backend."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2], help="Rasa and action servers each")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--seconds", type=float, default=120.0, help="the window of each concurrency level")
    parser.add_argument("--think-seconds", type=float, default=0.0,
                        help="mean pause before each message of the scaling levels (0: none)")  # fmt: skip
    parser.add_argument("--complaints", type=int, default=200, help="customers at once for the check (0: skip)")
    parser.add_argument("--soak-minutes", type=float, default=0.0)
    parser.add_argument("--soak-concurrency", type=int, default=20)
    parser.add_argument("--skip-scaling", action="store_true", help="only the largest cluster's check and soak")
    parser.add_argument("--retries", type=int, default=4, help="sends again of an unanswered message, same id")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a customer waits for one answer")
    parser.add_argument("--postgres-server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--rabbitmq-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--redis-url", default="", help="e.g. redis://127.0.0.1:6379/13; empty: a private one")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    args = parser.parse_args()
    if not MODEL.exists():
        print(f"no trained model at {MODEL}", file=sys.stderr)
        return 2

    tag = uuid.uuid4().hex[:6]
    run_dir = OUT / f"cluster-{tag}"
    run_dir.mkdir(parents=True, exist_ok=True)
    instances = sorted(set(args.instances))[-1:] if args.skip_scaling else sorted(set(args.instances))
    header = machine()
    redis = None if args.redis_url else PrivateRedis(run_dir).start()
    redis_url = args.redis_url or redis.url
    loads: list[Load] = []
    check: tuple[str, dict, list[str]] | None = None
    soak: tuple[str, Load, dict] | None = None
    notes: list[str] = []
    rate = "?"
    try:
        for n in instances:
            bench = start_cluster(args, n, run_dir, redis_url, tag)
            try:
                warm_up(bench, args, f"{tag}-{n}")
                for concurrency in [] if args.skip_scaling else args.concurrency:
                    note(f"{bench.name}: {concurrency} customers at once for {args.seconds:.0f} s")
                    loads.append(run_load(bench, args, concurrency, args.seconds, f"{tag}-{n}-c{concurrency}"))
                if n == instances[-1] and args.complaints:
                    note(f"{bench.name}: {args.complaints} complaints at once, then the database and the trackers")
                    check = (bench.name, *complaints_check(bench, args, tag))
                if n == instances[-1] and args.soak_minutes:
                    note(f"{bench.name}: soak, {args.soak_concurrency} customers for {args.soak_minutes} min")
                    pids = bench.pids() | ({"redis (private)": redis.process.pid} if redis else {})
                    start = {name: rss_mib(pid) for name, pid in pids.items()}
                    load = run_load(bench, args, args.soak_concurrency, args.soak_minutes * 60, f"{tag}-soak")
                    soak = (bench.name, load, {name: (start[name], rss_mib(pid)) for name, pid in pids.items()})
                down = bench.cluster.stopped()
                warnings = ", ".join(f"{k} {v}" for k, v in log_warnings(bench).items())
                layout = bench.cluster.layout
                rate = f"{layout.rate_per_second} requests/s (burst {layout.burst})"
                notes.append(f"{bench.name}: up in {bench.started_in:.0f} s; logs: {warnings}"
                             + (f"; **stopped during the run: {', '.join(down)}**" if down else ""))  # fmt: skip
            finally:
                remove(bench, args)
    finally:
        if redis is not None:
            redis.kill()

    print("\n## Production cluster under load (bench/cluster.py)\n")
    print(settings(args, header, rate))
    for line in notes:
        print(f"- {line}")
    problems: list[str] = []
    if loads:
        scaling_table(loads)
        problems += [f"{load.cluster} at {load.concurrency}: {p}" for load in loads for p in load.problems]
    if check:
        check_table(check[0], check[1], check[2])
        problems += check[2]
    if soak:
        soak_table(*soak)
        problems += [f"soak: {p}" for p in soak[1].problems]
    if problems:
        print(f"\nFAILED: {len(problems)} problems")
        for problem in problems[:30]:
            print(f"  - {problem}")
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
