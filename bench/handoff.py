"""Handoff latency: how long a customer's message takes to appear in the agent's open
conversation view, and an agent's reply to reach the customer's channel.

    .venv/bin/python bench/handoff.py [--messages 100] [--spread 1.0] [--keep]

The whole stack runs on loopback on a fresh SQLite database in bench/out (migrated, demo
data): the company reference API, the customer's end of Rasa's callback channel, the
action server, the Rasa server (HTTP API with a token) and the agents' console. One
customer on the callback channel asks for a person (转人工) and gets the queue notice with
the ticket number; an agent signs in to the console over plain HTTP, claims the ticket and
opens the conversation's event stream (SSE), as the conversation view does.

  part 1  customer -> agent: N messages, one at a time, each with its own text; timed from
          just before the POST to the callback webhook until the stream's `message` event
          with that text reaches the agent.
  part 2  agent -> customer: N replies posted to the console (as the page's script does),
          one at a time; timed from just before the POST until the callback channel
          receives the text, prefixed 【人工客服】.

A message that does not arrive within --timeout is lost; exit status 1 when any was.
The stream polls the database about once a second (bot/console/streams.py): a customer
message sent the moment the previous one arrived lands just after a poll and waits a whole
interval. --spread S pauses 0-S s at random before each, as real customers' timing does.
Also measured, to tell what the time goes into: the webhook POST alone (Rasa's turn with
the relay action), the console's reply POST alone, and a bare trigger_intent on the Rasa
HTTP API (the round trip every reply makes, with nothing to deliver). Server logs and every
message's times (JSON) stay in bench/out/handoff-*; the database and config files are
removed unless --keep.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bot import clock  # noqa: E402
from bot.console.streams import POLL_SECONDS  # noqa: E402
from bot.db import session_factory  # noqa: E402
from bot.demo_data import ensure_demo_data  # noqa: E402
from bot.schema import upgrade  # noqa: E402
from bot.utility.reference_api import make_server  # noqa: E402
from tests.e2e.servers import (  # noqa: E402
    ACTION_SERVER_ENV,
    CallbackChannel,
    CallbackCustomer,
    Process,
    free_port,
    running,
    start,
    wait_until_up,
)

OUT = PROJECT / "bench" / "out"
RASA = str(PROJECT / ".venv" / "bin" / "rasa")
PYTHON = str(PROJECT / ".venv" / "bin" / "python")
MODEL = PROJECT / "models" / "current.tar.gz"
AGENT, PASSWORD = "bench-agent", "bench-agent-password"
NUMBER = re.compile(r"GD\d{12}")
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
PREFIX = "【人工客服】"  # bot/replies.yml agent_prefix

# What a waiting customer writes. No 10- or 11-digit numbers, so masking (bot.masking)
# leaves them alone; the agent sees them as typed.
CUSTOMER_LINES = [
    "我家电表读数不对",
    "这个月电费比上个月多了一倍",
    "昨天晚上停了两个小时的电",
    "营业厅说要带房产证",
    "电表箱的门坏了关不上",
    "我想改成峰谷电价",
    "缴费以后还是显示欠费",
    "楼道的灯一直不亮",
    "抄表员好几个月没来了",
    "能不能帮我查一下原因",
]
AGENT_LINES = [
    "您好，我是客服，这就为您核对",
    "已查到您的抄表记录，请稍等",
    "已为您登记，维修人员今天会联系您",
    "峰谷电价可以在营业厅或网上国网办理",
    "缴费到账可能有延迟，请稍后再看",
    "这个情况我已经记下来了",
    "请问还有其他需要帮助的吗",
    "已转给供电所处理",
    "给您带来不便，非常抱歉，我们马上安排",
    "好的，我再帮您确认一下",
]


@dataclass
class Sample:
    text: str
    seconds: float | None = None  # until it arrived; None: lost
    post_seconds: float | None = None  # the POST alone
    error: str | None = None


# --- where the messages arrive -----------------------------------------------------


class TimedCallbackChannel(CallbackChannel):
    """The customer's end of the callback channel, noting when each text arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}
        self._noted = threading.Condition()
        channel, plain = self, self.server.RequestHandlerClass

        class Timed(plain):
            def do_POST(self) -> None:  # noqa: N802
                at = time.perf_counter()
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.rfile = io.BytesIO(body)  # the plain handler reads it again
                text = json.loads(body or b"{}").get("text") or ""
                with channel._noted:
                    channel.arrived.setdefault(text, at)
                    channel._noted.notify_all()
                super().do_POST()

        self.server.RequestHandlerClass = Timed

    def arrival(self, text: str, timeout: float) -> float | None:
        with self._noted:
            self._noted.wait_for(lambda: text in self.arrived, timeout)
            return self.arrived.get(text)


class AgentView:
    """The agent's open conversation view: the ticket's event stream, read in a thread,
    noting when each customer line first arrived. Reconnects (from the last id seen) when
    the console ends a stream, as the browser does."""

    def __init__(self, console_url: str, cookies, number: str) -> None:
        self.url = f"{console_url}/api/tickets/{number}/stream"
        self.http = requests.Session()  # the page's own connection, the same sign-in
        self.http.cookies.update(cookies)
        self.arrived: dict[str, float] = {}
        self.last_id = 0
        self.connections = 0
        self.errors: list[str] = []
        self._noted = threading.Condition()
        self._stopping = threading.Event()
        self._response: requests.Response | None = None
        self._thread = threading.Thread(target=self._read, name="agent-view", daemon=True)

    def open(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        if self._response is not None:
            self._response.close()
        self._thread.join(timeout=10)

    def arrival(self, text: str, timeout: float) -> float | None:
        with self._noted:
            self._noted.wait_for(lambda: text in self.arrived, timeout)
            return self.arrived.get(text)

    def _read(self) -> None:
        while not self._stopping.is_set() and len(self.errors) < 5:
            try:
                with self.http.get(self.url, params={"after": self.last_id}, stream=True, timeout=(5, 60)) as response:
                    response.raise_for_status()
                    self._response = response
                    self.connections += 1
                    self._events(response)
            # AttributeError: urllib3 reading a response that close() has just taken apart
            except (requests.RequestException, AttributeError, ValueError) as error:
                if not self._stopping.is_set():
                    self.errors.append(f"{type(error).__name__}: {error}")

    def _events(self, response: requests.Response) -> None:
        event = None
        for raw in response.iter_lines():
            line = raw.decode("utf-8")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "message":
                at = time.perf_counter()
                message = json.loads(line[6:])
                with self._noted:
                    self.last_id = max(self.last_id, message["id"])
                    if message["speaker"] == "customer":
                        self.arrived.setdefault(message["text"], at)
                        self._noted.notify_all()


# --- the agent in the console ------------------------------------------------------


class Agent:
    """The agent's browser: a requests session holding the console's cookies."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.csrf = ""

    def sign_in(self, username: str, password: str) -> None:
        page = self.http.get(f"{self.url}/login", timeout=30)
        form_token = CSRF_FIELD.search(page.text)[1]
        response = self.http.post(
            f"{self.url}/login", data={"username": username, "password": password, "csrf_token": form_token},
            allow_redirects=False, timeout=30,
        )  # fmt: skip
        if response.status_code != 303:
            raise RuntimeError(f"sign-in refused: HTTP {response.status_code}")
        home = self.http.get(self.url + response.headers["Location"], timeout=30)
        self.csrf = CSRF_META.search(home.text)[1]

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        """What the pages' scripts send: JSON, the session's token in X-CSRF-Token."""
        headers = {"Accept": "application/json", "X-CSRF-Token": self.csrf}
        return self.http.post(self.url + path, json=body or {}, headers=headers, allow_redirects=False, timeout=60)


# --- the stack ---------------------------------------------------------------------


def fresh_database(tag: str) -> str:
    OUT.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{OUT / f'handoff-{tag}.db'}"
    upgrade(url)
    ensure_demo_data(session_factory(url), clock.now())
    return url


def create_agent(database_url: str) -> None:
    subprocess.run(
        [PYTHON, "-m", "bot", "console", "create-user", AGENT, "--role", "agent", "--password-stdin",
         "--database-url", database_url],
        input=PASSWORD + "\n", text=True, cwd=PROJECT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def start_servers(
    tag: str, database_url: str, company_url: str, callback_url: str, token: str, servers: list[Process]
) -> tuple[str, str]:
    """Action server, Rasa server and console, appended to `servers` as they start (so the
    caller stops whatever did start); the Rasa and console URLs."""
    actions_port, rasa_port, console_port = free_port(), free_port(), free_port()
    endpoints, credentials = OUT / f"handoff-{tag}-endpoints.yml", OUT / f"handoff-{tag}-credentials.yml"
    endpoints.write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n  enable_selective_domain: true\n'
        "nlg:\n  type: bot.nlg.FreshResponses\n"
    )
    credentials.write_text(f'rest:\n\ncallback:\n  url: "{callback_url}/bot"\n')
    env = {
        "DATABASE_URL": database_url,
        "UTILITY_BACKEND": "http",
        "UTILITY_API_URL": company_url,
        "HANDOFF_REMINDER_SECONDS": "3600",  # no reminder in the middle of the measurement
        "RASA_TELEMETRY_ENABLED": "false",
    }
    rasa_url, console_url = f"http://127.0.0.1:{rasa_port}", f"http://127.0.0.1:{console_port}"
    actions = start(f"handoff-{tag}-actions", [RASA, "run", "actions", "--port", str(actions_port)],
                    env | ACTION_SERVER_ENV, OUT)  # fmt: skip
    servers.append(actions)
    rasa = start(
        f"handoff-{tag}-rasa",
        [RASA, "run", "--port", str(rasa_port), "--interface", "127.0.0.1", "--model", str(MODEL),
         "--endpoints", str(endpoints), "--credentials", str(credentials), "--enable-api", "--auth-token", token],
        env, OUT,
    )  # fmt: skip
    servers.append(rasa)
    console_env = env | {"RASA_URL": rasa_url, "RASA_TOKEN": token, "CONSOLE_COOKIE_SECURE": "0"}
    console = start(f"handoff-{tag}-console", [PYTHON, "-m", "bot", "console", "serve", "--port", str(console_port)],
                    console_env, OUT)  # fmt: skip
    servers.append(console)
    wait_until_up(console, f"{console_url}/login")
    wait_until_up(actions, f"http://127.0.0.1:{actions_port}/health")
    wait_until_up(rasa, f"{rasa_url}/", ready="Hello from Rasa")
    return rasa_url, console_url


# --- the two directions ------------------------------------------------------------


def customer_to_agent(
    customer: CallbackCustomer, view: AgentView, count: int, timeout: float, spread: float
) -> list[Sample]:
    samples = []
    pauses = random.Random(count)  # the same pauses on every run
    for i in range(count):
        sample = Sample(f"第{i + 1}条：{CUSTOMER_LINES[i % len(CUSTOMER_LINES)]}")
        if spread:
            # sent right after the previous one arrived, every message would land just after
            # a poll of the stream and wait a whole poll interval; the pause breaks the lockstep
            time.sleep(pauses.uniform(0, spread))
        began = time.perf_counter()
        try:
            customer.say(sample.text)
        except OSError as error:
            sample.error = f"webhook: {type(error).__name__}: {error}"
        sample.post_seconds = time.perf_counter() - began
        arrived = view.arrival(sample.text, timeout)
        if arrived is not None:
            sample.seconds = arrived - began
        elif sample.error is None:
            sample.error = f"not in the agent's view after {timeout:.0f} s"
        samples.append(sample)
    return samples


def agent_to_customer(agent: Agent, number: str, channel: TimedCallbackChannel, count: int, timeout: float):
    samples = []
    for i in range(count):
        sample = Sample(f"第{i + 1}条回复：{AGENT_LINES[i % len(AGENT_LINES)]}")
        began = time.perf_counter()
        try:
            response = agent.post(f"/tickets/{number}/reply", {"text": sample.text})
            sample.post_seconds = time.perf_counter() - began
            message = response.json().get("message") if response.status_code == 200 else None
            if message is None:
                sample.error = f"reply: HTTP {response.status_code} {response.text[:200]}"
            elif message.get("error"):
                sample.error = f"reply not delivered: {message['error']}"
        except (requests.RequestException, ValueError) as error:
            sample.error = f"reply: {type(error).__name__}: {error}"
        arrived = channel.arrival(PREFIX + sample.text, timeout)
        if arrived is not None:
            sample.seconds = arrived - began
        elif sample.error is None:
            sample.error = f"not on the customer's channel after {timeout:.0f} s"
        samples.append(sample)
    return samples


def bare_triggers(rasa_url: str, sender: str, token: str, count: int) -> list[float]:
    """trigger_intent EXTERNAL_agent_reply with no reply pending: the Rasa turn and the
    action server call that every reply costs, without the console and the delivery."""
    url = f"{rasa_url}/conversations/{sender}/trigger_intent?token={token}&output_channel=latest"
    times = []
    for _ in range(count):
        request = urllib.request.Request(url, b'{"name": "EXTERNAL_agent_reply"}', {"Content-Type": "application/json"})
        began = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
        times.append(time.perf_counter() - began)
    return times


# --- the report --------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (f"{statistics.median(values) * 1000:.0f} / {percentile(values, 0.95) * 1000:.0f} / "
            f"{max(values) * 1000:.0f} ms")  # fmt: skip


def line(label: str, value: str) -> None:
    print(f"  {label:<34}{value}")


def report_part(title: str, samples: list[Sample], post_name: str) -> None:
    times = [s.seconds for s in samples if s.seconds is not None]
    posts = [s.post_seconds for s in samples if s.post_seconds is not None]
    print(f"\n{title}")
    line("n / arrived / lost", f"{len(samples)} / {len(times)} / {len(samples) - len(times)}")
    line("until it arrived p50/p95/max", ms(times) + (f" (min {min(times) * 1000:.0f} ms)" if times else ""))
    line(post_name, ms(posts))
    tenth = max(1, len(samples) // 10)
    for name, field in (("arrived", "seconds"), ("POST", "post_seconds")):
        early, late = ([getattr(s, field) for s in part if getattr(s, field) is not None]
                       for part in (samples[:tenth], samples[-tenth:]))  # fmt: skip
        line(f"{name}: first {tenth} | last {tenth}", f"{ms(early)} | {ms(late)}")
    for sample in [s for s in samples if s.error][:10]:
        print(f"  ! {sample.text}: {sample.error}")


def report(args, inbound: list[Sample], outbound: list[Sample], triggers: list[float], view: AgentView) -> None:
    pacing = f"a random pause of 0-{args.spread:g} s before each" if args.spread else "each as soon as the last arrived"
    print(f"\nHandoff latency: {args.messages} messages each way, one at a time ({pacing}), one customer, one agent")
    report_part("customer -> agent's open view (callback webhook POST -> SSE `message` event)", inbound,
                "webhook POST alone (Rasa turn)")  # fmt: skip
    waits = [s.seconds - s.post_seconds for s in inbound if s.seconds is not None and s.post_seconds is not None]
    if waits:
        line("after the POST returned", f"{ms(waits)} (mean {statistics.mean(waits) * 1000:.0f} ms; the stream "
             f"polls every {POLL_SECONDS:g} s plus the poll's own work)")  # fmt: skip
    line("stream connections / errors", f"{view.connections} / {len(view.errors)}")
    for error in view.errors[:5]:
        print(f"  ! stream: {error}")
    report_part("agent -> customer's callback (console reply POST -> callback channel)", outbound,
                "console reply POST alone")  # fmt: skip
    line(f"bare trigger_intent ({len(triggers)} calls)", ms(triggers))
    print(f"\nmachine: {os.cpu_count()} cores, 1-min load average {os.getloadavg()[0]:.2f}")
    lost = sum(s.seconds is None for s in inbound + outbound)
    print(f"\nFAILED: {lost} messages lost" if lost else "\nno message lost")


# --- the run -----------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100, help="messages each way (default 100)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a message counts as lost")
    parser.add_argument("--triggers", type=int, default=20, help="bare trigger_intent calls (default 20)")
    parser.add_argument(
        "--spread", type=float, default=0.0, metavar="S",
        help="a random pause of 0-S s before each customer message, so that messages land anywhere in the "
        "stream's poll cycle as real ones do (default 0: each goes as soon as the previous one arrived)",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the database and config files in bench/out")
    args = parser.parse_args()
    if not MODEL.exists():
        print(f"no trained model at {MODEL}", file=sys.stderr)
        return 2

    tag, token = uuid.uuid4().hex[:6], uuid.uuid4().hex
    database_url = fresh_database(tag)
    print(f"database: {database_url}", flush=True)
    callbacks = TimedCallbackChannel()
    servers: list[Process] = []
    view: AgentView | None = None
    try:
        create_agent(database_url)
        with running(make_server(database_url, "127.0.0.1", 0)) as company_url, \
                running(callbacks.server) as callback_url:  # fmt: skip
            began = time.monotonic()
            rasa_url, console_url = start_servers(tag, database_url, company_url, callback_url, token, servers)
            print(f"servers up in {time.monotonic() - began:.1f} s", flush=True)

            customer = CallbackCustomer(rasa_url, callbacks, f"bench-handoff-{tag}")
            customer.say("转人工")
            notice = customer.wait_for(lambda t: "转接人工客服" in t and NUMBER.search(t) is not None)
            number = NUMBER.search(notice)[0]
            agent = Agent(console_url)
            agent.sign_in(AGENT, PASSWORD)
            claimed = agent.post(f"/tickets/{number}/claim")
            if claimed.status_code != 200:
                raise RuntimeError(f"claim of {number} refused: HTTP {claimed.status_code} {claimed.text[:200]}")
            view = AgentView(console_url, agent.http.cookies, number)
            view.open()
            print(f"ticket {number} claimed by {AGENT}; {args.messages} messages each way", flush=True)

            inbound = customer_to_agent(customer, view, args.messages, args.timeout, args.spread)
            outbound = agent_to_customer(agent, number, callbacks, args.messages, args.timeout)
            triggers = bare_triggers(rasa_url, customer.sender, token, args.triggers)
            report(args, inbound, outbound, triggers, view)
            raw = OUT / f"handoff-{tag}.json"
            raw.write_text(json.dumps({"customer_to_agent": [asdict(s) for s in inbound],
                                       "agent_to_customer": [asdict(s) for s in outbound],
                                       "bare_trigger_seconds": triggers}, ensure_ascii=False, indent=1))  # fmt: skip
            print(f"every message's times: {raw}")
            return 1 if any(s.seconds is None for s in inbound + outbound) else 0
    finally:
        if view is not None:
            view.close()
        for server in reversed(servers):
            server.stop()
        if not args.keep:
            path = Path(database_url.removeprefix("sqlite:///"))
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal"),
                             OUT / f"handoff-{tag}-endpoints.yml", OUT / f"handoff-{tag}-credentials.yml"):  # fmt: skip
                leftover.unlink(missing_ok=True)
        else:
            print(f"kept {database_url} and the config files in {OUT}")


if __name__ == "__main__":
    sys.exit(main())
