"""WeChat under load: 200 messages from 50 simulated followers within a few seconds, with
WeChat's retries, against the real Rasa server (the `wechat` channel) and action server,
and WeChat's API faked on loopback.

    .venv/bin/python bench/wechat.py [--followers 50] [--messages 4] [--spread 3]
                                     [--lost 0.2] [--plain] [--redis URL] [--database sqlite|postgresql]
                                     [--concurrency 4] [--reply-seconds 3.5]

Each follower sends `--messages` texts (a script of questions the bot answers without an
identity check: FAQs, outages, small talk; every fourth follower ends with 转人工, which
files a ticket), each at a random moment within the first `--spread` seconds, in order.
The simulated platform acts as WeChat does: it waits up to 5 s for the HTTP answer and
otherwise sends the same message again, three times at most. On top of that it treats a
share `--lost` of the answers as lost on the way (a network drop, a late answer), which
forces a retry 5 s after the attempt, as WeChat would; that is what "retries included"
means: about a fifth of the messages are retried once, some twice or three times.

Before the load, a warm-up follower sends each text of the scripts once (not measured): a
cold Rasa server builds TensorFlow graphs for new input shapes as they come, each a second
or more on the event loop, which is start-up, not steady state.

Afterwards the Rasa server's trackers say what the bot answered to each message (the user
event carries the message id in its metadata); every answer must have reached the
follower exactly once, as the passive reply WeChat accepted or as customer-service
messages pushed to the fake API, and no message may reach the bot twice. Recorded: the
answers delivered, the duplicates (messages that reached the bot twice, texts delivered
twice), the tickets, and the time from WeChat's first attempt to the answer (the passive
reply it accepted, or the last pushed text of the answer): p50 / p95 / max. Exit status 1
when a check fails. Server logs stay in bench/out/wechat-*.log.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from sqlalchemy import create_engine, text  # noqa: E402

from bench.complaints import create_database, drop_database  # noqa: E402
from bot.wechat.messages import as_text, joined  # noqa: E402
from tests.e2e.servers import ACTION_SERVER_ENV, Process, free_port, running, start, wait_until_up  # noqa: E402
from tests.fake_wechat_api import FakeWeChatApi  # noqa: E402
from tests.wechat_platform import WeChatPlatform, new_openid  # noqa: E402

OUT = PROJECT / "bench" / "out"
RASA = str(PROJECT / ".venv" / "bin" / "rasa")
PYTHON = str(PROJECT / ".venv" / "bin" / "python")
MODEL = PROJECT / "models" / "current.tar.gz"
TOKEN, AES_KEY = "benchWeChatToken95598", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
APP_ID, APP_SECRET = "wx5823bf96d3bd56c7", "bench0a1b2c3d4e5f6a7b8c9d0e1f2a3"
RASA_TOKEN = "bench-token"
WECHAT_WAIT, RETRIES = 5.0, 3  # WeChat waits 5 s for an answer, then retries three times

SCRIPTS = [
    ["你好", "电费怎么交", "光明路停电了吗", "谢谢"],
    ["阶梯电价怎么算", "幸福里明天停电吗", "营业厅几点上班", "好的"],
    ["电费发票怎么开", "和平路停电了吗", "峰谷电价是什么意思", "明白了"],
    ["在吗", "电表需要校验怎么申请", "新装电表怎么办理", "转人工"],
]


@dataclass
class Attempt:
    sent: float
    answered: float | None = None
    status: int | None = None
    body: str = ""
    lost: bool = False  # the answer came, but the simulated network dropped it


@dataclass
class Message:
    follower: int
    openid: str
    text: str
    msg_id: str
    due: float  # seconds after the start line
    attempts: list[Attempt] = field(default_factory=list)
    passive: str | None = None  # the passive reply WeChat accepted
    expected: list[str] = field(default_factory=list)  # what the bot answered (its tracker)
    reached_bot: int = 0
    delivered_at: float | None = None
    how: str = ""  # passive | push | silent | missing

    @property
    def key(self) -> str:
        return f"msg:{self.msg_id}"

    @property
    def first_sent(self) -> float:
        return self.attempts[0].sent


# --- the stack ---------------------------------------------------------------------------


def start_stack(database_url: str, tag: str, wechat_url: str, args: argparse.Namespace) -> tuple[Process, Process, str]:
    env = {
        "DATABASE_URL": database_url,
        "UTILITY_BACKEND": "sql",
        "RASA_TELEMETRY_ENABLED": "false",
        "CUSTOMER_TOKEN_SECRET": "bench-customer-secret",
        "WECHAT_TOKEN": TOKEN,
        "WECHAT_ENCODING_AES_KEY": AES_KEY,
        "WECHAT_APP_ID": APP_ID,
        "WECHAT_APP_SECRET": APP_SECRET,
        "WECHAT_API_URL": wechat_url,
        "REDIS_URL": args.redis,
        "WECHAT_BOT_CONCURRENCY": str(args.concurrency),
        "WECHAT_REPLY_SECONDS": str(args.reply_seconds),
    }
    actions_port, rasa_port = free_port(), free_port()
    endpoints = OUT / f"wechat-endpoints-{tag}.yml"
    endpoints.write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n  enable_selective_domain: true\n'
        "nlg:\n  type: bot.nlg.FreshResponses\n"
    )
    actions = start(f"wechat-{tag}-actions", [RASA, "run", "actions", "--port", str(actions_port)],
                    env | ACTION_SERVER_ENV, OUT)  # fmt: skip
    rasa = start(
        f"wechat-{tag}-rasa",
        [RASA, "run", "--port", str(rasa_port), "--interface", "127.0.0.1", "--model", str(MODEL),
         "--endpoints", str(endpoints), "--credentials", "credentials.yml", "--enable-api", "--auth-token", RASA_TOKEN],
        env, OUT,
    )  # fmt: skip
    try:
        wait_until_up(actions, f"http://127.0.0.1:{actions_port}/health")
        wait_until_up(rasa, f"http://127.0.0.1:{rasa_port}/", ready="Hello from Rasa")
    except BaseException:
        rasa.stop()
        actions.stop()
        raise
    finally:
        endpoints.unlink(missing_ok=True)
    return actions, rasa, f"http://127.0.0.1:{rasa_port}"


# --- WeChat's side ---------------------------------------------------------------------------


def deliver(platform: WeChatPlatform, message: Message, encrypted: bool, lost: float, rng: random.Random,
            start_line: float) -> None:  # fmt: skip
    """One message as WeChat delivers it: an attempt, and a retry 5 s later while no answer came through."""
    xml = platform.text(message.openid, message.text, msg_id=message.msg_id)
    next_at = start_line + message.due
    for _ in range(1 + RETRIES):
        time.sleep(max(0.0, next_at - time.monotonic()))
        attempt = Attempt(sent=time.monotonic())
        message.attempts.append(attempt)
        try:
            answer = platform.post(xml, encrypted=encrypted, timeout=WECHAT_WAIT)
            attempt.answered, attempt.status, attempt.body = time.monotonic(), answer.status, answer.body
        except OSError:  # no answer within WeChat's 5 s
            next_at = attempt.sent + WECHAT_WAIT
            continue
        attempt.lost = rng.random() < lost
        if attempt.status == 200 and not attempt.lost:
            message.passive = platform.reply_of(answer, message.openid)
            return
        next_at = attempt.sent + WECHAT_WAIT


def make_messages(followers: int, per_follower: int, spread: float, seed: str) -> list[Message]:
    rng = random.Random(seed)
    messages = []
    for index in range(followers):
        openid, script = new_openid(rng), SCRIPTS[index % len(SCRIPTS)]
        moments = sorted(rng.uniform(0, spread) for _ in range(per_follower))
        for due, said in zip(moments, (script * per_follower)[:per_follower], strict=True):
            # unique in every run, as WeChat's are (Redis remembers ids across runs for 10 minutes)
            msg_id = str(6_000_000_000_000_000_000 + uuid.uuid4().int % 10**18)
            messages.append(Message(index, openid, said, msg_id, due))
    return messages


# --- the checks ----------------------------------------------------------------------------------


def trackers(rasa_url: str, openids: set[str]) -> dict[str, list[dict]]:
    found = {}
    for openid in openids:
        url = f"{rasa_url}/conversations/{openid}/tracker?token={RASA_TOKEN}"
        with urllib.request.urlopen(url, timeout=30) as response:
            found[openid] = json.load(response)["events"]
    return found


def read_answers(messages: list[Message], events_of: dict[str, list[dict]]) -> None:
    """What the bot said to each message, and how often the message reached it."""
    by_key = {m.key: m for m in messages}
    for m in messages:
        m.expected, m.reached_bot = [], 0
    for events in events_of.values():
        current: Message | None = None
        for event in events:
            if event["event"] == "user":
                key = ((event.get("metadata") or {}).get("wechat") or {}).get("message")
                current = by_key.get(key)
                if current is not None:
                    current.reached_bot += 1
            elif event["event"] == "bot" and current is not None:
                said = as_text({"text": event.get("text"), **(event.get("data") or {})})
                if said:
                    current.expected.append(said)


def settle(messages: list[Message], api: FakeWeChatApi) -> tuple[Counter, int]:
    """Match each answer to what reached the follower; the number of texts delivered twice."""
    outcome: Counter = Counter()
    twice = 0
    openids = {m.openid for m in messages}
    pushed_to = {openid: [dict(p) for p in api.sent if p["touser"] == openid] for openid in openids}
    for message in sorted(messages, key=lambda m: (m.follower, m.due)):
        pushes = pushed_to[message.openid]
        if not message.expected:
            message.how = "silent"
        elif message.passive is not None:
            whole = message.passive == joined(message.expected)
            # a long answer: the first message as the reply, the rest pushed
            split = message.passive == message.expected[0] and take(pushes, message.expected[1:]) is not None
            if whole or split:
                message.how, message.delivered_at = "passive", accepted(message).answered
            else:
                message.how = "missing"
        else:
            arrived = take(pushes, message.expected)
            message.how = "push" if arrived is not None else "missing"
            message.delivered_at = arrived
        outcome[message.how] += 1
        if message.passive is not None and message.expected and take(pushes, message.expected[:1]) is not None:
            twice += 1  # the same answer passive and pushed
    for pushes in pushed_to.values():
        twice += sum(1 for p in pushes if not p.get("taken"))
    return outcome, twice


def take(pushes: list[dict], texts: list[str]) -> float | None:
    """Mark the pushed `texts` as this answer's (each push is taken once); the last one's arrival."""
    last = None
    for said in texts:
        found = next((p for p in pushes if not p.get("taken") and p["text"]["content"] == said), None)
        if found is None:
            return None
        found["taken"], last = True, found["at"]
    return last if texts else 0.0


def accepted(message: Message) -> Attempt:
    return next(a for a in reversed(message.attempts) if a.answered is not None and not a.lost)


def wait_until_settled(messages: list[Message], api: FakeWeChatApi, rasa_url: str, timeout: float) -> None:
    """Poll until every answer the trackers show has reached the follower (or no progress for 30 s)."""
    deadline, last_progress, best = time.monotonic() + timeout, time.monotonic(), -1
    openids = {m.openid for m in messages}
    while time.monotonic() < deadline:
        read_answers(messages, trackers(rasa_url, openids))
        outcome, _ = settle(messages, api)
        done = outcome["passive"] + outcome["push"] + outcome["silent"]
        if done == len(messages) and all(m.reached_bot for m in messages):
            return
        if done > best:
            best, last_progress = done, time.monotonic()
        elif time.monotonic() - last_progress > 30:
            return
        time.sleep(2)  # each poll reads every tracker from the busy Rasa server


def count_tickets(database_url: str) -> Counter:
    engine = create_engine(database_url, future=True)
    try:
        with engine.connect() as connection:
            return Counter(r.conversation_id for r in connection.execute(text("SELECT conversation_id FROM tickets")))
    finally:
        engine.dispose()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def seconds(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} / {percentile(values, 0.95):.2f} / {max(values):.2f} s (n={len(values)})"


# --- the run ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=50)
    parser.add_argument("--messages", type=int, default=4, help="messages per follower")
    parser.add_argument("--spread", type=float, default=3.0, help="seconds over which all messages are sent")
    parser.add_argument("--lost", type=float, default=0.2, help="share of answers lost on the way (forces a retry)")
    parser.add_argument("--plain", action="store_true", help="plaintext mode instead of safe mode (AES)")
    parser.add_argument("--redis", default="", metavar="URL", help="dedup in Redis, e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--concurrency", type=int, default=4, help="WECHAT_BOT_CONCURRENCY: bot turns at once")
    parser.add_argument("--reply-seconds", type=float, default=3.5, help="WECHAT_REPLY_SECONDS")
    parser.add_argument("--seed", default="95598")
    args = parser.parse_args()
    if not MODEL.exists():
        print(f"no trained model at {MODEL}", file=sys.stderr)
        return 2

    tag = uuid.uuid4().hex[:6]
    database_url, pg_name = create_database(args.database, args.postgres_server, bench="wechat")
    api = FakeWeChatApi(APP_ID, APP_SECRET)
    servers: tuple[Process, ...] = ()
    try:
        init = [PYTHON, "-m", "bot", "db", "init", "--demo", "--database-url", database_url]
        env = {**os.environ, "DATABASE_URL": database_url}
        subprocess.run(init, cwd=PROJECT, check=True, stdout=subprocess.DEVNULL, env=env)
        with running(api.server) as api_url:
            began = time.monotonic()
            actions, rasa, rasa_url = start_stack(database_url, tag, api_url, args)
            servers = (rasa, actions)
            print(f"servers up in {time.monotonic() - began:.1f} s", flush=True)
            platform = WeChatPlatform(f"{rasa_url}/webhooks/wechat/webhook", TOKEN, AES_KEY, APP_ID)
            # not measured: each text once, one at a time, so that lazily built parts (TensorFlow
            # traces a new graph for each new input shape, a second or more) are built before
            warm = new_openid()
            for said in dict.fromkeys(t for script in SCRIPTS for t in script if t != "转人工"):
                answer = platform.post(platform.text(warm, said), encrypted=not args.plain, timeout=60)
                assert answer.status == 200, answer
            load_before = os.getloadavg()[0]

            messages = make_messages(args.followers, args.messages, args.spread, args.seed)
            rng = random.Random(args.seed)
            losses = [random.Random(rng.random()) for _ in messages]
            start_line = time.monotonic() + 0.5
            threads = [
                threading.Thread(target=deliver, args=(platform, m, not args.plain, args.lost, r, start_line))
                for m, r in zip(messages, losses, strict=True)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            sent_within = max(m.first_sent for m in messages) - min(m.first_sent for m in messages)
            wait_until_settled(messages, api, rasa_url, timeout=300)
            read_answers(messages, trackers(rasa_url, {m.openid for m in messages}))
            outcome, twice = settle(messages, api)
            tickets = count_tickets(database_url)
            rasa_log = rasa.log()
        problems = report(args, messages, outcome, twice, tickets, sent_within, api, rasa_log, load_before)
        return 1 if problems else 0
    finally:
        for server in servers:
            server.stop()
        drop_database(database_url, pg_name, args.postgres_server)


def report(args, messages: list[Message], outcome: Counter, twice: int, tickets: Counter, sent_within: float,
           api: FakeWeChatApi, rasa_log: str, load_before: float) -> list[str]:  # fmt: skip
    attempts = [a for m in messages for a in m.attempts]
    retried = [m for m in messages if len(m.attempts) > 1]
    timed_out = sum(1 for a in attempts if a.answered is None)
    delivered = [m for m in messages if m.how in ("passive", "push")]
    waits = [m.delivered_at - m.first_sent for m in delivered]
    passive = [m.delivered_at - m.first_sent for m in delivered if m.how == "passive"]
    pushed = [m.delivered_at - m.first_sent for m in delivered if m.how == "push"]
    first_answers = [a.answered - a.sent for m in messages for a in m.attempts[:1] if a.answered is not None]
    reached_twice = sum(1 for m in messages if m.reached_bot > 1)
    never = [m for m in messages if m.reached_bot == 0]
    asked_human = {m.openid for m in messages if m.text == "转人工"}
    wrong_tickets = [o for o in {m.openid for m in messages} if tickets.get(o, 0) != (1 if o in asked_human else 0)]

    mode = "plaintext" if args.plain else "safe mode (AES)"
    store = "Redis" if args.redis else args.database
    print(f"\n{len(messages)} messages from {args.followers} followers, {mode}, dedup in {store}, "
          f"{args.concurrency} bot turns at once, passive reply within {args.reply_seconds} s")  # fmt: skip
    print(f"first attempts sent within       {sent_within:.2f} s (1-min load average before: {load_before:.2f})")
    print(f"WeChat attempts                   {len(attempts)} ({len(attempts) - len(messages)} retries: "
          f"{len(retried)} messages retried, {timed_out} attempts without an answer in 5 s, "
          f"{sum(a.lost for a in attempts)} answers dropped on purpose)")  # fmt: skip
    print(f"HTTP answer to the first attempt  p50 / p95 / max {seconds(first_answers)}")
    print(f"answers delivered                 {len(delivered)} of {len(messages) - outcome['silent']} "
          f"(passive {outcome['passive']}, pushed {outcome['push']}; {outcome['silent']} silent turns; "
          f"{outcome['missing']} missing)")  # fmt: skip
    print(f"duplicates                        {reached_twice} messages reached the bot twice, "
          f"{twice} texts delivered twice")  # fmt: skip
    print(f"time to the answer                p50 / p95 / max {seconds(waits)}")
    print(f"  as the passive reply            {seconds(passive)}")
    print(f"  pushed through the API          {seconds(pushed)}")
    print(f"pushes to the API                 {len(api.sent)} texts, {api.token_requests} access token fetch(es)")
    print(f"tickets                           {sum(tickets.values())} for {len(asked_human)} followers asking 转人工")
    print(f"Rasa server log                   {rasa_log.count('Traceback')} tracebacks, "
          f"{rasa_log.count('WeChat request refused')} refusals, {rasa_log.count(' ERROR ')} ERROR lines")  # fmt: skip

    problems = []
    if outcome["missing"]:
        problems.append(f"{outcome['missing']} answers never reached the follower")
    if reached_twice or twice:
        problems.append(f"duplicates: {reached_twice} messages reached the bot twice, {twice} texts delivered twice")
    if never:
        problems.append(f"{len(never)} messages never reached the bot")
    if wrong_tickets:
        problems.append(f"{len(wrong_tickets)} followers with the wrong number of tickets")
    for m in [m for m in messages if m.how == "silent"][:5]:
        print(f"  silent turn (the bot said nothing): follower {m.follower} {m.text!r}")
    for m in [m for m in messages if m.how == "missing"][:5]:
        print(f"  missing: follower {m.follower} {m.text!r}: expected {m.expected}, passive {m.passive!r}")
    print("\n" + ("FAILED: " + "; ".join(problems) if problems else "all checks passed"))
    return problems


if __name__ == "__main__":
    sys.exit(main())
