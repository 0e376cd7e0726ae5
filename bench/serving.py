"""Serving benchmark: simulated customers through the REST webhook, this bot against a
bare `rasa init` bot, measured in the same run on the same machine.

    .venv/bin/python bench/serving.py [--turns-per-customer 40] [--concurrency 1 10]

For each server it records start-up time, resident memory after the load, and for each
concurrency p50/p95 latency per message and messages per second. This bot runs twice:
with TensorFlow's default thread pools and with one thread each (TF_*_PARALLELISM_THREADS).
Training times: this bot's comes from a forced training into bench/out; the bare bot's
from `rasa init`, which trains its model.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from tests.e2e.servers import ACTION_SERVER_ENV, Process, free_port, start, wait_until_up  # noqa: E402

OUT = PROJECT / "bench" / "out"
RASA = str(PROJECT / ".venv" / "bin" / "rasa")

# one customer's conversation, repeated to the number of turns: identity checks,
# follow-ups, an outage, the FAQ and small talk, as customers mix them
OUR_SCRIPT = [
    "你好", "帮我查下3201000001上个月电费", "张伟", "那8月呢", "电费为什么这么高",
    "光明路停电了什么时候来电", "电费怎么交", "你是机器人吗", "谢谢", "再见",
]  # fmt: skip
BARE_SCRIPT = ["hello", "I am sad", "yes", "are you a bot?", "great", "bye"]


@dataclass
class Server:
    name: str
    rasa: Process
    actions: Process | None
    url: str
    startup_seconds: float

    def rss_mib(self) -> float:
        return sum(_rss_kib(p.popen.pid) for p in (self.rasa, self.actions) if p) / 1024

    def stop(self) -> None:
        self.rasa.stop()
        if self.actions:
            self.actions.stop()


def _rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (Linux /proc)."""
    total = 0
    for path in [Path(f"/proc/{pid}")] + [Path(f"/proc/{c}") for c in _children(pid)]:
        for line in (path / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found += [int(child), *_children(int(child))]
    return found


def start_ours(name: str, tf_threads: int | None, database_url: str) -> Server:
    env = {"DATABASE_URL": database_url, "RASA_TELEMETRY_ENABLED": "false"}
    if tf_threads:
        env |= {"TF_INTER_OP_PARALLELISM_THREADS": str(tf_threads), "TF_INTRA_OP_PARALLELISM_THREADS": str(tf_threads)}
    actions_port, rasa_port = free_port(), free_port()
    endpoints = OUT / f"endpoints-{actions_port}.yml"
    endpoints.write_text(f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n')
    began = time.monotonic()
    actions = start(
        f"{name}-actions", [RASA, "run", "actions", "--port", str(actions_port)], env | ACTION_SERVER_ENV, OUT
    )
    rasa = start(
        f"{name}-rasa",
        [RASA, "run", "--port", str(rasa_port), "--model", "models/current.tar.gz",
         "--endpoints", str(endpoints), "--credentials", "credentials.yml"],
        env, OUT,
    )  # fmt: skip
    wait_until_up(actions, f"http://127.0.0.1:{actions_port}/health")
    wait_until_up(rasa, f"http://127.0.0.1:{rasa_port}/", ready="Hello from Rasa")
    return Server(name, rasa, actions, f"http://127.0.0.1:{rasa_port}", time.monotonic() - began)


def prepare_bare() -> tuple[Path, float | None]:
    """A `rasa init` project with its trained model (made once, then reused)."""
    project = OUT / "bare-rasa-init"
    if list((project / "models").glob("*.tar.gz")):
        return project, None
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)  # rasa init wants the folder to exist
    began = time.monotonic()
    subprocess.run(
        [RASA, "init", "--no-prompt", "--init-dir", str(project)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
    )  # fmt: skip
    return project, time.monotonic() - began


def start_bare(project: Path) -> Server:
    port = free_port()
    model = sorted((project / "models").glob("*.tar.gz"))[-1]
    began = time.monotonic()
    rasa = start(
        "bare-rasa",
        [RASA, "run", "--port", str(port), "--model", str(model)],
        {"RASA_TELEMETRY_ENABLED": "false"},
        OUT,
    )
    wait_until_up(rasa, f"http://127.0.0.1:{port}/", ready="Hello from Rasa")
    return Server("rasa init (bare)", rasa, None, f"http://127.0.0.1:{port}", time.monotonic() - began)


async def load(url: str, script: list[str], customers: int, turns: int) -> dict[str, float]:
    latencies: list[float] = []

    async def customer(session: aiohttp.ClientSession) -> None:
        sender = f"bench-{uuid.uuid4().hex[:10]}"
        for text in itertools.islice(itertools.cycle(script), turns):
            began = time.perf_counter()
            async with session.post(f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text}) as r:
                await r.read()
                assert r.status == 200
            latencies.append(time.perf_counter() - began)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        began = time.perf_counter()
        await asyncio.gather(*(customer(session) for _ in range(customers)))
        wall = time.perf_counter() - began
    latencies.sort()
    return {
        "p50 ms": statistics.median(latencies) * 1000,
        "p95 ms": latencies[int(len(latencies) * 0.95) - 1] * 1000,
        "msg/s": len(latencies) / wall,
    }


def train_time_ours() -> float:
    target = OUT / "train-check"
    shutil.rmtree(target, ignore_errors=True)
    began = time.monotonic()
    subprocess.run(
        [RASA, "train", "--force", "--out", str(target)],
        cwd=PROJECT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
    )  # fmt: skip
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns-per-customer", type=int, default=40)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--skip-training", action="store_true", help="do not time a forced training")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)

    from bot import clock
    from bot.db import session_factory
    from bot.demo_data import ensure_demo_data
    from bot.schema import upgrade

    database_url = f"sqlite:///{OUT / 'bench.db'}"
    upgrade(database_url)
    ensure_demo_data(session_factory(database_url), clock.now())

    bare_project, bare_train = prepare_bare()
    ours_train = None if args.skip_training else train_time_ours()

    rows = []
    for make, script in (
        (lambda: start_ours("this bot, TF default threads", None, database_url), OUR_SCRIPT),
        (lambda: start_ours("this bot, TF 1 thread", 1, database_url), OUR_SCRIPT),
        (lambda: start_bare(bare_project), BARE_SCRIPT),
    ):
        server = make()
        try:
            asyncio.run(load(server.url, script, 2, 10))  # warm-up
            results = {c: asyncio.run(load(server.url, script, c, args.turns_per_customer)) for c in args.concurrency}
            rows.append((server.name, server.startup_seconds, server.rss_mib(), results))
        finally:
            server.stop()

    print(f"\nServing through the REST webhook, {args.turns_per_customer} messages per customer")
    header = " | ".join(f"{c} cust. p50 / p95 ms | {c} cust. msg/s" for c in args.concurrency)
    print(f"| server | start-up s | RSS MiB | {header} |")
    print("|" + " --- |" * (3 + 2 * len(args.concurrency)))
    for name, startup, rss, results in rows:
        cells = " | ".join(
            f"{r['p50 ms']:.0f} / {r['p95 ms']:.0f} | {r['msg/s']:.1f}" for r in (results[c] for c in args.concurrency)
        )
        print(f"| {name} | {startup:.1f} | {rss:.0f} | {cells} |")
    print(f"\nTraining time: this bot {_fmt(ours_train)}, rasa init bot {_fmt(bare_train)} (includes `rasa init`)")


def _fmt(seconds: float | None) -> str:
    return "not measured (reused)" if seconds is None else f"{seconds / 60:.1f} min"


if __name__ == "__main__":
    main()
