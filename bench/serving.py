"""Serving benchmark: simulated customers through the REST webhook, this bot against a
bare `rasa init` bot, measured in the same run on the same machine.

    .venv/bin/python bench/serving.py [--turns-per-customer 40] [--concurrency 1 10]
        [--model PATH] [--tf-threads 0 1] [--before DIR [--before-model PATH]]
        [--think-seconds S]

For each server it records start-up time, resident memory after the load, and for each
concurrency p50/p95 latency per message, messages per second, and the CPU time per
message of the Rasa server and of the action server (from /proc, the load only). This
bot runs once per `--tf-threads` value (0: TensorFlow's default thread pools; n: n
threads each, TF_*_PARALLELISM_THREADS) with the project's endpoints.yml (FreshResponses,
ProcessTrackerStore) pointed at its own action server. `--before DIR` also serves another
checkout of the project (e.g. `git worktree add /tmp/before HEAD`), its code and model, in
the same run. `--think-seconds S` adds a pause of 0-2S s (S on average) before each
message, as a customer reads and types, instead of sending the next one at once.
Training times: this bot's comes from a forced training into bench/out; the bare bot's
from `rasa init`, which trains its model.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
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

from tests.e2e.servers import ACTION_SERVER_ENV, Process, free_port, wait_until_up  # noqa: E402

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

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time used so far by the Rasa server and by the action server (0 if none)."""
        return _cpu_seconds(self.rasa.popen.pid), _cpu_seconds(self.actions.popen.pid) if self.actions else 0.0

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


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its children (Linux /proc)."""
    ticks = 0
    for one in [pid, *_children(pid)]:
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def start(name: str, args: list[str], env: dict[str, str], cwd: Path) -> Process:
    """Like tests.e2e.servers.start, in the given project folder."""
    log_path = OUT / f"{name}.log"
    log = log_path.open("w", encoding="utf-8")
    popen = subprocess.Popen(args, cwd=cwd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    return Process(name, popen, log_path, log)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found += [int(child), *_children(int(child))]
    return found


def start_ours(name: str, project: Path, model: Path, tf_threads: int, database_url: str) -> Server:
    env = {"DATABASE_URL": database_url, "RASA_TELEMETRY_ENABLED": "false"}
    if tf_threads:
        env |= {"TF_INTER_OP_PARALLELISM_THREADS": str(tf_threads), "TF_INTRA_OP_PARALLELISM_THREADS": str(tf_threads)}
    actions_port, rasa_port = free_port(), free_port()
    # the project's own endpoints (its NLG and tracker store), with this run's action server
    endpoints = OUT / f"endpoints-{actions_port}.yml"
    endpoints.write_text(
        (project / "endpoints.yml").read_text(encoding="utf-8").replace("127.0.0.1:5055", f"127.0.0.1:{actions_port}"),
        encoding="utf-8",
    )
    tag = "".join(c if c.isalnum() else "-" for c in name)
    began = time.monotonic()
    actions = start(
        f"{tag}-actions", [RASA, "run", "actions", "--port", str(actions_port)], env | ACTION_SERVER_ENV, project
    )
    rasa = start(
        f"{tag}-rasa",
        [RASA, "run", "--port", str(rasa_port), "--model", str(model),
         "--endpoints", str(endpoints), "--credentials", "credentials.yml"],
        env, project,
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
        PROJECT,
    )
    wait_until_up(rasa, f"http://127.0.0.1:{port}/", ready="Hello from Rasa")
    return Server("rasa init (bare)", rasa, None, f"http://127.0.0.1:{port}", time.monotonic() - began)


async def load(url: str, script: list[str], customers: int, turns: int, think: float = 0.0) -> dict[str, float]:
    latencies: list[float] = []

    async def customer(session: aiohttp.ClientSession) -> None:
        sender = f"bench-{uuid.uuid4().hex[:10]}"
        for text in itertools.islice(itertools.cycle(script), turns):
            if think:
                await asyncio.sleep(random.uniform(0, 2 * think))
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
        "messages": len(latencies),
    }


def measure(server: Server, script: list[str], customers: int, turns: int, think: float) -> dict[str, float]:
    """One load, with the CPU time each server spent on it per message."""
    rasa_before, actions_before = server.cpu_seconds()
    result = asyncio.run(load(server.url, script, customers, turns, think))
    rasa_after, actions_after = server.cpu_seconds()
    result["rasa cpu ms"] = (rasa_after - rasa_before) * 1000 / result["messages"]
    result["actions cpu ms"] = (actions_after - actions_before) * 1000 / result["messages"]
    return result


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
    parser.add_argument("--model", type=Path, default=PROJECT / "models" / "current.tar.gz", help="this bot's model")
    parser.add_argument(
        "--tf-threads", type=int, nargs="+", default=[0, 1], help="TensorFlow threads per pool, 0 for its default"
    )
    parser.add_argument("--before", type=Path, help="another checkout of the project to serve in the same run")
    parser.add_argument("--before-model", type=Path, help="its model (default: its models/current.tar.gz)")
    parser.add_argument("--think-seconds", type=float, default=0.0, help="mean pause before each message")
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

    def threads(n: int) -> str:
        return "TF default threads" if not n else f"TF {n} thread{'s' if n > 1 else ''}"

    servers = []
    if args.before:
        before_model = args.before_model or args.before / "models" / "current.tar.gz"
        servers.append(
            (lambda: start_ours(f"before ({args.before})", args.before, before_model, 0, database_url), OUR_SCRIPT)
        )
    model = args.model.resolve()
    for n in args.tf_threads:
        servers.append((lambda n=n: start_ours(f"this bot, {threads(n)}", PROJECT, model, n, database_url), OUR_SCRIPT))
    servers.append((lambda: start_bare(bare_project), BARE_SCRIPT))

    rows = []
    for make, script in servers:
        server = make()
        try:
            asyncio.run(load(server.url, script, 2, 10))  # warm-up
            results = {
                c: measure(server, script, c, args.turns_per_customer, args.think_seconds) for c in args.concurrency
            }
            rows.append((server.name, server.startup_seconds, server.rss_mib(), results))
        finally:
            server.stop()

    bare = rows[-1][3]
    pace = f", a pause of {args.think_seconds:g} s on average before each" if args.think_seconds else ""
    print(f"\nServing through the REST webhook, {args.turns_per_customer} messages per customer{pace}")
    header = " | ".join(
        f"{c} cust. p50 / p95 ms | {c} cust. msg/s (× bare) | {c} cust. CPU ms/msg Rasa + actions"
        for c in args.concurrency
    )
    print(f"| server | start-up s | RSS MiB | {header} |")
    print("|" + " --- |" * (3 + 3 * len(args.concurrency)))
    for name, startup, rss, results in rows:
        cells = " | ".join(
            f"{r['p50 ms']:.0f} / {r['p95 ms']:.0f} | {r['msg/s']:.1f} ({r['msg/s'] / bare[c]['msg/s']:.2f}×) | "
            f"{r['rasa cpu ms']:.0f} + {r['actions cpu ms']:.0f}"
            for c, r in ((c, results[c]) for c in args.concurrency)
        )
        print(f"| {name} | {startup:.1f} | {rss:.0f} | {cells} |")
    print(f"\nTraining time: this bot {_fmt(ours_train)}, rasa init bot {_fmt(bare_train)} (includes `rasa init`)")


def _fmt(seconds: float | None) -> str:
    return "not measured (reused)" if seconds is None else f"{seconds / 60:.1f} min"


if __name__ == "__main__":
    main()
